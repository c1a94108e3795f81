"""`hf-transfer predict` on a token-classification run: the entities of each text, as the run's predictions.jsonl
finds them.

A text is split into words at whitespace (the run's data came as words; a CoNLL file splits punctuation off, so a
text written that way is read exactly as the training words were). The words are encoded as evaluation encodes them
(hf_transfer.subwords.encode_words with the run's max_length and stride: long texts in overlapping windows, each
word predicted from its first subword in the window where it has the most context), run shortest-first in batches
up to a token budget, in fp32, and grouped into entities as the metrics read them (token_data.entities_from_tags).

A whole model loads with AutoModelForTokenClassification; an adapter run's tagger is rebuilt from its base model as
training built it (backbones.load_backbone with the recorded config), then peft loads the adapter and its head.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from .errors import UserError
from .inference import batched_logits
from .subwords import encode_words, word_logits
from .token_data import entities_from_tags

class TokenPredictor:
    """The tagger in a token-classification run's output folder (`run`: its metrics.json), ready to tag texts.

    Raises UserError for a folder whose weights or adapter cannot load.
    """

    def __init__(self, model_dir: str | Path, run: dict, max_batch_tokens: int = 4096):
        """`max_batch_tokens`: the padded tokens (rows x longest) of one inference batch; max_length and stride are the
        run's (data.max_length, data.stride)."""
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        from . import models  # noqa: F401  registers our own backbones with the Auto classes

        model_dir = Path(model_dir)
        data = run["config"]["data"]
        self.max_length, self.stride = data["max_length"], data.get("stride")
        self.labels = list(run["task"]["label_names"])
        self.max_batch_tokens = max_batch_tokens
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        if (model_dir / "adapter_config.json").is_file():
            self.model = _adapter_tagger(model_dir, run)
        else:
            try:
                self.model = AutoModelForTokenClassification.from_pretrained(model_dir)
            except (OSError, ValueError) as err:
                raise UserError(f"cannot load the tagger in {model_dir}: {err}; name a token-classification run's "
                                "output folder") from None
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device).eval()

    def predict(self, sentences: list[list[str]]) -> list[dict]:
        """Per sentence (a list of words): {"tags": IOB2 tag per word, "scores": its probability (6 decimals),
        "entities": [{type, start, end, text}] (word indices, `end` one past the last)}."""
        given = [i for i, words in enumerate(sentences) if words]  # an empty text has no words to tag
        rows = [{"tags": [], "scores": [], "entities": []} for _ in sentences]
        if not given:
            return rows
        encoded = encode_words(self.tokenizer, [sentences[i] for i in given], max_length=self.max_length,
                               stride=self.stride)
        per_word = word_logits(self._logits(encoded), encoded["word_index"], encoded["sentence"],
                               num_words=[len(sentences[i]) for i in given])
        for i, logits in zip(given, per_word):
            probabilities = torch.softmax(torch.as_tensor(logits, dtype=torch.float32), -1).numpy()
            best = probabilities.argmax(-1)
            tags = [self.labels[t] for t in best]
            rows[i] = {"tags": tags, "scores": [round(float(p[t]), 6) for p, t in zip(probabilities, best)],
                       "entities": entities_from_tags(sentences[i], tags)}
        return rows

    def _logits(self, encoded: dict) -> np.ndarray:
        """[windows, longest window, labels] fp32 logits, right-padded with -100 as Trainer.predict pads them."""
        rows = np.arange(len(encoded["input_ids"]))
        return batched_logits(self.model, encoded, rows, self.tokenizer.pad_token_id, self.device,
                              max_batch_tokens=self.max_batch_tokens)


def _adapter_tagger(model_dir: Path, run: dict):
    """The run's tagger rebuilt from its base as training built it, with the adapter (and trained head) on it."""
    from datasets import DatasetDict
    from peft import PeftModel

    from .backbones import load_backbone
    from .config import ClassifyConfig, from_dict
    from .token_data import TokenTaskData

    try:
        config = from_dict(ClassifyConfig, run["config"])
    except (UserError, KeyError) as err:
        raise UserError(f"the config recorded in {model_dir / 'metrics.json'} does not load in this version of "
                        f"hf_transfer ({err}): predict with the version that trained it") from None
    task = run["task"]
    tags = TokenTaskData(DatasetDict(), task["label_names"], task["dataset"], task.get("description", ""),
                         task.get("data_facts", {}).get("tag_scheme", "iob2"))
    return PeftModel.from_pretrained(load_backbone(config, tags).model, model_dir)


def predict_entities_file(model_dir: str | Path, run: dict, texts: list[str], output: str | Path | None = None,
                          max_batch_tokens: int = 4096) -> None:
    """`hf-transfer predict` for a token-classification run (`run`: its metrics.json): one JSON line per text,
    {text, tokens (the text split at whitespace), tags, scores, entities}, each entity with its word span (start,
    end) and character span in the text (start_char, end_char), to `output` (written atomically) or standard
    output."""
    from .run_folder import write_file_atomically

    sentences = [text.split() for text in texts]
    predicted = TokenPredictor(model_dir, run, max_batch_tokens).predict(sentences)
    lines = []
    for text, words, row in zip(texts, sentences, predicted):
        spans, at = [], 0
        for word in words:  # each word's character span, found left to right
            at = text.index(word, at)
            spans.append((at, at + len(word)))
            at += len(word)
        for entity in row["entities"]:
            entity["start_char"], entity["end_char"] = spans[entity["start"]][0], spans[entity["end"] - 1][1]
        lines.append(json.dumps({"text": text, "tokens": words, **row}) + "\n")
    if output:
        write_file_atomically(output, lambda handle: handle.writelines(lines))
    else:
        sys.stdout.writelines(lines)
