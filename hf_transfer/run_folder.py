"""The output folder of a run, for every pipeline (classify, zero-shot, and those to come).

While a run works on OUT:

    .OUT.lock      a lock file the run's main process holds (fcntl.flock) from start to end. A second run on OUT is
                   refused at once, naming the holder's pid; the kernel drops the lock when a process dies, so a
                   killed run never leaves a stale lock.
    OUT.partial/   the run's private staging folder: checkpoints while training (with `.run.json`, the settings they
                   belong to), then every output file. A rerun of the same settings resumes from its last
                   checkpoint; other settings are refused in one line (or `resume=false` starts over).

When everything is written, OUT.partial takes OUT's place in one atomic step (Linux renameat2 RENAME_EXCHANGE; where
that is missing, two renames with recovery at the next start), so at every instant OUT is either the old complete
folder or the new one; the old one is then deleted. An existing OUT is only replaced with overwrite_output_dir=true.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from .errors import UserError
from .log import is_main_process, logger

STAGING_SUFFIX = ".partial"
REPLACED_SUFFIX = ".replaced"
LOCK_SUFFIX = ".lock"
RUN_MARKER = ".run.json"  # in staging only: the settings a resumable run's checkpoints belong to
CHECKPOINTS = "checkpoints"
PREDICTIONS_FILE = "predictions.jsonl"


def name_slug(name: str) -> str:
    """A model or dataset name as one folder-name part: `org/model.v2/` -> `model-v2`."""
    return Path(name.rstrip("/")).name.replace(".", "-")


def default_output_dir(*parts: str) -> Path:
    """outputs/<part>-<part>-...: e.g. default_output_dir("minilm-l6", "rotten-tomatoes", "full")."""
    return Path("outputs") / "-".join(name_slug(part) for part in parts)


class RunFolder:
    """Lock, stage and atomically publish one run's output folder.

        with RunFolder(output_dir, overwrite=False, settings=config_dict, resume=True) as folder:
            trainer_output = folder.checkpoints        # where Trainer checkpoints go
            folder.resume_from                         # the last checkpoint of an interrupted run, or None
            ... save the model into folder.staging ...
            folder.write_outputs(result, predictions, command, started)   # predictions, plots, metrics, card
            folder.commit()

    `settings` (a JSON-able dict) marks the staging folder as resumable: rerunning with equal settings resumes,
    with other settings raises UserError. Only the main process of a distributed run locks, cleans and commits;
    every process sees the same paths. Raises UserError when OUT exists and `overwrite` is false, or another run
    holds OUT's lock.
    """

    def __init__(self, output_dir: str | Path, *, overwrite: bool, settings: dict | None = None, resume: bool = True):
        self.output_dir = Path(output_dir)
        self.staging = self.output_dir.with_name(self.output_dir.name + STAGING_SUFFIX)
        self.replaced = self.output_dir.with_name(self.output_dir.name + REPLACED_SUFFIX)
        self.lock_path = self.output_dir.with_name(f".{self.output_dir.name}{LOCK_SUFFIX}")  # hidden, reused
        self.overwrite = overwrite
        self.settings = settings
        self.resume = resume
        self.main = is_main_process()
        self.resume_from: Path | None = None
        self._lock_handle = None
        self.committed = False

    @property
    def checkpoints(self) -> Path:
        return self.staging / CHECKPOINTS

    # -- entering: lock, recover, check -----------------------------------------------------------------------

    def __enter__(self) -> "RunFolder":
        if self.main:
            self._lock()
            try:
                self._recover()
                if self.output_dir.exists() and not self.overwrite:
                    raise UserError(f"output folder {self.output_dir} exists: pass overwrite_output_dir=true to "
                                    "replace it, or output_dir=ANOTHER")
                self._prepare_staging()
            except BaseException:
                self._unlock()
                raise
        self.resume_from = self._last_checkpoint() if self.settings is not None else None
        return self

    def _lock(self) -> None:
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.lock_path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise UserError(f"output folder {self.output_dir} is being written by another run (pid {holder}): "
                            "wait for it to finish, or pass output_dir=ANOTHER") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_handle = handle

    def _unlock(self) -> None:
        if self._lock_handle is not None:
            self._lock_handle.close()  # closing drops the flock; the file stays, harmless and reused
            self._lock_handle = None

    def _recover(self) -> None:
        """Finish what a replace cut off by a crash left: the new folder in place, the old one gone."""
        if self.replaced.exists():
            if not self.output_dir.exists():  # the fallback's two renames were cut in between
                self.replaced.rename(self.output_dir)
            else:
                shutil.rmtree(self.replaced)
        if self.staging.exists() and not (self.staging / RUN_MARKER).is_file():
            shutil.rmtree(self.staging)  # no run's settings: an old folder swapped out, or an unfinished write

    def _prepare_staging(self) -> None:
        marker = self.staging / RUN_MARKER
        if self.staging.exists():
            saved = json.loads(marker.read_text()).get("settings")
            if self.settings is None or not self.resume:
                shutil.rmtree(self.staging)
            elif saved != self.settings:
                raise UserError(f"{self.staging} holds an interrupted run with other settings "
                                f"({_first_difference(saved, self.settings)}): rerun with its settings to resume "
                                "from its last checkpoint, or pass resume=false to start over")
        self.staging.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"settings": self.settings, "pid": os.getpid(), "started": time.time()}))

    def _last_checkpoint(self) -> Path | None:
        """The newest complete Trainer checkpoint in staging (trainer_state.json is written last)."""
        steps = {}
        for folder in self.checkpoints.glob("checkpoint-*") if self.checkpoints.is_dir() else ():
            step = folder.name.rsplit("-", 1)[1]
            if step.isdigit() and (folder / "trainer_state.json").is_file():
                steps[int(step)] = folder
        return steps[max(steps)] if steps else None

    # -- writing ----------------------------------------------------------------------------------------------

    def write_jsonl(self, name: str, rows: Iterable[dict]) -> Path:
        path = self.staging / name
        with open(path, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row) + "\n")
        return path

    def write_outputs(self, result, predictions: list[dict], command: str | None, started: float) -> None:
        """predictions.jsonl, the plots the result supports, metrics.json and the card (README.md), in staging.

        `started` is the run's perf_counter() start: total_time_s counts up to here. The card names the final
        folder as where readers load from.
        """
        from .cards import render_card
        from .plots import confusion_matrix_plot, loss_curve_plot

        shutil.rmtree(self.checkpoints, ignore_errors=True)  # the run is complete: nothing left to resume
        self.write_jsonl(PREDICTIONS_FILE, predictions)
        test = result.metrics.get("test", {})
        if "confusion_matrix" in test:
            confusion_matrix_plot(test["confusion_matrix"], result.task["label_names"],
                                  self.staging / "confusion_matrix.png", "test split")
        loss_curve_plot(result.training.get("log_history", []), self.staging / "loss_curve.png")
        result.compute["total_time_s"] = time.perf_counter() - started
        result.save(self.staging)
        render_card(result, self.staging, str(self.output_dir.resolve()), command).save(self.staging / "README.md")

    # -- leaving: commit or clean up --------------------------------------------------------------------------

    def commit(self) -> None:
        """Put the staged folder at OUT atomically (see the module docstring); the old OUT is deleted after."""
        if not self.main:
            return
        (self.staging / RUN_MARKER).unlink(missing_ok=True)
        _make_readable(self.staging)
        self.output_dir.parent.mkdir(parents=True, exist_ok=True)
        self._after_step("staged")
        if not self.output_dir.exists():
            self.staging.rename(self.output_dir)
            self._after_step("renamed")
        elif _exchange(self.staging, self.output_dir):
            self._after_step("exchanged")
            self.staging.rename(self.replaced)
            self._after_step("old moved aside")
            shutil.rmtree(self.replaced)
        else:
            self.output_dir.rename(self.replaced)
            self._after_step("old moved aside")
            self.staging.rename(self.output_dir)
            self._after_step("renamed")
            shutil.rmtree(self.replaced)
        self.committed = True

    @staticmethod
    def _after_step(step: str) -> None:
        """Called between the filesystem steps of a commit; tests make a process die here."""

    def __exit__(self, exc_type, exc, traceback) -> None:
        if not self.main:
            return
        try:
            if exc_type is not None and not self.committed:
                resumable = self.settings is not None and self._last_checkpoint() is not None
                if resumable and not issubclass(exc_type, UserError):
                    logger.warning(f"the run stopped; its checkpoints stay in {self.staging}: run the same "
                                   "command again to resume")
                else:
                    shutil.rmtree(self.staging, ignore_errors=True)
        finally:
            self._unlock()


def write_file_atomically(path: str | Path, write: Callable[[Any], None], encoding: str = "utf-8") -> Path:
    """Call `write(handle)` on PATH.partial, then rename it to PATH: readers never see half a file."""
    path = Path(path)
    partial = path.with_name(path.name + STAGING_SUFFIX)
    try:
        with open(partial, "w", encoding=encoding) as handle:
            write(handle)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def _first_difference(saved: Any, current: Any, prefix: str = "") -> str:
    if isinstance(saved, dict) and isinstance(current, dict):
        for key in sorted(set(saved) | set(current)):
            if saved.get(key) != current.get(key):
                return _first_difference(saved.get(key), current.get(key), f"{prefix}{key}.")
    return f"{prefix.rstrip('.')}: {saved!r} then, {current!r} now"


def _make_readable(folder: Path) -> None:
    """Ordinary permissions (0644 under the usual umask): some writers create 0600 files via temporary files."""
    umask = os.umask(0)
    os.umask(umask)
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            os.chmod(path, 0o666 & ~umask)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    libc_name = ctypes.util.find_library("c")
    renameat2 = getattr(ctypes.CDLL(libc_name, use_errno=True), "renameat2", None) if libc_name else None
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):  # old kernel or a filesystem without it
        return False
    raise OSError(error, os.strerror(error), str(a))
