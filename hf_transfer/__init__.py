"""hf_transfer: transfer learning for NLP on the Hugging Face stack.

Importing the package registers our own backbones (TextCNN, RNN, attention encoder) with the Auto classes.
The public names below load on first use, so `hf-transfer --help` and light scripts don't import the whole stack.
"""

import importlib

from . import models  # noqa: F401  registers hft-textcnn, hft-rnn, hft-attention

__version__ = "0.1.0"

_PUBLIC = {
    "ASSETS": "assets", "asset_path": "assets",
    "ClassifyConfig": "config", "DataConfig": "config", "TrainConfig": "config", "load_config": "config",
    "TaskData": "data", "load_task_data": "data",
    "UserError": "errors",
    "RunResult": "results",
    "run_classify": "classify",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module 'hf_transfer' has no attribute {name!r}")
