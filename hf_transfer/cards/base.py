"""What every kind of card shares: the templates, the YAML header, numbers and names, the reproduce command, and
what a run's folder holds.

Templates are model_cards/<name>.md (shipped as hf_transfer.model_cards), rendered by Jinja with the macros of
model_cards/_shared.md; they may extend each other (adapter.md extends classifier.md). The YAML header is
huggingface_hub's ModelCardData with a model-index of EvalResult rows.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from ..results import RunResult

METRIC_TYPES = ("precision", "recall", "f1")
AVERAGES = ("macro", "micro", "weighted")
METRIC_TITLES = {"accuracy": "Accuracy", "precision": "Precision", "recall": "Recall", "f1": "F1"}
# Plots a run writes, with the titles their images get; any other PNG in the folder is titled from its name.
PLOT_TITLES = {"confusion_matrix.png": "Confusion matrix, test split", "loss_curve.png": "Training loss"}
# Neutral sentences for usage snippets: never texts from the user's data, which may not be public.
EXAMPLE_TEXTS = ("I loved every minute of it.", "This is a disgrace and it has to stop.")
# RunResult.strategy["transferred"] -> what a card says was carried over from the pretrained model.
TRANSFER_EXPLANATIONS = {
    "parameters": "the pretrained weights initialise the model",
    "features": "the pretrained network stays frozen and a new head learns from its features",
    "structure": "only the architecture and tokenizer; the weights start from random init",
    "none": "nothing was trained",
}
# Config keys that only say where a run wrote or pushed its output: left out of reproduce commands.
LOCAL_KEYS = ("output_dir", "overwrite_output_dir", "push_to_hub", "hub_repo_id", "hub_private")
CONFIG_SECTIONS = ("data", "train", "zeroshot_baseline", "teacher")


# ---------------------------------------------------------------------------------------------------------------
# Templates


def template_dir() -> Path:
    """The folder of the card templates: model_cards/ in a checkout, hf_transfer/model_cards/ once installed."""
    return Path(str(resources.files("hf_transfer.model_cards")))


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,  # a misspelt field fails the render instead of printing nothing
        autoescape=False,  # markdown, not HTML
    )
    env.filters.update(
        f4=lambda value: f"{float(value):.4f}",
        thousands=lambda value: f"{int(value):,}",
        duration=format_duration,
    )
    return env


def render_template(name: str, data: ModelCardData, **context: Any) -> ModelCard:
    """The card rendered from model_cards/<name>.md with `data` as its YAML header and `context` as its fields.

    Templates get the header as `card_data` and the filters f4 (4 decimals), thousands (1,234) and duration
    (`format_duration`). Runs of blank lines the macros leave are squeezed to one. Raises jinja2.TemplateNotFound
    for an unknown name and jinja2.UndefinedError for a field the template uses but `context` lacks.
    """
    content = _environment().get_template(f"{name}.md").render(card_data=data.to_yaml(), **context)
    return ModelCard(re.sub(r"\n{3,}", "\n\n", content.lstrip()))  # macros leave runs of blank lines


# ---------------------------------------------------------------------------------------------------------------
# Names and numbers


def card_title(load_from: str) -> str:
    """A card's title: the last part of the path or repo id readers load the model from."""
    return load_from.rstrip("/").rsplit("/", 1)[-1]


def source_link(model: dict) -> str:
    """The pretrained model a run started from: a link to its Hub page when it has a Hub id, else its name."""
    hub_base = model.get("base_model")
    return f"[{hub_base}](https://huggingface.co/{hub_base})" if hub_base else f"`{model['name']}`"


def pretraining_sentence(model: dict) -> str:
    """The card's sentence on a backbone `hf-transfer pretrain` wrote (the provenance backbones.pretraining_record
    put in metrics.json), or an empty string for any other backbone."""
    pretraining = model.get("pretraining")
    if not pretraining:
        return ""
    start = "random weights" if pretraining["from_random_weights"] else "a checkpoint"
    tokens, perplexity = pretraining.get("tokens_seen"), pretraining.get("eval_perplexity")
    return (f" `{model['name']}` was pretrained by `hf-transfer pretrain` ({pretraining['objective']}) on "
            f"`{pretraining['corpus']}` from {start}: {pretraining['optimizer_steps']} optimiser steps"
            + (f", {tokens:,} tokens" if tokens else "") + (f", eval perplexity {perplexity:.1f}" if perplexity else "")
            + ".")


def format_duration(seconds: float) -> str:
    """`seconds` as "12.5 s" under two minutes, "3.4 min" under two hours, else "2.15 h"."""
    seconds = float(seconds)
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def accuracy_margin(accuracy: float, examples: int) -> float:
    """Half-width of the 95% normal-approximation (Wald) interval of an accuracy measured on `examples` texts:
    1.96 * sqrt(p (1 - p) / n), as a fraction like `accuracy`; NaN when there are no examples."""
    if examples <= 0:
        return float("nan")
    return 1.96 * math.sqrt(max(accuracy * (1 - accuracy), 0.0) / examples)


def accuracy_margins(metrics: dict[str, dict]) -> dict[str, float]:
    """split -> `accuracy_margin` of that split's accuracy, for `RunResult.metrics`."""
    return {split: accuracy_margin(m["accuracy"], m["num_examples"]) for split, m in metrics.items()}


def hub_dataset_id(dataset: str) -> str | None:
    """`dataset` when it names a Hub dataset (ORG/NAME), else None: assets and local files have no Hub id."""
    if dataset.count("/") != 1 or dataset.startswith((".", "/", "~")) or Path(dataset).suffix:
        return None
    try:
        validate_repo_id(dataset)
    except HFValidationError:
        return None
    return dataset


def dataset_label(dataset: str) -> str:
    """How a card names the data: the Hub id or asset name as is, a local file by its name only (no local paths)."""
    return dataset if hub_dataset_id(dataset) or "/" not in dataset else Path(dataset).name


# ---------------------------------------------------------------------------------------------------------------
# The YAML header


def eval_results(result: RunResult, task_type: str = "text-classification",
                 task_name: str | None = None) -> list[EvalResult]:
    """A model-index entry per eval split and metric: accuracy, and precision/recall/F1 under every average.

    Reads `result.metrics` (split -> classification report, or a token-classification run's entity report: entity
    precision/recall/F1 and token accuracy); a metric the report lacks is left out. Values are rounded to 4
    decimals.
    """
    dataset = result.task["dataset"]
    rows = []
    for split, report in result.metrics.items():
        def add(metric_type: str, key: str, name: str, args: dict | None = None) -> None:
            if key in report:
                rows.append(EvalResult(
                    task_type=task_type, task_name=task_name, dataset_type=dataset_label(dataset),
                    dataset_name=result.task["description"], dataset_split=split, metric_type=metric_type,
                    metric_name=name, metric_value=round(float(report[key]), 4), metric_args=args,
                ))

        add("accuracy", "accuracy", "Accuracy")
        add("accuracy", "token_accuracy", "Token accuracy")  # token classification: words whose tag is right
        for metric in METRIC_TYPES:
            for average in AVERAGES:
                add(metric, f"{metric}_{average}", f"{METRIC_TITLES[metric]} ({average})", {"average": average})
    return rows


def card_data(result: RunResult, model_name: str, *, library_name: str, tags: list[str],
              pipeline_tag: str = "text-classification", base_model: str | None = None,
              base_model_relation: str | None = None, task_type: str = "text-classification") -> ModelCardData:
    """The YAML header: license and language from the run's config, a model-index from every eval split.

    `datasets` lists the data only when it is a Hub dataset; `base_model_relation` (finetune, adapter, ...) is
    written only with a `base_model`.
    """
    dataset_id = hub_dataset_id(result.task["dataset"])
    extra = {"base_model_relation": base_model_relation} if base_model and base_model_relation else {}
    return ModelCardData(
        model_name=model_name,
        base_model=base_model,
        datasets=[dataset_id] if dataset_id else None,
        language=result.config.get("language", "en"),
        license=result.config.get("license"),
        library_name=library_name,
        pipeline_tag=pipeline_tag,
        tags=tags,
        metrics=["accuracy", *METRIC_TYPES],
        eval_results=eval_results(result, task_type=task_type),
        **extra,
    )


# ---------------------------------------------------------------------------------------------------------------
# The reproduce command


def reproduce_command(command: str, config: dict, defaults: dict, always: tuple[str, ...] = ()) -> str:
    """`command` plus a key=value override for every config value that differs from `defaults` (and `always`).

    `config` and `defaults` are `to_dict` of run configs; sections become dotted keys (`train.epochs=3`), values
    are written as YAML and shell-quoted, and the keys that only say where output goes (LOCAL_KEYS) are left out.
    Self-contained, unlike the command line a run was started with, which may name a local YAML file.
    """
    overrides = []
    default_values = _flatten(defaults)
    for key, value in _flatten(config).items():
        if key in LOCAL_KEYS:
            continue
        if key in always or default_values.get(key, object()) != value:
            overrides.append(f"{key}={_yaml_value(value)}")
    return " ".join([command, *(shlex.quote(item) for item in overrides)])


def _flatten(config: dict) -> dict:
    """Sections become dotted keys (`train.epochs`); mapping-valued options stay whole (`strategy_options={r: 8}`)."""
    flat = {}
    for key, value in config.items():
        if key in CONFIG_SECTIONS and isinstance(value, dict):
            flat.update({f"{key}.{inner}": inner_value for inner, inner_value in value.items()})
        else:
            flat[key] = value
    return flat


def _yaml_value(value: Any) -> str:
    """The value as config overrides parse it (YAML): strings that read as numbers or booleans get quoted."""
    text = yaml.safe_dump(value, default_flow_style=True, width=math.inf).strip()
    return text.removesuffix("\n...").strip()


# ---------------------------------------------------------------------------------------------------------------
# What a run's folder holds


def plots_in(folder: Path) -> dict[str, str]:
    """{file name: title} for the PNG images at the top of `folder`, sorted by name; symlinks are left out."""
    return {
        path.name: PLOT_TITLES.get(path.name, path.stem.replace("_", " ").capitalize())
        for path in sorted(Path(folder).glob("*.png"))
        if path.is_file() and not path.is_symlink()
    }


def read_json(path: Path) -> dict | None:
    """The parsed JSON file at `path`, or None when it is missing, unreadable or not JSON."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def remote_code_files(folder: Path) -> list[str]:
    """The .py files the folder's config.json / tokenizer_config.json `auto_map` names, with their relative imports.

    File names relative to `folder`, sorted; code that `auto_map` takes from another repo ("repo--module.Class")
    is not listed. An empty list when the folder holds no such config.
    """
    from transformers.dynamic_module_utils import get_relative_import_files

    modules = set()
    for name in ("config.json", "tokenizer_config.json"):
        auto_map = (read_json(Path(folder) / name) or {}).get("auto_map") or {}
        for references in auto_map.values():
            for reference in references if isinstance(references, list) else [references]:
                if reference and "--" not in reference:  # "repo--module.Class" is code in another repo
                    modules.add(reference.rsplit(".", 1)[0] + ".py")
    files = set(modules)
    for module in modules:
        if (Path(folder) / module).is_file():
            files.update(Path(path).name for path in get_relative_import_files(str(Path(folder) / module)))
    return sorted(files)


def data_notes(result: RunResult) -> list[str]:
    """Sentences for a card's data section about what changes what a score means: texts cut at max_length (or read
    in windows whose logits were pooled), texts shared between splits, merged label spellings, the small-data rule's
    changes, the dataset's licence note.
    Read from metrics.json's task.data_facts (hf_transfer.data.TaskData) and training.schedule_changes."""
    from ..assets import ASSETS

    facts = result.task.get("data_facts") or {}
    notes = []
    truncation = facts.get("truncation") or {}
    if any((truncation.get("truncated") or {}).values()):
        shares = ", ".join(f"{split} {100 * share:.1f}% (median {truncation['median_tokens'][split]:.0f} tokens)"
                           for split, share in truncation["truncated_share"].items())
        if truncation["strategy"] == "chunks":
            notes.append(f"Texts longer than {truncation['max_length']} tokens were read whole, in overlapping "
                         f"windows of {truncation['max_length']} tokens (chunks): {shares}. Each window trained with "
                         "its text's label, and a text's prediction is the mean of its windows' logits.")
        else:
            notes.append(f"Texts longer than {truncation['max_length']} tokens were cut ({truncation['strategy']}): "
                         f"{shares}. What lies beyond the cut was not read.")
    shared = {pair: count for pair, count in (facts.get("overlap") or {}).items() if count}
    if shared:
        listed = ", ".join(f"{count} {pair.replace('_in_', ' texts also in ')}" for pair, count in shared.items())
        notes.append(f"Some evaluation texts also occur in another split ({listed}): those scores are not fully "
                     "held-out.")
    if facts.get("label_case_variants"):
        merged = facts.get("label_case") == "merge"
        listed = "; ".join(f"{', '.join(map(repr, others))} {'into' if merged else 'apart from'} {keep!r}"
                           for keep, others in facts["label_case_variants"].items())
        notes.append(f"Label spellings that differ only in case were {'merged' if merged else 'kept apart'} "
                     f"(data.label_case): {listed}.")
    if facts.get("labels_stripped"):
        notes.append(f"{facts['labels_stripped']} label value(s) had surrounding spaces, which were removed.")
    if result.training.get("schedule_changes"):
        notes.append("The small-data rule changed the schedule: " + "; ".join(result.training["schedule_changes"])
                     + ".")
    asset = ASSETS.get(result.task.get("dataset", ""))
    if asset is not None and asset.license_note:
        notes.append(f"Data licence: {asset.license_note}")
    return notes


def collapsed_label(report: dict, label_names: list[str]) -> str | None:
    """The one label a single-label model predicted for every example of a split (its confusion matrix has one
    non-empty column), else None: such a model learned nothing beyond a constant."""
    matrix = report.get("confusion_matrix")
    if not matrix or report.get("num_examples", 0) < 2:
        return None
    predicted = [j for j in range(len(label_names)) if any(row[j] for row in matrix)]
    return label_names[predicted[0]] if len(predicted) == 1 else None
