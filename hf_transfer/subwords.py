"""Words to subwords and back, for token classification.

A model sees subword tokens; tags and predictions belong to words. `encode_words` tokenizes pre-split words
(`is_split_into_words=True`, a fast tokenizer's `word_ids`) and labels the first subword of each word (or every
subword: `label_subwords="all"`, later subwords taking the I- tag as in transformers' run_ner.py), -100 elsewhere.

transformers' run_ner.py truncates at max_length, so the last words of a long sentence get no prediction and drop
out of the score. Here a sentence longer than max_length is cut into overlapping windows instead, at word
boundaries (every word whole in a window, so its first subword is well defined; tokenizer overflow windows can cut
a word in two), consecutive windows sharing up to `stride` subword tokens. Each word is predicted from one
window: the one where it has the most context, min(left, right) subwords plus 0.01 x the window's length (the
"maximum context" rule of BERT's SQuAD document windows, Devlin et al. 2019). Averaging the windows' logits
instead would mix in the predictions made at a window's edge, with one side of the context cut off, which are
the worst ones. A word gets its label only in that window, so training sees every word once too.

The rows carry `word_index` (per subword: the word whose prediction this position gives, -1 elsewhere) and
`sentence`; `word_logits` gathers a model's per-subword logits back into one row per word.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from datasets import DatasetDict

from .errors import UserError

IGNORE_INDEX = -100  # what CrossEntropyLoss and DataCollatorForTokenClassification ignore


def encode_words(tokenizer, sentences: list[list[str]], tags: list[list[int]] | None = None, *, max_length: int,
                 stride: int | None = None, label_subwords: str = "first", label_names: list[str] | None = None,
                 sentence_ids: list[int] | None = None) -> dict[str, list]:
    """Tokenize sentences of words into model rows, one per window; a sentence that fits is one window.

    tokenizer: a fast (tokenizers-backed) tokenizer; byte-level BPE ones (GPT-2, RoBERTa) need
        add_prefix_space=True for pre-split words, and are refused without it.
    tags: tag ids per word (optional: without them no `labels` column).
    max_length: subword tokens per row, special tokens included; stride: subword tokens that consecutive windows
        of a longer sentence share, 0 <= stride < max_length - special tokens (None: max_length // 4).
    label_subwords: "first" labels each word's first subword; "all" labels the others too, B- tags turned into
        I- (needs label_names to find the I- tag).
    sentence_ids: what the `sentence` column holds per sentence (default 0..n-1).

    Returns columns of equal length, one entry per window: input_ids, attention_mask (and token_type_ids when the
    tokenizer makes them), labels (with tags), word_index (per subword: the word index in its sentence whose
    prediction this position gives, -1 elsewhere), sentence, and unk_words (words that tokenize to no subword at
    all, e.g. a lone zero-width character, are fed to the model as the unknown token so that they still get a
    prediction; counted on a sentence's first window). Raises UserError for a slow tokenizer, one that drops the
    space before pre-split words, a stride that leaves no room, and a word without subwords when the tokenizer has
    no unknown token.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise UserError(f"token classification needs a fast tokenizer (word_ids), and {type(tokenizer).__name__} is "
                        "not one: load the model's tokenizer.json or convert the tokenizer")
    _check_word_starts(tokenizer)
    budget = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    stride = max_length // 4 if stride is None else stride
    if not 0 <= stride < budget:
        raise UserError(f"data.stride={stride} leaves windows no room: they hold {budget} subword tokens besides the "
                        f"special tokens at data.max_length={max_length}; lower data.stride or raise data.max_length")
    if label_subwords not in ("first", "all"):
        raise ValueError(f"label_subwords must be 'first' or 'all', got {label_subwords!r}")
    empty = next((i for i, words in enumerate(sentences) if not words), None)
    if empty is not None:
        raise UserError(f"sentence {empty} has no words: every sentence needs at least one")
    continuation = _continuation_ids(label_names) if label_subwords == "all" and tags is not None else None
    sentence_ids = list(range(len(sentences))) if sentence_ids is None else sentence_ids

    counted = tokenizer(sentences, is_split_into_words=True, add_special_tokens=False, verbose=False)
    pieces, windows = [], []  # words of each window; (sentence, first word, end word, unk words) per window
    for i, words in enumerate(sentences):
        per_word = Counter(w for w in counted.word_ids(i) if w is not None)
        lengths = [per_word.get(j, 0) for j in range(len(words))]
        silent = [j for j, n in enumerate(lengths) if n == 0]
        if silent:
            if tokenizer.unk_token is None:
                raise UserError(f"word {words[silent[0]]!r} tokenizes to nothing and the tokenizer has no unknown "
                                "token: drop the word from the data")
            words = [tokenizer.unk_token if n == 0 else word for word, n in zip(words, lengths)]
            lengths = [max(n, 1) for n in lengths]
        for k, (start, end) in enumerate(_windows(lengths, budget, stride)):
            pieces.append(words[start:end])
            windows.append((i, start, end, len(silent) if k == 0 else 0))

    encoded = tokenizer(pieces, is_split_into_words=True, truncation=True, max_length=max_length)
    word_ids = [[-1 if w is None else w + windows[k][1] for w in encoded.word_ids(k)] for k in range(len(pieces))]
    owners = _owners(word_ids, [w[0] for w in windows])
    out = {name: list(values) for name, values in encoded.items()}
    out["word_index"], out["sentence"], out["unk_words"] = [], [], []
    if tags is not None:
        out["labels"] = []
    for k, (i, _, _, unk) in enumerate(windows):
        index = [-1] * len(word_ids[k])
        for position in owners[k]:
            index[position] = word_ids[k][position]
        out["word_index"].append(index)
        out["sentence"].append(sentence_ids[i])
        out["unk_words"].append(unk)
        if tags is not None:
            labels = [IGNORE_INDEX] * len(index)
            for position in owners[k]:
                word = word_ids[k][position]
                labels[position] = tags[i][word]
                if continuation is not None:  # the word's later subwords in this window
                    for later in range(position + 1, len(index)):
                        if word_ids[k][later] != word:
                            break
                        labels[later] = continuation[tags[i][word]]
            out["labels"].append(labels)
    return out


def _check_word_starts(tokenizer) -> None:
    if not splits_words_like_text(tokenizer):
        raise UserError(f"{type(tokenizer).__name__} reads pre-split words without the space before each word, "
                        "unlike running text: load it with add_prefix_space=True")


def splits_words_like_text(tokenizer) -> bool:
    """Whether a fast tokenizer reads pre-split words (is_split_into_words=True) as it reads them in running text.

    Byte-level BPE (GPT-2, RoBERTa) and some SentencePiece tokenizers put a word's leading space into its first
    token ("Ġworld"), and without add_prefix_space=True they drop it for pre-split words ("world", a word-internal
    piece), silently."""
    probe = ["Hello", "world"]
    split = tokenizer(probe, is_split_into_words=True, add_special_tokens=False)
    joined = tokenizer(" ".join(probe), add_special_tokens=False)

    def second_word(encoding):
        return [token for token, word in zip(encoding["input_ids"], encoding.word_ids()) if word == 1]

    return second_word(split) == second_word(joined)


def _continuation_ids(label_names: list[str] | None) -> dict[int, int]:
    """Tag id -> the tag id a word's later subwords take: B-X -> I-X (run_ner.py's b_to_i_label), others stay."""
    if label_names is None:
        raise ValueError("label_subwords='all' needs label_names to turn B- tags into I- tags")
    ids = {name: i for i, name in enumerate(label_names)}
    return {i: ids.get("I-" + name[2:], i) if name.startswith("B-") else i for i, name in enumerate(label_names)}


def _windows(lengths: list[int], budget: int, stride: int) -> list[tuple[int, int]]:
    """Word ranges [start, end) whose subwords fit `budget`, consecutive ones sharing up to `stride` subwords.

    A window always holds at least one word (a single word longer than the budget is truncated in its window,
    keeping its first subword); a next window starts after the previous one did, so the list is finite.
    """
    windows, start = [], 0
    while True:
        end, used = start, 0
        while end < len(lengths) and (end == start or used + lengths[end] <= budget):
            used += lengths[end]
            end += 1
        windows.append((start, end))
        if end == len(lengths):
            return windows
        following, shared = end, 0
        while following - 1 > start and shared + lengths[following - 1] <= stride:
            following -= 1
            shared += lengths[following]
        # Shared words that could not sit beside the next word anyway would only repeat this window.
        start = following if shared + lengths[end] <= budget else end


def _owners(word_ids: list[list[int]], sentence_of: list[int]) -> list[list[int]]:
    """Per window, the positions of the first subwords of the words it predicts: each word in the window where
    min(left, right) context is largest (+0.01 x window length; ties: the earlier window)."""
    best: dict[tuple[int, int], tuple[float, int, int]] = {}
    for k, ids in enumerate(word_ids):
        content = [p for p, w in enumerate(ids) if w >= 0]
        first, last = content[0], content[-1]
        for p in content:
            if p > first and ids[p - 1] == ids[p]:
                continue  # not the word's first subword
            score = min(p - first, last - p) + 0.01 * len(content)
            key = (sentence_of[k], ids[p])
            if key not in best or score > best[key][0]:
                best[key] = (score, k, p)
    owners = [[] for _ in word_ids]
    for _, k, p in best.values():
        owners[k].append(p)
    return [sorted(positions) for positions in owners]


def word_logits(logits, word_index: list[list[int]], sentence: list[int], label_ids=None,
                num_words: list[int] | None = None) -> list[np.ndarray]:
    """Per sentence, its words' logits [words, labels], gathered from the positions `encode_words` chose.

    logits: [rows, positions, labels], rows in the order of `word_index` / `sentence` (the encoded rows), each row
        right-padded (Trainer.predict pads with -100; the model must have seen right-padded input).
    label_ids: optional [rows, positions] labels as Trainer.predict returns them, for rows encoded with
        label_subwords="first": their labelled positions must be the chosen ones, which catches left padding.
    num_words: optional words per sentence, to check that the last words were not lost.
    Returns a list indexed by sentence id (0..largest id); raises ValueError when a word has no prediction or two.
    """
    logits = np.asarray(logits)
    words: dict[int, dict[int, np.ndarray]] = {}
    for row, (index, s) in enumerate(zip(word_index, sentence)):
        index = np.asarray(index)
        positions = np.flatnonzero(index >= 0)
        if label_ids is not None and not np.array_equal(np.flatnonzero(np.asarray(label_ids[row]) != IGNORE_INDEX),
                                                        positions):
            raise ValueError(f"row {row}: the labelled positions are not the predicted words' positions; rows must be "
                             "padded on the right and encoded with label_subwords='first'")
        found = words.setdefault(int(s), {})
        for p in positions:
            if int(index[p]) in found:
                raise ValueError(f"word {index[p]} of sentence {s} has two predictions")
            found[int(index[p])] = logits[row, p]
    out = []
    for s in range(max(words) + 1 if words else 0):
        found = words.get(s, {})
        expected = num_words[s] if num_words is not None else len(found)
        if not found or sorted(found) != list(range(expected)):
            raise ValueError(f"sentence {s}: {expected - len(found) if found else 'all'} of its words have no "
                             "prediction")
        out.append(np.stack([found[w] for w in range(expected)]))
    return out


def tokenize_token_splits(task, tokenizer, max_length: int, stride: int | None = None,
                          label_subwords: str = "first") -> DatasetDict:
    """`encode_words` over every split of a TokenTaskData (datasets map, cached); `sentence` is the row of the
    sentence in its split. label_subwords applies to train only: evaluation rows label first subwords, so that
    their labelled positions are the predicted ones."""

    def encode(batch, indices, labelling):
        return encode_words(tokenizer, batch["tokens"], batch["tags"], max_length=max_length, stride=stride,
                            label_subwords=labelling, label_names=task.label_names, sentence_ids=indices)

    return DatasetDict({
        name: split.map(encode, batched=True, with_indices=True, remove_columns=split.column_names,
                        fn_kwargs={"labelling": label_subwords if name == "train" else "first"},
                        desc=f"tokenizing {name} words")
        for name, split in task.splits.items()
    })


def window_facts(rows) -> dict[str, int]:
    """Facts for metrics.json about encoded rows: sentences, windows (rows), sentences_windowed (cut into more
    than one window because they exceed max_length), unk_words (words with no subword, fed as unknown)."""
    per_sentence = Counter(rows["sentence"])
    return {"sentences": len(per_sentence), "windows": len(rows["sentence"]),
            "sentences_windowed": sum(n > 1 for n in per_sentence.values()), "unk_words": int(sum(rows["unk_words"]))}
