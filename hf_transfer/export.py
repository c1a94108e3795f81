"""`hf-transfer export OUTPUT_DIR`: a trained sequence classifier as an ONNX model for ONNX Runtime.

The folder it writes (default OUTPUT_DIR/onnx) holds `model.onnx` (inputs input_ids, attention_mask and, where
the tokenizer makes them, token_type_ids, each [batch, sequence]; output logits [batch, num_labels]), config.json
and the tokenizer: what `optimum.onnxruntime.ORTModelForSequenceClassification.from_pretrained(folder)` loads, and
what `hf_transfer.predict.Predictor(OUTPUT_DIR, backend="onnxruntime")` runs.

The graph is exported with eager attention through torch's TorchScript-based ONNX exporter, whose attention
pattern ONNX Runtime's transformer optimizer (onnxruntime.transformers.optimizer) fuses into its Attention,
EmbedLayerNormalization, SkipLayerNormalization and BiasGelu kernels for BERT-family models (a BERT encoder under
hft-pooled's head too, where on MiniLM it fused the layer norms and GELUs but not the attention); other model types
are exported without fusion. Needs the `onnx` extra: `pip install "hf-transfer-learning[onnx]"`.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import warnings
from pathlib import Path

import torch

from .errors import UserError, first_line
from .log import logger

ONNX_FILE = "model.onnx"  # the name optimum's ORTModel looks for
OPSET = 17
FUSED_MODEL_TYPES = {"bert": "bert"}  # config.model_type -> onnxruntime.transformers.optimizer model_type


def require_onnx() -> None:
    """Raise UserError unless onnx and onnxruntime are importable."""
    missing = [name for name in ("onnx", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(f"{' and '.join(missing)} not installed: pip install \"hf-transfer-learning[onnx]\"")


def export_onnx(model_dir: str | Path, output_dir: str | Path | None = None) -> Path:
    """Write `model_dir`'s classifier to `output_dir` (default model_dir/onnx) as described above; returns it.

    Raises UserError for a folder without a sequence classifier, a missing extra, or an export that fails.
    The exported logits are checked against the torch model's on two texts (fp32, absolute tolerance 1e-3). The
    folder is written as OUTPUT.partial and renamed when checked, replacing an earlier export.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from . import models  # noqa: F401  registers our own backbones with the Auto classes

    require_onnx()
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise UserError(f"{model_dir} holds no config.json: name an output folder of `hf-transfer classify`")
    output_dir = Path(output_dir) if output_dir else model_dir / "onnx"
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    try:
        model = AutoModelForSequenceClassification.from_pretrained(model_dir, attn_implementation="eager").eval()
    except (ValueError, OSError) as err:
        raise UserError(f"{model_dir} holds no sequence classifier transformers can load ({first_line(err)})") from None
    sample = tokenizer(["An ONNX export check.", "Two texts, padded to one length."], padding=True,
                       return_tensors="pt")
    names = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in sample]
    staging = output_dir.with_name(output_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        _export(model, tokenizer, {name: sample[name] for name in names}, staging, model_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(output_dir, ignore_errors=True)
    staging.rename(output_dir)
    return output_dir


def _export(model, tokenizer, sample: dict, folder: Path, model_dir: Path) -> None:
    names = list(sample)
    path = folder / ONNX_FILE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's tracer warnings about Python control flow
            torch.onnx.export(model, tuple(sample[name] for name in names), str(path), input_names=names,
                              output_names=["logits"], opset_version=OPSET, dynamo=False,
                              dynamic_axes={**{name: {0: "batch", 1: "sequence"} for name in names},
                                            "logits": {0: "batch"}})
    except Exception as err:  # noqa: BLE001  any exporter failure is one line for the user
        raise UserError(f"ONNX export of {model_dir} failed ({first_line(err)}): this model type may not export "
                        "with torch's ONNX exporter") from None
    encoder_config = model.base_model.config  # the encoder's own under a wrapping head (hft-pooled)
    model_type = FUSED_MODEL_TYPES.get(encoder_config.model_type)
    if model_type:
        _fuse(path, model_type, encoder_config)
    model.config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    _check(path, model, sample)


def _fuse(path: Path, model_type: str, config) -> None:
    """Rewrite the graph with ONNX Runtime's fused transformer kernels."""
    from onnxruntime.transformers import optimizer

    logging.getLogger("onnxruntime.transformers").setLevel(logging.WARNING)
    fused = optimizer.optimize_model(str(path), model_type=model_type, num_heads=config.num_attention_heads,
                                     hidden_size=config.hidden_size)
    logger.info(f"ONNX Runtime fusions: {fused.get_fused_operator_statistics()}")
    fused.save_model_to_file(str(path))


def _check(path: Path, model, inputs: dict) -> None:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    exported = session.run(["logits"], {name: tensor.numpy() for name, tensor in inputs.items()})[0]
    with torch.inference_mode():
        expected = model(**inputs).logits.numpy()
    if not abs(exported - expected).max() < 1e-3:
        raise UserError(f"the ONNX export of {path.parent} computes other logits than the model (largest difference "
                        f"{abs(exported - expected).max():.3g}): do not use it")
