"""Label a file of texts with a trained run: `hf-transfer predict OUTPUT_FOLDER texts.txt`.

Works on every output folder the product writes, and reproduces the run's own predictions.jsonl: it reads what the
run recorded in metrics.json (its config, text columns, max_length, head, labels) instead of assuming defaults.

- a classifier (strategy full, frozen, linear-probe, gradual-unfreeze, scratch; our hft-* backbones; an adapter
  run's `merged/`): the folder's config.json and weights;
- an adapter run (adapter_config.json): the run's classifier is rebuilt from its base model as training built it
  (hf_transfer.backbones.load_backbone with the recorded config; an asset base loads from the local asset), then
  peft loads the adapter and the trained head;
- head=text-to-text (T5 writing the label's words): every label's words scored, as evaluation does;
- a zero-shot run (no weights of its own): the recorded method, checkpoint and options, again.

Same labels as `transformers.pipeline("text-classification")`, several times faster on a CPU
(benchmarks/bench_predict.py measures it):
- the texts are tokenized in one call and run shortest-first in batches of similar length up to a token budget,
  so almost no compute goes to padding (the pipeline runs one text at a time);
- the batches run in bf16 where the hardware has fast bf16 (avx512_bf16/AMX CPUs, GPUs). bf16 can flip a
  near-tie, so every text whose bf16 decision is within RECHECK_MARGIN logits of the boundary is run again
  in fp32, and the fp32 answer is kept: the labels are the fp32 labels (hf_transfer.inference, as evaluation).
Not used: int8 dynamic quantization of the Linear layers (torch.ao) ran 1.6x faster than fp32 on the AVX2 CPU
here but flipped 44 of 800 test labels and moved decision margins by up to 4.4 logits, so a re-check would redo
most texts.
Optional: `backend="onnxruntime"` runs the ONNX model `hf-transfer export` wrote (hf_transfer.export; fp32, with
ONNX Runtime's fused attention); benchmarks/bench_predict.py --levers measures it, and torch.compile, against the
default. torch.compile is not offered: compiling took minutes, more than labelling a file of texts gains.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from .backbones import (load_backbone, load_model_config, load_tokenizer, loading, our_model_types, position_limit,
                        quiet_load_report, resolve_model, weights_digest)
from .data import TaskData, encode_texts, read_text_records
from .errors import UserError
from .inference import RECHECK_MARGIN, batched_logits, near_tie_rows
from .run_folder import write_file_atomically
from .runtime import cpu_has_fast_bf16

__all__ = ["MAX_BATCH_TOKENS", "RECHECK_MARGIN", "Predictor", "load_predictor", "predict_file", "read_inputs"]

MAX_BATCH_TOKENS = 4096  # padded tokens per batch: 1024 did as well, 16384 was slower (benchmarks/bench_predict.py)
METRICS_FILE = "metrics.json"
TRUST_OPTION = "--trust-remote-code"


def run_record(model_dir: Path) -> dict | None:
    """metrics.json of the run that wrote `model_dir` (an adapter run's `merged/` reads its parent's), or None."""
    for folder in (model_dir, model_dir.parent if model_dir.name == "merged" else None):
        if folder is not None and (folder / METRICS_FILE).is_file():
            try:
                return json.loads((folder / METRICS_FILE).read_text())
            except ValueError as err:
                raise UserError(f"{folder / METRICS_FILE} is not valid JSON ({err}): restore it from the run") from None
    return None


class Predictor:
    """A trained classifier output folder and its tokenizer, ready to label texts in bulk.

    `text_columns` are the columns the run read (two for text pairs; None for a folder without metrics.json), and
    `max_length` the tokens per text it was trained and evaluated with. Raises UserError for a folder that is not a
    classifier's, a model whose code is not trusted (`trust_remote_code`), or weights that cannot load.
    `backend` torch, or onnxruntime (the fp32 ONNX model of `hf-transfer export` in model_dir/onnx; UserError
    without the export or the onnx extra).
    """

    def __init__(self, model_dir: str | Path, precision: str = "auto", max_batch_tokens: int = MAX_BATCH_TOKENS,
                 trust_remote_code: bool = False, backend: str = "torch"):
        """`precision`: auto (bf16 where the device computes it fast), bf16 or fp32; `max_batch_tokens`: the token
        budget of one inference batch (padded length x rows). Raises UserError for another precision or backend, or
        bf16 with onnxruntime."""
        from . import models  # noqa: F401  registers our own backbones with the Auto classes

        model_dir = Path(model_dir)
        if precision not in ("auto", "bf16", "fp32"):
            raise UserError(f"precision takes auto, bf16 or fp32, got {precision!r}")
        if backend not in ("torch", "onnxruntime"):
            raise UserError(f"backend takes torch or onnxruntime, got {backend!r}")
        if backend == "onnxruntime" and precision == "bf16":
            raise UserError("backend onnxruntime runs the fp32 ONNX export: drop --precision bf16")
        run = run_record(model_dir)
        if (model_dir / "adapter_config.json").is_file():
            self.model, self.tokenizer = _load_adapter_run(model_dir, run, trust_remote_code)
        elif (model_dir / "config.json").is_file():
            self.model, self.tokenizer = _load_classifier(model_dir, run, trust_remote_code)
        else:
            raise UserError(f"{model_dir} holds no config.json: name an output folder of `hf-transfer classify`")
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device).eval()
        fast_bf16 = torch.cuda.is_bf16_supported() if self.device.type == "cuda" else cpu_has_fast_bf16()
        self.bf16 = backend == "torch" and (precision == "bf16" or (precision == "auto" and fast_bf16))
        self.onnx = _OnnxModel(model_dir) if backend == "onnxruntime" else None
        config = self.model.config
        self.multi_label = config.problem_type == "multi_label_classification"
        self.labels = [config.id2label[i] for i in range(len(config.id2label))]
        self.max_batch_tokens = max_batch_tokens
        self.text_columns = (run or {}).get("task", {}).get("text_columns")
        # What the run tokenized with (texts longer than the model's positions could not have been evaluated).
        limits = [self.tokenizer.model_max_length, position_limit(config) or self.tokenizer.model_max_length]
        self.max_length = min([*limits, (run or {}).get("training", {}).get("max_length") or limits[0]])
        self.truncation = _truncation(run)

    def logits(self, texts: list) -> np.ndarray:
        """fp32-exact decisions: bf16 logits, with the near-ties replaced by fp32 ones. `texts` holds strings, or
        (text, text_pair) tuples for a run trained on pairs. (texts, labels) float32; a run that cut long texts
        into chunks (data.truncation=chunks) gets each text's chunk logits pooled as its evaluation pooled them."""
        columns, lengths, example_ids = self._encode(texts)
        rows = np.arange(len(lengths))
        logits = self._run(columns, lengths, rows, bf16=self.bf16)
        decided, _, unsure = near_tie_rows(logits, self.multi_label, example_ids, len(texts))
        if not self.bf16 or not len(unsure):
            return decided
        logits[unsure] = self._run(columns, lengths, unsure, bf16=False)
        return near_tie_rows(logits, self.multi_label, example_ids, len(texts))[0]

    def predict(self, texts: list) -> list[dict]:
        """One {label, score, scores} per text; label is a list of names for multi-label models."""
        logits = torch.from_numpy(self.logits(texts))
        probabilities = (torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, -1)).numpy()
        return _rows(self.labels, probabilities, self.multi_label)

    def _encode(self, texts: list) -> tuple[dict, list[int], np.ndarray | None]:
        """(model inputs cut as the run cut them (data.encode_texts: data.truncation at its max_length), tokens per
        row, the text of each row for chunks else None)."""
        pairs = bool(texts) and not isinstance(texts[0], str)
        firsts, seconds = (list(zip(*texts)) if pairs else (texts, None))
        encoded, _, _ = encode_texts(self.tokenizer, list(firsts), list(seconds) if pairs else None,
                                     max_length=self.max_length, truncation=self.truncation)
        columns = {k: v for k, v in encoded.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        example_ids = np.asarray(encoded["example_id"]) if "example_id" in encoded else None
        return columns, [len(ids) for ids in columns["input_ids"]], example_ids

    def _run(self, columns: dict, lengths: list[int], rows: np.ndarray, bf16: bool) -> np.ndarray:
        out = np.zeros((len(lengths), len(self.labels)), dtype=np.float32)
        if not len(rows):
            return out
        out[rows] = batched_logits(self.onnx or self.model, columns, rows, self.tokenizer.pad_token_id, self.device,
                                   bf16, self.max_batch_tokens)
        return out[rows]


class _OnnxModel:
    """model_dir/onnx/model.onnx (written by `hf-transfer export`) in an ONNX Runtime session, called like the
    torch model: `model(**inputs).logits`."""

    def __init__(self, model_dir: Path):
        from .export import ONNX_FILE, require_onnx

        require_onnx()
        import onnxruntime

        path = model_dir / "onnx" / ONNX_FILE
        if not path.is_file():
            raise UserError(f"{path} not found: run `hf-transfer export {model_dir}` first")
        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.input_names = {i.name for i in self.session.get_inputs()}

    def __call__(self, **inputs: torch.Tensor) -> SimpleNamespace:
        feed = {name: tensor.cpu().numpy() for name, tensor in inputs.items() if name in self.input_names}
        return SimpleNamespace(logits=torch.from_numpy(self.session.run(["logits"], feed)[0]))


def _rows(labels: list[str], probabilities: np.ndarray, multi_label: bool) -> list[dict]:
    rows = []
    for probs in probabilities:
        scores = {name: round(float(p), 6) for name, p in zip(labels, probs)}
        if multi_label:
            rows.append({"label": [n for n, p in zip(labels, probs) if p > 0.5], "scores": scores})
        else:
            best = int(probs.argmax())
            rows.append({"label": labels[best], "score": scores[labels[best]], "scores": scores})
    return rows


def _truncation(run: dict | None) -> str:
    """How the run cut long texts (data.truncation; head before the key existed)."""
    return (run or {}).get("config", {}).get("data", {}).get("truncation") or "head"


def _load_classifier(model_dir: Path, run: dict | None, trust_remote_code: bool):
    """(model, tokenizer) of a folder with config.json: a sequence classifier, or a head=text-to-text seq2seq LM."""
    from transformers import AutoModelForSequenceClassification


    reference = resolve_model(str(model_dir), trust_remote_code, TRUST_OPTION)
    tokenizer = load_tokenizer(reference)
    saved = json.loads((model_dir / "config.json").read_text())
    if saved.get("label_words") or (run or {}).get("model", {}).get("head") == "text-to-text":
        from .text_to_text import TextToTextClassifier

        with loading(reference, "weights"):
            return TextToTextClassifier.from_pretrained(model_dir, **reference.load_kwargs), tokenizer
    with loading(reference, "weights"), quiet_load_report():
        model, info = AutoModelForSequenceClassification.from_pretrained(model_dir, output_loading_info=True,
                                                                         **reference.load_kwargs)
    missing = sorted(info["missing_keys"])
    if missing:  # e.g. a pretraining output: transformers would give it a random classifier
        architecture = ", ".join(saved.get("architectures") or [saved.get("model_type", "model")])
        head = next((key for key in missing if not key.startswith(f"{model.base_model_prefix}.")), missing[0])
        raise UserError(f"{model_dir} holds a {architecture} without a trained classification head ({head} is not "
                        f"in its weights): fine-tune it first, e.g. `hf-transfer classify model={model_dir}`")
    return model, tokenizer


def _load_adapter_run(model_dir: Path, run: dict | None, trust_remote_code: bool):
    """(model, tokenizer) of an adapter run: its classifier rebuilt as training built it, with the adapter on it."""
    from peft import PeftModel

    from .assets import ASSETS
    from .config import ClassifyConfig, from_dict
    from .strategies import get_strategy

    if run is None or run.get("kind") != "classification":
        raise UserError(f"{model_dir} holds a peft adapter but no metrics.json of a classify run, which names its "
                        "labels and base model: name the run's output folder")
    try:
        config = from_dict(ClassifyConfig, run["config"])
    except (UserError, KeyError) as err:
        raise UserError(f"the config recorded in {model_dir / METRICS_FILE} does not load in this version of "
                        f"hf_transfer ({err}): predict with the version that trained it") from None
    # The base as this machine can load it: an asset (or model type) by name, else where the adapter says.
    recorded = run["model"]["name"]
    adapter_config = json.loads((model_dir / "adapter_config.json").read_text())
    by_name = recorded in ASSETS or recorded in our_model_types()
    base = recorded if by_name else adapter_config["base_model_name_or_path"]
    _check_base_unchanged(model_dir, base, run["model"].get("weights_sha256"))
    limit = position_limit(load_model_config(resolve_model(base, trust_remote_code, TRUST_OPTION)))
    data = dataclasses.replace(config.data, max_length=min(config.data.max_length, limit or config.data.max_length))
    config = dataclasses.replace(config, model=base, trust_remote_code=trust_remote_code, data=data)
    task = run["task"]
    labels = TaskData(splits=None, text_columns=task["text_columns"], label_names=task["label_names"],
                      multi_label=task["multi_label"], source=task["dataset"], description=task.get("description", ""))
    try:
        backbone = load_backbone(config, labels, get_strategy(config.strategy, config.strategy_options))
    except UserError as err:
        raise UserError(str(err).replace("trust_remote_code=true", TRUST_OPTION)) from None
    reference = resolve_model(str(model_dir), trust_remote_code, TRUST_OPTION)
    with loading(reference, "adapter"):
        model = PeftModel.from_pretrained(backbone.model, model_dir)
    return model, load_tokenizer(reference)


def _check_base_unchanged(model_dir: Path, base: str, recorded_digest: str | None) -> None:
    """Raise UserError when the base folder an adapter was trained on holds other weights now (its digest, which
    the run recorded, differs): peft would put the adapter on them without a word, and predict other labels than
    the run evaluated. Runs recorded before the digest, and bases that are assets or Hub ids, are not checked."""
    if recorded_digest is None or not Path(base).is_dir():
        return
    if weights_digest(Path(base)) != recorded_digest:
        raise UserError(f"the base model folder {base} holds other weights than the adapter in {model_dir} was "
                        "trained on (their SHA-256 differs from the one its metrics.json recorded): restore that "
                        "folder, or train the adapter again on what it holds now")


class ZeroShotPredictor:
    """A zero-shot run's output folder: its method, checkpoint and options, loaded again (there are no weights of
    its own). Same interface as Predictor: `text_columns`, `predict(texts)`."""

    def __init__(self, model_dir: Path, run: dict, trust_remote_code: bool = False):
        """`run`: the folder's metrics.json as a dict; the method, options, model and labels are read from it. Raises
        UserError (backbones.resolve_model) when the model names a path that is not a folder."""
        from .config import ZeroShotConfig, from_dict
        from .zeroshot.run import ZeroShotClassifier

        config = from_dict(ZeroShotConfig, run["config"])
        task = run["task"]
        self.text_columns = task["text_columns"]
        self.labels = task["label_names"]
        self.multi_label = task["multi_label"]
        model = resolve_model(config.model, trust_remote_code, TRUST_OPTION)
        self.classifier = ZeroShotClassifier(run["strategy"]["method"], model, self.labels, self.multi_label,
                                             options=config.options, batch_size=config.batch_size,
                                             max_length=config.data.max_length)

    def predict(self, texts: list) -> list[dict]:
        """One row per text: {label, score, scores {label: probability}}; for multi-label runs {label: [labels above
        0.5], scores}."""
        return _rows(self.labels, self.classifier.predict_proba(texts), self.multi_label)


def load_predictor(model_dir: str | Path, precision: str = "auto", max_batch_tokens: int = MAX_BATCH_TOKENS,
                   trust_remote_code: bool = False, backend: str = "torch"):
    """The predictor for any output folder the product writes: a ZeroShotPredictor for a zero-shot run's folder,
    else a Predictor (see the module docstring). Raises UserError for backend onnxruntime on a zero-shot run."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise UserError(f"{model_dir} is not a folder: name an output folder of `hf-transfer classify`")
    run = run_record(model_dir)
    if run is not None and run.get("kind") == "zero-shot":
        if backend != "torch":
            raise UserError(f"{model_dir} is a zero-shot run, which has no model of its own to export: drop "
                            f"--backend {backend}")
        return ZeroShotPredictor(model_dir, run, trust_remote_code)
    return Predictor(model_dir, precision, max_batch_tokens, trust_remote_code, backend)


def read_inputs(path: str | Path, text_columns: list[str]) -> list:
    """The texts of `path` for a run that reads `text_columns`, decoded as training data is
    (data.read_text_records): strings for one column, (text, text_pair) tuples for two (not from a .txt file)."""
    if len(text_columns) == 2 and Path(path).suffix.lower() == ".txt":
        raise UserError(f"the run was trained on text pairs ({', '.join(text_columns)}): pass a .csv or .jsonl file "
                        "with those columns, not a .txt file")
    return read_text_records(path, text_columns if len(text_columns) > 1 else text_columns[0])


def predict_file(model_dir: str | Path, texts_path: str | Path, *, text_columns: list[str] | None = None,
                 output: str | Path | None = None, precision: str = "auto", max_batch_tokens: int | None = None,
                 trust_remote_code: bool = False, backend: str = "torch") -> None:
    """`hf-transfer predict`: one JSON line per text ({text, label, score, scores}) to `output` or standard output;
    for a token-classification run, the entities of each text (token_predict.predict_entities_file).

    `text_columns` (default: the columns the run was trained on, else `text`) name the field(s) of a .csv/.jsonl
    file; two make text pairs. The output file is written under a `.partial` name and renamed when complete
    (run_folder.write_file_atomically).
    """
    model_dir = Path(model_dir)
    run = run_record(model_dir) if model_dir.is_dir() else None
    recorded = (run or {}).get("task", {}).get("text_columns")
    columns = text_columns or recorded or ["text"]
    if recorded and len(columns) != len(recorded):
        raise UserError(f"the run reads {len(recorded)} text column(s) ({', '.join(recorded)}), but {len(columns)} "
                        "were named: pass --text-column once per column")
    texts = read_inputs(texts_path, columns)  # a bad file fails before the model loads
    if run is not None and run.get("kind") == "token-classification":  # a tagger: entities per text
        from .token_predict import predict_entities_file

        if backend != "torch":
            raise UserError(f"{model_dir} is a token-classification run, which `hf-transfer export` does not "
                            f"write: drop --backend {backend}")
        return predict_entities_file(model_dir, run, texts, output, max_batch_tokens or MAX_BATCH_TOKENS)
    rows = load_predictor(model_dir, precision, max_batch_tokens or MAX_BATCH_TOKENS, trust_remote_code,
                          backend).predict(texts)
    lines = (json.dumps({"text": text, **row}) + "\n" for text, row in zip(texts, rows))
    if output:
        write_file_atomically(output, lambda handle: handle.writelines(lines))
    else:
        sys.stdout.writelines(lines)
