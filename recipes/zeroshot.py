"""Evaluate a pretrained checkpoint zero-shot (no training) and write metrics, predictions and a card.

    python recipes/zeroshot.py                                          # embedding, MiniLM-L6, Rotten Tomatoes
    python recipes/zeroshot.py --config recipes/configs/zeroshot-lm.yaml options.calibrate=true
    python recipes/zeroshot.py method=nli model=MNLI_CHECKPOINT 'options={template: "This review is {label}."}'

Methods: nli, lm, seq2seq, embedding (see hf_transfer/zeroshot/). The data is split exactly as
recipes/classify.py splits it, so the test accuracy compares with fine-tuned runs. `--help` lists every key.
"""

from pathlib import Path

from hf_transfer.cli import run_recipe

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "zeroshot.yaml"


def main(argv=None):
    run_recipe("zeroshot", DEFAULT_CONFIG, argv, description=__doc__)


if __name__ == "__main__":
    main()
