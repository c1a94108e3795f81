"""The startup hook that gives `accelerate launch` the recipe's exit status 2 (hf_transfer/launch_hook.py).

The launchers themselves run in tests/test_bad_input_catalogue.py; here: what the hook recognises, and that the
installed environment carries it.
"""

import logging
import subprocess
import sys
import sysconfig
from pathlib import Path

from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

from hf_transfer.launch_hook import child_exit_status, is_accelerate_launch, quiet_user_error_exit

ROOT = Path(__file__).parents[1]


def test_the_accelerate_launch_commands():
    python = sys.executable
    assert is_accelerate_launch([python, "/venv/bin/accelerate", "launch", "recipes/classify.py"])
    assert is_accelerate_launch([python, "/venv/bin/accelerate-launch", "recipes/classify.py"])
    assert is_accelerate_launch([python, "-m", "accelerate.commands.launch", "recipes/classify.py"])
    assert not is_accelerate_launch([python, "/venv/bin/accelerate", "config"])
    assert not is_accelerate_launch([python, "recipes/classify.py", "model=accelerate"])
    assert not is_accelerate_launch([python, "-c", "pass"])


def test_the_child_exit_status_of_each_launcher():
    assert child_exit_status(subprocess.CalledProcessError(2, ["python", "recipes/classify.py"])) == 2
    failures = {0: ProcessFailure(local_rank=0, pid=11, exitcode=2, error_file="<N/A>"),
                1: ProcessFailure(local_rank=1, pid=12, exitcode=-15, error_file="<N/A>")}
    failures[1].timestamp = failures[0].timestamp + 1  # rank 1 was stopped after rank 0 failed
    assert child_exit_status(ChildFailedError("recipes/classify.py", failures)) == 2
    assert child_exit_status(ValueError("not a launcher's")) is None


def test_the_environment_carries_the_startup_file():
    installed = Path(sysconfig.get_paths()["purelib"]) / "hf_transfer_launch.pth"
    assert installed.is_file(), "reinstall the package (pip install -e .): setup.py ships hf_transfer_launch.pth"
    assert installed.read_text() == (ROOT / "hf_transfer_launch.pth").read_text()


def test_torchs_launcher_lines_after_a_user_error_are_filtered_and_others_kept():
    def record(message, *args):
        return logging.LogRecord("torch.distributed.elastic.multiprocessing.api", logging.ERROR, "api.py", 1, message,
                                 args, None)

    failed = "failed (exitcode: %s) local_rank: %s (pid: %s) of binary: %s"
    assert not quiet_user_error_exit(record(failed, 2, 0, 11, "recipes/classify.py"))
    assert not quiet_user_error_exit(record("Sending process %s closing signal %s", 12, "SIGTERM"))
    assert quiet_user_error_exit(record(failed, 1, 0, 11, "recipes/classify.py")), "a crash keeps its line"
    assert quiet_user_error_exit(record("Starting elastic_operator with launch configs:"))
