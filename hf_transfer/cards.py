"""Model cards: Jinja templates in model_cards/, metadata through huggingface_hub's ModelCardData and EvalResult.

A renderer per `RunResult.kind` registers in CARD_RENDERERS (`@register_card_renderer("classification")`);
`render_card` picks it. Every renderer takes the run record, the folder that holds the run's files (to see what
was saved: whole model, adapter, modeling code, plots) and `load_from`, what a reader passes to from_pretrained:
the output folder's path for a local card, the repo id for a published one, so that the usage snippet runs as
written. Templates share the macros of model_cards/_shared.md and may extend each other (adapter.md extends
classifier.md); `render_template`, `card_data`, `eval_results`, `accuracy_margin` and `reproduce_command` are the
pieces a new kind of card reuses.
"""

from __future__ import annotations

import importlib
import json
import math
import re
import shlex
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import jinja2
import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from .errors import UserError
from .results import RunResult

METRIC_TYPES = ("precision", "recall", "f1")
AVERAGES = ("macro", "micro", "weighted")
METRIC_TITLES = {"accuracy": "Accuracy", "precision": "Precision", "recall": "Recall", "f1": "F1"}
# Plots a run writes, with the titles their images get; any other PNG in the folder is titled from its name.
PLOT_TITLES = {"confusion_matrix.png": "Confusion matrix, test split", "loss_curve.png": "Training loss"}
# Neutral sentences for usage snippets: never texts from the user's data, which may not be public.
EXAMPLE_TEXTS = ("I loved every minute of it.", "This is a disgrace and it has to stop.")
EXAMPLE_PAIRS = ({"text": "The match was cancelled.", "text_pair": "Nobody played."},
                 {"text": "She won the race.", "text_pair": "She came last."})
TRANSFER_EXPLANATIONS = {
    "parameters": "the pretrained weights initialise the model",
    "features": "the pretrained network stays frozen and a new head learns from its features",
    "structure": "only the architecture and tokenizer; the weights start from random init",
    "none": "nothing was trained",
}
# Config keys that only say where a run wrote or pushed its output: left out of reproduce commands.
LOCAL_KEYS = ("output_dir", "overwrite_output_dir", "push_to_hub", "hub_repo_id", "hub_private")
CONFIG_SECTIONS = ("data", "train", "zeroshot_baseline")
HYPERPARAMETER_NAMES = {"batch_size": "batch_size (per device x accumulation x processes)"}

CardRenderer = Callable[[RunResult, Path, str, "str | None"], ModelCard]
CARD_RENDERERS: dict[str, CardRenderer] = {}
# Renderers that live in their own modules, imported when a card of their kind is first needed.
RENDERER_MODULES = {"zero-shot": "hf_transfer.zeroshot.card"}


def register_card_renderer(kind: str) -> Callable[[CardRenderer], CardRenderer]:
    def register(renderer: CardRenderer) -> CardRenderer:
        CARD_RENDERERS[kind] = renderer
        return renderer

    return register


def render_card(result: RunResult, folder: Path, load_from: str, reproduce: str | None = None) -> ModelCard:
    """The card for `result`, whose files are in `folder`, loaded by readers from `load_from` (path or repo id)."""
    if result.kind not in CARD_RENDERERS and result.kind in RENDERER_MODULES:
        importlib.import_module(RENDERER_MODULES[result.kind])  # registers its renderer
    if result.kind not in CARD_RENDERERS:
        raise UserError(f"no model card template for runs of kind {result.kind!r}: "
                        f"cards exist for {', '.join(sorted(CARD_RENDERERS))}")
    return CARD_RENDERERS[result.kind](result, Path(folder), load_from, reproduce)


# ---------------------------------------------------------------------------------------------------------------
# Shared machinery


def template_dir() -> Path:
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
    """Render model_cards/<name>.md with `card_data` (the YAML header) and `context`; parsed back by ModelCard."""
    content = _environment().get_template(f"{name}.md").render(card_data=data.to_yaml(), **context)
    return ModelCard(re.sub(r"\n{3,}", "\n\n", content.lstrip()))  # macros leave runs of blank lines


def format_duration(seconds: float) -> str:
    seconds = float(seconds)
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def accuracy_margin(accuracy: float, examples: int) -> float:
    """Half-width of the 95% normal-approximation interval of an accuracy measured on `examples` texts."""
    if examples <= 0:
        return float("nan")
    return 1.96 * math.sqrt(max(accuracy * (1 - accuracy), 0.0) / examples)


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


def eval_results(result: RunResult, task_type: str = "text-classification",
                 task_name: str | None = None) -> list[EvalResult]:
    """A model-index entry per eval split and metric: accuracy, and precision/recall/F1 under every average."""
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
        for metric in METRIC_TYPES:
            for average in AVERAGES:
                add(metric, f"{metric}_{average}", f"{METRIC_TITLES[metric]} ({average})", {"average": average})
    return rows


def card_data(result: RunResult, model_name: str, *, library_name: str, tags: list[str],
              pipeline_tag: str = "text-classification", base_model: str | None = None,
              base_model_relation: str | None = None, task_type: str = "text-classification") -> ModelCardData:
    """The YAML header: license and language from the run's config, a model-index from every eval split."""
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


def reproduce_command(command: str, config: dict, defaults: dict, always: tuple[str, ...] = ()) -> str:
    """`command` plus a key=value override for every config value that differs from `defaults` (and `always`).

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


def plots_in(folder: Path) -> dict[str, str]:
    """{file name: title} for the PNG images at the top of `folder`."""
    return {
        path.name: PLOT_TITLES.get(path.name, path.stem.replace("_", " ").capitalize())
        for path in sorted(Path(folder).glob("*.png"))
        if path.is_file() and not path.is_symlink()
    }


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def remote_code_files(folder: Path) -> list[str]:
    """The .py files the folder's config.json / tokenizer_config.json `auto_map` names, with their relative imports."""
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


# ---------------------------------------------------------------------------------------------------------------
# Fine-tuned classifiers: full weights (classifier.md) or a peft adapter (adapter.md)


@register_card_renderer("classification")
def render_classifier_card(result: RunResult, folder: Path, load_from: str, reproduce: str | None = None) -> ModelCard:
    from .config import ClassifyConfig, to_dict

    folder = Path(folder)
    adapter = read_json(folder / "adapter_config.json")
    code_files = remote_code_files(folder) if (folder / "config.json").is_file() else []
    title = load_from.rstrip("/").rsplit("/", 1)[-1]
    transferred = result.strategy["transferred"]
    hub_base = result.model.get("base_model")
    base_model = hub_base if transferred != "structure" else None  # random init: the weights derive from nothing
    tags = ["hf-transfer", "text-classification", f"strategy:{result.strategy['name']}", f"transfer:{transferred}"]
    if adapter:
        tags += ["peft", str(adapter.get("peft_type", "adapter")).lower()]
    if result.task["multi_label"]:
        tags.append("multi-label-classification")
    data = card_data(result, title, library_name="peft" if adapter else "transformers", tags=tags,
                     base_model=base_model, base_model_relation="adapter" if adapter else "finetune")

    headline_split = "test" if "test" in result.metrics else list(result.metrics)[-1]
    headline = result.metrics[headline_split]
    margins = {split: accuracy_margin(m["accuracy"], m["num_examples"]) for split, m in result.metrics.items()}
    kind = "multi-label " if result.task["multi_label"] else ""
    summary = (
        f"A {kind}text classifier over {len(result.task['label_names'])} labels, made from `{result.model['name']}` "
        f"by **{result.strategy['name']}** transfer on {result.task['description']}"
        f"{' and published as a peft adapter' if adapter else ''}. "
        f"{headline_split.capitalize()} accuracy **{headline['accuracy']:.4f}** "
        f"(±{margins[headline_split]:.4f}, {headline['num_examples']} examples), "
        f"macro F1 **{headline['f1_macro']:.4f}**."
    )
    source_link = f"[{hub_base}](https://huggingface.co/{hub_base})" if hub_base else f"`{result.model['name']}`"
    data_config = result.config.get("data", {})
    subsampled = ", ".join(f"{key}={data_config[key]}" for key in ("max_train_samples", "max_eval_samples")
                           if data_config.get(key))
    return render_template(
        "adapter" if adapter else "classifier",
        data,
        title=title,
        summary=summary,
        model=result.model,
        source_link=source_link,
        transferred=transferred,
        transfer_explanation=_transfer_explanation(transferred, result.parameters["trainable_fraction"]),
        strategy=result.strategy,
        parameters=result.parameters,
        adapter=_adapter_summary(adapter, hub_base, folder / "adapter_model.safetensors") if adapter else None,
        code_files=code_files,
        task=result.task,
        dataset_label=dataset_label(result.task["dataset"]),
        subsampled=subsampled,
        metrics=result.metrics,
        margins=margins,
        headline={"split": headline_split, "examples": headline["num_examples"],
                  "margin_points": 100 * margins[headline_split]},
        baselines=result.baselines,
        comparisons=_comparisons(result, margins),
        plots=plots_in(folder),
        hyperparameters=_hyperparameters(result),
        compute=result.compute,
        usage=usage_snippet(load_from, result, adapter, trust_remote_code=bool(code_files)),
        seed=result.seed,
        versions=result.versions,
        reproduce=reproduce or reproduce_command("hf-transfer classify", result.config, to_dict(ClassifyConfig()),
                                                 always=("model", "strategy", "data.dataset")),
    )


def _transfer_explanation(transferred: str, trainable_fraction: float) -> str:
    explanation = TRANSFER_EXPLANATIONS.get(transferred, "")
    if transferred == "parameters":
        explanation += ("; all of them are fine-tuned" if trainable_fraction >= 0.9999
                        else "; only the trainable parameters changed, all others kept their pretrained values")
    return explanation


def _adapter_summary(adapter: dict, hub_base: str | None, weights: Path) -> dict:
    """The adapter's settings; its base named by Hub id where known (publishing points the adapter there)."""
    keys = ("peft_type", "r", "lora_alpha", "lora_dropout", "target_modules", "modules_to_save")
    summary = {key: adapter.get(key) for key in keys}
    summary["base_model_name_or_path"] = hub_base or adapter.get("base_model_name_or_path")
    for key in ("target_modules", "modules_to_save"):  # peft stores sets as lists, sometimes with repeats
        value = summary[key]
        summary[key] = sorted(set(value)) if isinstance(value, list) else ([value] if value else [])
    # peft adds its default head names (classifier, score) whether or not the model has them: keep the saved ones.
    saved = _tensor_names(weights)
    summary["modules_to_save"] = [m for m in summary["modules_to_save"] if any(f".{m}." in f".{n}" for n in saved)]
    return summary


def _tensor_names(path: Path) -> list[str]:
    from safetensors import safe_open

    if not path.is_file():
        return []
    with safe_open(str(path), framework="pt") as weights:
        return list(weights.keys())


def _comparisons(result: RunResult, margins: dict[str, float]) -> list[dict]:
    rows = []
    for name, baseline in result.baselines.items():
        for split, report in baseline.get("metrics", {}).items():
            if split in result.metrics:
                ours = result.metrics[split]
                rows.append({"name": name, "split": split,
                             "accuracy_points": 100 * (ours["accuracy"] - report["accuracy"]),
                             "f1_points": 100 * (ours["f1_macro"] - report["f1_macro"]),
                             "margin_points": 100 * margins[split]})
    return rows


def _hyperparameters(result: RunResult) -> dict[str, str]:
    rows = {}
    for key, value in result.training.items():
        if key == "log_history" or value is None:
            continue
        name = HYPERPARAMETER_NAMES.get(key, key)
        rows[name] = f"{value:.4f}" if isinstance(value, float) and key.endswith("loss") else str(value)
    rows["precision"] = str(result.compute.get("precision"))
    rows["seed"] = str(result.seed)
    return rows


def usage_snippet(load_from: str, result: RunResult, adapter: dict | None, trust_remote_code: bool = False) -> str:
    """Python that loads the model from `load_from` and classifies two sentences; tests run it."""
    if result.model.get("head") == "text-to-text":  # a seq2seq checkpoint: no text-classification pipeline
        from .text_to_text import usage_snippet as text_to_text_usage

        return text_to_text_usage(load_from, result)
    labels = result.task["label_names"]
    multi_label = result.task["multi_label"]
    # Two text columns were encoded as a pair (tokenizer(first, second)); the pipeline takes pairs as dicts.
    texts = json.dumps(list(EXAMPLE_PAIRS if len(result.task["text_columns"]) == 2 else EXAMPLE_TEXTS))
    remote = ", trust_remote_code=True" if trust_remote_code else ""
    call = f"classifier({texts}, top_k=None)" if multi_label else f"classifier({texts})"
    comment = "# multi-label: every label's sigmoid score; those above 0.5 are predicted\n" if multi_label else ""
    if not adapter:
        return (
            "from transformers import pipeline\n\n"
            f"classifier = pipeline(\"text-classification\", model={json.dumps(load_from)}{remote})\n"
            f"{comment}print({call})"
        )
    problem = ", problem_type=\"multi_label_classification\"" if multi_label else ""
    base_remote = ", trust_remote_code=True" if str(result.model.get("model_type", "")).startswith("hft-") else ""
    return (
        "from peft import AutoPeftModelForSequenceClassification\n"
        "from transformers import AutoTokenizer, pipeline\n\n"
        f"labels = {json.dumps(labels)}\n"
        "model = AutoPeftModelForSequenceClassification.from_pretrained(\n"
        f"    {json.dumps(load_from)}, id2label=dict(enumerate(labels)),\n"
        f"    label2id={{label: i for i, label in enumerate(labels)}}{problem}{base_remote})\n"
        # config= spares AutoTokenizer a look for config.json, which an adapter repo does not have
        f"tokenizer = AutoTokenizer.from_pretrained({json.dumps(load_from)}, config=model.config)\n"
        "classifier = pipeline(\"text-classification\", model=model, tokenizer=tokenizer)\n"
        f"{comment}print({call})"
    )

