"""The pooling a checkpoint declares for its text embeddings, and a classifier that reads its features that way.

A sentence-transformers checkpoint names its pooling in the folder of its Pooling module (modules.json's
`sentence_transformers.models.Pooling` entry, usually `1_Pooling/config.json`): `pooling_mode_mean_tokens`,
`pooling_mode_cls_token` or `pooling_mode_max_tokens` (newer releases: `"pooling_mode": "mean"`). all-MiniLM-L6-v2
declares mean pooling and was never trained through BERT's pooler (dense + tanh on the CLS state), which
BertForSequenceClassification feeds its classifier; issue 17 measured a logistic regression on MiniLM's
mean-pooled embeddings 0.8-7.2 points above the pooler-fed linear probe at every K. The frozen and linear-probe
strategies therefore read a checkpoint through its declared pooling (option `pooling`: auto, the default, or head,
mean, cls, max), with hf_transfer.models' `hft-pooled` classifier, which saves as remote code.
A declared Normalize module is not applied: both strategies scale the features anyway (a trained head, or the
probe's standardisation).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import transformers
from torch import nn

from .errors import UserError
from .log import logger

POOLING_OPTIONS = ("auto", "head", "mean", "cls", "max")
_MODES = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max"}
POOLING_MODULE = "sentence_transformers.models.Pooling"


def declared_pooling(folder) -> str | None:
    """"mean", "cls" or "max": the pooling a local checkpoint folder's sentence-transformers files declare; None
    when it declares none (no modules.json / Pooling config, or not a local folder). Raises UserError for a
    declaration this project cannot apply (several modes concatenated, mean_sqrt_len, weighted, last token)."""
    folder = Path(str(folder)) if folder else None
    if folder is None or not folder.is_dir():
        return None
    path = folder / "1_Pooling" / "config.json"
    modules = folder / "modules.json"
    if modules.is_file():
        entries = [m for m in json.loads(modules.read_text()) if m.get("type") == POOLING_MODULE]
        if not entries:
            return None
        path = folder / entries[0].get("path", "1_Pooling") / "config.json"
    if not path.is_file():
        return None
    settings = json.loads(path.read_text())
    if isinstance(settings.get("pooling_mode"), str):
        modes = [settings["pooling_mode"]]
    else:
        modes = [key for key, value in settings.items() if key.startswith("pooling_mode_") and value]
    if len(modes) == 1 and (modes[0] in _MODES or modes[0] in _MODES.values()):
        return _MODES.get(modes[0], modes[0])
    raise UserError(f"{path} declares pooling {', '.join(modes) or 'none'}; hf_transfer applies one of mean, cls "
                    "or max: set strategy_options.pooling=mean, cls, max or head")


def declares_normalize(folder) -> bool:
    """Whether a local checkpoint folder's modules.json ends its embeddings with a Normalize module."""
    modules = Path(str(folder)) / "modules.json" if folder else None
    return bool(modules and modules.is_file() and any(
        m.get("type") == "sentence_transformers.models.Normalize" for m in json.loads(modules.read_text())))


def check_pooling_for(pooling: str, tags_tokens: bool) -> None:
    """Raise UserError for an explicit pooling (mean / cls / max) of a tagger's texts: it classifies every token."""
    if tags_tokens and pooling not in ("auto", "head"):
        raise UserError(f"strategy_options.pooling={pooling} pools a text into one vector; a tagger classifies "
                        "every token: drop strategy_options.pooling")


def unread_pooler(encoder) -> nn.Module | None:
    """The encoder's own `pooler` submodule (BERT's dense + tanh on the CLS state), which a mean / cls / max reading
    of its last hidden states never reads; None where it has none (RoBERTa's classifiers build theirs without)."""
    pooler = getattr(encoder, "pooler", None)
    return pooler if isinstance(pooler, nn.Module) else None


def pooled_classifier(model, family, pooling: str, normalize: bool = False):
    """(model, family, applied pooling): `model` (a ...ForSequenceClassification from a checkpoint) as it reads
    its features under strategy option `pooling`: "head" keeps the model's own head (applied: `head_pooling`);
    "mean" / "cls" / "max" put a new linear classifier on that pooling of the encoder's last hidden states
    (hft-pooled, sharing the encoder module and its weights); "auto" is the checkpoint's declared pooling
    (declared_pooling) where it declares one, else "head". `normalize` scales the pooled vector to unit norm
    (hft-pooled's normalize). Raises UserError for an explicit pooling on a model it cannot wrap (encoder-decoder,
    our own hft-* backbones, which pool by their own config)."""
    if pooling not in POOLING_OPTIONS:
        raise UserError(f"strategy_options.pooling={pooling!r} is not one of {', '.join(POOLING_OPTIONS)}")
    model_type = model.config.model_type
    if family.task_type != "SEQ_CLS":  # a tag per token: nothing to pool
        check_pooling_for(pooling, tags_tokens=True)
        return model, family, "head"
    wrappable = (model_type in transformers.models.auto.modeling_auto.MODEL_MAPPING_NAMES
                 and not family.encoder_decoder and hasattr(model, "base_model"))
    if pooling == "auto":
        declared = declared_pooling(getattr(model.config, "name_or_path", None))
        if declared is None:
            return model, family, head_pooling(model)
        if not wrappable:
            logger.warning(f"{model.config.name_or_path} declares {declared} pooling, which a {model_type} "
                           "classifier cannot apply here: using its own head")
            return model, family, head_pooling(model)
        logger.info(f"reading {model_type} features by the {declared} pooling its checkpoint declares")
        pooling = declared
    if pooling == "head":
        return model, family, head_pooling(model)
    if not wrappable:
        raise UserError(f"strategy_options.pooling={pooling} needs an encoder or decoder that transformers' AutoModel "
                        f"loads; {model_type} pools through its own head: use pooling=head")
    from .models import PooledConfig, PooledForSequenceClassification

    config = PooledConfig(encoder=model.base_model.config, pooling=pooling, normalize=normalize,
                          classifier_dropout=_dropout(model.config), num_labels=model.config.num_labels,
                          id2label=model.config.id2label, label2id=model.config.label2id,
                          problem_type=model.config.problem_type, pad_token_id=model.config.pad_token_id)
    wrapped = PooledForSequenceClassification(config, encoder=model.base_model)
    wrapped.to(model.device, model.dtype)
    return wrapped, replace(family, name="hft-pooled", head_modules=("classifier",), lora_targets=()), pooling


def head_pooling(model) -> str:
    """The applied pooling of a model read through its own head: "head", or for an hft-pooled checkpoint (a frozen
    or linear-probe run's output folder) the pooling its config names, which is what its head reads."""
    return model.config.pooling if model.config.model_type == "hft-pooled" else "head"


def _dropout(config) -> float:
    """The dropout before the classifier the checkpoint's own head would use."""
    for key in ("classifier_dropout", "hidden_dropout_prob", "resid_pdrop", "dropout"):
        if isinstance(getattr(config, key, None), (int, float)):
            return float(getattr(config, key))
    return 0.1
