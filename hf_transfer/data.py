"""TaskData: a labelled text-classification task, split into train / validation / test.

Sources: a named dataset asset, a local CSV / TSV / JSON / JSONL / Parquet file (compressed too), a folder of
`train.* / validation.* / test.*` files, or a Hub dataset id. Labels keep their names; lists of labels make the
task multi-label. A missing validation or test split is carved out of train, stratified, with a fixed seed.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import datasets
from datasets import ClassLabel, Dataset, DatasetDict

from .assets import ASSETS, asset_path
from .config import DataConfig
from .errors import UserError

FILE_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst")
SPLIT_ALIASES = {"validation": ("validation", "valid", "dev", "val"), "test": ("test",)}


class LabelSpace:
    """id2label / label2id (what a model config stores) of a task's `label_names`: class names or IOB2 tags."""

    label_names: list[str]

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.label_names))

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.label_names)}


@dataclass
class TaskData(LabelSpace):
    splits: DatasetDict  # train / validation / test; text columns plus "labels"
    text_columns: list[str]
    label_names: list[str]
    multi_label: bool
    source: str  # what the user named: asset, path or Hub id
    description: str

    @property
    def problem_type(self) -> str:
        return "multi_label_classification" if self.multi_label else "single_label_classification"

    def texts(self, split: str) -> list:
        """The split's texts, or (text, text_pair) tuples for two text columns."""
        columns = [self.splits[split][c] for c in self.text_columns]
        return columns[0] if len(columns) == 1 else list(zip(*columns))

    def sizes(self) -> dict[str, int]:
        return {name: len(split) for name, split in self.splits.items()}


def load_task_data(config: DataConfig) -> TaskData:
    raw, defaults, description = _load_raw(config.dataset)
    text_columns = config.text_columns or list(defaults.get("text_columns") or ["text"])
    label_column = config.label_column or defaults.get("label_column") or "label"
    exclude = config.exclude_labels if config.exclude_labels is not None else list(defaults.get("exclude_labels", ()))

    if config.train_split not in raw:
        raise UserError(
            f"dataset {config.dataset!r} has no split {config.train_split!r} (splits: {', '.join(raw)}); set data.train_split"
        )
    for split_name, split in raw.items():
        missing = [c for c in [*text_columns, label_column] if c not in split.column_names]
        if missing:
            which = "data.label_column" if missing[0] == label_column else "data.text_columns"
            raise UserError(
                f"column {missing[0]!r} is not in split {split_name!r} of {config.dataset!r} "
                f"(columns: {', '.join(split.column_names)}); set {which}"
            )
    if not 1 <= len(text_columns) <= 2:
        raise UserError(f"data.text_columns takes one text column or a pair of them, got {text_columns}")
    raw = DatasetDict({name: split.select_columns([*text_columns, label_column]) for name, split in raw.items()})

    feature = raw[config.train_split].features[label_column]
    multi_label = isinstance(feature, (datasets.Sequence, datasets.List)) or _values_are_lists(raw[config.train_split][label_column])
    names_from_feature = _class_label_names(feature)
    if names_from_feature:  # ClassLabel ints -> their names, so labels are named everywhere
        raw = raw.map(lambda b: {label_column: [_names(v, names_from_feature) for v in b[label_column]]}, batched=True,
                      features=None, desc="naming labels")
    raw = _drop_excluded(raw, label_column, exclude, multi_label)
    raw = _check_texts(raw, text_columns, config.empty_text)

    train_labels = _label_strings(raw[config.train_split][label_column], multi_label, config.train_split, label_column)
    counts = Counter(train_labels)
    label_names = list(config.labels) if config.labels else sorted(counts)
    if len(label_names) < 2:
        raise UserError(
            f"split {config.train_split!r} holds one class only ({label_names[0] if label_names else 'none'!r}) in column "
            f"{label_column!r}: classification needs at least two; check data.label_column and data.exclude_labels"
        )
    known = set(label_names)
    for split_name, split in raw.items():
        seen = _label_strings(split[label_column], multi_label, split_name, label_column)
        unknown = sorted(set(seen) - known)
        if unknown:
            source = "data.labels" if config.labels else f"split {config.train_split!r}"
            raise UserError(
                f"label {unknown[0]!r} in split {split_name!r} is not in the label set of {source} "
                f"({', '.join(label_names)}); fix the data or add it to data.labels"
            )

    label_ids = {name: i for i, name in enumerate(label_names)}
    encoded = raw.map(
        lambda batch: {"labels": [_encode(v, label_ids, multi_label) for v in batch[label_column]]},
        batched=True,
        remove_columns=[label_column] if label_column not in text_columns else None,
        desc="encoding labels",
    )
    if not multi_label:
        encoded = encoded.cast_column("labels", ClassLabel(names=label_names))
    splits = _make_splits(encoded, config, multi_label)
    return TaskData(splits, text_columns, label_names, multi_label, config.dataset, description)


def _load_raw(name: str) -> tuple[DatasetDict, dict, str]:
    """Returns the raw splits, the source's column defaults and a short description."""
    if name in ASSETS:
        asset = ASSETS[name]
        if asset.kind != "dataset":
            datasets_known = ", ".join(n for n, a in ASSETS.items() if a.kind == "dataset")
            raise UserError(f"asset {name!r} is a {asset.kind}, not a dataset: dataset assets are {datasets_known}")
        defaults = {"text_columns": asset.text_columns, "label_column": asset.label_column, "exclude_labels": asset.exclude_labels}
        raw = _read_file(asset_path(name) / asset.data_file, **asset.read_options())
        if asset.label_names:  # labels as the file writes them (1 / -1) -> their names
            column, names = asset.label_column, asset.label_names
            raw = raw.map(lambda b: {column: [names[v] for v in b[column]]}, batched=True, desc="naming labels")
        return raw, defaults, asset.description
    path = Path(name).expanduser()
    if path.is_file():
        return _read_file(path), {}, f"local file {path.name}"
    if path.is_dir():
        return _read_folder(path), {}, f"local folder {path.name}"
    if _looks_like_path(name):
        raise UserError(f"data file {name!r} not found: check data.dataset (a dataset asset, a file, a folder or a Hub id)")
    return _load_hub(name), {}, f"Hugging Face dataset {name}"


def _looks_like_path(name: str) -> bool:
    suffixes = {s.lower() for s in Path(name).suffixes}
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or bool(suffixes & {*FILE_BUILDERS, *COMPRESSIONS})


def _builder_for(path: Path) -> tuple[str, dict]:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSIONS:
        suffixes = suffixes[:-1]
    kind = suffixes[-1] if suffixes else ""
    if kind not in FILE_BUILDERS:
        raise UserError(f"cannot read {path.name}: use a .csv, .tsv, .json, .jsonl or .parquet file (optionally compressed)")
    return FILE_BUILDERS[kind], ({"sep": "\t"} if kind == ".tsv" else {})


def _read_file(path: Path, **read_options) -> DatasetDict:
    builder, options = _builder_for(path)
    return _load(builder, data_files={"train": str(path)}, **options, **read_options)


def _read_folder(folder: Path) -> DatasetDict:
    files = {}
    for split, aliases in {"train": ("train",), **SPLIT_ALIASES}.items():
        for candidate in sorted(folder.iterdir()):
            if candidate.is_file() and candidate.name.split(".")[0].lower() in aliases:
                files[split] = candidate
                break
    if "train" not in files:
        raise UserError(f"folder {folder} has no train.csv / train.jsonl / train.parquet file: add one or name the file directly")
    builders = [_builder_for(p) for p in files.values()]
    if any(b != builders[0] for b in builders):
        raise UserError(f"folder {folder} mixes file formats ({', '.join(p.name for p in files.values())}): use one format")
    builder, options = builders[0]
    return _load(builder, data_files={k: str(v) for k, v in files.items()}, **options)


def _load(builder: str, **kwargs) -> DatasetDict:
    try:
        return datasets.load_dataset(builder, **kwargs)
    except (ValueError, TypeError, OSError, datasets.exceptions.DatasetGenerationError) as err:
        first = (str(err.__cause__ or err).splitlines() or ["unreadable"])[0]
        files = ", ".join(Path(f).name for f in kwargs["data_files"].values())
        raise UserError(f"cannot read {files} as {builder}: {first[:200]}; check the file's format") from None


def _load_hub(name: str) -> DatasetDict:
    try:
        loaded = datasets.load_dataset(name)
    except Exception as err:  # the Hub client raises many types; all mean "not reachable or not there"
        offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1"
        hint = "offline mode is on (HF_HUB_OFFLINE=1) and it is not in the local cache" if offline else type(err).__name__
        dataset_assets = ", ".join(n for n, a in ASSETS.items() if a.kind == "dataset")
        raise UserError(
            f"dataset {name!r} is not a local file, a dataset asset ({dataset_assets}) or a loadable Hub dataset ({hint})"
        ) from None
    return loaded if isinstance(loaded, DatasetDict) else DatasetDict({"train": loaded})


def _class_label_names(feature) -> list[str] | None:
    inner = getattr(feature, "feature", feature)
    return list(inner.names) if isinstance(inner, ClassLabel) else None


def _names(value, names):
    return [names[v] for v in value] if isinstance(value, list) else names[value]


def _values_are_lists(values) -> bool:
    return any(isinstance(v, list) for v in values[:100])


def _label_strings(values, multi_label: bool, split: str, column: str) -> list[str]:
    out = []
    for row, value in enumerate(values):
        if value is None or (isinstance(value, float) and value != value):
            raise UserError(f"row {row} of split {split!r} has no label in column {column!r}: fill it or drop the row")
        out.extend(str(v) for v in value) if multi_label else out.append(str(value))
    return out


def _encode(value, label_ids: dict[str, int], multi_label: bool):
    if not multi_label:
        return label_ids[str(value)]
    hot = [0.0] * len(label_ids)
    for v in value:
        hot[label_ids[str(v)]] = 1.0
    return hot


def _drop_excluded(raw: DatasetDict, column: str, exclude: list[str], multi_label: bool) -> DatasetDict:
    if not exclude:
        return raw
    excluded = set(map(str, exclude))
    if multi_label:
        return raw.map(lambda b: {column: [[v for v in values if str(v) not in excluded] for values in b[column]]},
                       batched=True, desc="dropping excluded labels")
    return raw.filter(lambda b: [str(v) not in excluded for v in b[column]], batched=True, desc="dropping excluded labels")


def _check_texts(raw: DatasetDict, text_columns: list[str], policy: str) -> DatasetDict:
    if policy not in ("error", "drop"):
        raise UserError(f"data.empty_text takes 'error' or 'drop', got {policy!r}")

    def non_empty(batch):
        return [all(isinstance(batch[c][i], str) and batch[c][i].strip() for c in text_columns)
                for i in range(len(batch[text_columns[0]]))]

    for split_name, split in raw.items():
        for column in text_columns:
            if split.features[column].dtype not in ("string", "large_string"):
                if not all(isinstance(v, str) or v is None for v in split[column][:1000]):
                    raise UserError(
                        f"column {column!r} of split {split_name!r} holds {split.features[column].dtype}, not text: "
                        "set data.text_columns to the column with the texts"
                    )
        if policy == "error":
            keep = non_empty(split[:])
            if not all(keep):
                row = keep.index(False)
                raise UserError(
                    f"{keep.count(False)} example(s) of split {split_name!r} have empty text (first at row {row}): "
                    "clean the data or set data.empty_text=drop"
                )
    return raw.filter(non_empty, batched=True, desc="dropping empty texts") if policy == "drop" else raw


def _make_splits(data: DatasetDict, config: DataConfig, multi_label: bool) -> DatasetDict:
    stratify = None if multi_label else "labels"
    train = data[config.train_split]
    test = _find_split(data, config.test_split, "test")
    validation = _find_split(data, config.validation_split, "validation")
    if test is None:
        parts = _split(train, config.test_size, config.seed, stratify, "data.test_size")
        train, test = parts["train"], parts["test"]
    if validation is None:
        parts = _split(train, config.validation_size, config.seed, stratify, "data.validation_size")
        train, validation = parts["train"], parts["test"]
    if config.max_train_samples and config.max_train_samples < len(train):
        train = _split(train, len(train) - config.max_train_samples, config.seed, stratify, "data.max_train_samples")["train"]
    if config.max_eval_samples:
        validation, test = (
            s if len(s) <= config.max_eval_samples
            else _split(s, len(s) - config.max_eval_samples, config.seed, stratify, "data.max_eval_samples")["train"]
            for s in (validation, test)
        )
    return DatasetDict({"train": train, "validation": validation, "test": test})


def _find_split(data: DatasetDict, named: str | None, role: str) -> Dataset | None:
    if named:
        if named not in data:
            raise UserError(f"split {named!r} not found (splits: {', '.join(data)}); set data.{role}_split")
        return data[named]
    return next((data[alias] for alias in SPLIT_ALIASES[role] if alias in data), None)


def _split(dataset: Dataset, size, seed: int, stratify: str | None, key: str) -> DatasetDict:
    try:
        return dataset.train_test_split(test_size=size, seed=seed, stratify_by_column=stratify)
    except ValueError as err:
        raise UserError(f"cannot split {len(dataset)} examples with {key}={size}: {str(err).splitlines()[0]}") from None


def tokenize_splits(task: TaskData, tokenizer, max_length: int) -> DatasetDict:
    """Tokenize every split once (datasets caches the result); no padding here, the collator pads per batch."""

    def encode(batch):
        texts = [batch[c] for c in task.text_columns]
        return tokenizer(*texts, truncation=True, max_length=max_length)

    return task.splits.map(encode, batched=True, remove_columns=task.text_columns, desc="tokenizing")


def prediction_rows(task: TaskData, split: str, predicted, probabilities) -> list[dict]:
    """One predictions.jsonl row per example: text, gold and predicted label names, and each label's score."""
    names = task.label_names

    def named(value):
        return [names[i] for i, on in enumerate(value) if on] if task.multi_label else names[value]

    return [
        {"split": split, "text": text, "label": named(label), "prediction": named(pred),
         "scores": {name: round(float(p), 6) for name, p in zip(names, probs)}}
        for text, label, pred, probs in zip(task.texts(split), task.splits[split]["labels"], predicted.tolist(),
                                            probabilities)
    ]


def name_slug(name: str) -> str:
    """A model or dataset name as one folder-name part: `org/model.v2/` -> `model-v2`."""
    return Path(name.rstrip("/")).name.replace(".", "-")
