"""hf_transfer: transfer learning for NLP on the Hugging Face stack.

The public names below load on first use, so `hf-transfer --help` and light scripts start without torch.
`import hf_transfer.models` registers our own backbones (TextCNN, RNN, attention encoder) with the Auto classes;
every hf_transfer pipeline does it before loading a model, and saved folders of ours also load elsewhere with
`trust_remote_code=True`.
"""

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "ASSETS": "assets", "asset_path": "assets",
    "ClassifyConfig": "config", "CompareConfig": "config", "DataConfig": "config", "TrainConfig": "config",
    "ZeroShotConfig": "config",
    "load_config": "config",
    "TaskData": "data", "load_task_data": "data",
    "TokenTaskData": "token_data", "load_token_data": "token_data",
    "UserError": "errors",
    "RunResult": "results",
    "run_classify": "classify",
    "run_study": "study",
    "run_zeroshot": "zeroshot.run",
    "ZeroShotClassifier": "zeroshot.run",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module 'hf_transfer' has no attribute {name!r}")
