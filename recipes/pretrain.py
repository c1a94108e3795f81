"""Pretrain a small language model on a text corpus: BERT (masked LM), GPT-2 (causal LM), T5 (span corruption)
or one of hf_transfer's own backbones.

    python recipes/pretrain.py                                             # BERT on Shakespeare
    python recipes/pretrain.py --config recipes/configs/pretrain_gpt2.yaml corpus=my_texts/ max_steps=2000
    accelerate launch recipes/pretrain.py --config recipes/configs/pretrain_t5.yaml

Interrupted? Run the same command again: it resumes from the last checkpoint in output_dir. The output folder
loads with AutoModelForMaskedLM / AutoModelForCausalLM / AutoModelForSeq2SeqLM, and as `model=` of
recipes/classify.py for fine-tuning. `--help` lists every key.
"""

from pathlib import Path

from hf_transfer.cli import run_recipe

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "pretrain_bert.yaml"


def main(argv=None):
    run_recipe("pretrain", DEFAULT_CONFIG, argv, description=__doc__)


if __name__ == "__main__":
    main()
