"""run_study: check everything, run the grid's unfinished jobs on an executor, and write the study folder.

    STUDY/
      study.yaml         the resolved study config (`hf-transfer compare --config STUDY/study.yaml` reruns it)
      jobs.json          every job's run config by run name: a rerun refuses a finished run whose settings changed
      baselines.json     majority class and TF-IDF + logistic regression on every evaluation set, fitted once
                         (task=token-classification: memorisation, each word's most frequent training tag)
      runs/<run>/        one ordinary output folder per job (see grid.py for the names)
      features/          frozen backbones' features, one <key>.npy per backbone and split (hf_transfer.features)
      results.jsonl  summary.csv  summary.md  *.png  README.md (the study card)

Order of work: config checks (CompareConfig), data, sizes, out-of-domain sets, every arm on its backbone, then
training; so every bad input is one line before the first run starts. Rerunning skips finished runs.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..baselines import majority_baseline, memorization_baseline, tfidf_baseline
from ..classify import NOT_SETTINGS, NOT_TRAIN_SETTINGS
from ..config import CompareConfig, to_dict
from ..data import share_loaded_data
from ..tasks import TASKS
from ..errors import UserError
from ..features import FEATURES_DIR, share_features, sharing_features
from ..log import logger
from ..run_folder import default_output_dir
from ..runtime import hardware_description
from .card import render_study_card
from .checks import EvalSet, check_arm, load_eval_set
from .executors import RunJob, make_executor
from .grid import Job, build_jobs, check_sizes
from .plots import study_plots
from .files import BASELINES_FILE, CARD_FILE, JOBS_FILE, STUDY_CONFIG
from .report import Recommendation, recommendations, result_rows, summarize, write_results, write_summary
from .runner import StudyRunner, is_finished

BASELINES = {"majority": majority_baseline, "tfidf-logreg": tfidf_baseline}
TOKEN_BASELINES = {"memorization": memorization_baseline}


@dataclass
class StudyResult:
    """What run_study wrote: the study folder, the results rows, the summary rows and the recommendations."""

    folder: Path
    rows: list[dict]
    summary: list[dict]
    recommendations: list[Recommendation]


def default_study_dir(config: CompareConfig) -> Path:
    """outputs/study-<model>-<dataset>."""
    return default_output_dir("study", config.model, config.data.dataset)


def run_study(config: CompareConfig, run_job: RunJob | None = None) -> StudyResult:
    """Run the study `config` describes and write its folder; returns what it wrote.

    `run_job(job) -> run folder` runs one job (default: StudyRunner, i.e. run_classify / run_zeroshot and the
    out-of-domain scores). Raises UserError, before any training, for bad data, sizes, out-of-domain sets, arms
    that cannot apply to their backbone, and a study folder whose finished runs were made with other settings.
    """
    sharing = share_loaded_data(True)  # data loaded and tokenized once: here, and in each run of this process
    storing = sharing_features()  # StudyRunner turns the feature store on
    try:
        return _run_study(config, run_job)
    finally:
        share_loaded_data(sharing)
        if not storing:
            share_features(False)


def _run_study(config: CompareConfig, run_job: RunJob | None) -> StudyResult:
    started = time.perf_counter()
    study_dir = Path(config.output_dir or default_study_dir(config)).resolve()
    tagging = config.task == "token-classification"
    clash = sorted(set(config.arms) & set(TOKEN_BASELINES if tagging else BASELINES))
    if clash:
        raise UserError(f"arm name {clash[0]!r} is taken by a baseline every study has: rename the arm")
    task = TASKS[config.task].load_data(config.data)
    train_size = len(task.splits["train"])
    # A subsample of sentences is stratified by their rarest entity type, which needs no example of each tag.
    check_sizes(config.sizes, train_size, 1 if tagging else len(task.label_names))
    eval_sets = [load_eval_set(eval_set, task) for eval_set in config.eval_sets]
    jobs = build_jobs(config, train_size, study_dir)
    recorded = _check_recorded_jobs(study_dir, jobs)
    for name in config.arms:
        logger.info("checking arm %s", name)
        check_arm(name, *config.arm_values(name), task, bool(eval_sets))

    study_dir.mkdir(parents=True, exist_ok=True)
    (study_dir / STUDY_CONFIG).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
    _write_json(study_dir / JOBS_FILE, {**recorded, **{job.name: job.config for job in jobs}})
    baselines = _baselines(study_dir, config, task, eval_sets)

    names = [eval_set.name for eval_set in eval_sets]
    pending = [job for job in jobs if not is_finished(job.folder, names)]
    logger.info("study %s: %d runs, %d finished, %d to run on %s", study_dir, len(jobs), len(jobs) - len(pending),
                len(pending), config.executor.kind)
    done = iter(range(1, len(pending) + 1))
    make_executor(config.executor).run(
        pending, run_job or StudyRunner(eval_sets, str(study_dir / FEATURES_DIR)),
        on_done=lambda job, folder: logger.info("[%d/%d] %s finished: %s", next(done), len(pending), job.name, folder))

    rows = result_rows(jobs, study_dir, baselines, train_size, names)
    write_results(rows, study_dir)
    summary = summarize(rows)
    write_summary(summary, study_dir, config.task)
    plots = study_plots(summary, config.metric, study_dir)
    recommended = recommendations(rows, config.metric)
    run_time = sum(row["run_time_s"] for row in rows if row["eval_set"] == "test" and row["run_time_s"] is not None)
    hardware = sorted({row["hardware"] for row in rows if row["hardware"]}) or [hardware_description()]
    card = render_study_card(config=config, task=task, jobs=jobs, rows=rows, summary=summary,
                             recommendations_=recommended, baselines=baselines, eval_sets=eval_sets, plots=plots,
                             hardware=hardware, run_time=run_time, wall_time=time.perf_counter() - started)
    card.save(study_dir / CARD_FILE)
    return StudyResult(study_dir, rows, summary, recommended)


def _write_json(path: Path, value) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(value, indent=2, sort_keys=True, default=_plain) + "\n")
    partial.replace(path)


def _plain(value):
    """numpy values (metric reports hold some) as plain Python, for JSON."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def _flat(value, prefix: str = "") -> dict:
    if not isinstance(value, dict):
        return {prefix: value}
    out = {}
    for key, inner in value.items():
        out.update(_flat(inner, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _settings(run_config: dict) -> dict:
    """A run config flattened, without the keys that do not change results (as run_classify's resume check)."""
    ignored = {*NOT_SETTINGS, "threads", *(f"train.{key}" for key in NOT_TRAIN_SETTINGS)}  # threads: zero-shot's
    return {key: value for key, value in _flat(run_config).items() if key not in ignored}


def _check_recorded_jobs(study_dir: Path, jobs: list[Job]) -> dict:
    """The run configs recorded by earlier invocations; UserError if a finished run's settings changed since
    (threads, checkpoint_steps and report_to may change: they do not change results)."""
    path = study_dir / JOBS_FILE
    recorded = json.loads(path.read_text()) if path.is_file() else {}
    for job in jobs:
        before = recorded.get(job.name)
        if before is None or before == job.config or not is_finished(job.folder):
            continue
        old, new = _settings(before), _settings(job.config)
        if old == new:
            continue
        key = next(k for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k))
        raise UserError(f"run {job.name} in {study_dir} was made with {key}={old.get(key)!r}, now {new.get(key)!r}: "
                        f"use another output_dir, or delete {job.folder} to run it again")
    return recorded


def _baselines(study_dir: Path, config: CompareConfig, task, eval_sets: list[EvalSet]) -> dict[str, dict]:
    """The baselines' records on test, validation and every out-of-domain set; reused while data and sets match."""
    path = study_dir / BASELINES_FILE
    key = {"task": config.task, "data": to_dict(config.data), "eval_sets": [to_dict(e) for e in config.eval_sets]}
    cached = json.loads(path.read_text()) if path.is_file() else {}
    if cached.get("key") == key:
        return cached["records"]
    extra = {eval_set.name: (eval_set.texts, eval_set.labels) for eval_set in eval_sets}
    records = {}
    if config.task == "token-classification":
        for name, baseline in TOKEN_BASELINES.items():
            started = time.perf_counter()
            records[name] = {**baseline(task), "model": "each word's most frequent training tag, unseen words O"}
            records[name]["fit_time_s"] = time.perf_counter() - started
    else:
        for name, baseline in BASELINES.items():
            logger.info("baseline %s", name)
            records[name] = baseline(task, eval_sets=extra)
    _write_json(path, {"key": key, "records": records})
    return records
