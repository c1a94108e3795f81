"""Fine-tune a pretrained checkpoint for text classification, evaluate it and write a model card.

    accelerate launch recipes/classify.py                        # the default config
    accelerate launch recipes/classify.py --config my.yaml strategy=adapter train.epochs=3
    python recipes/classify.py data.max_train_samples=500       # plain python works too

`--help` lists every key; the output folder loads with transformers.pipeline.
"""

from pathlib import Path

from hf_transfer.cli import run_recipe

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "classify.yaml"


def main(argv=None):
    run_recipe("classify", DEFAULT_CONFIG, argv, description=__doc__)


if __name__ == "__main__":
    main()
