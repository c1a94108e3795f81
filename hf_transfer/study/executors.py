"""Executors: where a study's jobs run. Both take the jobs and the callable that runs one, `run_job(job) -> folder`.

- LocalExecutor: one job after another in this process. In-process, so that the caches the runner keeps
  (tokenized data, frozen features; see runner.py) live across jobs; a crash or kill loses only the job in flight,
  whose run folder is never renamed into place.
- RayExecutor: the jobs as Ray tasks (Ray core, `pip install hf-transfer-learning[ray]`), as many at once as the
  cluster has CPUs / GPUs for (`executor.cpus_per_run`, `executor.gpus_per_run`). With `executor.address` null it
  starts a local Ray instance of `executor.num_workers` CPUs; 'auto' or ray://HOST:PORT joins a running cluster,
  whose nodes must all see the study folder (a shared file system) and have this package installed. Each run
  itself can still use accelerate for several GPUs.

A job that fails stops the study (other Ray tasks are cancelled); its error names the run, and rerunning the study
retries it, skipping the finished ones.
"""

from __future__ import annotations

from typing import Callable, Protocol, Sequence

from ..config import ExecutorConfig
from ..errors import UserError
from .grid import Job

RunJob = Callable[[Job], str]
OnDone = Callable[[Job, str], None]


class Executor(Protocol):
    """How a study's jobs run (executor.kind): LocalExecutor or RayExecutor."""

    def run(self, jobs: Sequence[Job], run_job: RunJob, on_done: OnDone) -> None:
        """Run every job with `run_job`, calling `on_done(job, folder)` as each finishes (in the caller's process)."""


def _named(job: Job, err: UserError) -> UserError:
    return UserError(f"run {job.name}: {err}")


class LocalExecutor:
    """One job after another, in this process."""

    def run(self, jobs: Sequence[Job], run_job: RunJob, on_done: OnDone) -> None:
        """Run the jobs in order in this process, calling `on_done` after each. An error stops the study; a UserError's
        message is prefixed with the job's name."""
        for job in jobs:
            try:
                folder = run_job(job)
            except UserError as err:
                raise _named(job, err) from None
            on_done(job, folder)


def _run_remote(run_job: RunJob, job: Job) -> str:
    return run_job(job)


class RayExecutor:
    """Jobs as Ray tasks; see the module docstring for the settings."""

    def __init__(self, config: ExecutorConfig):
        """`config`: the study's executor settings (address, num_workers, cpus_per_run, gpus_per_run)."""
        self.config = config

    def run(self, jobs: Sequence[Job], run_job: RunJob, on_done: OnDone) -> None:
        """Submit every job as a Ray task (a cluster at `address`, else a local Ray started here and shut down after)
        and call `on_done` as each finishes. The first failure cancels the pending tasks and is raised, a UserError
        prefixed with the job's name; raises UserError when Ray is not installed."""
        try:
            import ray
        except ImportError:
            raise UserError("executor.kind=ray needs Ray: pip install 'hf-transfer-learning[ray]' "
                            "(or executor.kind=local)") from None
        started_here = not ray.is_initialized()
        if started_here:
            if self.config.address:
                ray.init(address=self.config.address, log_to_driver=True)
            else:
                ray.init(num_cpus=self.config.num_workers, num_gpus=0 if not self.config.gpus_per_run else None,
                         include_dashboard=False, log_to_driver=True)
        try:
            remote = ray.remote(_run_remote).options(num_cpus=self.config.cpus_per_run,
                                                     num_gpus=self.config.gpus_per_run, max_retries=0)
            runner = ray.put(run_job)  # one copy in the object store, not one per task
            pending = {remote.remote(runner, job): job for job in jobs}
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                job = pending.pop(done[0])
                try:
                    folder = ray.get(done[0])
                except ray.exceptions.RayTaskError as err:
                    for ref in pending:
                        ray.cancel(ref, force=True)
                    cause = err.cause
                    if isinstance(cause, UserError):
                        raise _named(job, cause) from None
                    raise cause if isinstance(cause, Exception) else err
                on_done(job, folder)
        finally:
            if started_here:
                ray.shutdown()


def make_executor(config: ExecutorConfig) -> Executor:
    """The executor `executor.kind` names."""
    return RayExecutor(config) if config.kind == "ray" else LocalExecutor()
