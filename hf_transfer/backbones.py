"""Load any backbone for classification; every family difference lives in FAMILIES.

A model is named by an asset (`minilm-l6`), a local folder (a Hub-style checkpoint or one saved by
`recipes/pretrain.py`), a Hub id, or one of our model types (`hft-textcnn`, `hft-rnn`, `hft-attention`), which is
built from its config: sizes from `model_config`, vocabulary from the tokenizer (minilm-l6's WordPiece unless
`tokenizer=` names another).

Family quirks, all handled here so that no user flag is family-specific:
- decoder-only (GPT-2, Llama): a pad token (their eos) and right padding. transformers pools the rightmost token
  that is not the pad token and takes position ids from 0 whatever the attention mask says, so left padding would
  shift every padded text's positions and change its logits; with right padding a text's logits do not depend on
  its batch (tests/test_backbones.py checks both).
- encoder-decoder (T5): T5ForSequenceClassification feeds the text to the decoder too and classifies from the
  hidden state of the last eos, so every text must end with the tokenizer's eos and the config must name it;
  `head=text-to-text` instead trains the model to write the label's words (hf_transfer.text_to_text).
- each family names its default LoRA targets and the head modules that must always train and be saved, for the
  sequence head (AutoModelForSequenceClassification) and the token head (AutoModelForTokenClassification, which
  task=token-classification loads: BERT's has no pooler, GPT-2's is `classifier` not `score`, T5's is a
  `classifier` over the encoder alone).
- byte-level BPE tokenizers (GPT-2, RoBERTa, Llama's) read pre-split words only with add_prefix_space=True: a
  token-classification run loads them so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers
from torch import nn
from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification, AutoTokenizer

from .assets import ASSETS, asset_path, names_of_kind, require_kind
from .errors import UserError, first_line
from .log import logger
from .results import METRICS_FILE, RunResult
from .subwords import splits_words_like_text

DEFAULT_TOKENIZER = "minilm-l6"  # for our backbones built from config: a 30k WordPiece vocabulary, lowercased
HEADS = ("classification", "text-to-text")


@dataclass(frozen=True)
class Family:
    """A group of model types that share module names and padding rules (MODEL_TYPE_FAMILY maps a config's model_type to
    one): what adapters target, which modules form the head, how texts are padded and read."""

    name: str
    lora_targets: tuple[str, ...]  # peft target_modules suffixes for adapters
    head_modules: tuple[str, ...]  # classification head, module paths: always trainable, saved with adapters
    decoder_only: bool = False  # pad token from eos, right padding; classified from the last non-pad token
    encoder_decoder: bool = False  # texts end with eos, where the head reads them; head=text-to-text possible
    token_head_modules: tuple[str, ...] = ("classifier",)  # the head of the family's ...ForTokenClassification
    task_type: str = "SEQ_CLS"  # the head these modules belong to, as peft names it: SEQ_CLS or TOKEN_CLS


FAMILIES = {
    family.name: family
    for family in [
        # BERT's dense+tanh pooler is its head's hidden layer, as in RoBERTa's and T5's heads (absent there: skipped)
        Family("bert", ("query", "value"), ("bert.pooler", "classifier")),
        Family("distilbert", ("q_lin", "v_lin"), ("pre_classifier", "classifier")),
        Family("gpt2", ("c_attn",), ("score",), decoder_only=True),
        Family("llama", ("q_proj", "v_proj"), ("score",), decoder_only=True, token_head_modules=("score",)),
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


def our_model_types() -> tuple[str, ...]:
    """The model types of hf_transfer.models (built from config, no checkpoint), imported on first use."""
    from . import models

    return tuple(models.HEAD_MODULES)


def family_of(config, head: str = "classification", task_type: str = "SEQ_CLS") -> Family:
    """The quirks of a model's family; our own backbones register theirs in hf_transfer.models.

    `task_type` (peft's name of the head: SEQ_CLS, or TOKEN_CLS for token classification) picks which head's
    modules `head_modules` holds.
    """
    from . import models  # our backbones' families

    model_type = config.model_type
    if model_type == "hft-pooled" and hasattr(config, "encoder_config"):
        # a frozen or linear-probe run's output folder: its encoder's family (adapter targets, padding), its own head
        inner = family_of(config.encoder_config(), "classification", "SEQ_CLS")
        family = dataclasses.replace(inner, name="hft-pooled", head_modules=("classifier",), token_head_modules=())
    elif model_type in models.HEAD_MODULES:
        heads = (models.HEAD_MODULES[model_type],)  # one name for the sequence and the token head
        family = Family(model_type, tuple(models.DEFAULT_LORA_TARGETS[model_type]), heads, token_head_modules=heads)
    elif model_type in MODEL_TYPE_FAMILY:
        family = FAMILIES[MODEL_TYPE_FAMILY[model_type]]
    else:
        # An unlisted architecture still runs: peft picks its own default targets and the head is found by name.
        family = Family(model_type, (), ("classifier", "score", "classification_head"),
                        token_head_modules=("classifier", "score"))
    if task_type == "TOKEN_CLS":
        family = dataclasses.replace(family, head_modules=family.token_head_modules, task_type=task_type)
    if head == "text-to-text":  # no new head: the LM head writes the label words
        family = dataclasses.replace(family, head_modules=())
    return family


@dataclass
class ResolvedModel:
    """A model name the user wrote, resolved to what `from_pretrained` loads (asset folder, local folder, Hub id, or one
    of our model types built from its config), with the keyword arguments every load passes."""

    name: str  # what the user wrote
    location: str  # local folder or Hub id handed to from_pretrained; the model type when built from config
    load_kwargs: dict  # passed to every from_pretrained: trust_remote_code always, gguf_file for GGUF assets
    base_model: str | None  # Hub id for card metadata, where one is known
    from_config: bool = False  # one of our model types: no checkpoint, built from its config
    trust_option: str = "trust_remote_code=true"  # how the user allows a checkpoint's own code, for messages

    @property
    def local_folder(self) -> Path | None:
        """The checkpoint's folder on this machine (asset or user folder), None for Hub ids and model types."""
        path = Path(self.location)
        return path if not self.from_config and path.is_dir() else None


def resolve_model(name: str, trust_remote_code: bool = False,
                  trust_option: str = "trust_remote_code=true") -> ResolvedModel:
    """Where `name` (asset, folder, Hub id or one of our model types) loads from, and how.

    `trust_remote_code` is passed explicitly to every from_pretrained, so transformers never asks "run custom code?"
    on a terminal; our own model types are registered in-process (hf_transfer.models) and need no remote code.
    `trust_option` names the setting that allows remote code, for the messages. Raises UserError for a path that is
    not a folder.
    """
    if name in our_model_types():
        return ResolvedModel(name, name, {}, None, from_config=True, trust_option=trust_option)
    kwargs = {"trust_remote_code": trust_remote_code}
    if name in ASSETS:
        asset = require_kind(name, "model")
        if asset.gguf_file:
            kwargs["gguf_file"] = asset.gguf_file
        return ResolvedModel(name, str(asset_path(name)), kwargs, asset.extra.get("hub_id"), trust_option=trust_option)
    path = Path(name).expanduser()
    if path.is_dir():
        return ResolvedModel(name, str(path), kwargs, None, trust_option=trust_option)
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise UserError(f"model folder {name!r} not found: name a model asset, a folder with config.json, a Hub id "
                        f"or one of our model types ({', '.join(our_model_types())})")
    return ResolvedModel(name, name, kwargs, name, trust_option=trust_option)


# What from_pretrained reads from a local folder (transformers 5 reads no TensorFlow or Flax weights).
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model",
                   "tokenizer.model", "sentencepiece.bpe.model")
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.gguf")  # every weight file a folder may hold (shards, GGUF)


def check_local_folder(model: ResolvedModel, what: str) -> None:
    """Raise UserError naming what a local model folder lacks for loading its `what` (config | tokenizer | weights;
    anything else, such as adapter, is not checked here).

    transformers reports a file missing from a folder as if a Hub download had failed ("not in the local cache");
    this says what the folder holds instead. Hub ids, GGUF assets and our model types pass unchecked.
    """
    folder = model.local_folder
    if folder is None or "gguf_file" in model.load_kwargs:
        return
    names = sorted(path.name for path in folder.iterdir() if not path.name.startswith("."))
    save_hint = "save the model there with save_pretrained(), or name another folder"
    if not names:
        raise UserError(f"model folder {model.name!r} is empty: {save_hint}")
    if what == "config" and "config.json" not in names and "adapter_config.json" in names:
        merged = folder / "merged"
        start = (f"start from its merged copy, model={merged}" if (merged / "config.json").is_file() else
                 "start from its base model, or train it with strategy_options.merge=true for a merged copy to "
                 "start from")
        raise UserError(f"model folder {model.name!r} holds a peft adapter, not a whole model: {start}")
    if what == "config" and "config.json" not in names:
        weights = [name for name in names if name in WEIGHT_FILES or name.endswith((".bin", ".safetensors", ".pt"))]
        holds = (f"holds weights ({', '.join(weights)}) but no config.json, which says what architecture they fill"
                 if weights else f"holds no config.json (it holds {_some(names)})")
        raise UserError(f"model folder {model.name!r} {holds}: {save_hint}")
    if what == "weights" and not set(names) & set(WEIGHT_FILES):
        raise UserError(f"model folder {model.name!r} holds no weights ({' or '.join(WEIGHT_FILES[::2])}; it holds "
                        f"{_some(names)}): {save_hint}")
    if what == "tokenizer" and not set(names) & set(TOKENIZER_FILES):
        raise UserError(f"model folder {model.name!r} holds no tokenizer (tokenizer.json, vocab.txt, ...; it holds "
                        f"{_some(names)}): save the model's tokenizer there with save_pretrained(), or name one with "
                        "tokenizer=")


def _some(names: list[str], shown: int = 4) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def loading_failure(model: ResolvedModel, what: str, err: Exception) -> UserError | None:
    """The UserError for a failure to load `what` (config, tokenizer or weights) of `model`, or None when `err` is
    not one a user can fix (a bug to report with its traceback).

    Covers: the model's own code refused (trust_remote_code), pickled weights that torch's weights-only loader
    refuses, damaged weight files, unreadable tokenizer files, a config.json that is no JSON or names an unknown
    model type, unreadable files of a local folder, and Hub misses.
    """
    text = str(err)
    if "trust_remote_code" in text:  # transformers refuses to import a checkpoint's own .py files unless trusted
        return UserError(f"model {model.name!r} needs its own Python code to load (config.json's auto_map names it): "
                         f"read that code, then pass {model.trust_option} to run it; or pick a model transformers "
                         "supports")
    if isinstance(err, pickle.UnpicklingError) or "Weights only load failed" in text:
        return UserError(f"the weights of model {model.name!r} are a pickle (pytorch_model.bin) holding more than "
                         "tensors, which torch's safe loader refuses: convert them to model.safetensors where you "
                         "trust their source (torch.load(..., weights_only=False), then safetensors.torch.save_file), "
                         "or use a checkpoint saved as safetensors")
    if type(err).__name__ == "SafetensorError" or "PytorchStreamReader" in text or "invalid load key" in text:
        return UserError(f"the weights file of model {model.name!r} is damaged ({first_line(err, 120)}): copy or "
                         "download it again")
    if what == "tokenizer" and model.local_folder is not None and (
            isinstance(err, (ValueError, KeyError)) or type(err) is Exception):
        # ValueError (a JSON error too) and KeyError: transformers' readers; bare Exception: the tokenizers library's
        detail = f"no {err.args[0]!r} entry" if isinstance(err, KeyError) and err.args else first_line(err, 120)
        return UserError(f"the tokenizer files of model folder {model.name!r} cannot be read ({detail}): save the "
                         "tokenizer there again")
    if what == "config" and (isinstance(err, json.JSONDecodeError) or "JSON" in text):
        return UserError(f"the config.json of model {model.name!r} is not valid JSON ({first_line(err, 120)}): fix "
                         "it or save the model again")
    if "Unrecognized model" in text or "does not recognize this architecture" in text:
        model_type = _recorded_model_type(model)
        of_type = f"is of type {model_type!r}, which" if model_type else "is of a type"
        return UserError(f"model {model.name!r} {of_type} transformers {transformers.__version__} does not know: "
                         "upgrade transformers, or pick a BERT-, GPT-2-, T5- or Llama-family checkpoint or one of ours")
    if isinstance(err, OSError) and model.local_folder is not None:  # the files are there (check_local_folder)
        return UserError(f"cannot read the {what} of model folder {model.name!r} ({first_line(err, 120)}): a file "
                         "may be damaged or incomplete; copy or save the model again")
    if isinstance(err, OSError):
        return _hub_failure(model.name, what, err)
    return None


def _recorded_model_type(model: ResolvedModel) -> str | None:
    folder = model.local_folder
    try:
        return json.loads((folder / "config.json").read_text()).get("model_type") if folder else None
    except (OSError, ValueError):
        return None


@contextmanager
def loading(model: ResolvedModel, what: str):
    """Turn a failure to load `what` of `model` into one UserError line (loading_failure); other errors pass."""
    check_local_folder(model, what)
    try:
        yield
    except UserError:
        raise
    except Exception as err:
        failure = loading_failure(model, what, err)
        if failure is None:
            raise
        raise failure from None


def _hub_failure(name: str, what: str, err: Exception) -> UserError:
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    assets = ", ".join(n for n, a in ASSETS.items() if a.kind == "model")
    why = "offline mode is on (HF_HUB_OFFLINE=1) and it is not in the local cache" if offline else first_line(err, 160)
    return UserError(f"cannot load the {what} of model {name!r}: {why}; name a model asset ({assets}), a local folder or a Hub id")


def load_model_config(model: ResolvedModel, **overrides):
    """The model's config (AutoConfig), with `overrides` applied; UserError when it cannot load or rejects them."""
    from . import models  # noqa: F401  registers our backbones with the Auto classes

    try:
        if model.from_config:
            return AutoConfig.for_model(model.location, **overrides)
        with loading(model, "config"):
            return AutoConfig.from_pretrained(model.location, **model.load_kwargs, **overrides)
    except (ValueError, TypeError, AttributeError) as err:
        if not overrides and not model.from_config:
            raise  # not the settings: a failure loading_failure does not know
        raise UserError(f"the config of model {model.name!r} rejects the settings: "
                        f"{first_line(err)}; fix model_config") from None


def load_tokenizer(model: ResolvedModel):
    """The model's tokenizer with a pad token; UserError when it cannot load or has no vocabulary."""
    with loading(model, "tokenizer"):
        tokenizer = AutoTokenizer.from_pretrained(model.location, **model.load_kwargs)
    if len(tokenizer.get_vocab()) <= len(set(tokenizer.all_special_tokens)):
        # transformers 5 builds an empty-vocabulary tokenizer from a config.json alone: every word would be [UNK].
        raise UserError(f"the tokenizer of model {model.name!r} has no vocabulary ({len(tokenizer)} special tokens "
                        "only): save the model's tokenizer files next to it, or name one with tokenizer=")
    if tokenizer.pad_token is None:
        # GPT-2 and Llama ship without a pad token; their eos is the customary stand-in.
        if tokenizer.eos_token is None:
            raise UserError(f"the tokenizer of {model.name!r} has neither a pad nor an eos token; add a pad token to it")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


# Model types whose learned position table starts after the padding index (RoBERTa's position ids count from
# padding_idx + 1), so max_position_embeddings counts pad_token_id + 1 slots that no token reaches.
POSITIONS_AFTER_PADDING = ("roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "roberta-prelayernorm",
                           "data2vec-text", "longformer", "mpnet", "ibert", "luke", "xmod", "esm")


def position_limit(model_config) -> int | None:
    """Tokens per text the model can read: its learned (or trained, for rotary) positions; None for relative
    positions (T5) and models without positions (our CNN and RNN)."""
    limit = getattr(model_config, "max_position_embeddings", None)  # GPT-2's n_positions answers to this name too
    if not isinstance(limit, int) or limit <= 0:
        return None
    if model_config.model_type in POSITIONS_AFTER_PADDING:
        limit -= (getattr(model_config, "pad_token_id", None) or 0) + 1
    return limit


def check_max_length(model_config, max_length: int, model_name: str, key: str = "data.max_length") -> None:
    """Raise UserError when texts of `max_length` tokens exceed the model's positions (position_limit), which
    would otherwise fail with a tensor-size error at the first batch long enough."""
    limit = position_limit(model_config)
    if limit is not None and max_length > limit:
        raise UserError(f"{key}={max_length} is more than the {limit} positions model {model_name!r} "
                        f"({model_config.model_type}) can read: set {key}={limit} or less")


def apply_family_quirks(tokenizer, family: Family, name: str):
    """Apply the family's tokenizer quirks (see the module docstring); the tokenizer is saved with the model."""
    if family.decoder_only:
        tokenizer.padding_side = "right"
    if family.encoder_decoder:
        ids = tokenizer("a")["input_ids"]
        if tokenizer.eos_token_id is None or not ids or ids[-1] != tokenizer.eos_token_id:
            raise UserError(f"the tokenizer {name!r} does not end texts with an eos token, which {family.name} models "
                            "classify from: use the model's own tokenizer (T5's appends </s>)")
    return tokenizer


def vocabulary_size(tokenizer) -> int:
    """Rows an embedding needs for every id the tokenizer can produce (added tokens may leave gaps)."""
    return max(len(tokenizer), max(tokenizer.get_vocab().values()) + 1)


@dataclass
class Backbone:
    """A classifier ready for a strategy: the model, its tokenizer, its family and what was transferred."""

    model: Any  # the task's Auto class (...ForSequenceClassification, ...ForTokenClassification), or
    # text_to_text.TextToTextClassifier for head=text-to-text
    tokenizer: Any
    family: Family
    reference: ResolvedModel
    tokenizer_name: str
    head: str
    pretrained: bool  # the weights came from a checkpoint
    vectors: dict | None = None  # {name, dim, coverage, matched, vocab_size, frozen} when vectors= initialised them

    def transferred(self, by_strategy: str) -> str:
        """What the run transferred: the strategy's word, unless no pretrained weights were loaded."""
        if self.pretrained:
            return by_strategy
        return "features" if self.vectors else "structure"

    def record(self) -> dict:
        """The `model` section of metrics.json."""
        record = {"name": self.reference.name, "location": self.reference.location,
                  "base_model": self.reference.base_model, "model_type": self.model.config.model_type,
                  "family": self.family.name, "head": self.head, "tokenizer": self.tokenizer_name,
                  "pretrained": self.pretrained, "vectors": self.vectors}
        if self.head == "text-to-text":
            record["label_words"] = list(self.model.label_words)
        if pretraining := pretraining_record(self.reference.location):
            record["pretraining"] = pretraining
        if self.pretrained and self.reference.name not in ASSETS and self.reference.local_folder is not None:
            record["weights_sha256"] = weights_digest(self.reference.local_folder)
        return record


def weights_digest(folder: Path) -> str:
    """SHA-256 over the names and bytes of a model folder's weight files (WEIGHT_PATTERNS, sorted by name): what a
    run from a user's folder records of the weights it started from, so that an adapter trained on them can tell
    when the folder holds other weights later (predict refuses it then)."""
    digest = hashlib.sha256()
    for path in sorted(p for pattern in WEIGHT_PATTERNS for p in Path(folder).glob(pattern)):
        digest.update(path.name.encode() + b"\0")
        with open(path, "rb") as handle:
            while block := handle.read(1 << 24):
                digest.update(block)
    return digest.hexdigest()


def pretraining_record(location: str | None) -> dict | None:
    """What `hf-transfer pretrain` recorded of the model folder at `location` (its metrics.json, kind "pretraining"):
    objective, corpus, whether it started from random weights, optimiser steps, tokens seen and the eval
    perplexity; None for a folder it did not write (or an asset, a Hub id, one of our model types)."""
    if not location or not (Path(location) / METRICS_FILE).is_file():
        return None
    try:
        recorded = RunResult.load(Path(location))
    except (OSError, ValueError, TypeError):  # a metrics.json this version does not read
        return None
    if recorded.kind != "pretraining":
        return None
    return {"objective": recorded.strategy.get("objective"), "corpus": recorded.task.get("dataset"),
            "from_random_weights": not recorded.model.get("pretrained"),
            "optimizer_steps": recorded.training.get("optimizer_steps"),
            "tokens_seen": recorded.training.get("tokens_seen"),
            "eval_perplexity": recorded.metrics.get("eval", {}).get("perplexity")}


def load_backbone(config, task, strategy=None) -> Backbone:
    """The classifier `config` (a ClassifyConfig) asks for, sized for `task`'s labels, as `strategy` (default: the
    config's) needs it: a strategy without pretrained weights (strategy=scratch) keeps the architecture and
    tokenizer only. `config.task` picks the head (hf_transfer.tasks.TASKS: its Auto class and peft task type).

    Raises UserError when the model, tokenizer or vectors cannot be found or do not fit each other, the head or the
    task; nothing is trained here.
    """
    if strategy is None:
        from .strategies import get_strategy

        strategy = get_strategy(config.strategy, config.strategy_options)
    from .tasks import TASKS

    task_family = TASKS[config.task]
    reference = resolve_model(config.model, config.trust_remote_code)
    base_config = load_model_config(reference)
    family = family_of(base_config, config.head, task_family.peft_task_type)
    _check_head(config, base_config, family, task)
    pretrained = strategy.pretrained_weights and not reference.from_config
    tokenizer, tokenizer_name = _run_tokenizer(config, reference, family, pretrained, task_family.split_into_words)
    vectors = _read_vectors(config.vectors) if config.vectors else None
    settings = _classifier_settings(config, reference, base_config, family, tokenizer, task, pretrained, vectors)
    model_config = load_model_config(reference, **settings)
    check_max_length(model_config, config.data.max_length, config.model)
    _check_vocabulary_fits(tokenizer, model_config, tokenizer_name, config.model, bool(config.tokenizer))

    if config.head == "text-to-text":
        from .text_to_text import TextToTextClassifier, check_label_words

        label_words = check_label_words(task.label_names, config.label_words)
        seq2seq = load_weights(AutoModelForSeq2SeqLM, reference, model_config, pretrained)
        model = TextToTextClassifier(seq2seq, tokenizer, label_words)
    else:
        labels = list(task.label_names)
        trained_for = trained_head_labels(base_config) if pretrained else None
        fresh_head = trained_for is not None and sorted(trained_for) != sorted(labels)
        model = load_weights(getattr(transformers, task_family.auto_class), reference, model_config, pretrained,
                             fresh_head=fresh_head)
        if fresh_head:
            _start_head_afresh(model, family, trained_for, labels, config.model)
        elif trained_for is not None and trained_for != labels:
            _reorder_head(model, family, trained_for, labels, config.model)

    backbone = Backbone(model, tokenizer, family, reference, tokenizer_name, config.head, pretrained)
    if vectors:
        backbone.vectors = _init_from_vectors(model, tokenizer, tokenizer_name, vectors, config, not pretrained)
    return backbone


def _check_head(config, base_config, family: Family, task) -> None:
    """head=text-to-text needs an encoder-decoder and a single-label task (the strategy's side: check_head)."""
    if config.head != "text-to-text":
        return
    if not family.encoder_decoder:
        raise UserError(f"head=text-to-text needs an encoder-decoder model such as T5; {config.model!r} is a "
                        f"{base_config.model_type} model: use head=classification")
    if task.multi_label:
        raise UserError("head=text-to-text picks one label per text but the task is multi-label: "
                        "use head=classification")


def _run_tokenizer(config, reference: ResolvedModel, family: Family, pretrained: bool, split_into_words: bool):
    """(tokenizer with the family's quirks applied, the name it is recorded under).

    With `split_into_words` (token classification reads pre-split words), a tokenizer that would read them without
    the space before each word (byte-level BPE: GPT-2, RoBERTa, Llama's) is loaded again with add_prefix_space=True
    and saved so with the model, so that the output folder's pipeline reads running text the same way.
    """
    tokenizer_name = config.tokenizer or (DEFAULT_TOKENIZER if reference.from_config else config.model)
    tokenizer_reference = (resolve_model(tokenizer_name, config.trust_remote_code)
                           if config.tokenizer or reference.from_config else reference)
    if tokenizer_reference.from_config:
        raise UserError(f"tokenizer={tokenizer_name!r} is a model type, not a tokenizer: name a model asset, "
                        "a folder with a tokenizer or a Hub id")
    tokenizer = apply_family_quirks(load_tokenizer(tokenizer_reference), family, tokenizer_name)
    if split_into_words and getattr(tokenizer, "is_fast", False) and not splits_words_like_text(tokenizer):
        spaced = dataclasses.replace(tokenizer_reference,
                                     load_kwargs={**tokenizer_reference.load_kwargs, "add_prefix_space": True})
        tokenizer = apply_family_quirks(load_tokenizer(spaced), family, tokenizer_name)
    if pretrained and config.tokenizer and tokenizer_reference.location != reference.location:
        logger.warning(f"tokenizer={config.tokenizer} replaces the tokenizer {config.model} was pretrained "
                       "with; its embeddings were learned for other token ids")
    return tokenizer, tokenizer_name


def _classifier_settings(config, reference, base_config, family: Family, tokenizer, task, pretrained: bool,
                         vectors) -> dict:
    """Config overrides for the run's model: the user's model_config, then labels, vocabulary and special tokens."""
    settings = _check_model_config(config.model_config, base_config, config.model)
    for key, value in dropout_settings(base_config, config.train.dropout, config.model).items():
        settings.setdefault(key, value)  # a model_config value is the user's choice for that one setting
    if not pretrained:  # random init: the embedding fits the tokenizer
        own_size = None if reference.from_config or config.tokenizer else getattr(base_config, "vocab_size", None)
        settings.setdefault("vocab_size", max(vocabulary_size(tokenizer), own_size or 0))
    if vectors and reference.from_config and hasattr(base_config, "embedding_dim"):
        dim = vectors[2].shape[1]
        if settings.setdefault("embedding_dim", dim) != dim:
            raise UserError(f"model_config.embedding_dim={settings['embedding_dim']} but the vectors "
                            f"{config.vectors!r} have {dim} dimensions: drop model_config.embedding_dim or set it to {dim}")
    settings.update(id2label=dict(task.id2label),  # num_labels follows from id2label
                    label2id={v: k for k, v in task.id2label.items()}, problem_type=task.problem_type,
                    pad_token_id=tokenizer.pad_token_id)
    if family.encoder_decoder:
        settings["eos_token_id"] = tokenizer.eos_token_id  # T5's head reads the eos the tokenizer appends
        if getattr(base_config, "decoder_start_token_id", None) is None:
            settings["decoder_start_token_id"] = tokenizer.pad_token_id  # T5's convention
    return settings


def dropout_settings(base_config, dropout: float | None, model_name: str) -> dict[str, float]:
    """{setting: dropout} for every dropout probability of a model config (transformers' configs name them
    *dropout* or *_pdrop: BERT's hidden_dropout_prob, GPT-2's resid_pdrop, T5's dropout_rate, our hft-* dropout) whose
    value is a number (BERT's classifier_dropout=None falls back to hidden_dropout_prob); {} for null. Raises
    UserError when `dropout` > 0 and the config has no dropout to set."""
    if dropout is None:
        return {}
    keys = [key for key, value in base_config.to_dict().items()
            if ("dropout" in key or key.endswith("_pdrop")) and type(value) in (int, float)]
    if not keys and dropout > 0:
        raise UserError(f"train.dropout={dropout}: model {model_name!r} ({type(base_config).__name__}) has no dropout "
                        "setting in its config; drop train.dropout")
    return dict.fromkeys(keys, dropout)


def _check_model_config(overrides: dict, base_config, model_name: str) -> dict:
    unknown = [key for key in overrides if not hasattr(base_config, key)]
    if unknown:
        raise UserError(f"model_config key {unknown[0]!r} is not a setting of {type(base_config).__name__} "
                        f"(model {model_name!r}): check the spelling in its config.json or configuration class")
    return dict(overrides)


def _check_vocabulary_fits(tokenizer, model_config, tokenizer_name: str, model_name: str,
                           tokenizer_given: bool) -> None:
    rows = getattr(model_config, "vocab_size", None)
    needed = vocabulary_size(tokenizer)
    if rows is not None and needed > rows:
        fix = ("drop tokenizer= to use the model's own tokenizer" if tokenizer_given else
               "save the checkpoint's tokenizer and weights from one model (after "
               "model.resize_token_embeddings(len(tokenizer)))")
        raise UserError(f"tokenizer {tokenizer_name!r} has {needed} token ids but model {model_name!r} embeds only "
                        f"{rows}: {fix}, or use strategy=scratch")


def trained_head_labels(base_config) -> list[str] | None:
    """The label names (in id order) a checkpoint's head was trained for: None when its config names no labels of
    its own (transformers' LABEL_0, LABEL_1, ... of every config that never saw a task)."""
    labels = [base_config.id2label[i] for i in sorted(base_config.id2label)] if base_config.id2label else []
    return None if labels == [f"LABEL_{i}" for i in range(len(labels))] else labels


def _reorder_head(model, family: Family, trained_for: list[str], labels: list[str], model_name: str) -> None:
    """Put the output rows of a head trained for the same labels in another order (`trained_for`) in the task's
    order (`labels`), as transformers' run_glue.py follows a checkpoint's label2id."""
    from .strategies.layers import output_layer

    layer = output_layer(model, family)[2]
    order = torch.tensor([trained_for.index(label) for label in labels])
    with torch.no_grad():
        layer.weight.copy_(layer.weight[order])
        if layer.bias is not None:
            layer.bias.copy_(layer.bias[order])
    logger.info(f"{model_name}'s head was trained for the same labels in another order ({', '.join(trained_for)}): "
                f"its rows now follow this task's ({', '.join(labels)})")


def _start_head_afresh(model, family: Family, trained_for: list[str], labels: list[str], model_name: str) -> None:
    """Initialise the output layer of a head trained for other labels (`trained_for`) afresh (normal(0,
    initializer_range) weights, zero bias, as transformers initialises a new head), so that no row answers for a
    label it was not trained on."""
    from .strategies.layers import output_layer

    layer = output_layer(model, family)[2]
    with torch.no_grad():
        layer.weight.normal_(0.0, getattr(model.config, "initializer_range", 0.02))
        if layer.bias is not None:
            layer.bias.zero_()
    logger.warning(f"{model_name}'s head was trained for other labels ({', '.join(trained_for)}): its output layer "
                   f"starts afresh for this task's ({', '.join(labels)})")


def load_weights(auto_class, reference: ResolvedModel, model_config, pretrained: bool, fresh_head: bool = False):
    """`auto_class` (an Auto model class) with `model_config`: the checkpoint's weights, or random init.
    `fresh_head`: the checkpoint's head was trained for other labels, so its output layer may differ in size from
    the one `model_config` asks for (it is then initialised afresh; any other mismatch still raises UserError).

    Marks the model `accepts_loss_kwargs = False`: Trainer skips its gradient-accumulation loss scaling for models
    whose forward takes **kwargs, but these average their own loss, so they must be scaled like any other.
    """
    model = _load_weights(auto_class, reference, model_config, pretrained, fresh_head)
    model.accepts_loss_kwargs = False
    return model


def _load_weights(auto_class, reference: ResolvedModel, model_config, pretrained: bool, fresh_head: bool = False):
    if not pretrained:
        try:
            return auto_class.from_config(model_config)
        except ValueError as err:
            raise _no_head(auto_class, reference, model_config, err) from None
    try:
        with loading(reference, "weights"), quiet_load_report():
            if not fresh_head:
                return auto_class.from_pretrained(reference.location, config=model_config, **reference.load_kwargs)
            model, info = auto_class.from_pretrained(reference.location, config=model_config,
                                                     ignore_mismatched_sizes=True, output_loading_info=True,
                                                     **reference.load_kwargs)
    except ValueError as err:
        raise _no_head(auto_class, reference, model_config, err) from None
    except RuntimeError as err:
        if "ignore_mismatched_sizes" in str(err):  # transformers 5: the config asks for other shapes
            raise _mismatched_shapes(reference) from None
        raise
    # Only the output layer (a Linear with one output per label) may have come out another size.
    outputs = {name for name, module in model.named_modules()
               if isinstance(module, nn.Linear) and module.out_features == model_config.num_labels}
    if any(key.rpartition(".")[0] not in outputs for key, *_ in info.get("mismatched_keys", ())):
        raise _mismatched_shapes(reference)
    return model


def _mismatched_shapes(reference: ResolvedModel) -> UserError:
    return UserError(f"the weights of {reference.name!r} do not have the shapes its config asks for (a "
                     "model_config override, or a config.json that belongs to other weights): change only "
                     "settings such as dropout for a pretrained checkpoint, or use strategy=scratch")


def _no_head(auto_class, reference: ResolvedModel, model_config, err: ValueError) -> Exception:
    if "Unrecognized configuration class" not in str(err):
        return err
    what = {AutoModelForSequenceClassification: "sequence-classification head",
            AutoModelForSeq2SeqLM: "seq2seq LM"}.get(auto_class, "token-classification head")
    if model_config.model_type == "hft-pooled":  # a frozen or linear-probe run's output: one vector per text
        encoder = getattr(model_config.encoder_config(), "_name_or_path", "") or "the checkpoint it was trained from"
        return UserError(f"model {reference.name!r} is a pooled text classifier (hft-pooled: a frozen or "
                         f"linear-probe run's output), which has no {what}: start from its encoder, {encoder}")
    return UserError(f"model {reference.name!r} ({model_config.model_type}) has no {what} in transformers; "
                     "pick a BERT-, GPT-2-, T5- or Llama-family checkpoint or one of ours")


def _read_vectors(name: str):
    """(label for records and cards, words, matrix) from a vectors asset or a word2vec/GloVe file."""
    from .models import load_word_vectors

    if name in ASSETS:
        require_kind(name, "vectors", "word vectors")
        location, label = asset_path(name), name
    else:
        location, label = Path(name).expanduser(), Path(name).name
        if not location.exists():
            raise UserError(f"vectors {name!r} not found: name a vectors asset ({', '.join(names_of_kind('vectors'))}) "
                            "or a word2vec/GloVe text file")
    try:
        words, matrix = load_word_vectors(location)
    except ValueError as err:
        raise UserError(first_line(err)) from None
    return label, words, matrix


def _init_from_vectors(model, tokenizer, tokenizer_name: str, vectors, config, built_from_config: bool) -> dict:
    from .models import init_embeddings_from_vectors

    label, words, matrix = vectors
    try:
        embeddings = model.get_input_embeddings()
    except (NotImplementedError, AttributeError):
        embeddings = None
    if not isinstance(embeddings, nn.Embedding):
        raise UserError(f"model {config.model!r} ({model.config.model_type}) has no input embedding layer for "
                        f"vectors={config.vectors}: drop vectors or pick a model with token embeddings")
    dim, rows = matrix.shape[1], embeddings.embedding_dim
    if dim != rows:
        size_key = next(key for key in ("embedding_dim", "d_model", "n_embd", "hidden_size")
                        if hasattr(model.config, key))
        fix = (f"set model_config.{size_key}={dim}" if built_from_config else
               f"vectors fit a model built from config (e.g. model=hft-textcnn) or a checkpoint with {dim}-d embeddings")
        raise UserError(f"the vectors {label!r} have {dim} dimensions but the embeddings of {config.model!r} have "
                        f"{rows}: {fix}")
    try:
        report = init_embeddings_from_vectors(model, tokenizer, (words, matrix), freeze=config.freeze_vectors)
    except ValueError as err:
        raise UserError(first_line(err)) from None
    logger.info(f"vectors {label}: {report['matched']:,} of {report['vocab_size']:,} tokens of {tokenizer_name} "
                f"covered ({100 * report['coverage']:.1f}%), {dim}-d, "
                f"{'frozen' if config.freeze_vectors else 'fine-tuned'}")
    return {"name": label, "dim": dim, "coverage": report["coverage"], "matched": report["matched"],
            "vocab_size": report["vocab_size"], "frozen": config.freeze_vectors}


class quiet_load_report:
    """Silence transformers' load report (missing and unexpected weights) while a model loads: a freshly
    initialised classification head is expected, and callers that care check the missing keys themselves."""

    def __enter__(self):
        self.level = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()

    def __exit__(self, *exc):
        transformers.logging.set_verbosity(self.level)
