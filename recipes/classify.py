"""Fine-tune a pretrained checkpoint for text classification, evaluate it and write a model card.

    accelerate launch recipes/classify.py                        # the default config
    accelerate launch recipes/classify.py --config my.yaml strategy=adapter train.epochs=3
    python recipes/classify.py data.max_train_samples=500       # plain python works too

See recipes/configs/classify.yaml for the keys; the output folder loads with transformers.pipeline.
"""

import argparse
from pathlib import Path

from hf_transfer.classify import run_classify
from hf_transfer.config import ClassifyConfig, load_config
from hf_transfer.errors import exit_on_user_error

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "classify.yaml"


@exit_on_user_error
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="YAML config (default: %(default)s)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, dotted for sections: train.epochs=3")
    args = parser.parse_args(argv)
    config = load_config(ClassifyConfig, args.config, args.overrides)
    result = run_classify(config)
    test = result.metrics["test"]
    print(f"test accuracy {test['accuracy']:.4f}, macro F1 {test['f1_macro']:.4f}; "
          f"output in {config.output_dir or 'outputs/'}")


if __name__ == "__main__":
    main()
