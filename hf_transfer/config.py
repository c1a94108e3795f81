"""Run configs: dataclasses filled from a YAML file plus `key=value` command-line overrides.

Nested sections use dotted keys on the command line: `train.epochs=3 data.dataset=my.csv`.
Values are parsed as YAML (`true`, `[a, b]`, `null`) and then checked against the field's type.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError


@dataclass
class DataConfig:
    """Where the examples come from and how they are split."""

    dataset: str = "rotten-tomatoes"  # asset name, local file or folder, or Hub dataset id
    text_columns: list[str] | None = None  # None: the asset's default, else ["text"]
    label_column: str | None = None  # None: the asset's default, else "label"
    labels: list[str] | None = None  # fix the label set and its order; None: sorted labels of the train split
    exclude_labels: list[str] | None = None  # rows with these labels are dropped (None: the asset's default)
    train_split: str = "train"
    validation_split: str | None = None  # None: "validation" if present, else carved from train
    test_split: str | None = None  # None: "test" if present, else carved from train
    test_size: float = 0.2
    validation_size: float = 0.1  # fraction of what is left after the test split
    seed: int = 42
    max_length: int = 128
    max_train_samples: int | None = None  # stratified subsample, for quick runs
    max_eval_samples: int | None = None
    empty_text: str = "error"  # error | drop


@dataclass
class TrainConfig:
    """Optimisation and precision; mapped onto transformers.TrainingArguments."""

    epochs: float = 2.0
    learning_rate: float | None = None  # None: the strategy's default_learning_rate (full 1e-4, lora 2e-3, ...)
    batch_size: int = 32
    eval_batch_size: int = 256
    gradient_accumulation_steps: int = 1
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    lr_scheduler: str = "linear"
    max_grad_norm: float = 1.0
    max_steps: int = -1
    precision: str = "auto"  # auto | bf16 | fp16 | fp32; auto = bf16 where the hardware has it
    group_by_length: bool = True
    # true keeps pretrained word embeddings (11.7M of MiniLM-L6's 22.7M parameters) fixed: no dense embedding gradient
    # and half the optimizer work per step (benchmarks/bench_training.py --profile), but on the default task it cost
    # 1.1 validation points (0.822 vs 0.833, seed 42). No effect on randomly initialised embeddings.
    freeze_word_embeddings: bool = False
    logging_steps: int = 50
    eval_every_epoch: bool = False
    seed: int = 42
    threads: int | None = None  # torch intra-op threads; None: torch's default (a share of the cores under accelerate launch)


@dataclass
class ZeroShotBaselineConfig:
    """A zero-shot run on the same test split, added to a classify run's metrics and card."""

    method: str | None = None  # None: no baseline
    model: str | None = None  # None: the classify run's model
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ClassifyConfig:
    model: str = "minilm-l6"  # asset name, local folder, Hub id, or hft-textcnn | hft-rnn | hft-attention (from config)
    tokenizer: str | None = None  # None: the model's own; minilm-l6's WordPiece for hft-* models built from config
    model_config: dict[str, Any] = field(default_factory=dict)  # config overrides, e.g. {embedding_dim: 50, dropout: 0.3}
    head: str = "classification"  # classification | text-to-text (encoder-decoder models: T5 writes the label's words)
    label_words: dict[str, str] = field(default_factory=dict)  # head=text-to-text: target text per label (default: its name)
    vectors: str | None = None  # static word vectors for the input embeddings: glove-6b-50d or a word2vec/GloVe file
    freeze_vectors: bool = False  # keep the vector-initialised embeddings fixed (Kim 2014's CNN-static)
    strategy: str = "full"  # full | frozen | linear-probe | adapter | gradual-unfreeze | scratch
    strategy_options: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    zeroshot_baseline: ZeroShotBaselineConfig = field(default_factory=ZeroShotBaselineConfig)
    output_dir: str | None = None  # None: outputs/<model>-<dataset>-<strategy>
    overwrite_output_dir: bool = True
    license: str = "apache-2.0"
    language: str = "en"
    push_to_hub: bool = False
    hub_repo_id: str | None = None
    hub_private: bool = False


def to_dict(config) -> dict[str, Any]:
    return dataclasses.asdict(config)


def load_config(cls, path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()):
    """Build `cls` from an optional YAML file, then apply `key=value` overrides in order."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"config file {path} not found: pass an existing YAML file with --config")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise UserError(f"config file {path} is not valid YAML ({str(err).splitlines()[0]}): fix the file") from None
        if not isinstance(values, dict):
            raise UserError(f"config file {path} must hold a mapping of keys to values, not {type(values).__name__}")
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UserError(f"override {item!r} is not of the form key=value (for example train.epochs=3)")
        target = values
        *parents, leaf = key.split(".")
        for part in parents:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise UserError(f"override {item!r}: {part!r} is not a section")
        target[leaf] = _parse_value(raw)
    return from_dict(cls, values)


def _parse_value(raw: str) -> Any:
    try:
        return yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        return raw


def from_dict(cls, values: dict[str, Any], prefix: str = ""):
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UserError(
            f"unknown config key {prefix + unknown[0]!r}: known keys are {', '.join(prefix + k for k in sorted(known))}"
        )
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise UserError(f"config key {prefix + name!r} is a section: set its keys, e.g. {prefix + name}.KEY=VALUE")
            kwargs[name] = from_dict(hint, value, prefix=f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, hint, prefix + name)
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check `value` against a field type, converting the few cases YAML gets 'wrong' (1e-4 is a string)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key)
            except UserError as err:
                errors.append(err)
        raise errors[0]
    if hint is Any:
        return value
    if origin is list:
        if isinstance(value, (str, int, float)):
            value = [value]  # `data.text_columns=review` means a list of one
        if not isinstance(value, list):
            raise UserError(f"config key {key!r} takes a list, got {value!r}")
        return [_coerce(v, args[0], key) for v in value] if args else value
    if origin is dict:
        if not isinstance(value, dict):
            raise UserError(f"config key {key!r} takes a mapping, got {value!r}")
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"config key {key!r} takes true or false, got {value!r}")
    if hint in (int, float):
        if isinstance(value, bool):
            raise UserError(f"config key {key!r} takes a number, got {value!r}")
        try:
            number = float(value) if hint is float else value
            if hint is int and not isinstance(value, int):
                raise ValueError
            return number
        except (TypeError, ValueError):
            raise UserError(f"config key {key!r} takes {'an integer' if hint is int else 'a number'}, got {value!r}") from None
    if hint is str:
        if isinstance(value, (dict, list)) or value is None:
            raise UserError(f"config key {key!r} takes a string, got {value!r}")
        return str(value)
    return value
