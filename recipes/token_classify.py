"""Fine-tune a pretrained checkpoint to tag named entities (token classification), evaluate it and write a card.

    accelerate launch recipes/token_classify.py                  # MiniLM-L6 on wnut16 (recipes/configs/ner.yaml)
    python recipes/token_classify.py strategy=adapter data.dataset=my.conll

The same run as recipes/classify.py with task=token-classification; `--help` lists every key. The output folder
loads with transformers.pipeline("token-classification", aggregation_strategy="simple").
"""

from pathlib import Path

from hf_transfer.cli import run_recipe

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "ner.yaml"


def main(argv=None):
    run_recipe("token-classify", DEFAULT_CONFIG, argv, description=__doc__)


if __name__ == "__main__":
    main()
