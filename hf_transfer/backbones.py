"""Load any checkpoint for sequence classification; every family difference lives in FAMILIES.

A model is named by an asset (`minilm-l6`), a local folder, or a Hub id. Family quirks:
decoder-only models (GPT-2, Llama) get a pad token (their eos) and are pooled on the last real token by
transformers; T5 classifies through `classification_head`; each family names its default LoRA targets and the
head modules that must always train and be saved.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import transformers
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from .assets import ASSETS, asset_path
from .errors import UserError


@dataclass(frozen=True)
class Family:
    name: str
    lora_targets: tuple[str, ...]  # peft target_modules suffixes for adapters
    head_modules: tuple[str, ...]  # classification head: always trainable, saved with adapters (modules_to_save)
    decoder_only: bool = False  # needs a pad token; classified from the last real token
    encoder_decoder: bool = False


FAMILIES = {
    family.name: family
    for family in [
        Family("bert", ("query", "value"), ("classifier",)),
        Family("distilbert", ("q_lin", "v_lin"), ("pre_classifier", "classifier")),
        Family("gpt2", ("c_attn",), ("score",), decoder_only=True),
        Family("llama", ("q_proj", "v_proj"), ("score",), decoder_only=True),
        Family("t5", ("q", "v"), ("classification_head",), encoder_decoder=True),
    ]
}
MODEL_TYPE_FAMILY = {
    "bert": "bert", "roberta": "bert", "xlm-roberta": "bert", "electra": "bert", "camembert": "bert",
    "distilbert": "distilbert",
    "gpt2": "gpt2",
    "llama": "llama", "mistral": "llama", "qwen2": "llama", "qwen3": "llama",
    "t5": "t5", "mt5": "t5", "umt5": "t5",
}


def family_of(config) -> Family:
    """The quirks of a model's family; our own backbones register theirs in hf_transfer.models."""
    from . import models  # our backbones' families

    model_type = config.model_type
    if model_type in models.HEAD_MODULES:
        return Family(model_type, tuple(models.DEFAULT_LORA_TARGETS[model_type]), (models.HEAD_MODULES[model_type],))
    if model_type in MODEL_TYPE_FAMILY:
        return FAMILIES[MODEL_TYPE_FAMILY[model_type]]
    # An unlisted architecture still runs: peft picks its own default targets and the head is found by name.
    return Family(model_type, (), ("classifier", "score", "classification_head"))


@dataclass
class ResolvedModel:
    name: str  # what the user wrote
    location: str  # local folder or Hub id handed to from_pretrained
    load_kwargs: dict
    base_model: str | None  # Hub id for card metadata, where one is known


def resolve_model(name: str) -> ResolvedModel:
    if name in ASSETS:
        asset = ASSETS[name]
        if asset.kind != "model":
            models_known = ", ".join(n for n, a in ASSETS.items() if a.kind == "model")
            raise UserError(f"asset {name!r} is a {asset.kind}, not a model: model assets are {models_known}")
        kwargs = {"gguf_file": asset.gguf_file} if asset.gguf_file else {}
        return ResolvedModel(name, str(asset_path(name)), kwargs, asset.extra.get("hub_id"))
    path = Path(name).expanduser()
    if path.is_dir():
        return ResolvedModel(name, str(path), {}, None)
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise UserError(f"model folder {name!r} not found: name a model asset, a folder with config.json, or a Hub id")
    return ResolvedModel(name, name, {}, name)


def _hub_failure(name: str, what: str, err: Exception) -> UserError:
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    assets = ", ".join(n for n, a in ASSETS.items() if a.kind == "model")
    why = "offline mode is on (HF_HUB_OFFLINE=1) and it is not in the local cache" if offline else str(err).splitlines()[0][:160]
    return UserError(f"cannot load the {what} of model {name!r}: {why}; name a model asset ({assets}), a local folder or a Hub id")


def load_model_config(model: ResolvedModel, **overrides):
    from . import models  # noqa: F401  registers our backbones with the Auto classes

    try:
        return AutoConfig.from_pretrained(model.location, **model.load_kwargs, **overrides)
    except (OSError, ValueError) as err:
        raise _hub_failure(model.name, "config", err) from None


def load_tokenizer(model: ResolvedModel):
    try:
        tokenizer = AutoTokenizer.from_pretrained(model.location, **model.load_kwargs)
    except (OSError, ValueError) as err:
        raise _hub_failure(model.name, "tokenizer", err) from None
    if tokenizer.pad_token is None:
        # GPT-2 and Llama ship without a pad token; their eos is the customary stand-in.
        if tokenizer.eos_token is None:
            raise UserError(f"the tokenizer of {model.name!r} has neither a pad nor an eos token; add a pad token to it")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_classifier(model: ResolvedModel, tokenizer, id2label: dict, problem_type: str, pretrained: bool = True):
    """AutoModelForSequenceClassification with our labels; `pretrained=False` keeps the architecture only."""
    config = load_model_config(
        model,
        num_labels=len(id2label),
        id2label=dict(id2label),
        label2id={v: k for k, v in id2label.items()},
        problem_type=problem_type,
        pad_token_id=tokenizer.pad_token_id,
    )
    try:
        if pretrained:
            with _quiet_head_warning():
                classifier = AutoModelForSequenceClassification.from_pretrained(model.location, config=config, **model.load_kwargs)
        else:
            classifier = AutoModelForSequenceClassification.from_config(config)
    except ValueError as err:
        if "Unrecognized configuration class" in str(err):
            raise UserError(
                f"model {model.name!r} ({config.model_type}) has no sequence-classification head in transformers; "
                "pick a BERT-, GPT-2-, T5- or Llama-family checkpoint or one of ours"
            ) from None
        raise
    except OSError as err:
        raise _hub_failure(model.name, "weights", err) from None
    if len(tokenizer) > classifier.get_input_embeddings().num_embeddings:
        raise UserError(
            f"tokenizer of {model.name!r} has {len(tokenizer)} tokens but the model's embedding has "
            f"{classifier.get_input_embeddings().num_embeddings}: use the tokenizer saved with the model"
        )
    # Trainer skips its gradient-accumulation loss scaling for models whose forward takes **kwargs;
    # these models average their own loss, so they must be scaled like any other.
    classifier.accepts_loss_kwargs = False
    return classifier


class _quiet_head_warning:
    """The freshly initialised classification head is expected; silence transformers' warning about it."""

    def __enter__(self):
        self.level = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()

    def __exit__(self, *exc):
        transformers.logging.set_verbosity(self.level)
