"""The output folder of a run, for every pipeline (classify, zero-shot, and those to come).

While a run works on OUT:

    .OUT.lock      a lock file the run's main process holds (fcntl.flock) from start to end. A second run on OUT is
                   refused at once, naming the holder's pid (refused rather than made to wait: the user asked for
                   two results in one place, and a waiting run would silently replace the first one's, or be
                   refused anyway once it exists); the kernel drops the lock when a process dies, so a killed run
                   never leaves a stale lock.
    OUT.partial/   the run's private staging folder: checkpoints while training (with `.run.json`, the settings they
                   belong to), then every output file. A rerun of the same settings resumes from its last
                   checkpoint; other settings are refused in one line (or `resume=false` starts over).

When everything is written, the checkpoints move aside (.OUT.discarded) and OUT.partial takes OUT's place in one
atomic step (Linux renameat2 RENAME_EXCHANGE), so at every instant OUT is either the old complete folder or the new
one; the old one and the checkpoints are then deleted. Where the exchange is missing (old kernels, some network
filesystems) two renames are used: a crash between them leaves OUT absent and the old folder at OUT.replaced, put
back by the next run on OUT before anything else. An existing OUT is only replaced with overwrite_output_dir=true.
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

from .errors import UserError, first_line
from .log import is_main_process, logger

STAGING_SUFFIX = ".partial"
REPLACED_SUFFIX = ".replaced"
LOCK_SUFFIX = ".lock"
RUN_MARKER = ".run.json"  # in staging only: the settings a resumable run's checkpoints belong to
CHECKPOINTS = "checkpoints"
DISCARDED_SUFFIX = ".discarded"  # .OUT.discarded: a finished run's checkpoints, deleted after the commit
HOLDER_WAIT_S = 1.0  # how long a refused run waits for the lock holder to write its pid into the lock file
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
    with other settings raises UserError (unless `resume` is false: then it starts over). Only the main process of
    a distributed run locks, cleans and commits; it tells the others (torch.distributed, where initialised) whether
    the run goes ahead and from which checkpoint, so every process raises the same UserError or resumes from the
    same step. Raises UserError when OUT exists and `overwrite` is false, or another run holds OUT's lock.
    """

    def __init__(self, output_dir: str | Path, *, overwrite: bool, settings: dict | None = None, resume: bool = True):
        self.output_dir = Path(output_dir)
        self.staging = self.output_dir.with_name(self.output_dir.name + STAGING_SUFFIX)
        self.replaced = self.output_dir.with_name(self.output_dir.name + REPLACED_SUFFIX)
        self.discarded = self.output_dir.with_name(f".{self.output_dir.name}{DISCARDED_SUFFIX}")  # hidden too
        self.lock_path = self.output_dir.with_name(f".{self.output_dir.name}{LOCK_SUFFIX}")  # hidden, reused
        self.overwrite = overwrite
        # as JSON gives it back from the marker: tuples become lists, keys strings
        self.settings = json.loads(json.dumps(settings)) if settings is not None else None
        self.resume = resume
        self.main = is_main_process()
        self.resume_from: Path | None = None
        self._lock_handle = None
        self.committed = False

    @property
    def checkpoints(self) -> Path:
        """OUT.partial/checkpoints: where the Trainer writes its checkpoints (moved aside at commit)."""
        return self.staging / CHECKPOINTS

    # -- entering: lock, recover, check -----------------------------------------------------------------------

    def __enter__(self) -> "RunFolder":
        refusal, resume_from = None, None
        if self.main:
            try:
                self._lock()
                try:
                    self._recover()
                    if self.output_dir.exists() and not self.overwrite:
                        raise UserError(f"output folder {self.output_dir} exists: pass overwrite_output_dir=true to "
                                        "replace it, or output_dir=ANOTHER")
                    self._prepare_staging()
                    resume_from = self._last_checkpoint()
                except BaseException:
                    self._unlock()
                    raise
            except UserError as err:
                refusal = str(err)
            except BaseException as err:
                _share_with_all_processes([f"the main process failed: {first_line(err)}", None])
                raise
        refusal, resume_from = _share_with_all_processes([refusal, str(resume_from) if resume_from else None])
        if refusal:
            raise UserError(refusal)
        self.resume_from = Path(resume_from) if resume_from else None
        return self

    def _lock(self) -> None:
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.lock_path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder, deadline = "", time.monotonic() + HOLDER_WAIT_S
            while not holder and time.monotonic() < deadline:  # the holder writes its pid just after locking
                handle.seek(0)
                holder = handle.read().strip()
                time.sleep(0 if holder else 0.05)
            handle.close()
            raise UserError(f"output folder {self.output_dir} is being written by another run (pid "
                            f"{holder or 'unknown'}): wait for it to finish, or pass output_dir=ANOTHER") from None
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
        """Finish what a replace cut off by a crash left: a complete folder at OUT, nothing else."""
        if self.discarded.exists() or self.discarded.is_symlink():
            _remove(self.discarded)
        if self.replaced.exists() or self.replaced.is_symlink():
            if not self.output_dir.exists():  # the fallback's two renames were cut in between: put the old one back
                self.replaced.rename(self.output_dir)
            else:
                _remove(self.replaced)
        if self.staging.exists() and _read_marker(self.staging) is None:
            # no run's settings: a committing run's complete folder (its marker goes first) or the old folder
            # it swapped out; neither is resumable, and OUT holds a complete folder
            _remove(self.staging)

    def _prepare_staging(self) -> None:
        if self.staging.exists():
            saved = _read_marker(self.staging).get("settings")
            resumable = self.settings is not None and self.resume and self._last_checkpoint() is not None
            if resumable and saved != self.settings:
                raise UserError(f"{self.staging} holds an interrupted run with other settings "
                                f"({_first_difference(saved, self.settings)}): rerun with its settings to resume "
                                "from its last checkpoint, or pass resume=false to start over")
            if not resumable:
                shutil.rmtree(self.staging)  # nothing to resume: start from an empty folder
        self.staging.mkdir(parents=True, exist_ok=True)
        write_file_atomically(self.staging / RUN_MARKER, lambda handle: json.dump(
            {"settings": self.settings, "pid": os.getpid(), "started": time.time()}, handle))

    def _last_checkpoint(self) -> Path | None:
        """The newest complete Trainer checkpoint in staging; None without settings (a run that is not resumable).

        Trainer writes trainer_state.json after the weights, optimizer and RNG states, and deletes the older
        checkpoint only after that, so a checkpoint cut off mid-write has no readable trainer_state.json and the
        one before it is still there."""
        if self.settings is None:
            return None
        steps = {}
        for folder in self.checkpoints.glob("checkpoint-*") if self.checkpoints.is_dir() else ():
            step = folder.name.rsplit("-", 1)[1]
            try:
                complete = step.isdigit() and "global_step" in json.loads((folder / "trainer_state.json").read_text())
            except (OSError, ValueError):
                complete = False
            if complete:
                steps[int(step)] = folder
        return steps[max(steps)] if steps else None

    # -- writing ----------------------------------------------------------------------------------------------

    def write_jsonl(self, name: str, rows: Iterable[dict]) -> Path:
        """Write `rows` as JSON Lines (one object per line, UTF-8) to staging/`name`; returns the path."""
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
        """Put the staged folder at OUT atomically (see the module docstring); the checkpoints and the old OUT
        are deleted. A crash between any two steps leaves a complete folder at OUT (or, on the fallback path,
        the old one at OUT.replaced, put back by the next run), and the next run on OUT removes the rest.

        The checkpoints stay until the outputs are complete and leave by a rename, so a crash loses the
        finished run only between two renames and an unlink (the checkpoints moved aside, the marker deleted)."""
        if not self.main:
            return
        _make_readable(self.staging)
        if self.checkpoints.exists():
            self.checkpoints.rename(self.discarded)
            self._after_step("checkpoints moved aside")
        (self.staging / RUN_MARKER).unlink(missing_ok=True)
        self._after_step("marker deleted")
        self.output_dir.parent.mkdir(parents=True, exist_ok=True)
        if not self.output_dir.exists():
            self.staging.rename(self.output_dir)
            self._after_step("renamed")
        elif _exchange(self.staging, self.output_dir):
            self._after_step("exchanged")
            self.staging.rename(self.replaced)
            self._after_step("old moved aside")
            _remove(self.replaced)
        else:
            self.output_dir.rename(self.replaced)
            self._after_step("old moved aside")
            self.staging.rename(self.output_dir)
            self._after_step("renamed")
            _remove(self.replaced)
        if self.discarded.exists():
            shutil.rmtree(self.discarded)
        self.committed = True

    @staticmethod
    def _after_step(step: str) -> None:
        """Called between the filesystem steps of a commit; tests make a process die here."""

    def __exit__(self, exc_type, exc, traceback) -> None:
        if not self.main:
            return
        try:
            if not self.committed:
                failed = exc_type is not None and not issubclass(exc_type, UserError)
                if failed and self._last_checkpoint() is not None:
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


def _share_with_all_processes(values: list) -> list:
    """`values` as the main process has them, on every process of a distributed run (as is otherwise).

    torch.distributed directly: under `accelerate launch` with no GPU, PartialState reports no distributed type
    (so accelerate.utils.broadcast_object_list does nothing) while the gloo process group is up."""
    import torch.distributed

    distributed = torch.distributed
    if distributed.is_available() and distributed.is_initialized() and distributed.get_world_size() > 1:
        distributed.broadcast_object_list(values, src=0)
    return values


def _read_marker(staging: Path) -> dict | None:
    """The run marker of a staging folder; None where it is missing or unreadable (cut off mid-write by an older
    version: now it is written atomically)."""
    try:
        marker = json.loads((staging / RUN_MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def _remove(path: Path) -> None:
    """Delete a folder, or a file or link where one stands (a user may have linked OUT to a folder elsewhere)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


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
