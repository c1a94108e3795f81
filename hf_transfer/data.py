"""TaskData: a labelled text-classification task, split into train / validation / test.

Sources: a named dataset asset, a local CSV / TSV / JSON / JSONL / Parquet file (compressed too), a folder of
`train.* / validation.* / test.*` files, or a Hub dataset id.

User files are read one way by every reader (training data here, texts to label in `hf-transfer predict` through
`read_text_records`):
- UTF-8, with or without a byte-order mark;
- CSV columns are separated by `data.delimiter`, else by the first of , ; tab | (tab first for .tsv) that splits
  the header into two or more columns and no row into more columns than the header; a duplicated column name, a
  header without rows and a row with more fields than the header are refused, naming the line;
- only an empty cell is missing: `NA` (a region code), `None`, `null` or `n/a` stay text, where pandas' defaults
  would read them as missing.

Labels: names, ids (a ClassLabel's ids are named), lists of them (multi-label), or equal-length 0/1 vectors
(multi-hot, named by data.labels in position order). Names lose surrounding whitespace; names that differ only in
case are merged, kept apart or refused (data.label_case). A missing validation or test split is carved out of
train, stratified, with a fixed seed, keeping identical texts in one split; when the data brings its own splits,
the texts they share with train are counted. Both land in TaskData.data_facts.
"""

from __future__ import annotations

import bz2
import codecs
import copy
import csv
import dataclasses
import gzip
import io
import json
import logging
import lzma
import math
import os
import random
import statistics
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Value
from datasets.utils.stratify import stratified_shuffle_split_generate_indices

from .assets import ASSETS, asset_path
from .config import DataConfig
from .errors import UserError, first_line
from .log import logger
from .sampling import nested_subsample

FILE_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst")
OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}  # .zst has no reader in the standard library
SPLIT_ALIASES = {"validation": ("validation", "valid", "dev", "val"), "test": ("test",)}
DELIMITERS = (",", ";", "\t", "|")
DELIMITER_WORDS = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "pipes"}
SNIFF_BYTES = 1 << 20  # the delimiter and header checks read the first MiB of a CSV file
# Sun et al. 2019, "How to Fine-Tune BERT for Text Classification?" (arXiv:1905.05583), table 3: keeping the first
# 128 and the last 382 of BERT's 510 text tokens beat head-only and tail-only truncation on long IMDb reviews.
HEAD_SHARE = 128 / 510
CHUNK_OVERLAP = 0.25  # share of a chunk's text tokens that the next chunk repeats, so no sentence is only ever cut


class LabelSpace:
    """id2label / label2id (what a model config stores) of a task's `label_names`: class names or IOB2 tags."""

    label_names: list[str]

    @property
    def id2label(self) -> dict[int, str]:
        """{label id: label name}, ids in label_names order, as transformers configs take it."""
        return dict(enumerate(self.label_names))

    @property
    def label2id(self) -> dict[str, int]:
        """{label name: label id}, the inverse of id2label."""
        return {name: i for i, name in enumerate(self.label_names)}


@dataclass
class TaskData(LabelSpace):
    """A classification task's splits, label space and the data facts a score's reader needs.

    `data_facts` holds what changes what a score means, for metrics.json's task section and the card
    (JSON values; keys present when they apply):
    - label_format: "names", "ids", "class-label" (a ClassLabel's ids, named), "lists" (lists of names or ids) or
      "multi-hot" (0/1 vectors named by data.labels)
    - labels_stripped: label values that lost surrounding whitespace (`positive ` -> `positive`)
    - label_case: the data.label_case policy; label_case_variants: {kept spelling: [other spellings]} for names that
      differ only in case (merged into the kept spelling under `merge`, kept apart under `keep`)
    - carved_splits: the splits made here out of train, e.g. ["test", "validation"] (identical texts kept together)
    - subsampled: {split: its size before data.max_train_samples / max_eval_samples} for the splits they made smaller
    - duplicate_texts: examples whose text (after whitespace normalisation) repeats an earlier example's, all splits
    - overlap: {"validation_in_train", "test_in_train", "test_in_validation"}: examples of the first split whose text
      (after whitespace normalisation) is also in the second; non-zero means the score is not fully held-out
    - truncation (set by tokenize_splits): {"strategy", "max_length", "truncated": {split: texts},
      "truncated_share": {split: fraction}, "median_tokens": {split: tokens before truncation}}
    """

    splits: DatasetDict  # train / validation / test; text columns plus "labels"
    text_columns: list[str]
    label_names: list[str]
    multi_label: bool
    source: str  # what the user named: asset, path or Hub id
    description: str
    truncation: str = "head"  # data.truncation: how tokenize_splits cuts texts longer than max_length
    data_facts: dict = field(default_factory=dict)
    # data.max_train_samples: the train split before it was subsampled, and the rows of it that were kept (sorted),
    # for a teacher that labels the rest (hf_transfer.teacher); None when the whole train split is used.
    train_pool: Dataset | None = None
    train_rows: np.ndarray | None = None

    @property
    def problem_type(self) -> str:
        """transformers' problem_type for the task: "multi_label_classification" (sigmoid per label) or
        "single_label_classification" (softmax)."""
        return "multi_label_classification" if self.multi_label else "single_label_classification"

    def texts(self, split: str) -> list:
        """The split's texts, or (text, text_pair) tuples for two text columns."""
        columns = [self.splits[split][c] for c in self.text_columns]
        return columns[0] if len(columns) == 1 else list(zip(*columns))

    def sizes(self) -> dict[str, int]:
        """{split: number of examples}."""
        return {name: len(split) for name, split in self.splits.items()}


# Data loaded and tokenized by this process, kept for its next runs while share_loaded_data is on (a study's runs
# differ only in their train subsample): {key: TaskData before the subsample, or tokenized splits}. None: off.
_SHARED: dict | None = None


def share_loaded_data(on: bool = True) -> bool:
    """Turn process-wide reuse of loaded and tokenized data on or off (off drops what was kept); returns the
    previous setting.

    While on, load_task_data reads, checks and splits each data config once and draws every later run's train
    subsample (data.max_train_samples, data.subsample_seed) from what it kept, and tokenize_splits tokenizes each
    (splits, tokenizer, max_length) once and selects the subsample's rows: the same rows, columns and data facts
    as loading afresh, in a fraction of the time. Memory holds everything loaded until it is turned off. A study
    turns it on (hf_transfer.study); text-classification data only (token data loads as before).
    """
    global _SHARED
    previous = _SHARED is not None
    if on and _SHARED is None:
        _SHARED = {}
    elif not on:
        _SHARED = None
    return previous


def load_task_data(config: DataConfig) -> TaskData:
    """Read, check and split the data that `config` names. Raises UserError, one line, for every bad input.

    With share_loaded_data on, the data before the train subsample is kept and reused (see there)."""
    if _SHARED is None:
        return _load_task_data(config)
    whole = dataclasses.replace(config, max_train_samples=None, subsample_seed=None)
    key = ("data", json.dumps(dataclasses.asdict(whole), sort_keys=True, default=str))
    if key in _SHARED:
        logger.info(f"data {config.dataset}: reusing the splits this process loaded")
    else:
        logger.info(f"data {config.dataset}: loading once for this process's runs")
        _SHARED[key] = _load_task_data(whole)
    return _subsample(_SHARED[key], config)


def _subsample(whole: TaskData, config: DataConfig) -> TaskData:
    """`whole` (loaded without data.max_train_samples) with the train subsample `config` asks for, as
    _make_splits draws it; its own copy of the data facts, the overlap counted on the subsample."""
    train = whole.splits["train"]
    facts = copy.deepcopy(whole.data_facts)
    facts.pop("truncation", None)  # tokenize_splits sets it for the run's own splits
    if not config.max_train_samples or config.max_train_samples >= len(train):
        return dataclasses.replace(whole, data_facts=facts)
    seed = config.seed if config.subsample_seed is None else config.subsample_seed
    rows = nested_subsample(train["labels"], config.max_train_samples, seed)
    splits = DatasetDict({"train": train.select(rows), "validation": whole.splits["validation"],
                          "test": whole.splits["test"]})
    facts["subsampled"] = {**facts.get("subsampled", {}), **subsampled_splits({"train": len(train)}, splits)}
    facts.update(_overlap(splits, whole.text_columns))
    for level, line in _fact_lines({"overlap": facts["overlap"]}, "", splits):
        logger.log(level, line)
    return dataclasses.replace(whole, splits=splits, data_facts=facts, train_pool=train, train_rows=rows)


def _load_task_data(config: DataConfig) -> TaskData:
    raw, defaults, description = _load_raw(config.dataset, config.delimiter)
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
    if config.truncation != "head" and len(text_columns) == 2:
        raise UserError(f"data.truncation={config.truncation} cuts one text, not the pair {text_columns}: use head")
    raw = DatasetDict({name: split.select_columns([*text_columns, label_column]) for name, split in raw.items()})
    _check_text_columns(raw, text_columns, config.dataset, "set data.text_columns to the column with the texts")

    facts: dict = {}
    labels, multi_label = _label_names(raw, label_column, config, facts)
    labels = _merge_label_case(labels, multi_label, config, facts)
    fold = str.casefold if config.label_case == "merge" else str  # merged spellings are excluded alike
    excluded = {fold(str(name).strip()) for name in exclude}
    if multi_label and excluded:  # excluded names leave the lists; the rows stay
        labels = {s: [[n for n in row if fold(n) not in excluded] for row in values] for s, values in labels.items()}
    keep = _kept_rows(raw, labels, text_columns, lambda name: not multi_label and fold(name) in excluded,
                      config.empty_text)
    raw = DatasetDict({name: split.select(keep[name]) if len(keep[name]) < len(split) else split
                       for name, split in raw.items()})
    labels = {name: [values[i] for i in keep[name]] for name, values in labels.items()}

    counts = Counter(_flat(labels[config.train_split], multi_label))
    label_names = [str(name).strip() for name in config.labels] if config.labels else sorted(counts)
    if len(label_names) < 2:
        raise UserError(
            f"split {config.train_split!r} holds one class only ({label_names[0] if label_names else 'none'!r}) in column "
            f"{label_column!r}: classification needs at least two; check data.label_column and data.exclude_labels"
        )
    known = set(label_names)
    for split_name, values in labels.items():
        seen = Counter(_flat(values, multi_label))
        unknown = sorted(set(seen) - known, key=lambda name: -seen[name])
        if unknown:
            source = "data.labels" if config.labels else f"split {config.train_split!r}"
            others = f" ({len(unknown) - 1} more unknown)" if len(unknown) > 1 else ""
            raise UserError(
                f"label {unknown[0]!r} in split {split_name!r} is not in the label set of {source} "
                f"({', '.join(label_names)}; {seen[unknown[0]]} row(s){others}): fix the data, drop it with "
                f"data.exclude_labels=[{unknown[0]}] or add it to data.labels"
            )

    label_ids = {name: i for i, name in enumerate(label_names)}
    feature = datasets.List(Value("float32")) if multi_label else ClassLabel(names=label_names)
    encoded = DatasetDict({
        name: split.remove_columns([label_column] if label_column not in text_columns else [])
                   .add_column("labels", [_encode(v, label_ids, multi_label) for v in labels[name]], feature=feature)
        for name, split in raw.items()
    })
    splits, pool, rows = _make_splits(encoded, config, multi_label, text_columns, facts)
    for level, line in _fact_lines(facts, label_column, splits):  # logged only now: a failed load says one line
        logger.log(level, line)
    return TaskData(splits, text_columns, label_names, multi_label, config.dataset, description, config.truncation,
                    facts, pool, rows)


def read_text_records(path: str | Path, text_columns: str | list[str] = "text", delimiter: str | None = None) -> list:
    """Texts to label from a user's file, decoded as training data is (see the module docstring).

    A .txt file holds one text per line (blank lines are skipped); .csv / .tsv / .json / .jsonl / .parquet files
    (compressed too) hold records whose `text_columns` field(s) are the texts. Returns a list of str, or of
    (text, text_pair) tuples for two columns, in file order. Raises UserError naming the file, the record or the
    column, and the fix.
    """
    path = Path(path).expanduser()
    columns = [text_columns] if isinstance(text_columns, str) else list(text_columns)
    if not path.is_file():
        raise UserError(f"file of texts {path} not found: pass a .txt (one text per line), .jsonl or .csv file")
    if path.suffix.lower() == ".txt":
        try:
            with open(path, encoding="utf-8-sig") as handle:
                return [line.rstrip("\n") for line in handle if not _is_blank(line)]
        except UnicodeDecodeError as err:
            raise UserError(f"{path.name} is not UTF-8 text ({first_line(err)}): save it as UTF-8") from None
    records = _read_file(path, delimiter)["train"]
    missing = [c for c in columns if c not in records.column_names]
    if missing:
        raise UserError(f"{path.name} has no text field {missing[0]!r} (columns: {', '.join(records.column_names)}): "
                        "pass --text-column NAME")
    _check_text_columns({None: records}, columns, path.name, "pass --text-column NAME")
    texts = [records[c][:] for c in columns]
    for number, values in enumerate(zip(*texts), start=1):
        if any(_is_blank(v) for v in values):
            raise UserError(f"record {number} of {path.name} has no text in column(s) {', '.join(columns)}: fill it "
                            "or remove the record")
    return texts[0] if len(texts) == 1 else list(zip(*texts))


def _load_raw(name: str, delimiter: str | None = None) -> tuple[DatasetDict, dict, str]:
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
        return _read_file(path, delimiter), {}, f"local file {path.name}"
    if path.is_dir():
        return _read_folder(path, delimiter), {}, f"local folder {path.name}"
    if _looks_like_path(name):
        raise UserError(f"data file {name!r} not found: check data.dataset (a dataset asset, a file, a folder or a Hub id)")
    return _load_hub(name), {}, f"Hugging Face dataset {name}"


def _looks_like_path(name: str) -> bool:
    suffixes = {s.lower() for s in Path(name).suffixes}
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or bool(suffixes & {*FILE_BUILDERS, *COMPRESSIONS})


def _builder_for(path: Path, delimiter: str | None = None) -> tuple[str, dict]:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSIONS:
        suffixes = suffixes[:-1]
    kind = suffixes[-1] if suffixes else ""
    if kind not in FILE_BUILDERS:
        raise UserError(f"cannot read {path.name}: use a .csv, .tsv, .json, .jsonl or .parquet file (optionally compressed)")
    if path.stat().st_size == 0:
        raise UserError(f"{path.name} is empty: add examples, or name another file in data.dataset")
    if FILE_BUILDERS[kind] != "csv":
        return FILE_BUILDERS[kind], {}
    # Only an empty cell is missing: pandas' defaults read NA, None, null, n/a, nan, ... as missing too.
    return "csv", {"sep": _csv_delimiter(path, delimiter, "\t" if kind == ".tsv" else ","),
                   "keep_default_na": False, "na_values": [""]}


def _read_file(path: Path, delimiter: str | None = None, **read_options) -> DatasetDict:
    """One file as a "train" split; read_options (an asset's: column_names, encoding) go to datasets' builder."""
    builder, options = _builder_for(path, delimiter)
    return _load(builder, data_files={"train": str(path)}, **{**options, **read_options})


def _read_folder(folder: Path, delimiter: str | None = None) -> DatasetDict:
    files = {}
    for split, aliases in {"train": ("train",), **SPLIT_ALIASES}.items():
        for candidate in sorted(folder.iterdir()):
            if candidate.is_file() and candidate.name.split(".")[0].lower() in aliases:
                files[split] = candidate
                break
    if "train" not in files:
        raise UserError(f"folder {folder} has no train.csv / train.jsonl / train.parquet file: add one or name the file directly")
    builders = [_builder_for(p, delimiter) for p in files.values()]
    if any(b[0] != builders[0][0] for b in builders):
        raise UserError(f"folder {folder} mixes file formats ({', '.join(p.name for p in files.values())}): use one format")
    if any(b != builders[0] for b in builders):
        separators = ", ".join(f"{p.name}: {DELIMITER_WORDS.get(b[1]['sep'], repr(b[1]['sep']))}"
                               for p, b in zip(files.values(), builders))
        raise UserError(f"the files of folder {folder} separate columns differently ({separators}): use one separator")
    builder, options = builders[0]
    return _load(builder, data_files={k: str(v) for k, v in files.items()}, **options)


def _load(builder: str, **kwargs) -> DatasetDict:
    files = ", ".join(Path(f).name for f in kwargs["data_files"].values())
    try:
        return datasets.load_dataset(builder, **kwargs)
    except (ValueError, TypeError, OSError, datasets.exceptions.DatasetGenerationError) as err:
        first = first_line(err.__cause__ or err)
        if "corresponds to no data" in first:
            raise UserError(f"{files} holds no examples: add some, or name another file in data.dataset") from None
        raise UserError(f"cannot read {files} as {builder}: {first}; check the file's format") from None


def _csv_delimiter(path: Path, delimiter: str | None, preferred: str) -> str:
    """The column separator of a CSV file, after checking its header and first MiB (see the module docstring).

    csv.Sniffer is not used: it guesses from character counts per line, which quoted texts holding commas,
    semicolons or line breaks throw off; here each candidate is parsed with the csv module and judged by the header.
    """
    sample = _csv_sample(path)
    if sample is None:
        return delimiter or preferred
    text, cut = sample
    candidates = [delimiter] if delimiter else [preferred, *(d for d in DELIMITERS if d != preferred)]
    parsed = {d: _csv_rows(text, d, cut) for d in candidates}
    parsed = {d: rows for d, rows in parsed.items() if rows is not None}
    if not parsed:  # a field beyond the csv module's size limit: leave the checks to pandas
        return delimiter or preferred
    if not any(parsed.values()):
        raise UserError(f"{path.name} is empty: add a header line and one example per line")
    fitting = [d for d, rows in parsed.items() if len(rows[0][1]) >= 2 and all(len(f) <= len(rows[0][1]) for _, f in rows)]
    chosen = fitting[0] if fitting else max(parsed, key=lambda d: len(parsed[d][0][1]))  # widest header: its error
    rows = parsed[chosen]
    header = rows[0][1]
    too_long = next(((line, fields) for line, fields in rows if len(fields) > len(header)), None)
    if too_long:
        line, fields = too_long
        word = DELIMITER_WORDS.get(chosen, repr(chosen))
        raise UserError(f"line {line} of {path.name} has {len(fields)} fields where its header has {len(header)} "
                        f"(columns separated by {word}): quote the fields that hold {chosen!r}, or set data.delimiter")
    repeated = [name for name, n in Counter(header).items() if n > 1]
    if repeated:
        raise UserError(f"column {repeated[0]!r} appears {header.count(repeated[0])} times in the header of {path.name}: "
                        "give each column its own name")
    if len(rows) == 1 and not cut:
        raise UserError(f"{path.name} has a header ({', '.join(header)}) but no rows: add one example per line")
    if chosen != preferred and not delimiter:
        logger.info(f"{path.name}: columns separated by {DELIMITER_WORDS[chosen]} (detected; data.delimiter sets it)")
    return chosen


def _csv_sample(path: Path) -> tuple[str, bool] | None:
    """The first SNIFF_BYTES of a (compressed) text file, decoded, and whether the file goes on; None for .zst."""
    opener = OPENERS.get(path.suffix.lower(), open if path.suffix.lower() not in COMPRESSIONS else None)
    if opener is None:
        return None
    try:
        with opener(path, "rb") as handle:
            data = handle.read(SNIFF_BYTES + 1)
    except (OSError, EOFError, lzma.LZMAError) as err:  # gzip.BadGzipFile is an OSError
        raise UserError(f"{path.name} is not a readable {path.suffix} archive ({first_line(err)}): compress it "
                        "again or pass the uncompressed file") from None
    cut = len(data) > SNIFF_BYTES
    try:
        return codecs.getincrementaldecoder("utf-8-sig")().decode(data[:SNIFF_BYTES], final=not cut), cut
    except UnicodeDecodeError as err:
        raise UserError(f"{path.name} is not UTF-8 text (byte {data[err.start]:#04x} at offset {err.start}): save it "
                        "as UTF-8") from None


def _csv_rows(text: str, delimiter: str, cut: bool) -> list[tuple[int, list[str]]] | None:
    """(line number, fields) of each non-blank CSV row; the last row is dropped when the text was cut short."""
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        rows = [(reader.line_num, fields) for fields in reader if fields]
    except csv.Error:
        return None
    return rows[:-1] if cut and len(rows) > 1 else rows


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


def _check_text_columns(raw, text_columns: list[str], source: str, fix: str) -> None:
    """Each text column of each split ({name: Dataset}) holds strings (or missing values), not numbers or objects."""
    for split_name, split in raw.items():
        for column in text_columns:
            feature = split.features[column]
            if isinstance(feature, Value) and feature.dtype in ("string", "large_string", "null"):
                continue
            if isinstance(feature, Value):
                what = feature.dtype
            else:
                example = next((v for v in split[column][:100] if v is not None), None)
                kind = "objects" if isinstance(example, dict) else "lists" if isinstance(example, list) else "values"
                what = f"{kind} such as {str(example)[:40]}"
            where = f" of split {split_name!r}" if split_name else ""
            raise UserError(f"column {column!r}{where} in {source} holds {what}, not text: {fix}")


def _is_blank(text) -> bool:
    """True for a missing text and for one of only whitespace, control and format characters (zero-width spaces)."""
    return not isinstance(text, str) or all(unicodedata.category(ch)[0] in "CZ" for ch in text)


def _class_label_names(feature) -> list[str] | None:
    inner = getattr(feature, "feature", feature)
    return list(inner.names) if isinstance(inner, ClassLabel) else None


def _label_names(raw: DatasetDict, column: str, config: DataConfig, facts: dict) -> tuple[dict[str, list], bool]:
    """Each split's labels as names (str) or lists of names, and whether the task is multi-label.

    ClassLabel ids become their names, multi-hot vectors the names in data.labels, numbers their decimal text;
    names lose surrounding whitespace. A missing label, a fraction or an object is refused, naming the row.
    """
    feature = raw[config.train_split].features[column]
    class_names = _class_label_names(feature)
    train_values = raw[config.train_split][column][:]  # [:] reads a datasets Column as a list, fast
    hot_length = None if class_names else _multi_hot_length(train_values, column, config.labels)
    multi_label = bool(hot_length) or isinstance(feature, (datasets.Sequence, datasets.List)) or any(
        isinstance(v, list) for v in train_values[:100])
    facts["label_format"] = ("multi-hot" if hot_length else "lists" if multi_label else "class-label" if class_names
                             else "names" if any(isinstance(v, str) for v in train_values[:100]) else "ids")
    labels, stripped = {}, 0
    for split_name, split in raw.items():
        names = []
        for row, value in enumerate(split[column][:]):
            where = f"row {row} of split {split_name!r}"
            if class_names is not None and value is not None:
                if min(value if isinstance(value, list) else [value], default=0) < 0:  # datasets' "no label"
                    raise UserError(f"{where} has no label in column {column!r} (-1: the split is unlabelled): "
                                    "name a labelled split in data.validation_split / data.test_split, or drop the row")
                value = [class_names[v] for v in value] if isinstance(value, list) else class_names[value]
            if value is None:
                _label_name(value, where, column)  # raises: no label
            if hot_length:
                value = _from_multi_hot(value, config.labels, where, column)
            if multi_label != isinstance(value, list):
                raise UserError(f"{where} holds {str(value)[:40]!r} in column {column!r} where the train split holds "
                                f"{'lists of labels' if multi_label else 'one label per row'}: write every row alike")
            values = value if multi_label else [value]
            named = [_label_name(v, where, column) for v in values]
            stripped += sum(isinstance(v, str) and v != name for v, name in zip(values, named))
            names.append(named if multi_label else named[0])
        labels[split_name] = names
    if stripped:
        facts["labels_stripped"] = stripped
    return labels, multi_label


def _multi_hot_length(values: list, column: str, names: list[str] | None) -> int | None:
    """The vector length L when every label is a list of L >= 2 zeros and ones (multi-hot rows), else None.

    Missing and empty rows are left out of the test (they are refused later, naming the row)."""
    lists = [v for v in values if v]
    if not lists or not all(isinstance(v, list) and all(x in (0, 1) and not isinstance(x, str) for x in v)
                            for v in lists):
        return None
    lengths = sorted({len(v) for v in lists})
    if len(lengths) > 1:
        if any(len(set(v)) < len(v) for v in lists):  # [1, 0, 1] is no list of label ids: broken 0/1 vectors
            raise UserError(f"column {column!r} holds 0/1 vectors of different lengths ({lengths[0]} to {lengths[-1]}):"
                            " a multi-hot row needs one 0/1 per label, the same number in every row")
        return None  # lists of label ids drawn from {0, 1}
    length = lengths[0]
    if length < 2:
        return None
    if not names:
        raise UserError(f"column {column!r} holds 0/1 vectors of length {length} (multi-hot labels): name the "
                        f"{length} positions in order with data.labels=[name1,name2,...]")
    if len(names) != length:
        raise UserError(f"data.labels names {len(names)} labels but the 0/1 vectors of column {column!r} have "
                        f"{length} positions: give one name per position, in order")
    return length


def _from_multi_hot(value, names: list[str], where: str, column: str) -> list[str]:
    if not isinstance(value, list) or len(value) != len(names) or any(x not in (0, 1) for x in value):
        raise UserError(f"{where} holds {str(value)[:40]!r} in column {column!r}, not a 0/1 vector of length "
                        f"{len(names)} like the train split's: fix the row")
    return [name for name, on in zip(names, value) if on]


def _label_name(value, where: str, column: str) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    if value is None or isinstance(value, str) or (isinstance(value, float) and math.isnan(value)):
        raise UserError(f"{where} has no label in column {column!r}: fill it or drop the row")
    if isinstance(value, (bool, int)) or (isinstance(value, float) and value.is_integer()):
        return str(int(value) if isinstance(value, float) else value)  # 1.0 and 1 are one class
    what = "a fraction" if isinstance(value, float) else f"an object ({str(value)[:40]})"
    raise UserError(f"{where} holds {what} in column {column!r}, not a label: classification takes label names, "
                    "ids, lists of them or 0/1 vectors; check data.label_column")


def _flat(values: list, multi_label: bool) -> list[str]:
    return [name for row in values for name in row] if multi_label else values


def _merge_label_case(labels: dict[str, list], multi_label: bool, config: DataConfig, facts: dict) -> dict[str, list]:
    """Apply data.label_case to names that differ only in case (data_facts' label_case_variants lists them)."""
    facts["label_case"] = config.label_case
    counts = Counter(name for values in labels.values() for name in _flat(values, multi_label))
    spellings = defaultdict(list)
    for name in sorted(counts, key=lambda n: (-counts[n], n)):  # most frequent first
        spellings[name.casefold()].append(name)
    groups = [group for group in spellings.values() if len(group) > 1]
    if not groups:
        return labels
    given = [str(name).strip() for name in config.labels or ()]
    kept = {}
    for group in groups:
        named = [name for name in given if name in group]
        if len(named) > 1 and config.label_case == "merge":
            raise UserError(f"data.labels names {' and '.join(named)}, which differ only in case: set "
                            "data.label_case=keep to keep them apart, or name one of them")
        kept[named[0] if named else group[0]] = group
    variants = {keep: [name for name in group if name != keep] for keep, group in kept.items()}
    if config.label_case == "error":
        listed = "; ".join(", ".join(repr(n) for n in group) for group in kept.values())
        raise UserError(f"labels differ only in case ({listed}): set data.label_case=merge to merge them or keep to "
                        "keep them apart")
    facts["label_case_variants"] = variants
    if config.label_case == "keep":
        return labels
    rename = {name: keep for keep, others in variants.items() for name in others}
    if multi_label:
        return {s: [list(dict.fromkeys(rename.get(n, n) for n in row)) for row in values] for s, values in labels.items()}
    return {s: [rename.get(n, n) for n in values] for s, values in labels.items()}


def _kept_rows(raw: DatasetDict, labels: dict[str, list], text_columns: list[str], excluded,
               policy: str) -> dict[str, list[int]]:
    """Row numbers to keep per split: not those whose label excluded(label) is true for, nor (empty_text=drop)
    those with empty text.

    Raises UserError for an empty text under empty_text=error.
    """
    keep = {}
    for split_name, split in raw.items():
        rows = [i for i, value in enumerate(labels[split_name]) if not excluded(value)]
        texts = [split[c][:] for c in text_columns]
        empty = [i for i in rows if any(_is_blank(column[i]) for column in texts)]
        if empty and policy == "error":
            raise UserError(
                f"{len(empty)} example(s) of split {split_name!r} have empty text in column(s) "
                f"{', '.join(text_columns)} (first at row {empty[0]}): clean the data or set data.empty_text=drop"
            )
        keep[split_name] = sorted(set(rows) - set(empty))
    return keep


def _encode(value, label_ids: dict[str, int], multi_label: bool):
    if not multi_label:
        return label_ids[value]
    hot = [0.0] * len(label_ids)
    for name in value:
        hot[label_ids[name]] = 1.0
    return hot


def subsampled_splits(before: dict[str, int], splits) -> dict[str, int]:
    """{split: its size before data.max_train_samples / max_eval_samples} for the splits of `before` ({split: size})
    that the caps made smaller in `splits`; the data facts keep it, so that a card names only the caps that applied."""
    return {name: size for name, size in before.items() if len(splits[name]) < size}


def _make_splits(data: DatasetDict, config: DataConfig, multi_label: bool, text_columns: list[str],
                 facts: dict) -> tuple[DatasetDict, Dataset | None, np.ndarray | None]:
    """(train / validation / test, the train split before max_train_samples subsampled it and the kept rows of it;
    both None when it was not subsampled)."""
    stratify = None if multi_label else "labels"
    train = data[config.train_split]
    test = _find_split(data, config.test_split, "test")
    validation = _find_split(data, config.validation_split, "validation")
    carved = []
    if test is None:
        train, test = _carve(train, config.test_size, config.seed, stratify, "data.test_size", text_columns)
        carved.append("test")
    if validation is None:
        train, validation = _carve(train, config.validation_size, config.seed, stratify, "data.validation_size",
                                   text_columns)
        carved.append("validation")
    pool, rows = None, None
    before = {"train": len(train), "validation": len(validation), "test": len(test)}
    if config.max_train_samples and config.max_train_samples < len(train):
        # Nested and seeded on its own: a study's seeds draw their own samples while the splits above stay fixed.
        seed = config.seed if config.subsample_seed is None else config.subsample_seed
        pool, rows = train, nested_subsample(train["labels"], config.max_train_samples, seed)
        train = train.select(rows)
    if config.max_eval_samples:
        validation, test = (
            s if len(s) <= config.max_eval_samples
            else _split(s, len(s) - config.max_eval_samples, config.seed, stratify, "data.max_eval_samples")["train"]
            for s in (validation, test)
        )
    splits = DatasetDict({"train": train, "validation": validation, "test": test})
    facts["carved_splits"] = carved
    facts["subsampled"] = subsampled_splits(before, splits)
    facts.update(_overlap(splits, text_columns))
    return splits, pool, rows


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


def _carve(dataset: Dataset, size: float, seed: int, stratify: str | None, key: str,
           text_columns: list[str]) -> tuple[Dataset, Dataset]:
    """Split `dataset` into (rest, held-out) like Dataset.train_test_split, keeping identical texts on one side.

    The split starts as train_test_split's (stratified by label, seeded). Each text whose copies land on both sides
    then moves to the side holding most of them (on a tie: the side whose size is short, else a seeded coin flip),
    and for each copy moved one example
    of the same label whose text occurs once moves the other way, so sizes and class counts stay train_test_split's
    wherever such examples exist. Without duplicate texts the result is train_test_split's, row for row.
    """
    labels = dataset[stratify][:] if stratify else None
    if labels is not None:
        names = dataset.features[stratify].names
        rare = sorted((n, names[label]) for label, n in Counter(labels).items() if n < 2)
        if rare:
            raise UserError(f"class {rare[0][1]!r} has only {rare[0][0]} example among the {len(dataset)} split by "
                            f"{key}={size}: a stratified split needs 2 or more of each class; add examples of it, drop "
                            f"it with data.exclude_labels=[{rare[0][1]}], or give the data its own split")
    rest, held_out = _split_rows(len(dataset), labels, size, seed, key)
    rest, held_out = _keep_copies_together((rest, held_out), _text_keys(dataset, text_columns), labels, seed)
    return dataset.select(rest), dataset.select(held_out)


def _split_rows(n: int, labels: list[int] | None, size: float, seed: int, key: str) -> tuple[list[int], list[int]]:
    """Row numbers of (rest, held-out): Dataset.train_test_split(test_size=size, seed=seed)'s own computation.

    Called on numpy arrays directly: datasets 5 hands train_test_split's stratification a lazy Column that numpy
    reads one row at a time (seconds for 10k rows) unless an indices cache file already holds the answer.
    """
    n_test = math.ceil(size * n)
    rng = np.random.default_rng(seed)
    try:
        if n_test >= n:
            raise ValueError("that leaves no example on the other side")
        if labels is None:
            permutation = rng.permutation(n)
            return permutation[n_test:].tolist(), permutation[:n_test].tolist()
        rest, held_out = next(stratified_shuffle_split_generate_indices(np.asarray(labels), n - n_test, n_test, rng=rng))
    except ValueError as err:
        raise UserError(f"cannot split {n} examples with {key}={size}: {first_line(err)}") from None
    return rest.tolist(), held_out.tolist()


def _keep_copies_together(sides: tuple[list[int], list[int]], keys: list, labels: list | None,
                          seed: int) -> tuple[list[int], list[int]]:
    """Move rows between two sides (lists of row numbers: rest, held-out) until each key's rows share a side.

    See _carve for the rule. A moved row trades places with its partner, so both lists keep their order and length: a later split of the
    same rows by position (validation out of train) then differs from the unrepaired one only where rows moved.
    """
    sides = (list(sides[0]), list(sides[1]))
    place = {row: (side, i) for side, rows in enumerate(sides) for i, row in enumerate(rows)}
    copies = defaultdict(list)
    for row, key in enumerate(keys):
        copies[key].append(row)
    label = (lambda row: labels[row]) if labels is not None else (lambda row: None)
    singles = ({}, {})  # side -> label -> rows whose text occurs once, the side's first row last
    for side, rows in enumerate(sides):
        for row in reversed(rows):
            if len(copies[keys[row]]) == 1:
                singles[side].setdefault(label(row), []).append(row)
    coin = random.Random(seed)
    intended = Counter(label(row) for row in sides[1])
    size = intended.copy()  # held-out rows per label
    for rows in copies.values():
        held_out = sum(place[row][0] for row in rows)
        if len(rows) < 2 or held_out in (0, len(rows)):
            continue
        if 2 * held_out != len(rows):
            target = int(2 * held_out > len(rows))
        else:  # a tie goes where the held-out side's count of the label needs it, else by a coin flip
            first = label(rows[0])
            target = int(size[first] < intended[first]) if size[first] != intended[first] else coin.randrange(2)
        for row in rows:
            side, i = place[row]
            if side == target:
                continue
            partners = singles[target].get(label(row))
            if partners:  # trade places with a same-label row whose text occurs once
                partner = partners.pop()
                _, j = place[partner]
                sides[side][i], sides[target][j] = partner, row
                place[partner], place[row] = (side, i), (target, j)
            else:
                sides[side][i] = None
                place[row] = (target, len(sides[target]))
                sides[target].append(row)
                size[label(row)] += 1 if target else -1
    return [row for row in sides[0] if row is not None], [row for row in sides[1] if row is not None]


def _text_keys(dataset: Dataset, text_columns: list[str]) -> list[tuple]:
    """Each example's texts with runs of whitespace made one space: what 'identical texts' compares."""
    return list(zip(*([" ".join(str(t).split()) for t in dataset[c][:]] for c in text_columns)))


def _overlap(splits: DatasetDict, text_columns: list[str]) -> dict:
    """Data facts: duplicate texts over all splits, and each evaluation split's texts also in an earlier split."""
    keys = {name: _text_keys(split, text_columns) for name, split in splits.items()}
    seen = {name: set(values) for name, values in keys.items()}
    overlap = {f"{a}_in_{b}": sum(k in seen[b] for k in keys[a])
               for a, b in (("validation", "train"), ("test", "train"), ("test", "validation"))}
    every = [k for values in keys.values() for k in values]
    return {"duplicate_texts": len(every) - len(set(every)), "overlap": overlap}


def _fact_lines(facts: dict, label_column: str, splits: DatasetDict) -> list[tuple[int, str]]:
    """(logging level, line) for load_task_data's data facts that change the task or what its scores mean."""
    lines = []
    if facts.get("labels_stripped"):
        lines.append((logging.INFO, f"{facts['labels_stripped']} label(s) in column {label_column!r} had spaces "
                                    "around them: stripped (`positive ` is `positive`)"))
    if facts.get("label_case_variants"):
        merged = facts["label_case"] == "merge"
        listed = "; ".join(f"{', '.join(repr(n) for n in others)} -> {keep!r}" if merged
                           else ", ".join(repr(n) for n in [keep, *others])
                           for keep, others in facts["label_case_variants"].items())
        lines.append((logging.WARNING, f"labels that differ only in case are {'merged' if merged else 'kept apart'} "
                                       f"(data.label_case={facts['label_case']}): {listed}"))
    shared = [f"{n} of {len(splits[pair.split('_in_')[0]])} {pair.replace('_in_', ' texts are also in ')}"
              for pair, n in facts["overlap"].items() if n]
    if shared:
        lines.append((logging.WARNING, f"{'; '.join(shared)} (identical after whitespace normalisation): those scores "
                                       "are not fully held-out; deduplicate the splits"))
    return lines


def tokenize_splits(task: TaskData, tokenizer, max_length: int, *, pooled_chunks: bool = False) -> DatasetDict:
    """Tokenize every split once (datasets caches the result); no padding here, the collator pads per batch.

    Texts longer than max_length tokens are cut as task.truncation says (see encode_texts). With chunks, each split
    gets a row per chunk and an `example_id` column (the example's row in task.splits); only a pipeline that pools
    chunk logits per example (inference.pool_chunk_logits) may ask for that: it passes pooled_chunks=True, and
    without it data.truncation=chunks is refused. Records the share of truncated texts per split in
    task.data_facts["truncation"] and logs it when any text was cut. Raises UserError when a text has no tokens.
    """
    if task.truncation == "chunks" and not pooled_chunks:
        raise UserError("data.truncation=chunks needs a pipeline that pools chunk predictions per text, and this one "
                        "does not: use head or head+tail")

    def encode(batch, rows):
        encoded, lengths, text_tokens = encode_texts(tokenizer, *(batch[c] for c in task.text_columns),
                                                     max_length=max_length, truncation=task.truncation)
        ids = encoded.pop("example_id", None)
        if ids is None:  # a row per text: the other columns stay as they are
            return {**encoded, "num_tokens": lengths, "text_tokens": text_tokens}
        carried = {name: [batch[name][i] for i in ids] for name in batch if name not in task.text_columns}
        return {**encoded, **carried, "example_id": [rows[i] for i in ids], "num_tokens": [lengths[i] for i in ids],
                "text_tokens": [text_tokens[i] for i in ids]}

    removed = task.splits["train"].column_names if task.truncation == "chunks" else task.text_columns
    if _SHARED is not None and task.truncation != "chunks":
        tokenized = _shared_tokenized(task, tokenizer, max_length, encode, removed)
    else:
        tokenized = task.splits.map(encode, batched=True, with_indices=True, remove_columns=removed, desc="tokenizing")
    truncated, totals, shares, medians = {}, {}, {}, {}
    for split, data in tokenized.items():
        stats = data.select_columns([c for c in ("example_id", "num_tokens", "text_tokens") if c in data.column_names])
        firsts = _first_chunks(stats["example_id"][:]) if "example_id" in stats.column_names else slice(None)
        lengths, text_tokens = np.asarray(stats["num_tokens"][:])[firsts], np.asarray(stats["text_tokens"][:])[firsts]
        _check_tokens(task, split, text_tokens, tokenizer)
        truncated[split], totals[split] = int((lengths > max_length).sum()), len(lengths)
        shares[split] = round(truncated[split] / max(totals[split], 1), 4)
        medians[split] = float(statistics.median(lengths.tolist())) if len(lengths) else 0.0
    task.data_facts["truncation"] = {"strategy": task.truncation, "max_length": max_length, "truncated": truncated,
                                     "truncated_share": shares, "median_tokens": medians}
    if any(truncated.values()):
        cut = ", ".join(f"{split} {100 * shares[split]:.1f}% ({truncated[split]:,} of {totals[split]:,})"
                        for split in tokenized)
        logger.info(f"texts longer than data.max_length={max_length} tokens, cut by data.truncation={task.truncation}: "
                    f"{cut}; median tokens " + ", ".join(f"{split} {medians[split]:g}" for split in tokenized))
    return tokenized.remove_columns(["num_tokens", "text_tokens"])


def _shared_tokenized(task: TaskData, tokenizer, max_length: int, encode, removed: list[str]) -> DatasetDict:
    """The task's splits tokenized by `encode`, from the whole train split this process tokenized before (kept in
    _SHARED by the splits' fingerprints, the tokenizer's datasets hash and max_length), its subsample's rows
    selected. One row per text (no chunks), so selecting rows after tokenizing equals tokenizing the rows."""
    whole, key = _whole_splits(task, tokenizer, max_length)
    name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
    if key in _SHARED:
        logger.info(f"tokenized splits for {name}: reusing this process's")
    else:
        logger.info(f"tokenizing every split for {name} once for this process's runs")
        _SHARED[key] = whole.map(encode, batched=True, with_indices=True, remove_columns=removed, desc="tokenizing")
    tokenized = _SHARED[key]
    train = tokenized["train"] if task.train_pool is None else tokenized["train"].select(task.train_rows)
    return DatasetDict({"train": train, "validation": tokenized["validation"], "test": tokenized["test"]})


def _whole_splits(task: TaskData, tokenizer, max_length: int) -> tuple[DatasetDict, tuple]:
    """(the task's splits with the whole train split, their key in _SHARED once tokenized)."""
    from datasets.fingerprint import Hasher

    pool = task.train_pool if task.train_pool is not None else task.splits["train"]
    whole = DatasetDict({"train": pool, "validation": task.splits["validation"], "test": task.splits["test"]})
    key = ("tokenized", *(split._fingerprint for split in whole.values()), task.truncation, max_length,
           Hasher.hash(tokenizer))
    return whole, key


def tokenized_train_pool(task: TaskData, tokenizer, max_length: int) -> Dataset | None:
    """The whole train split (before data.max_train_samples) as this process tokenized it for `task`'s run, whose
    train rows are its rows task.train_rows; None when it kept none (share_loaded_data off, no subsample, chunks).
    hf_transfer.features reads a subsample's features from the whole split's."""
    if _SHARED is None or task.train_pool is None or task.truncation == "chunks":
        return None
    tokenized = _SHARED.get(_whole_splits(task, tokenizer, max_length)[1])
    return None if tokenized is None else tokenized["train"]


def _first_chunks(example_ids: list[int]) -> np.ndarray:
    ids = np.asarray(example_ids)
    return np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else ids


def _check_tokens(task: TaskData, split: str, text_tokens: np.ndarray, tokenizer) -> None:
    empty = np.flatnonzero(text_tokens == 0)
    if not len(empty):
        return
    name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
    first = task.texts(split)[int(empty[0])]
    if len(empty) == len(text_tokens):
        raise UserError(f"every text of split {split!r} (column(s) {', '.join(task.text_columns)}) tokenizes to no "
                        f"tokens with the tokenizer of {name}, e.g. {ascii(str(first)[:40])}: check the model's tokenizer "
                        "and data.text_columns")
    raise UserError(f"{len(empty)} text(s) of split {split!r} tokenize to no tokens with the tokenizer of {name} "
                    f"(first at row {int(empty[0])}: {ascii(str(first)[:40])}): clean them or check the model's tokenizer")


def encode_texts(tokenizer, texts: list[str], text_pairs: list[str] | None = None, *, max_length: int,
                 truncation: str = "head") -> tuple[dict, list[int], list[int]]:
    """Model inputs for texts (and their pairs) cut to max_length tokens, and their lengths before the cut.

    truncation: "head" keeps the first tokens (the tokenizer's own truncation); "head+tail" keeps the first
    HEAD_SHARE of the text-token budget and the last tokens for the rest (Sun et al. 2019); "chunks" cuts a text
    into windows of at most max_length tokens, each repeating CHUNK_OVERLAP of the previous window, every
    window with the tokenizer's special tokens, and adds "example_id": the index of each row's text.
    Returns (columns such as input_ids / attention_mask / token_type_ids: one list per row; tokens per text
    before truncation, special tokens included; text tokens per text, special tokens excluded).
    head+tail and chunks take single texts (no text_pairs).
    """
    full = tokenizer(texts, text_pairs, return_special_tokens_mask=True, verbose=False)
    masks = full.pop("special_tokens_mask")
    lengths = [len(ids) for ids in full["input_ids"]]
    text_tokens = [len(mask) - sum(mask) for mask in masks]
    if truncation == "head" or (max(lengths, default=0) <= max_length and truncation != "chunks"):
        if max(lengths, default=0) <= max_length:
            return dict(full), lengths, text_tokens
        return dict(tokenizer(texts, text_pairs, truncation=True, max_length=max_length)), lengths, text_tokens
    if text_pairs is not None:
        raise UserError(f"data.truncation={truncation} cuts one text, not a pair: use head")
    out = {name: [] for name in (*full.keys(), "example_id")}
    for i, mask in enumerate(masks):
        text = [j for j, special in enumerate(mask) if not special]
        budget = max_length - (len(mask) - len(text))
        if budget < 1:
            raise UserError(f"data.max_length={max_length} leaves no room for text next to the special tokens")
        for kept in _windows(text, budget, truncation):
            positions = sorted({j for j, special in enumerate(mask) if special} | set(kept))
            for name, values in full.items():
                out[name].append([values[i][j] for j in positions])
            out["example_id"].append(i)
    if truncation != "chunks":
        del out["example_id"]
    return out, lengths, text_tokens


def _windows(positions: list[int], budget: int, truncation: str) -> list[list[int]]:
    """The text-token positions each output row keeps: one row for head+tail, one or more for chunks."""
    if len(positions) <= budget:
        return [positions]
    if truncation == "head+tail":
        head = round(budget * HEAD_SHARE)
        return [positions[:head] + positions[len(positions) - (budget - head):]]
    step = max(1, budget - int(budget * CHUNK_OVERLAP))
    starts = range(0, max(len(positions) - budget, 0) + step, step)
    return [positions[start:start + budget] for start in starts if start < len(positions)]


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
