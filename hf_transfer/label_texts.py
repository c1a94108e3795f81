"""Labels as text: what each label becomes for a model (verbalizers, label words, descriptions), and the scoring of
label texts as the decoder target of an encoder-decoder model. Shared by head=text-to-text training
(hf_transfer.text_to_text) and the zero-shot methods (hf_transfer.zeroshot).
"""

from __future__ import annotations

from typing import Callable

import torch
from transformers.modeling_outputs import BaseModelOutput

from .batching import right_pad
from .errors import UserError


def per_label_texts(mapping: dict, label_names: list[str], default: Callable[[str], str], key: str) -> list[str]:
    """The text of every label, in label order: `mapping[label]`, else `default(label)`.

    `key` is the config key the mapping came from (e.g. `options.verbalizers`, `label_words`), for errors: a
    UserError names a label the task does not have, or an empty or non-text value.
    """
    given = {str(label): text for label, text in mapping.items()}  # YAML reads `1: yes` with an int key
    unknown = sorted(set(given) - set(label_names))
    if unknown:
        raise UserError(f"{key} names label {unknown[0]!r}, which the task does not have "
                        f"({', '.join(label_names)}): fix the key")
    texts = []
    for label in label_names:
        text = given.get(label, default(label))
        if not isinstance(text, str) or not text.strip():
            raise UserError(f"{key} gives label {label!r} the empty or non-text value {text!r}: give it words")
        texts.append(text)
    return texts


def seq2seq_targets(tokenizer, texts: list[str], key: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask), each [num_labels, longest target]: every label's text tokenized as a seq2seq training target
    (with the tokenizer's eos), right-padded. UserError when two labels tokenize to the same target."""
    encoded = tokenizer(text_target=texts)["input_ids"]
    seen = {}
    for text, ids in zip(texts, encoded):
        if tuple(ids) in seen:
            raise UserError(f"label texts {seen[tuple(ids)]!r} and {text!r} tokenize to the same target {ids}: "
                            f"set {key} so that every label reads differently")
        seen[tuple(ids)] = text
    return right_pad(encoded, tokenizer.pad_token_id), right_pad([[1] * len(ids) for ids in encoded], 0)


def seq2seq_target_log_probs(seq2seq, encoded: torch.Tensor, attention_mask: torch.Tensor,
                             targets: torch.Tensor) -> torch.Tensor:
    """[batch, num_labels, target length]: log p(target token | text, earlier target tokens) for every text and
    label target, in fp32. The encoder states `encoded` ([batch, length, hidden]) are computed once and shared by
    a text's label rows; all targets go through the decoder in one pass (teacher forcing)."""
    batch, num_labels = encoded.shape[0], targets.shape[0]
    repeated = targets.repeat(batch, 1)  # row b * num_labels + l: text b, label l
    logits = seq2seq(
        encoder_outputs=BaseModelOutput(last_hidden_state=encoded.repeat_interleave(num_labels, 0)),
        attention_mask=attention_mask.repeat_interleave(num_labels, 0),
        decoder_input_ids=seq2seq.prepare_decoder_input_ids_from_labels(labels=repeated),
    ).logits.float()
    return logits.log_softmax(-1).gather(-1, repeated[..., None]).view(batch, num_labels, -1)
