"""Evaluate a pretrained checkpoint zero-shot (no training) and write metrics, predictions and a card.

    python recipes/zeroshot.py                                          # embedding, MiniLM-L6, Rotten Tomatoes
    python recipes/zeroshot.py --config recipes/configs/zeroshot-lm.yaml options.calibrate=true
    python recipes/zeroshot.py method=nli model=MNLI_CHECKPOINT 'options={template: "This review is {label}."}'

Methods: nli, lm, seq2seq, embedding (see hf_transfer/zeroshot/). The data is split exactly as
recipes/classify.py splits it, so the test accuracy compares with fine-tuned runs.
"""

import argparse
from pathlib import Path

from hf_transfer.config import load_config
from hf_transfer.errors import exit_on_user_error
from hf_transfer.zeroshot import ZeroShotConfig, run_zeroshot

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "zeroshot.yaml"


@exit_on_user_error
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="YAML config (default: %(default)s)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, dotted for sections: data.max_eval_samples=500")
    args = parser.parse_args(argv)
    config = load_config(ZeroShotConfig, args.config, args.overrides)
    result = run_zeroshot(config)
    test = result.metrics["test"]
    print(f"zero-shot {config.method}: test accuracy {test['accuracy']:.4f}, macro F1 {test['f1_macro']:.4f}; "
          f"output in {config.output_dir or 'outputs/'}")


if __name__ == "__main__":
    main()
