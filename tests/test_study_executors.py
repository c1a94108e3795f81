"""Executors without training: every job runs once, results come back to the caller, and a failing job stops the
study with one line naming its run."""

import sys

import pytest

from hf_transfer.config import ExecutorConfig
from hf_transfer.errors import UserError
from hf_transfer.study.executors import make_executor
from hf_transfer.study.grid import Job


def jobs(tmp_path, names):
    return [Job(name, "arm", "classify", 16, 16, 1, {"output_dir": str(tmp_path / name)}) for name in names]


def write_marker(job: Job) -> str:
    """A stand-in for a run: writes the job's folder, refuses the job named 'bad'."""
    if job.name == "bad":
        raise UserError("this run cannot apply")
    job.folder.mkdir(parents=True)
    (job.folder / "metrics.json").write_text("{}")
    return str(job.folder)


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance for this module's tests (starting one takes a while); RayExecutor joins it."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    yield
    ray.shutdown()


@pytest.fixture(params=["local", "ray"])
def executor(request):
    if request.param == "ray":
        request.getfixturevalue("ray_instance")
    return make_executor(ExecutorConfig(kind=request.param, num_workers=2))


def test_every_job_runs_once_and_is_reported_back(executor, tmp_path):
    done = []
    executor.run(jobs(tmp_path, ["a", "b", "c"]), write_marker, lambda job, folder: done.append((job.name, folder)))
    assert sorted(done) == [(name, str(tmp_path / name)) for name in ("a", "b", "c")]


def test_a_failing_job_is_one_line_naming_its_run(executor, tmp_path):
    with pytest.raises(UserError) as err:
        executor.run(jobs(tmp_path, ["bad"]), write_marker, lambda job, folder: None)
    assert str(err.value) == "run bad: this run cannot apply"


def test_ray_missing_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(UserError, match="executor.kind=ray needs Ray: pip install"):
        make_executor(ExecutorConfig(kind="ray")).run(jobs(tmp_path, ["a"]), write_marker, lambda job, folder: None)
