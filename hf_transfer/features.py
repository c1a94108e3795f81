"""Frozen features: what a frozen backbone hands its head for every text of a split, computed once and kept.

A run that trains (or uses) only a head on a frozen backbone needs one vector per text: strategy=linear-probe,
strategy=frozen on a pooled classifier (hft-pooled), zero-shot method=embedding. `split_features(reader, columns,
split)` gives them: float32 [texts, features], row i for tokenized text i, from one batched forward pass in eval
mode (no dropout) and fp32 without autocast (decisions made on them need no fp32 re-check: they are fp32), the
shortest texts first, right-padded, at most MAX_BATCH_TOKENS padded tokens a batch.

What a FeatureReader reads:
- pooled_reader(encoder, pooling): pool(encoder(ids).last_hidden_state), mean / cls / max over the real tokens
  (models.modeling_pooled.pool), [texts, hidden]: an hft-pooled classifier's classifier input (before its
  dropout), and with mean the embedding method's vectors before their L2 normalisation;
- classifier_reader(model, output): for an hft-pooled model its pooled_reader, else the input of the output layer
  (strategies.layers.output_layer) in eval mode, [texts, features]: BERT's pooler output, GPT-2's last real
  token's state, T5's tanh(dense(eos state)).

The key (FeatureReader.key) is what determines the features: a digest of the weights that compute them (every
parameter's name, shape, dtype and values, and the module's class; not the output layer's, nor those of a
BERT-style `pooler` that mean / cls / max pooling never reads), the reader (pooling), and a digest of the token ids
(input_ids and token_type_ids, row by row). data.max_length and the tokenizer enter through the token ids: a
max_length that cuts no text differently gives the same key, and the same features.

The store: off by default (features computed at each call). share_features(True, folder) turns it on for this
process: each key is computed once and kept in memory, and with a folder written atomically to FOLDER/<key>.npy,
which later runs read back (a rerun of a killed study, another process, a Ray worker on a shared file system). A
study keeps its store in STUDY/features (FEATURES_DIR); memory holds what was read until the store is turned off
(MiniLM's 384 floats a text: 1.5 kB). Each computation or reuse is logged:
"features: minilm-l6 mean-pooled, split test (2,562 texts): computed" / "... reused".
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from .inference import MODEL_INPUTS, batched_outputs, own_forward
from .log import logger
from .pooling import unread_pooler

MAX_BATCH_TOKENS = 4096  # padded tokens per batch, as hf_transfer.predict
FEATURES_DIR = "features"  # a study's store, under its folder

_MEMORY: dict[str, np.ndarray] | None = None  # key -> features, while the store is on
_FOLDER: Path | None = None


def share_features(on: bool = True, folder: str | Path | None = None) -> bool:
    """Turn this process's feature store on (kept in memory, and in `folder` when given) or off (dropping what was
    kept); returns the previous setting. Turning it on again keeps what memory holds (keys are content digests)."""
    global _MEMORY, _FOLDER
    previous = _MEMORY is not None
    _MEMORY = ({} if _MEMORY is None else _MEMORY) if on else None
    _FOLDER = Path(folder) if on and folder else None
    return previous


def sharing_features() -> bool:
    """Whether this process's feature store is on."""
    return _MEMORY is not None


@dataclass
class FeatureReader:
    """How features are read from a backbone: see the module docstring."""

    name: str  # for the log, e.g. "minilm-l6 mean-pooled"
    pooling: str  # mean | cls | max (-normalized) | head-input
    weights: str  # digest of the weights that compute the features
    module: nn.Module  # put in eval mode while reading
    read: Callable[[dict[str, torch.Tensor]], torch.Tensor]  # padded model inputs -> [batch, features]
    pad_id: int

    def key(self, columns: dict) -> str:
        """The store key of this reader's features of tokenized `columns` (input_ids, ...: one list per row)."""
        digest = hashlib.blake2b(digest_size=20)
        digest.update(f"{self.weights}|{self.pooling}|".encode())
        for name in ("input_ids", "token_type_ids"):
            if name in columns:
                rows = columns[name]
                digest.update(name.encode())
                digest.update(np.fromiter(map(len, rows), dtype=np.int64, count=len(rows)).tobytes())
                digest.update(np.fromiter((i for row in rows for i in row), dtype=np.int64).tobytes())
        return digest.hexdigest()


def weights_digest(module: nn.Module, skip: set[int] = frozenset()) -> str:
    """A digest of `module`'s class and parameters (names, shapes, dtypes, values), those whose id() is in `skip`
    left out."""
    digest = hashlib.blake2b(type(module).__name__.encode(), digest_size=20)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if id(parameter) in skip:
                continue
            digest.update(f"{name}|{tuple(parameter.shape)}|{parameter.dtype}".encode())
            digest.update(parameter.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def model_name(config) -> str:
    """A short name of the checkpoint a model config came from, for the log: an asset's name (minilm-l6), else the
    folder's or Hub id's last part."""
    from .assets import cache_dir

    path = Path(str(getattr(config, "name_or_path", "") or config.model_type))
    assets = cache_dir()
    return path.relative_to(assets).parts[0] if path.is_relative_to(assets) else path.name


def pooled_reader(encoder: nn.Module, pooling: str, pad_id: int, name: str, normalize: bool = False) -> FeatureReader:
    """pool(encoder(ids).last_hidden_state) with `pooling` mean / cls / max, L2-normalised when `normalize`:
    [batch, hidden] float32. A `pooler` submodule of the encoder (BERT's) is left out of the key: unread."""
    from .models.modeling_pooled import pool

    pooler = unread_pooler(encoder)
    skip = {id(p) for p in pooler.parameters()} if pooler is not None else set()

    def read(inputs):
        hidden = encoder(**inputs, return_dict=True).last_hidden_state.float()
        pooled = pool(hidden, inputs.get("attention_mask"), pooling)
        return nn.functional.normalize(pooled, dim=-1) if normalize else pooled

    kind = f"{pooling}-normalized" if normalize else pooling
    return FeatureReader(f"{name} {kind}-pooled", kind, weights_digest(encoder, skip), encoder, read, pad_id)


def classifier_reader(model, output: tuple[nn.Module, str, nn.Linear], pad_id: int) -> FeatureReader:
    """What the output layer `output` (parent, attribute, layer; strategies.layers.output_layer) of a sequence
    classifier reads: an hft-pooled model's pooled features (pooled_reader), else the layer's input, computed by
    the model's own forward with the layer swapped for an identity; [batch, features] float32."""
    config = model.config
    if config.model_type == "hft-pooled":
        return pooled_reader(model.encoder, config.pooling, pad_id, model_name(model.encoder.config), config.normalize)
    parent, attribute, layer = output

    def read(inputs):
        setattr(parent, attribute, nn.Identity())
        try:
            with own_forward(model):
                return model(**inputs).logits.float()
        finally:
            setattr(parent, attribute, layer)

    skip = {id(p) for p in layer.parameters()}
    return FeatureReader(f"{model_name(config)} {attribute}-input", "head-input", weights_digest(model, skip), model,
                         read, pad_id)


def split_features(reader: FeatureReader, columns: dict, split: str) -> np.ndarray:
    """[rows, features] float32: `reader`'s features of tokenized `columns` (input_ids, attention_mask,
    token_type_ids: one list per row; other columns ignored), from the store when it holds them (module docstring);
    `split` names them in the log."""
    columns = {name: values for name, values in columns.items() if name in MODEL_INPUTS}
    rows = len(columns["input_ids"])
    key = reader.key(columns) if _MEMORY is not None else None
    features = _stored(key) if key else None
    if features is not None and len(features) == rows:
        logger.info(f"features: {reader.name}, split {split} ({rows:,} texts): reused")
        return features
    features = _forward(reader, columns)
    logger.info(f"features: {reader.name}, split {split} ({rows:,} texts): computed")
    if key:
        _store(key, features)
    return features


def dataset_columns(dataset) -> dict:
    """The model-input columns of a tokenized datasets.Dataset, as lists (what split_features takes)."""
    return dataset.select_columns([c for c in MODEL_INPUTS if c in dataset.column_names])[:]


def _stored(key: str) -> np.ndarray | None:
    if key in _MEMORY:
        return _MEMORY[key]
    path = _FOLDER / f"{key}.npy" if _FOLDER else None
    if path is None or not path.is_file():
        return None
    _MEMORY[key] = np.load(path)
    return _MEMORY[key]


def _store(key: str, features: np.ndarray) -> None:
    _MEMORY[key] = features
    if _FOLDER is None:
        return
    _FOLDER.mkdir(parents=True, exist_ok=True)
    partial = _FOLDER / f"{key}.{os.getpid()}.partial"  # one per process: Ray workers may write the same key
    with open(partial, "wb") as handle:
        np.save(handle, features)
    os.replace(partial, _FOLDER / f"{key}.npy")


def _forward(reader: FeatureReader, columns: dict) -> np.ndarray:
    module = reader.module
    device = next(module.parameters()).device
    training = module.training
    module.eval()
    try:
        with torch.autocast(device.type, enabled=False):
            return batched_outputs(reader.read, columns, np.arange(len(columns["input_ids"])), reader.pad_id, device,
                                   MAX_BATCH_TOKENS)
    finally:
        module.train(training)
