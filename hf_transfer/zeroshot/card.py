"""The card of a zero-shot evaluation (model_cards/zeroshot.md), registered with hf_transfer.cards for kind "zero-shot"."""

from __future__ import annotations

import json
from pathlib import Path

from huggingface_hub import ModelCard

from ..cards import (TRANSFER_EXPLANATIONS, accuracy_margin, card_data, dataset_label, plots_in, register_card_renderer,
                     render_template, reproduce_command)
from ..config import to_dict
from ..results import RunResult

PER_LABEL_OPTIONS = ("verbalizers", "label_descriptions")  # shown per label, through strategy.label_prompts
TRAINING_KEYS = ("train_time_s", "train_examples_per_s", "train_tokens_per_s")  # zeros in metrics.json: nothing trained


def _cell(value) -> str:
    """A value as JSON, safe inside a markdown table cell and backticks."""
    return json.dumps(value, ensure_ascii=False).replace("|", "\\|").replace("`", "'")


@register_card_renderer("zero-shot")
def render_zeroshot_card(result: RunResult, folder: Path, load_from: str, reproduce: str | None = None) -> ModelCard:
    from ..config import ZeroShotConfig

    title = load_from.rstrip("/").rsplit("/", 1)[-1]
    method = result.strategy["method"]
    labels = result.task["label_names"]
    hub_base = result.model.get("base_model")
    tags = ["hf-transfer", "zero-shot", f"zero-shot:{method}", "text-classification"]
    if result.task["multi_label"]:
        tags.append("multi-label-classification")
    data = card_data(result, title, library_name="transformers", tags=tags, pipeline_tag="zero-shot-classification",
                     base_model=hub_base)
    test = result.metrics["test"]
    margins = {split: accuracy_margin(m["accuracy"], m["num_examples"]) for split, m in result.metrics.items()}
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
        "print(classifier.predict([\"I loved every minute of it.\", \"This is a disgrace and it has to stop.\"]))"
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
        source_link=f"[{hub_base}](https://huggingface.co/{hub_base})" if hub_base else f"`{result.model['name']}`",
        strategy=result.strategy,
        transfer_explanation=TRANSFER_EXPLANATIONS["none"],
        settings={key: _cell(value) for key, value in options.items() if key not in PER_LABEL_OPTIONS},
        label_texts={label: _cell(text) for label, text in result.strategy["label_prompts"].items()},
        parameters=result.parameters,
        task=result.task,
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
