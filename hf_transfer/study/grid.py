"""The study's grid: one Job per (arm, size, seed), each an ordinary run config with its own run folder.

    runs/<arm>-<size>-seed<seed>/    a classify run: size 16, 64, ... or all; seed 1, 2, ...
    runs/<arm>/                      a zero-shot run: no training examples, no seed (it is deterministic)

A classify job's config is the study's model, data and train sections under the arm's keys, with
`data.max_train_samples` = size (null for all), `data.subsample_seed` = `train.seed` = seed, the small-data rule's
schedule (hf_transfer.schedule) and `output_dir` = its folder. `data.seed`, hence the test split, never changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..assets import ASSETS
from ..config import ClassifyConfig, CompareConfig, ZeroShotConfig, from_dict, to_dict
from ..errors import UserError
from ..schedule import DEFAULT_EPOCHS, small_data_schedule

RUNS_DIR = "runs"
ALL = "all"


@dataclass(frozen=True)
class Job:
    """One run of a study: picklable (plain values only), so that any executor can ship it.

    `config` is the run config as a dict (ClassifyConfig or ZeroShotConfig, by `kind`), output_dir included;
    `size` is the requested size (a number, "all", or 0 for zero-shot), `train_examples` the examples it trains on.
    """

    name: str
    arm: str
    kind: str  # "classify" | "zero-shot"
    size: int | str
    train_examples: int
    seed: int | None
    config: dict[str, Any] = field(hash=False)
    schedule_changes: tuple[str, ...] = ()

    @property
    def folder(self) -> Path:
        """The run's output folder (its config's output_dir)."""
        return Path(self.config["output_dir"])

    def run_config(self) -> ClassifyConfig | ZeroShotConfig:
        """The job's config as the run function takes it."""
        return from_dict(ClassifyConfig if self.kind == "classify" else ZeroShotConfig, self.config)


def run_folder_name(arm: str, size: int | str | None = None, seed: int | None = None) -> str:
    """`full-16-seed1`, `full-all-seed2`; a zero-shot arm's folder is its name alone."""
    return arm if size is None else f"{arm}-{size}-seed{seed}"


def check_sizes(sizes: list[int | str], train_size: int, num_labels: int) -> None:
    """UserError, before any training, for a size the train split cannot give as a stratified sample."""
    for size in sizes:
        if size == ALL:
            continue
        if size > train_size:
            raise UserError(f"size {size} is larger than the train split ({train_size} examples after the test and "
                            f"validation splits): use sizes of at most {train_size}, or all")
        if size < num_labels:
            raise UserError(f"size {size} is smaller than the number of labels ({num_labels}): a stratified sample "
                            f"needs one example of each; use sizes of at least {num_labels}")


def build_jobs(config: CompareConfig, train_size: int, study_dir: Path) -> list[Job]:
    """Every job of the study, zero-shot arms first, then by size (smallest first), seed and arm.

    That order finishes a whole small-size slice of the grid early. `train_size` is the number of examples in the
    full train split ("all"); `study_dir` should be absolute (Ray workers may start elsewhere).
    """
    runs = Path(study_dir) / RUNS_DIR
    kinds = {name: _absolute_paths(*config.arm_values(name)) for name in config.arms}
    jobs = []
    for arm, (kind, values) in kinds.items():
        if kind == "zero-shot":
            folder = runs / run_folder_name(arm)
            run = from_dict(ZeroShotConfig, {**values, "output_dir": str(folder)}, prefix=f"arms.{arm}.")
            jobs.append(Job(folder.name, arm, kind, 0, 0, None, to_dict(run)))
    for size in sorted(config.sizes, key=lambda s: train_size if s == ALL else s):
        examples = train_size if size == ALL else size
        for seed in config.seeds:
            for arm, (kind, values) in kinds.items():
                if kind == "classify":
                    jobs.append(_classify_job(config, arm, values, size, examples, seed, runs))
    return jobs


def _absolute_paths(kind: str, values: dict) -> tuple[str, dict]:
    """Local paths (data, model, tokenizer, vectors) made absolute: a Ray worker may start in another folder.
    Asset names stay names, as the readers look them up first."""
    def absolute(name):
        if not name or name in ASSETS or not Path(name).expanduser().exists():
            return name
        return str(Path(name).expanduser().resolve())

    values = {**values, "data": {**values["data"], "dataset": absolute(values["data"]["dataset"])}}
    for key in ("model", "tokenizer", "vectors"):
        if key in values:
            values[key] = absolute(values[key])
    return kind, values


def _classify_job(config: CompareConfig, arm: str, values: dict, size, examples: int, seed: int, runs: Path) -> Job:
    folder = runs / run_folder_name(arm, size, seed)
    data = {**values["data"], "max_train_samples": None if size == ALL else size, "subsample_seed": seed}
    train = {**values["train"], "seed": seed}
    changes: tuple[str, ...] = ()
    if config.small_data_rule:
        schedule = small_data_schedule(
            examples, epochs=train["epochs"] or DEFAULT_EPOCHS, batch_size=train["batch_size"], learning_rate=train["learning_rate"],
            warmup_ratio=train["warmup_ratio"], strategy=values.get("strategy", ClassifyConfig.strategy),
            gradient_accumulation_steps=train["gradient_accumulation_steps"], max_steps=train["max_steps"])
        train.update(batch_size=schedule.batch_size, gradient_accumulation_steps=schedule.gradient_accumulation_steps,
                     epochs=schedule.epochs, warmup_ratio=schedule.warmup_ratio)
        changes = schedule.changes
    train["epochs"] = train["epochs"] or DEFAULT_EPOCHS  # explicit: the run keeps the study's schedule
    run = from_dict(ClassifyConfig, {**values, "data": data, "train": train, "output_dir": str(folder)},
                    prefix=f"arms.{arm}.")
    return Job(folder.name, arm, "classify", size, examples, seed, to_dict(run), changes)
