"""hf_transfer: transfer learning for NLP on the Hugging Face stack.

Importing the package registers our own backbones (TextCNN, RNN, attention encoder) with the Auto classes.
"""

from . import models  # noqa: F401  registers hft-textcnn, hft-rnn, hft-attention
from .assets import ASSETS, asset_path
from .classify import run_classify
from .config import ClassifyConfig, DataConfig, TrainConfig, load_config
from .data import TaskData, load_task_data
from .errors import UserError
from .results import RunResult

__version__ = "0.1.0"
__all__ = ["ASSETS", "ClassifyConfig", "DataConfig", "RunResult", "TaskData", "TrainConfig", "UserError",
           "asset_path", "load_config", "load_task_data", "run_classify"]
