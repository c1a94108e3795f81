"""TokenTaskData: sentences of words with one tag each (named entities), split into train / validation / test.

Every source is read into two columns, `tokens` (the words, list[str]) and `tags` (IOB2 tag ids, a
Sequence(ClassLabel) whose names are `label_names`: "O" first, then B-/I- per entity type):

- CoNLL-style column files (.txt, .conll, .tsv, .iob, .bio, any other suffix or none; .gz/.bz2/.xz too): one word
  per line, whitespace-separated columns, the word in column 0 and the tag in `data.conll_tag_column` (default: the
  last column), a blank (or whitespace-only) line between sentences, `-DOCSTART-` lines skipped;
- JSON / JSONL / Parquet files with a column of word lists (`data.text_columns`, default tokens) and a column of
  tag lists (`data.label_column`, default tags, else ner_tags): tag names, or ids named by a ClassLabel;
- a folder of train.* / validation.* (dev, valid, val) / test.* files in one of those formats, a folder written by
  `save_to_disk`, a Hub-style dataset folder, or a Hub dataset id (tags as Sequence(ClassLabel), like conll2003);
- a token-dataset asset (hf_transfer.assets): the file `asset_path` gives (or its `data_file`) is one of the
  files above; its format facts replace the defaults of the keys: the tag column is `label_column`'s place in
  `column_names` (a CoNLL file has no header), the word column `text_columns[0]`'s, and `tag_scheme` the scheme.

Tags written in IOB1, IOB2 or BIOES (BILOU too) are converted to IOB2 (`data.tag_scheme`; auto detection:
bioes if an E-/S-/L-/U- tag occurs, else iob2 if some B- tag opens an entity, else iob1). In IOB2 and BIOES an
I- (or E-) tag that continues no entity of its type starts one, as IOB1 and conlleval read it; such repairs are
counted per split (`repaired_tags`, for metrics.json), or refused with `data.invalid_tags=error`.

A missing validation or test split is carved out of train by sentence, seeded (`data.seed`), with identical
sentences kept in one split, and stratified by the rarest entity type each sentence holds (sentences without
entities form one stratum; strata too small to split are merged into the largest).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import datasets
from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value
from seqeval.metrics.sequence_labeling import get_entities
from sklearn.model_selection import train_test_split

from .assets import ASSETS, asset_path, require_kind
from .config import DataConfig
from .data import (
    COMPRESSIONS,
    SPLIT_ALIASES,
    LabelSpace,
    _builder_for,
    _find_split,
    _load,
    _load_hub,
    _looks_like_path,
)
from .errors import UserError, first_line
from .sampling import nested_subsample

OUTSIDE = "O"
DOCSTART = "-DOCSTART-"
TABLE_SUFFIXES = (".json", ".jsonl", ".parquet")
OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
# Prefixes each scheme may write; BILOU's L (last) and U (unit) are BIOES's E and S.
SCHEME_PREFIXES = {"iob1": "BI", "iob2": "BI", "bioes": "BIESLU"}
TOKEN_ASSET_KIND = "token-dataset"  # hf_transfer.assets: `asset_path` (or its data_file) is the data file


@dataclass
class TokenTaskData(LabelSpace):
    """A token-classification task: `splits` (train / validation / test) with columns `tokens` and `tags`."""

    splits: DatasetDict
    label_names: list[str]  # IOB2 tag names: "O", then B-type, I-type for each entity type
    source: str  # what the user named: asset, path or Hub id
    description: str
    tag_scheme: str  # the scheme the tags were written in (iob1 | iob2 | bioes); `tags` hold IOB2
    repaired_tags: dict[str, int] = field(default_factory=dict)  # per split as read: I- tags that started an entity

    # What hf_transfer.backbones reads of any task when it sizes a head: one tag per word, no problem_type to set.
    multi_label = False
    problem_type = None

    @property
    def entity_types(self) -> list[str]:
        """The entity types, in label order: each B- tag's name without the prefix."""
        return [name[2:] for name in self.label_names if name.startswith("B-")]

    def sizes(self) -> dict[str, int]:
        """Sentences per split."""
        return {name: len(split) for name, split in self.splits.items()}

    def tag_names(self, split: str) -> list[list[str]]:
        """The split's gold tags as IOB2 names, one list per sentence."""
        return [[self.label_names[t] for t in tags] for tags in self.splits[split]["tags"]]

    def facts(self) -> dict:
        """Data facts for metrics.json and the card: scheme read, repairs, sizes, entities, overlap with train.

        Keys: tag_scheme; repaired_tags {split as read: count}; sentences, tokens {split: count};
        entities {split: {type: count}}; overlap_with_train {split: sentences whose words also form a train sentence}.
        """
        train = {tuple(words) for words in self.splits["train"]["tokens"]}
        entities = {}
        for name in self.splits:
            counts = Counter(tag[2:] for tags in self.tag_names(name) for tag in tags if tag.startswith("B-"))
            entities[name] = {kind: counts.get(kind, 0) for kind in self.entity_types}
        return {
            "tag_scheme": self.tag_scheme,
            "repaired_tags": dict(self.repaired_tags),
            "sentences": self.sizes(),
            "tokens": {name: sum(map(len, split["tokens"])) for name, split in self.splits.items()},
            "entities": entities,
            "overlap_with_train": {name: sum(tuple(words) in train for words in split["tokens"])
                                   for name, split in self.splits.items() if name != "train"},
        }


@dataclass
class _RawSplit:
    """Sentences as read: words, tag strings, and where each sentence starts (for error messages)."""

    tokens: list[list[str]]
    tags: list[list[str]]
    where: list[str]


def load_token_data(config: DataConfig) -> TokenTaskData:
    """Read, check, convert to IOB2 and split a token-classification data set.

    Raises UserError (one line naming the sentence and the fix) for: a missing file, column or split; token and
    tag lists of different lengths; a CoNLL line without the tag column; an empty sentence (unless
    data.empty_text=drop); a tag that is not O or PREFIX-TYPE, or whose prefix the scheme does not write; an I- tag
    after O when data.invalid_tags=error; an entity type in a split that the train split (or data.labels) lacks; a
    train split without entities.
    """
    raw, description, scheme = _load_raw(config)
    if config.train_split not in raw:
        raise UserError(f"dataset {config.dataset!r} has no split {config.train_split!r} (splits: {', '.join(raw)}); "
                        "set data.train_split")
    raw = {name: _check_sentences(split, name, config.empty_text) for name, split in raw.items()}
    parsed = {name: [_parse_tags(tags, where) for tags, where in zip(split.tags, split.where)]
              for name, split in raw.items()}
    if scheme == "auto":
        scheme = detect_scheme(pairs for split in parsed.values() for pairs in split)
    converted, repaired = {}, {}
    for name, split in parsed.items():
        converted[name], repaired[name] = [], 0
        for pairs, where in zip(split, raw[name].where):
            tags, repairs = _to_iob2(pairs, scheme, where, config.invalid_tags == "error")
            converted[name].append(tags)
            repaired[name] += repairs

    exclude = config.exclude_labels if config.exclude_labels is not None else _asset_default(config, "exclude_labels")
    if exclude:
        excluded = set(exclude)
        converted = {name: [[OUTSIDE if tag[2:] in excluded else tag for tag in tags] for tags in split]
                     for name, split in converted.items()}
    entity_types = _entity_types(converted, raw, config)
    label_names = [OUTSIDE] + [f"{prefix}-{kind}" for kind in entity_types for prefix in "BI"]
    ids = {name: i for i, name in enumerate(label_names)}
    features = Features({"tokens": List(Value("string")), "tags": List(ClassLabel(names=label_names))})
    encoded = DatasetDict({
        name: Dataset.from_dict({"tokens": split.tokens, "tags": [[ids[t] for t in tags] for tags in converted[name]]},
                                features=features)
        for name, split in raw.items()
    })
    return TokenTaskData(_make_splits(encoded, config), label_names, config.dataset, description, scheme, repaired)


# ---------------------------------------------------------------------------------------------------------------
# Reading


def _load_raw(config: DataConfig) -> tuple[dict[str, _RawSplit], str, str]:
    """The splits as read, a description, and the tag scheme to use."""
    name, scheme, tag_column = config.dataset, config.tag_scheme, config.conll_tag_column
    if name in ASSETS:
        asset = require_kind(name, TOKEN_ASSET_KIND, "token data")
        path = asset_path(name) / asset.data_file if asset.data_file else asset_path(name)
        # The asset's format facts (a CoNLL file's column names, its tag scheme) replace the keys' defaults, never
        # a value the user set.
        columns = list(asset.column_names)
        word_column = columns.index(asset.text_columns[0]) if asset.text_columns and asset.text_columns[0] in columns else 0
        if tag_column == -1 and asset.label_column in columns:
            tag_column = columns.index(asset.label_column)
        if scheme == "auto" and asset.tag_scheme:
            scheme = asset.tag_scheme.lower()
            if scheme not in SCHEME_PREFIXES:
                raise UserError(f"asset {name!r} names tag scheme {asset.tag_scheme!r}: the registry entry is wrong "
                                f"(schemes: {', '.join(SCHEME_PREFIXES)}); set data.tag_scheme")
        return {"train": _read_path(path, config, tag_column, word_column)}, asset.description, scheme
    path = Path(name).expanduser()
    if path.is_file():
        return {"train": _read_path(path, config, tag_column)}, f"local file {path.name}", scheme
    if path.is_dir():
        return _read_folder(path, config, tag_column), f"local folder {path.name}", scheme
    if _looks_like_path(name):
        raise UserError(f"data file {name!r} not found: check data.dataset (a dataset asset, a file, a folder or a "
                        "Hub id)")
    return _from_datasets(_load_hub(name), config, name), f"Hugging Face dataset {name}", scheme


def _read_path(path: Path, config: DataConfig, tag_column: int, word_column: int = 0,
               split: str = "train") -> _RawSplit:
    if _is_table(path):
        builder, options = _builder_for(path)
        return _from_datasets(_load(builder, data_files={split: str(path)}, **options), config, path.name)[split]
    return read_conll(path, tag_column, word_column)


def _is_table(path: Path) -> bool:
    """JSON / JSONL / Parquet (lists of words and tags); CSV cannot hold lists; anything else is a CoNLL file."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSIONS:
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] == ".csv":
        raise UserError(f"cannot read token data from {path.name}: a CSV file cannot hold lists of words and tags; "
                        "use a CoNLL column file, JSONL or Parquet")
    return bool(suffixes) and suffixes[-1] in TABLE_SUFFIXES


def _read_folder(folder: Path, config: DataConfig, tag_column: int) -> dict[str, _RawSplit]:
    if (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file():  # save_to_disk
        loaded = datasets.load_from_disk(str(folder))
        return _from_datasets(loaded if isinstance(loaded, DatasetDict) else DatasetDict(train=loaded), config,
                              folder.name)
    files = {}
    for split, aliases in {"train": ("train",), **SPLIT_ALIASES}.items():
        found = [p for p in sorted(folder.iterdir()) if p.is_file() and p.name.split(".")[0].lower() in aliases]
        if found:
            files[split] = found[0]
    if "train" not in files:  # a Hub-style data set folder (data/train-*.parquet, ...): datasets finds the splits
        return _from_datasets(_load_folder(folder), config, folder.name)
    return {split: _read_path(path, config, tag_column, split=split) for split, path in files.items()}


def _load_folder(folder: Path) -> DatasetDict:
    try:
        loaded = datasets.load_dataset(str(folder))
    except Exception as err:  # datasets raises many types for a folder it cannot read
        raise UserError(f"folder {folder} holds no train.* file and datasets cannot read it ({first_line(err)}): add "
                        "train.conll / train.jsonl / train.parquet") from None
    return loaded if isinstance(loaded, DatasetDict) else DatasetDict(train=loaded)


def read_conll(path: Path, tag_column: int = -1, word_column: int = 0) -> _RawSplit:
    """Sentences of a CoNLL-style column file: words from `word_column`, tags from `tag_column` (-1: the last).

    Columns are separated by any whitespace; a blank or whitespace-only line ends a sentence; `-DOCSTART-` lines
    are skipped. UTF-8 (a byte-order mark is dropped), optionally .gz / .bz2 / .xz compressed. Raises UserError
    naming the line for a line without the tag column, and for a file that is not UTF-8 text.
    """
    path = Path(path)
    tokens, tags, where = [], [], []
    words, labels, start = [], [], 0
    opener = OPENERS.get(path.suffix.lower(), open)
    try:
        with opener(path, "rt", encoding="utf-8-sig") as handle:
            for number, line in enumerate(handle, 1):
                columns = line.split()
                if not columns or columns[0] == DOCSTART:
                    if words:
                        tokens.append(words), tags.append(labels), where.append(f"line {start} of {path.name}")
                    words, labels = [], []
                    continue
                width = len(columns)
                if not (-width <= tag_column < width and -width <= word_column < width
                        and tag_column % width != word_column % width):
                    raise UserError(
                        f"line {number} of {path.name} has {width} column(s) ({line.strip()[:60]!r}) but the tags "
                        f"are read from column {tag_column} (data.conll_tag_column), apart from the word in column "
                        f"{word_column}: add the tag column or set data.conll_tag_column"
                    )
                start = start if words else number
                words.append(columns[word_column])
                labels.append(columns[tag_column])
    except UnicodeDecodeError as err:
        raise UserError(f"{path.name} is not UTF-8 text (byte {err.start}): convert it to UTF-8") from None
    except (OSError, EOFError, lzma.LZMAError) as err:
        raise UserError(f"cannot read {path.name}: {first_line(err)}; check the file") from None
    if words:
        tokens.append(words), tags.append(labels), where.append(f"line {start} of {path.name}")
    if not tokens:
        raise UserError(f"{path.name} holds no sentences: a CoNLL file has one word and its tag per line")
    return _RawSplit(tokens, tags, where)


def _from_datasets(data: DatasetDict, config: DataConfig, source: str) -> dict[str, _RawSplit]:
    """Words and tag names from datasets splits; tag ids are named by their ClassLabel."""
    defaults = ASSETS[config.dataset] if config.dataset in ASSETS else None
    text_columns = config.text_columns or list(getattr(defaults, "text_columns", ()) or ["tokens"])
    if len(text_columns) != 1:
        raise UserError(f"token data takes one column of words in data.text_columns, got {text_columns}")
    words_column = text_columns[0]
    first = next(iter(data.values()))
    tags_column = (config.label_column or getattr(defaults, "label_column", None)
                   or ("ner_tags" if "tags" not in first.column_names and "ner_tags" in first.column_names else "tags"))
    out = {}
    for name, split in data.items():
        for column, key in ((words_column, "data.text_columns"), (tags_column, "data.label_column")):
            if column not in split.column_names:
                raise UserError(f"column {column!r} is not in split {name!r} of {source} (columns: "
                                f"{', '.join(split.column_names)}); set {key}")
        _check_list_feature(split.features[words_column], words_column, name, text=True)
        names = _check_list_feature(split.features[tags_column], tags_column, name, text=False)
        tags = split[tags_column]
        if names:
            tags = [None if row is None else [names[t] for t in row] for row in tags]
        where = [f"row {i} of split {name!r}" for i in range(len(split))]
        out[name] = _RawSplit(split[words_column], tags, where)
    return out


def _check_list_feature(feature, column: str, split: str, text: bool) -> list[str] | None:
    """The ClassLabel names of a tag column (None for strings); raises UserError for a column of the wrong kind."""
    inner = getattr(feature, "feature", None)
    if not isinstance(feature, (datasets.Sequence, List)) or inner is None:
        raise UserError(f"column {column!r} of split {split!r} holds {feature}, not lists of "
                        f"{'words' if text else 'tags'}: token data has one list per sentence")
    if isinstance(inner, ClassLabel) and not text:
        return list(inner.names)
    if getattr(inner, "dtype", None) not in ("string", "large_string"):
        fix = ("set data.text_columns to the column of words" if text else
               "store tag names (B-PER, I-PER, O) or a Sequence(ClassLabel) that names the ids")
        raise UserError(f"column {column!r} of split {split!r} holds lists of {getattr(inner, 'dtype', inner)}, not "
                        f"{'words' if text else 'tag names'}: {fix}")
    return None


def _asset_default(config: DataConfig, key: str):
    return list(getattr(ASSETS[config.dataset], key, ())) if config.dataset in ASSETS else []


# ---------------------------------------------------------------------------------------------------------------
# Checking and converting


def _check_sentences(split: _RawSplit, name: str, empty: str) -> _RawSplit:
    keep = []
    for i, (words, tags, where) in enumerate(zip(split.tokens, split.tags, split.where)):
        if words is None or tags is None:
            raise UserError(f"the sentence at {where} has no {'words' if words is None else 'tags'}: fill it or drop "
                            "the row")
        if len(words) != len(tags):
            raise UserError(f"the sentence at {where} has {len(words)} words but {len(tags)} tags: give every word "
                            "one tag")
        blank = next((j for j, word in enumerate(words) if not word.strip()), None)
        if blank is not None:
            raise UserError(f"word {blank + 1} of the sentence at {where} is empty: drop it (and its tag) from the "
                            "data")
        if not words and empty == "error":
            raise UserError(f"the sentence at {where} (split {name!r}) is empty: drop it or set data.empty_text=drop")
        if words:
            keep.append(i)
    return _RawSplit(*([part[i] for i in keep] for part in (split.tokens, split.tags, split.where)))


def _parse_tags(tags: list[str], where: str) -> list[tuple[str, str | None]]:
    """(prefix, entity type) per tag; ("O", None) outside entities."""
    pairs = []
    for position, tag in enumerate(tags, 1):
        tag = str(tag).strip()
        prefix, sep, kind = tag.partition("-")
        if tag == OUTSIDE:
            pairs.append((OUTSIDE, None))
        elif len(prefix) == 1 and prefix in SCHEME_PREFIXES["bioes"] and sep and kind:
            pairs.append((prefix, kind))
        else:
            raise UserError(f"tag {tag!r} of word {position} in the sentence at {where} is neither O nor a B-/I-/E-/S- "
                            "prefix with an entity type: check data.label_column or data.conll_tag_column")
    return pairs


def detect_scheme(sentences) -> str:
    """The tag scheme of parsed sentences ((prefix, type) pairs): bioes if an E/S/L/U prefix occurs, iob2 if some
    B- tag opens an entity (follows O, the sentence start or another type), else iob1 (I- opens, B- only separates
    adjacent entities of one type; a file with only O tags also counts as iob2)."""
    b_opens = i_opens = False
    for pairs in sentences:
        previous = None
        for prefix, kind in pairs:
            if prefix in "ESLU":
                return "bioes"
            opens = kind is not None and kind != previous
            b_opens |= opens and prefix == "B"
            i_opens |= opens and prefix == "I"
            previous = kind
    return "iob2" if b_opens or not i_opens else "iob1"


def _to_iob2(pairs, scheme: str, where: str, strict: bool) -> tuple[list[str], int]:
    """IOB2 tags and the number of repairs: I-/E- tags that continue no open entity of their type start one."""
    out, repairs, open_kind = [], 0, None
    for position, (prefix, kind) in enumerate(pairs, 1):
        if kind is None:
            out.append(OUTSIDE)
            open_kind = None
            continue
        if prefix not in SCHEME_PREFIXES[scheme]:
            raise UserError(f"tag {prefix}-{kind} of word {position} in the sentence at {where} is not {scheme.upper()}: "
                            "set data.tag_scheme (bioes, iob1, iob2 or auto)")
        if prefix in "BSU":
            out.append(f"B-{kind}")
        else:  # I, E, L continue the open entity of their type, or start one
            continues = open_kind == kind
            out.append(f"{'I' if continues else 'B'}-{kind}")
            if not continues and scheme != "iob1":
                if strict:
                    after = f"{out[-2][:1]}-{open_kind}" if open_kind else (OUTSIDE if position > 1 else "the start")
                    raise UserError(f"tag {prefix}-{kind} of word {position} in the sentence at {where} follows {after} "
                                    f"and continues no {kind} entity: fix the tags, or set data.invalid_tags=repair to "
                                    "start an entity there as IOB1 does")
                repairs += 1
        open_kind = kind if prefix in "BI" else None  # E/L end an entity, S/U are one word
    return out, repairs


def to_iob2(tags: list[str], scheme: str = "auto", strict: bool = False) -> tuple[list[str], int]:
    """One sentence's tags converted to IOB2, and how many I- tags were repaired into B- (0 for IOB1 input).

    `scheme`: iob1 | iob2 | bioes | auto (see `detect_scheme`). Raises UserError for a tag that does not parse,
    and with strict=True for an I- tag that continues no entity (IOB2 / BIOES).
    """
    pairs = _parse_tags(tags, "given")
    return _to_iob2(pairs, detect_scheme([pairs]) if scheme == "auto" else scheme, "given", strict)


def _entity_types(converted: dict[str, list[list[str]]], raw: dict[str, _RawSplit], config: DataConfig) -> list[str]:
    """Entity types in train order (sorted, or as data.labels gives them); every split's types must be among them."""
    found = Counter(tag[2:] for tags in converted[config.train_split] for tag in tags if tag != OUTSIDE)
    types = list(config.labels) if config.labels else sorted(found)
    if not types:
        raise UserError(f"split {config.train_split!r} holds no entity tags, only O: check data.label_column or "
                        "data.conll_tag_column and data.exclude_labels")
    known = set(types)
    for name, split in converted.items():
        for tags, where in zip(split, raw[name].where):
            unknown = next((tag for tag in tags if tag != OUTSIDE and tag[2:] not in known), None)
            if unknown:
                source = "data.labels" if config.labels else f"the {config.train_split!r} split"
                raise UserError(f"tag {unknown!r} in the sentence at {where} (split {name!r}) has an entity type that "
                                f"{source} lacks ({', '.join(types)}): fix the data or add {unknown[2:]!r} to data.labels")
    return types


# ---------------------------------------------------------------------------------------------------------------
# Splitting


def _make_splits(data: DatasetDict, config: DataConfig) -> DatasetDict:
    train = data[config.train_split]
    test = _find_split(data, config.test_split, "test")
    validation = _find_split(data, config.validation_split, "validation")
    if test is None:
        train, test = split_sentences(train, config.test_size, config.seed, "data.test_size")
    if validation is None:
        train, validation = split_sentences(train, config.validation_size, config.seed, "data.validation_size")
    if config.max_train_samples and config.max_train_samples < len(train):
        # Nested and seeded on its own, as for texts (data.py): a study's seeds draw their own sentences.
        seed = config.seed if config.subsample_seed is None else config.subsample_seed
        train = train.select(nested_subsample(sentence_strata(train), config.max_train_samples, seed))
    if config.max_eval_samples:
        validation, test = (
            s if len(s) <= config.max_eval_samples
            else split_sentences(s, len(s) - config.max_eval_samples, config.seed, "data.max_eval_samples",
                                 keep_identical_together=False)[0]
            for s in (validation, test)
        )
    return DatasetDict({"train": train, "validation": validation, "test": test})


def split_sentences(data: Dataset, size: float | int, seed: int, key: str,
                    keep_identical_together: bool = True) -> tuple[Dataset, Dataset]:
    """Split sentences into (rest, held out), `size` a fraction or a count of the held-out part, seeded.

    Stratified by each sentence's rarest entity type (by the number of sentences holding it; "" for sentences
    without entities), so that rare types reach both parts; strata with fewer than 2 members, or more strata than
    either part has members, are merged into the largest (what sklearn's stratified split needs). With
    keep_identical_together, identical word sequences go to one part (counted as one unit in `size`). Both
    parts keep the original order. Raises UserError when the data cannot be split that way.
    """
    strata = sentence_strata(data)
    units: dict = {}
    for i, words in enumerate(data["tokens"]):
        units.setdefault(tuple(words) if keep_identical_together else i, []).append(i)
    members = list(units.values())
    held = math.ceil(size * len(members)) if isinstance(size, float) else int(size)
    stratify = _mergeable([strata[unit[0]] for unit in members], held, len(members) - held)
    try:
        rest, held_out = train_test_split(members, test_size=held, random_state=seed, stratify=stratify)
    except ValueError as err:
        raise UserError(f"cannot split {len(data)} sentences with {key}={size}: {first_line(err)}") from None
    return (data.select(sorted(i for unit in rest for i in unit)),
            data.select(sorted(i for unit in held_out for i in unit)))


def sentence_strata(data: Dataset) -> list[str]:
    """Each sentence's rarest entity type (by the number of sentences holding it; "" for none): what splits and
    subsamples of sentences are stratified by."""
    label_names = data.features["tags"].feature.names
    types = [{label_names[t][2:] for t in tags if t} for tags in data["tags"]]
    frequency = Counter(kind for kinds in types for kind in kinds)
    return [min(kinds, key=lambda kind: (frequency[kind], kind)) if kinds else "" for kinds in types]


def _mergeable(strata: list[str], held: int, rest: int) -> list[str] | None:
    counts = Counter(strata)
    merged = {}
    while len(counts) > 1 and (min(counts.values()) < 2 or len(counts) > min(held, rest)):
        smallest = min(counts, key=lambda s: (counts[s], s))
        largest = max((s for s in counts if s != smallest), key=lambda s: (counts[s], s))
        counts[largest] += counts.pop(smallest)
        merged[smallest] = largest
    if len(counts) < 2:
        return None

    def resolve(stratum):
        while stratum in merged:
            stratum = merged[stratum]
        return stratum

    return [resolve(s) for s in strata]


# ---------------------------------------------------------------------------------------------------------------
# Predictions


def entities_from_tags(words: list[str], tags: list[str]) -> list[dict]:
    """The entities in one sentence's IOB2 tags, grouped as seqeval's default mode (hence the metrics) reads them:
    a B- tag, or an I- tag after O or another type, opens an entity.

    Returns [{"type", "start", "end", "text"}]: `start` is the first word's index, `end` one past the last word's
    (a slice), `text` the words joined by spaces. Word indices, not the character offsets a pipeline gives.
    """
    return [{"type": kind, "start": start, "end": last + 1, "text": " ".join(words[start:last + 1])}
            for kind, start, last in get_entities(list(tags))]


def token_prediction_rows(task: TokenTaskData, split: str, predicted: list, probabilities: list | None = None) -> list[dict]:
    """One predictions.jsonl row per sentence of `split`: {"split", "tokens", "tags" (gold IOB2 names),
    "predicted_tags", "entities" (predicted, as `entities_from_tags` groups them)}, plus "scores" (each word's
    probability of its predicted tag, 6 decimals) when `probabilities` ([words, labels] per sentence) are given.

    predicted: tag ids per word, one sequence per sentence, in the split's order.
    """
    rows = []
    for i, (words, gold) in enumerate(zip(task.splits[split]["tokens"], task.tag_names(split))):
        tags = [task.label_names[t] for t in predicted[i]]
        row = {"split": split, "tokens": words, "tags": gold, "predicted_tags": tags,
               "entities": entities_from_tags(words, tags)}
        if probabilities is not None:
            row["scores"] = [round(float(p[t]), 6) for p, t in zip(probabilities[i], predicted[i])]
        rows.append(row)
    return rows
