"""Exit status 2 and one line for a user error under `accelerate launch`, as under plain python.

`accelerate launch` runs the recipe in a child process and treats any non-zero exit as its own failure: the simple
launcher raises `subprocess.CalledProcessError` (accelerate/commands/launch.py: simple_launcher), the multi-process
path lets torch.distributed.run raise `ChildFailedError`; either way a traceback follows the recipe's one-line error
and the launcher exits 1. Our code never runs in that parent process, except through Python's startup: the
`hf_transfer_launch.pth` file this distribution installs into site-packages runs, at every interpreter start, a
line that imports this module and calls `install` only when `accelerate` is among the first two arguments
(`sys.orig_argv`), which costs every other process a string test (under a microsecond). In an `accelerate launch`
process `install` sets a sys.excepthook that ends the process with status 2, silently, when the launched child's
exit status was 2 (USER_ERROR_EXIT: the child has printed its line); any other failure keeps accelerate's traceback
and status. A multi-process launch prints the line once: hf_transfer.cli.one_line_per_launch; torch's elastic agent,
which runs it in accelerate's process, would follow it with two log lines of its own (its notice that it stops the
other processes, and `failed (exitcode: 2)`): `install` filters those out (quiet_user_error_exit).
`accelerate launch --quiet` exits 1 without a traceback before any hook runs, and stays so.
"""

from __future__ import annotations

import logging
import os
import sys

USER_ERROR_EXIT = 2  # hf_transfer.errors.USER_ERROR_EXIT; not imported: this module runs inside accelerate's process
ELASTIC_LOGGER = "torch.distributed.elastic.multiprocessing.api"  # torch's multi-process launcher


def is_accelerate_launch(argv: list[str]) -> bool:
    """`accelerate launch ...`, `accelerate-launch ...` or `python -m accelerate.commands.launch ...`."""
    command = [os.path.basename(arg) for arg in argv[1:3]]
    return (command[:2] == ["accelerate", "launch"] or command[:1] == ["accelerate-launch"]
            or argv[1:3] == ["-m", "accelerate.commands.launch"])


def child_exit_status(error: BaseException) -> int | None:
    """The launched child's exit status carried by accelerate's CalledProcessError or torch's ChildFailedError."""
    if type(error).__name__ == "CalledProcessError":
        return getattr(error, "returncode", None)
    if type(error).__name__ == "ChildFailedError":  # torch.distributed.elastic: the first process that failed
        _, failure = error.get_first_failure()
        return failure.exitcode
    return None


def quiet_user_error_exit(record: logging.LogRecord) -> bool:
    """A logging filter for torch's elastic agent: False (drop) for its notice that it stops the other processes
    and for its `failed (exitcode: 2)` line, which follow a child's one-line user error; True for every other
    record (a failure with any other exit status keeps its line and accelerate's traceback)."""
    message = str(record.msg)
    if message.startswith("Sending process %s closing signal"):
        return False
    return not (message.startswith("failed (exitcode: %s)") and bool(record.args)
                and record.args[0] == USER_ERROR_EXIT)


def install() -> None:
    """In an `accelerate launch` process, map a child's user-error exit to a silent exit with the same status."""
    if not is_accelerate_launch(sys.orig_argv) or getattr(sys.excepthook, "hf_transfer", False):
        return
    previous = sys.excepthook

    def excepthook(kind, error, traceback):
        if child_exit_status(error) == USER_ERROR_EXIT:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(USER_ERROR_EXIT)  # an excepthook cannot set the exit status; the child said all there is
        previous(kind, error, traceback)

    excepthook.hf_transfer = True
    sys.excepthook = excepthook
    logging.getLogger(ELASTIC_LOGGER).addFilter(quiet_user_error_exit)
