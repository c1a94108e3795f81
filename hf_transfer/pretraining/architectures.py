"""The architectures pretraining can build, each with its objective and laptop-sized defaults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSeq2SeqLM

from .. import models as _registers_our_backbones  # noqa: F401  hft-* model types for AutoConfig.for_model
from ..config import PretrainConfig
from ..errors import UserError

MIN_POSITIONS = 512  # position tables of at least this size, so fine-tuning may use longer texts than pretraining


@dataclass(frozen=True)
class Architecture:
    """One row of ARCHITECTURES.

    model_type: the name AutoConfig.for_model knows it by. objective: "mlm" (masked LM), "causal" (next token) or
    "span" (T5 span corruption). defaults: config settings small enough to train on a laptop CPU in minutes,
    which `model_config` overrides. positions_key: the config key that bounds the sequence length, if the model has
    a position table (None for T5's relative positions and for our TextCNN and RNN).
    """

    model_type: str
    objective: str
    defaults: dict[str, Any]
    positions_key: str | None = None


ARCHITECTURES = {
    "bert": Architecture("bert", "mlm", dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                                             intermediate_size=1024), "max_position_embeddings"),
    "gpt2": Architecture("gpt2", "causal", dict(n_embd=256, n_layer=4, n_head=4), "n_positions"),
    "t5": Architecture("t5", "span", dict(d_model=256, d_kv=64, d_ff=1024, num_layers=4, num_decoder_layers=4,
                                          num_heads=4)),
    "hft-attention": Architecture("hft-attention", "mlm", dict(hidden_size=256, num_hidden_layers=4,
                                                               num_attention_heads=4, intermediate_size=1024),
                                  "max_position_embeddings"),
    "hft-textcnn": Architecture("hft-textcnn", "mlm", {}),
    "hft-rnn": Architecture("hft-rnn", "causal", {}),
}
AUTO_MODEL_CLASSES = {"mlm": AutoModelForMaskedLM, "causal": AutoModelForCausalLM, "span": AutoModelForSeq2SeqLM}


def check_config(config: PretrainConfig) -> Architecture:
    """The run's Architecture, after failing on settings that can never work, before any data is read or written.

    Raises UserError for a `model_config` key that the architecture's config class does not have.
    """
    architecture = ARCHITECTURES[config.architecture]
    probe = AutoConfig.for_model(architecture.model_type)
    unknown = [key for key in config.model_config if not hasattr(probe, key)]
    if unknown:
        raise UserError(f"model_config key {unknown[0]!r} is not a setting of {type(probe).__name__}: "
                        f"check the spelling (the defaults here set {', '.join(architecture.defaults) or 'nothing'})")
    return architecture
