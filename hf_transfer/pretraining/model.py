"""The model to pretrain: built with random weights from an architecture, or a saved checkpoint to continue."""

from __future__ import annotations

import torch
from transformers import AutoConfig, AutoTokenizer, PreTrainedModel

from ..backbones import ResolvedModel, load_model_config, resolve_model
from ..config import PretrainConfig
from ..errors import UserError, first_line
from ..log import logger
from .architectures import AUTO_MODEL_CLASSES, MIN_POSITIONS, Architecture


def build_model(architecture: Architecture, tokenizer, config: PretrainConfig) -> PreTrainedModel:
    """A randomly initialised model (seeded by `config.seed`) with its language-modelling head.

    Settings: the architecture's small defaults, a position table of max(MIN_POSITIONS, max_seq_length), then
    `model_config` on top; vocab_size and the pad/bos/eos ids default to the tokenizer's. Raises UserError when the
    tokenizer has more tokens than the model's vocab_size, when max_seq_length exceeds the position table, and when
    the config class rejects the settings.
    """
    settings = dict(architecture.defaults)
    if architecture.positions_key:
        settings[architecture.positions_key] = max(MIN_POSITIONS, config.max_seq_length)
    settings.update(config.model_config)
    settings.setdefault("vocab_size", len(tokenizer))
    _check_vocabulary_fits(tokenizer, settings["vocab_size"], "the model")
    if architecture.positions_key and settings[architecture.positions_key] < config.max_seq_length:
        raise UserError(f"max_seq_length={config.max_seq_length} exceeds model_config.{architecture.positions_key}="
                        f"{settings[architecture.positions_key]}: raise it or lower max_seq_length")
    for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
        token_id = getattr(tokenizer, name)
        if token_id is not None:
            settings.setdefault(name, token_id)
    if architecture.objective == "span":
        settings.setdefault("decoder_start_token_id", tokenizer.pad_token_id)
    try:
        model_config = AutoConfig.for_model(architecture.model_type, **settings)
    except (ValueError, TypeError, AttributeError) as err:
        raise UserError(f"model_config for {config.architecture} is invalid: {first_line(err)}") from None
    torch.manual_seed(config.seed)  # same seed, same initial weights
    return AUTO_MODEL_CLASSES[architecture.objective].from_config(model_config)


def starting_checkpoint(config: PretrainConfig, architecture: Architecture) -> ResolvedModel | None:
    """The model `from_checkpoint` names (asset, folder or Hub id), or None to start from random weights.

    Raises UserError when it is not of the configured architecture (and whatever resolve_model raises for a name
    that is not a model).
    """
    if not config.from_checkpoint:
        return None
    checkpoint = resolve_model(config.from_checkpoint)
    model_type = load_model_config(checkpoint).model_type
    if model_type != architecture.model_type:
        raise UserError(f"from_checkpoint {config.from_checkpoint!r} is a {model_type} model but "
                        f"architecture={config.architecture}: set architecture to match it")
    return checkpoint


def load_checkpoint_model(checkpoint: ResolvedModel, architecture: Architecture, tokenizer,
                          config: PretrainConfig) -> PreTrainedModel:
    """The checkpoint's weights with the objective's head, to continue pretraining (`model_config` is ignored).

    Raises UserError when the tokenizer has more tokens than the checkpoint's embeddings, or when `config.tokenizer`
    has a different vocabulary from the checkpoint's own tokenizer (the ids would mean other words).
    """
    model_config = load_model_config(checkpoint)
    if config.model_config:
        logger.warning("model_config is ignored: from_checkpoint fixes the model's shape")
    _check_vocabulary_fits(tokenizer, model_config.vocab_size, f"from_checkpoint {config.from_checkpoint!r}")
    if config.tokenizer:
        try:
            own = AutoTokenizer.from_pretrained(checkpoint.location, **checkpoint.load_kwargs)
        except (OSError, ValueError):
            own = None  # nothing to compare with: the size check above is all we can do
        if own is not None and own.get_vocab() != tokenizer.get_vocab():
            raise UserError(f"tokenizer {config.tokenizer!r} has a different vocabulary from the one "
                            f"{config.from_checkpoint!r} was trained with, so its embeddings would be read with the "
                            "wrong ids: leave tokenizer unset to use the checkpoint's own")
    return AUTO_MODEL_CLASSES[architecture.objective].from_pretrained(checkpoint.location, **checkpoint.load_kwargs)


def _check_vocabulary_fits(tokenizer, model_vocab_size: int, model_name: str) -> None:
    if model_vocab_size < len(tokenizer):
        raise UserError(f"tokenizer/model vocabulary mismatch: the tokenizer has {len(tokenizer)} tokens but "
                        f"{model_name} has only {model_vocab_size} embeddings: use the model's own tokenizer "
                        "or a model vocab_size of at least the tokenizer's length")
