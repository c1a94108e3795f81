"""The card of a zero-shot evaluation (kind "zero-shot"): model_cards/zeroshot.md.

Nothing was trained, so instead of hyperparameters it shows the method's settings and what each label became for
the model (hypothesis, verbalizer or description), and its usage snippet builds the same ZeroShotClassifier.
"""

from __future__ import annotations

import json
from pathlib import Path

from huggingface_hub import ModelCard

from ..config import ZeroShotConfig, to_dict
from ..results import RunResult
from .base import (EXAMPLE_TEXTS, TRANSFER_EXPLANATIONS, accuracy_margins, card_data, card_title, collapsed_label, data_notes,
                   dataset_label,
                   plots_in, render_template, reproduce_command, source_link)
from .registry import register_card_renderer

PER_LABEL_OPTIONS = ("verbalizers", "label_descriptions")  # shown per label, through strategy.label_prompts
TRAINING_KEYS = ("train_time_s", "train_examples_per_s", "train_tokens_per_s")  # zeros in metrics.json: nothing trained


def _cell(value) -> str:
    """A value as JSON, safe inside a markdown table cell and backticks."""
    return json.dumps(value, ensure_ascii=False).replace("|", "\\|").replace("`", "'")


@register_card_renderer("zero-shot")
def render_zeroshot_card(result: RunResult, folder: Path, load_from: str, reproduce: str | None = None) -> ModelCard:
    """The card of a zero-shot run, `result` (kind "zero-shot"), whose output files are in `folder`.

    `load_from` and `reproduce` are as for `hf_transfer.cards.render_card`. The headline is the test split; the
    strategy record needs "method", "options" and "label_prompts" (label -> text). A record without a field the
    card states (e.g. no "test" split in `result.metrics`) raises KeyError.
    """
    title = card_title(load_from)
    method = result.strategy["method"]
    labels = result.task["label_names"]
    hub_base = result.model.get("base_model")
    tags = ["hf-transfer", "zero-shot", f"zero-shot:{method}", "text-classification"]
    if result.task["multi_label"]:
        tags.append("multi-label-classification")
    data = card_data(result, title, library_name="transformers", tags=tags, pipeline_tag="zero-shot-classification",
                     base_model=hub_base)
    test = result.metrics["test"]
    margins = accuracy_margins(result.metrics)
    summary = (
        f"Zero-shot classification of {result.task['description']} by `{result.model['name']}` with the "
        f"**{method}** method: no training, the labels ({', '.join(labels)}) reach the model through prompts. "
        f"Test accuracy **{test['accuracy']:.4f}** (±{margins['test']:.4f}, {test['num_examples']} examples), "
        f"macro F1 **{test['f1_macro']:.4f}**."
    )
    options = result.strategy["options"]
    usage = (
        "from hf_transfer.zeroshot import ZeroShotClassifier\n\n"
        f"classifier = ZeroShotClassifier(\n    {method!r}, {result.model['name']!r}, {labels!r},\n"
        f"    multi_label={result.task['multi_label']}, options={options!r})\n"
        f"print(classifier.predict({json.dumps(list(EXAMPLE_TEXTS))}))"
    )
    data_config = result.config.get("data", {})
    evaluated = sum(m["num_examples"] for m in result.metrics.values())
    eval_time = result.compute["eval_time_s"]
    return render_template(
        "zeroshot",
        data,
        title=title,
        summary=summary,
        model=result.model,
        source_link=source_link(result.model),
        strategy=result.strategy,
        transfer_explanation=TRANSFER_EXPLANATIONS["none"],
        settings={key: _cell(value) for key, value in options.items() if key not in PER_LABEL_OPTIONS},
        label_texts={label: _cell(text) for label, text in result.strategy["label_prompts"].items()},
        parameters=result.parameters,
        task=result.task,
        data_notes=data_notes(result),
        collapsed={split: label for split, report in result.metrics.items()
                   if (label := collapsed_label(report, result.task["label_names"]))},
        dataset_label=dataset_label(result.task["dataset"]),
        subsampled=f"max_eval_samples={data_config['max_eval_samples']}" if data_config.get("max_eval_samples") else "",
        metrics=result.metrics,
        margins=margins,
        headline={"examples": test["num_examples"], "margin_points": 100 * margins["test"]},
        plots=plots_in(folder),
        compute={k: v for k, v in result.compute.items() if k not in TRAINING_KEYS},
        examples_per_s=evaluated / eval_time if eval_time else 0.0,
        max_length=data_config.get("max_length", "data.max_length"),
        usage=usage,
        versions=result.versions,
        reproduce=reproduce or reproduce_command("hf-transfer zeroshot", result.config, to_dict(ZeroShotConfig()),
                                                 always=("method", "model", "data.dataset")),
    )
