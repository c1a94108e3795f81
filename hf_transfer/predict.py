"""Label a file of texts with a trained classifier: `hf-transfer predict OUTPUT_FOLDER texts.txt`.

Same labels as `transformers.pipeline("text-classification")`, several times faster on a CPU
(benchmarks/bench_predict.py measures it):
- the texts are tokenized in one call and run shortest-first in batches of similar length up to a token budget,
  so almost no compute goes to padding (the pipeline runs one text at a time);
- the batches run in bf16 where the hardware has fast bf16 (avx512_bf16/AMX CPUs, GPUs). bf16 can flip a
  near-tie, so every text whose bf16 decision is within RECHECK_MARGIN logits of the boundary is run again
  in fp32, and the fp32 answer is kept: the labels are the fp32 labels.
Not used: int8 dynamic quantization of the Linear layers (torch.ao) ran 1.6x faster than fp32 on the AVX2 CPU
here but flipped 44 of 800 test labels and moved decision margins by up to 4.4 logits, so a re-check would redo
most texts.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import torch

from .batching import length_sorted_batches, pad_batch
from .errors import UserError
from .run_folder import write_file_atomically
from .runtime import cpu_has_fast_bf16

# bf16 keeps 8 significant bits, so logits of a few units move by hundredths; a decision closer than this to the
# boundary is recomputed in fp32. benchmarks/bench_predict.py prints the largest shift it sees on real texts.
RECHECK_MARGIN = 0.2
MAX_BATCH_TOKENS = 4096  # padded tokens per batch: 1024 did as well, 16384 was slower (benchmarks/bench_predict.py)


class Predictor:
    """A saved sequence classifier and its tokenizer, ready to label texts in bulk."""

    def __init__(self, model_dir: str | Path, precision: str = "auto", max_batch_tokens: int = MAX_BATCH_TOKENS):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from . import models  # noqa: F401  registers our own backbones with the Auto classes

        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise UserError(f"{model_dir} holds no config.json: name an output folder of `hf-transfer classify`")
        if precision not in ("auto", "bf16", "fp32"):
            raise UserError(f"precision takes auto, bf16 or fp32, got {precision!r}")
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        fast_bf16 = torch.cuda.is_bf16_supported() if self.device.type == "cuda" else cpu_has_fast_bf16()
        self.bf16 = precision == "bf16" or (precision == "auto" and fast_bf16)
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForSequenceClassification.from_pretrained(model_dir).to(self.device).eval()
        self.multi_label = self.model.config.problem_type == "multi_label_classification"
        self.labels = [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]
        self.max_batch_tokens = max_batch_tokens
        limit = getattr(self.model.config, "max_position_embeddings", None) or self.tokenizer.model_max_length
        self.max_length = min(limit, self.tokenizer.model_max_length)

    def logits(self, texts: list[str]) -> np.ndarray:
        """fp32-exact decisions: bf16 logits, with the near-ties replaced by fp32 ones."""
        encoded = self.tokenizer(texts, truncation=True, max_length=self.max_length)
        columns = {k: v for k, v in encoded.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        lengths = [len(ids) for ids in columns["input_ids"]]
        rows = np.arange(len(texts))
        logits = self._run(columns, lengths, rows, bf16=self.bf16)
        if self.bf16:
            unsure = rows[self._margin(logits) < RECHECK_MARGIN]
            if len(unsure):
                logits[unsure] = self._run(columns, lengths, unsure, bf16=False)
        return logits

    def predict(self, texts: list[str]) -> list[dict]:
        """One {label, score, scores} per text; label is a list of names for multi-label models."""
        logits = torch.from_numpy(self.logits(texts))
        probabilities = (torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, -1)).numpy()
        rows = []
        for probs in probabilities:
            scores = {name: round(float(p), 6) for name, p in zip(self.labels, probs)}
            if self.multi_label:
                rows.append({"label": [n for n, p in zip(self.labels, probs) if p > 0.5], "scores": scores})
            else:
                best = int(probs.argmax())
                rows.append({"label": self.labels[best], "score": float(probs[best]), "scores": scores})
        return rows

    def _margin(self, logits: np.ndarray) -> np.ndarray:
        if self.multi_label:
            return np.abs(logits).min(-1)  # sigmoid > 0.5 <=> logit > 0
        top2 = np.sort(logits, -1)[:, -2:]
        return top2[:, 1] - top2[:, 0]

    @torch.inference_mode()
    def _run(self, columns: dict, lengths: list[int], rows: np.ndarray, bf16: bool) -> np.ndarray:
        out = np.zeros((len(lengths), len(self.labels)), dtype=np.float32)
        subset_lengths = [lengths[r] for r in rows]
        for batch in length_sorted_batches(subset_lengths, self.max_batch_tokens):
            batch_rows = rows[batch]
            inputs = {k: v.to(self.device) for k, v in pad_batch(columns, batch_rows, self.tokenizer.pad_token_id).items()}
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
                out[batch_rows] = self.model(**inputs).logits.float().cpu().numpy()
        return out[rows]


def read_texts(path: str | Path, text_column: str = "text") -> list[str]:
    """Texts from a .txt file (one per line), a .jsonl file or a .csv/.tsv file (the `text_column` field)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"file of texts {path} not found: pass a .txt (one text per line), .jsonl or .csv file")
    suffix = path.suffix.lower()
    with open(path, newline="" if suffix in (".csv", ".tsv") else None, encoding="utf-8") as handle:
        if suffix == ".txt":
            return [line.rstrip("\n") for line in handle]
        if suffix in (".csv", ".tsv", ".jsonl"):
            records = (csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",") if suffix != ".jsonl"
                       else (json.loads(line) for line in handle if line.strip()))
            texts = []
            for number, record in enumerate(records, start=1):
                if not isinstance(record, dict) or not isinstance(record.get(text_column), str):
                    raise UserError(f"record {number} of {path.name} has no text field {text_column!r}: "
                                    "pass --text-column NAME")
                texts.append(record[text_column])
            return texts
    raise UserError(f"cannot read texts from {path.name}: use a .txt (one text per line), .jsonl or .csv/.tsv file")


def _token_run(model_dir: str | Path) -> dict | None:
    """metrics.json of a token-classification run in `model_dir`, or None for any other folder."""
    path = Path(model_dir) / "metrics.json"
    run = json.loads(path.read_text()) if path.is_file() else None
    return run if run and run.get("kind") == "token-classification" else None


def predict_file(model_dir: str | Path, texts_path: str | Path, *, text_column: str = "text",
                 output: str | Path | None = None, precision: str = "auto", max_batch_tokens: int | None = None) -> None:
    """`hf-transfer predict`: one JSON line per text ({text, label, score, scores}) to `output` or standard output;
    for a token-classification run, the entities of each text (token_predict.predict_entities_file).

    The output file is written under a `.partial` name and renamed when complete (run_folder.write_file_atomically).
    """
    texts = read_texts(texts_path, text_column)
    run = _token_run(model_dir)
    if run is not None:  # a tagger: entities per text (hf_transfer.token_predict)
        from .token_predict import predict_entities_file

        return predict_entities_file(model_dir, run, texts, output, max_batch_tokens or MAX_BATCH_TOKENS)
    rows = Predictor(model_dir, precision, max_batch_tokens or MAX_BATCH_TOKENS).predict(texts)
    lines = (json.dumps({"text": text, **row}) + "\n" for text, row in zip(texts, rows))
    if output:
        write_file_atomically(output, lambda handle: handle.writelines(lines))
    else:
        sys.stdout.writelines(lines)
