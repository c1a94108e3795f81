"""Pretrain a small language model on a text corpus: BERT (masked LM), GPT-2 (causal LM), T5 (span corruption)
or one of hf_transfer's own backbones.

    python recipes/pretrain.py                                             # BERT on Shakespeare
    python recipes/pretrain.py --config recipes/configs/pretrain_gpt2.yaml corpus=my_texts/ max_steps=2000
    accelerate launch recipes/pretrain.py --config recipes/configs/pretrain_t5.yaml

Interrupted? Run the same command again: it resumes from the last checkpoint in output_dir. The output folder
loads with AutoModelForMaskedLM / AutoModelForCausalLM / AutoModelForSeq2SeqLM, and as `model=` of
recipes/classify.py for fine-tuning. See hf_transfer/pretraining.py (PretrainConfig) for every key.
"""

import argparse
from pathlib import Path

from accelerate import PartialState

from hf_transfer.config import load_config
from hf_transfer.errors import exit_on_user_error
from hf_transfer.config import PretrainConfig
from hf_transfer.pretraining import run_pretraining

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "pretrain_bert.yaml"


@exit_on_user_error
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="YAML config (default: %(default)s)")
    parser.add_argument("overrides", nargs="*",
                        help="key=value overrides, dotted for model_config: model_config.n_layer=6")
    args = parser.parse_args(argv)
    config = load_config(PretrainConfig, args.config, args.overrides)
    metrics = run_pretraining(config)
    PartialState().print(
        f"{metrics['architecture']}: step {metrics['global_step']}, train loss {metrics['final_train_loss']:.3f}, "
        f"eval loss {metrics['eval_loss']:.3f}, perplexity {metrics['perplexity']:.1f}, "
        f"{metrics['tokens_per_second']:,.0f} tokens/s; output in {metrics['output_dir']}"
    )


if __name__ == "__main__":
    main()
