"""hf_transfer's logger: messages for people on stderr, as `hf-transfer: ...`, from the main process only.

Library code logs through `logger` (a child of Python's "hf_transfer" logger) instead of printing, so that the
processes of a distributed run do not repeat each other, and applications can silence or redirect it with the
logging module (`logging.getLogger("hf_transfer").setLevel(logging.WARNING)`).
"""

from __future__ import annotations

import logging
import os
import sys

logger = logging.getLogger("hf_transfer")


class _StderrHandler(logging.StreamHandler):
    """Writes to the sys.stderr of the moment (test capture and redirection replace it after import)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr  # not setStream: that flushes the old stream, which may be closed by now
        super().emit(record)


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = f"{record.levelname.lower()}: " if record.levelno >= logging.WARNING else ""
        return f"hf-transfer: {level}{record.getMessage()}"


def is_main_process() -> bool:
    """Rank 0 of a distributed launch (torchrun and accelerate set RANK), or a plain process."""
    return os.environ.get("RANK", "0") == "0"


def _main_process(record: logging.LogRecord) -> bool:
    return is_main_process()


if not logger.handlers:
    _handler = _StderrHandler()
    _handler.setFormatter(_Formatter())
    _handler.addFilter(_main_process)
    logger.addHandler(_handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
