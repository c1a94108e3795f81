"""The study card: README.md of a study folder, from model_cards/study.md, parseable by huggingface_hub's ModelCard.

Rendered with `hf_transfer.cards.render_template` (the shared Jinja environment and its filters), so it renders on
the Hub like the run cards; the YAML header carries license, language, tags and the Hub data set where there is one.
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData

from ..cards import render_template
from ..data import TaskData
from ..schedule import MIN_OPTIMIZER_STEPS
from .grid import ALL, Job
from .plots import METRIC_NAMES, PLOT_TITLES
from .report import SCORE_COLUMNS, SIGNIFICANCE_LEVEL, Recommendation, Regime, regimes, summary_markdown

SIGNIFICANCE_RULE = (f"a t-test over the seeds gives p < {SIGNIFICANCE_LEVEL} (Welch's between two trained arms; "
                     "one-sample against a deterministic arm, zero-shot or a baseline); otherwise the seeds overlap "
                     "and the ranking is within seed noise. Every arm is scored on the same test set, whose own "
                     "sampling error the test does not include.")
VERDICTS = {
    "significant": "p = {p:.3f}, significant",
    "within seed noise": "{p_text}within seed noise, not significant",
    "exact": "both deterministic",
    "untested": "one seed: not tested",
}


def _examples(item: Recommendation) -> str:
    return f"all {item.train_examples:,}" if item.size == ALL else f"{item.train_examples:,}"


def _margin(item: Recommendation, kinds: dict[str, str]) -> str:
    if item.runner_up is None:
        return "the only arm"
    p_text = "" if item.p_value is None else f"p = {item.p_value:.2f}, "
    verdict = VERDICTS[item.verdict].format(p=item.p_value or 0.0, p_text=p_text)
    return (f"{100 * item.delta:+.1f} points over {item.runner_up}{_zero_shot(item.runner_up, kinds)} "
            f"({100 * item.runner_up_mean:.1f}; {verdict})")


def _zero_shot(arm: str, kinds: dict[str, str]) -> str:
    return " (zero-shot)" if kinds.get(arm) == "zero-shot" else ""


def regime_sentence(regime: Regime, first_of_set: bool, kinds: dict[str, str]) -> str:
    """'With up to 64 labelled examples: **full** (71.2 ± 1.0 at 64), +2.1 points over adapter (...) at 16; ...'."""
    items = regime.items
    if len(items) == 1:
        span = f"With {_examples(items[0])} labelled examples"
    elif first_of_set:
        span = f"With up to {_examples(items[-1])} labelled examples"
    else:
        span = f"With {_examples(items[0])} to {_examples(items[-1])} labelled examples"
    last = items[-1]
    score = f"{100 * last.best_mean:.1f} ± {100 * last.best_std:.1f}"
    margins = "; ".join(f"{_margin(item, kinds)}" + (f" at {_examples(item)}" if len(items) > 1 else "")
                        for item in items)
    zero_shot = "zero-shot, " if kinds.get(regime.best) == "zero-shot" else ""
    return (f"{span}: **{regime.best}** ({zero_shot}{score}{f' at {_examples(last)}' if len(items) > 1 else ''}), "
            f"{margins}.")


def _arm_settings(job: Job) -> str:
    config = job.config
    if job.kind == "zero-shot":
        options = ", ".join(f"{k}={v}" for k, v in config["options"].items())
        return f"method {config['method']}" + (f" ({options})" if options else "")
    text = f"strategy {config['strategy']}"
    if config["strategy_options"]:
        text += " (" + ", ".join(f"{k}={v}" for k, v in config["strategy_options"].items()) + ")"
    if config["head"] != "classification":
        text += f", head {config['head']}"
    return text


def dataset_label(name: str) -> str:
    """How the card names data or a model: an asset or Hub id as is, a local path by its name (no local paths in
    cards)."""
    return Path(name).name if Path(name).expanduser().exists() else name


def render_study_card(*, config, task: TaskData, jobs: list[Job], rows: list[dict], summary: list[dict],
                      recommendations_: list[Recommendation], baselines: dict[str, dict], eval_sets: list,
                      plots: list[Path], hardware: list[str], run_time: float, wall_time: float) -> ModelCard:
    """The study card (a huggingface_hub ModelCard) from what run_study gathered; `config` is the CompareConfig."""
    kinds = {row["arm"]: row["kind"] for row in rows}
    by_set: dict[str, list[str]] = {}
    for regime in regimes(recommendations_):
        sentences = by_set.setdefault(regime.eval_set, [])
        sentences.append(regime_sentence(regime, not sentences, kinds))
    arms, seen = [], set()
    for job in jobs:
        if job.arm not in seen:
            seen.add(job.arm)
            arms.append({"name": job.arm, "kind": job.kind, "model": dataset_label(job.config["model"]),
                         "settings": _arm_settings(job)})
    schedules, shown = [], set()
    for job in jobs:
        if job.schedule_changes and (job.arm, job.size) not in shown:
            shown.add((job.arm, job.size))
            schedules.append({"arm": job.arm, "size": job.size, "changes": job.schedule_changes})
    label = dataset_label(task.source)
    hub_id = label if label.count("/") == 1 and not Path(label).suffix else None
    data = ModelCardData(language=config.language, license=config.license, datasets=[hub_id] if hub_id else None,
                         tags=["hf-transfer", "transfer-study", config.task])
    metric_name = METRIC_NAMES[config.metric]
    best_test = next((r for r in reversed(recommendations_) if r.eval_set == "test"), None)
    arm_names = ", ".join(arm["name"] for arm in arms)
    summary_text = (f"Which transfer, for this task and this compute? {len(arms)} arms ({arm_names}) "
                    f"and {len(baselines)} baselines on {task.description}, at {len(config.sizes)} training-set "
                    f"sizes with {len(config.seeds)} seed(s) each, scored by {metric_name} on the test split"
                    f"{' and ' + str(len(eval_sets)) + ' out-of-domain set(s)' if eval_sets else ''}.")
    if best_test is not None:
        summary_text += (f" With {_examples(best_test)} labelled examples the best is **{best_test.best}** "
                         f"({100 * best_test.best_mean:.1f} test {metric_name}).")
    return render_template(
        "study", data,
        title=f"Transfer study: {label}, {dataset_label(config.model)}",
        summary=summary_text,
        regimes={eval_set: [{"sentence": s} for s in sentences] for eval_set, sentences in by_set.items()},
        significance_rule=SIGNIFICANCE_RULE,
        plots={path.name: PLOT_TITLES[path.name] for path in plots},
        metric_name=metric_name,
        score_names="; ".join(name[0].lower() + name[1:] for name in SCORE_COLUMNS[config.task].values()),
        summary_tables=summary_markdown(summary, config.task),
        task={"description": task.description, "label_names": task.label_names, "split_sizes": task.sizes()},
        dataset_label=label,
        eval_sets=[{"name": e.name, "description": e.description, "examples": len(e.labels)} for e in eval_sets],
        arms=arms,
        baselines=[{"name": name, **record} for name, record in baselines.items()],
        sizes=config.sizes,
        seeds=config.seeds,
        runs=len(jobs),
        schedules=schedules,
        min_steps=MIN_OPTIMIZER_STEPS,
        hardware=hardware,
        run_time=run_time,
        wall_time=wall_time,
        executor=config.executor.kind if config.executor.kind == "local"
        else f"ray ({config.executor.address or f'local instance, {config.executor.num_workers} CPUs'})",
    )
