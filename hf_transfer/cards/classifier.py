"""The card of a fine-tuned classifier (kind "classification"): model_cards/classifier.md for full weights,
model_cards/adapter.md (which extends it) for a peft adapter.

Besides the shared parts (hf_transfer.cards.base) it states the transfer strategy and the trainable parameters, the
adapter's settings, the comparison with the run's baselines, the hyperparameters, and a usage snippet that loads
the output with transformers (or peft) alone.
"""

from __future__ import annotations

import json
from pathlib import Path

from huggingface_hub import ModelCard

from ..config import ClassifyConfig, to_dict
from ..results import RunResult
from .base import (EXAMPLE_TEXTS, TRANSFER_EXPLANATIONS, accuracy_margins, card_data, card_title, collapsed_label, data_notes,
                   dataset_label,
                   plots_in, pretraining_sentence, read_json, remote_code_files, render_template,
                   reproduce_command, source_link)
from .registry import register_card_renderer

# Neutral sentence pairs for the usage snippet of a model that reads two text columns.
EXAMPLE_PAIRS = ({"text": "The match was cancelled.", "text_pair": "Nobody played."},
                 {"text": "She won the race.", "text_pair": "She came last."})
HYPERPARAMETER_NAMES = {"batch_size": "batch_size (per device x accumulation x processes)"}
# Settings that bound the peak memory the compute table reports, shown when the run's config records them.
MEMORY_SETTINGS = {"max_batch_tokens": "max_batch_tokens (padded tokens per forward/backward pass)",
                   "gradient_checkpointing": "gradient_checkpointing"}


@register_card_renderer("classification")
def render_classifier_card(result: RunResult, folder: Path, load_from: str, reproduce: str | None = None) -> ModelCard:
    """The card of a classify run, `result` (kind "classification"), whose output files are in `folder`.

    `load_from` and `reproduce` are as for `hf_transfer.cards.render_card`. An adapter_config.json in `folder`
    makes it an adapter card (library peft, base_model_relation adapter); modeling code named by config.json's
    auto_map is listed and the snippet passes trust_remote_code=True. The headline is the test split, else the
    last eval split; the base model is left out of the header when only the structure was transferred (random
    init). A record without a field the card states (e.g. a metrics split without "f1_macro") raises KeyError.
    """
    fields, adapter = trained_model_fields(result, folder, load_from)
    tags = ["text-classification"] + (["multi-label-classification"] if result.task["multi_label"] else [])
    data = trained_model_card_data(result, fields, adapter, tags)
    headline_split = "test" if "test" in result.metrics else list(result.metrics)[-1]
    headline = result.metrics[headline_split]
    margins = accuracy_margins(result.metrics)
    kind = "multi-label " if result.task["multi_label"] else ""
    summary = (
        f"A {kind}text classifier over {len(result.task['label_names'])} labels, made from `{result.model['name']}` "
        f"by **{result.strategy['name']}** transfer on {result.task['description']}"
        f"{' and published as a peft adapter' if adapter else ''}.{pretraining_sentence(result.model)} "
        f"{headline_split.capitalize()} accuracy **{headline['accuracy']:.4f}** "
        f"(±{margins[headline_split]:.4f}, {headline['num_examples']} examples), "
        f"macro F1 **{headline['f1_macro']:.4f}**."
    )
    return render_template(
        "adapter" if adapter else "classifier",
        data,
        **fields,
        summary=summary,
        metrics=result.metrics,
        margins=margins,
        headline={"split": headline_split, "examples": headline["num_examples"],
                  "margin_points": 100 * margins[headline_split]},
        comparisons=_comparisons(result, margins),
        usage=usage_snippet(load_from, result, adapter, trust_remote_code=bool(fields["code_files"])),
        reproduce=reproduce or reproduce_command("hf-transfer classify", result.config, to_dict(ClassifyConfig()),
                                                 always=("model", "strategy", "data.dataset")),
    )


def trained_model_fields(result: RunResult, folder: Path, load_from: str) -> tuple[dict, dict | None]:
    """(template fields, parsed adapter_config.json or None): what classifier.md shows of any trained model in the
    same way, whatever its task (the tagger card extends it): title, model and source link, what was transferred,
    strategy, parameters, adapter settings, modeling code files, task record, data label, truncation and subsampling,
    baselines, plots, hyperparameters, compute (and the step a resumed run started from), seed, versions."""
    folder = Path(folder)
    adapter = read_json(folder / "adapter_config.json")
    transferred = result.strategy["transferred"]
    data_config = result.config.get("data", {})
    fields = dict(
        title=card_title(load_from),
        model=result.model,
        source_link=source_link(result.model),
        transferred=transferred,
        transfer_explanation=_transfer_explanation(transferred, result.parameters["trainable_fraction"]),
        strategy=result.strategy,
        parameters=result.parameters,
        adapter=(_adapter_summary(adapter, result.model.get("base_model"), folder / "adapter_model.safetensors")
                 if adapter else None),
        code_files=remote_code_files(folder) if (folder / "config.json").is_file() else [],
        task=result.task,
        data_notes=data_notes(result),
        collapsed={split: label for split, report in result.metrics.items()
                   if (label := collapsed_label(report, result.task["label_names"]))},
        dataset_label=dataset_label(result.task["dataset"]),
        truncation=data_config.get("truncation", "head"),
        subsampled=_subsampled(data_config, result.task["split_sizes"], result.task.get("data_facts") or {}),
        baselines=result.baselines,
        plots=plots_in(folder),
        hyperparameters=_hyperparameters(result),
        teacher=_teacher_summary(result),
        compute=result.compute,
        resumed_from_step=result.training.get("resumed_from_step", 0),
        seed=result.seed,
        versions=result.versions,
    )
    return fields, adapter


def trained_model_card_data(result: RunResult, fields: dict, adapter: dict | None, task_tags: list[str],
                            pipeline_tag: str = "text-classification"):
    """The YAML header of a trained model's card: `task_tags` (the first is the model-index task type) after the
    strategy's tags; library peft for an adapter; no base model when only the structure was transferred."""
    transferred = fields["transferred"]
    tags = ["hf-transfer", task_tags[0], f"strategy:{result.strategy['name']}", f"transfer:{transferred}"]
    if adapter:
        tags += ["peft", str(adapter.get("peft_type", "adapter")).lower()]
    hub_base = result.model.get("base_model")
    base_model = hub_base if transferred != "structure" else None  # random init: the weights derive from nothing
    return card_data(result, fields["title"], library_name="peft" if adapter else "transformers",
                     tags=tags + task_tags[1:], pipeline_tag=pipeline_tag, base_model=base_model,
                     base_model_relation="adapter" if adapter else "finetune", task_type=task_tags[0])


def _subsampled(data_config: dict, split_sizes: dict[str, int], facts: dict) -> str:
    """The subsample settings that applied, as "key=value (split: of N), ...": with the data facts' `subsampled`
    ({split: size before the caps}, recorded since 2026-12-02 for text data) the caps that made a split smaller;
    else max_train_samples only where the train split holds that many examples (a larger cap leaves the whole
    split) and max_eval_samples where set (such a record keeps no evaluation split's size before it)."""
    caps = {key: data_config[key] for key in ("max_train_samples", "max_eval_samples") if data_config.get(key)}
    if "subsampled" in facts:
        before = facts["subsampled"]
        reduced = {"max_train_samples": [s for s in ("train",) if s in before],
                   "max_eval_samples": [s for s in ("validation", "test") if s in before]}
        return ", ".join(f"{key}={value} ({', '.join(f'{s}: of {before[s]:,}' for s in reduced[key])})"
                         for key, value in caps.items() if reduced[key])
    if caps.get("max_train_samples", 0) > split_sizes["train"]:
        del caps["max_train_samples"]
    return ", ".join(f"{key}={value}" for key, value in caps.items())


def _transfer_explanation(transferred: str, trainable_fraction: float) -> str:
    """What carried over from the pretrained model, and for transferred weights whether all of them trained."""
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
    """The tensor names in a safetensors file; none when the file is missing."""
    from safetensors import safe_open

    if not path.is_file():
        return []
    with safe_open(str(path), framework="pt") as weights:
        return list(weights.keys())


def _comparisons(result: RunResult, margins: dict[str, float]) -> list[dict]:
    """One row per baseline and split both measured: our accuracy and macro F1 minus the baseline's, in points,
    with our accuracy's 95% margin in points to judge the gap by."""
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
    """name -> value as shown: the recorded training settings (not the log), the memory settings, then precision
    and seed."""
    rows = {}
    for key, value in result.training.items():
        # the changes are a data note; a teacher's record and stages have a section of their own
        if key in ("log_history", "schedule_changes", "teacher", "stages") or value is None:
            continue
        name = HYPERPARAMETER_NAMES.get(key, key)
        rows[name] = f"{value:.4f}" if isinstance(value, float) and key.endswith("loss") else str(value)
    train_config = result.config.get("train", {})
    for key, name in MEMORY_SETTINGS.items():
        if key in train_config:
            value = train_config[key]
            rows[name] = "none (whole batches)" if value is None and key == "max_batch_tokens" else str(value)
    rows["precision"] = str(result.compute.get("precision"))
    rows["seed"] = str(result.seed)
    return rows


def _teacher_summary(result: RunResult) -> dict | None:
    """What a run with a zero-shot teacher (hf_transfer.distill) tells its reader: the teacher, the texts it
    labelled, its accuracy raw and calibrated, and the training stages (`probe`: the linear probe's one stage, or
    None); None for a run without one."""
    record = result.training.get("teacher")
    if not record:
        return None
    baseline = next((b for b in result.baselines.values() if b.get("role") == "teacher"), {})
    stages = result.training.get("stages", [])
    return {**record, "accuracy": {split: report["accuracy"] for split, report in baseline.get("metrics", {}).items()},
            "calibrated_accuracy": baseline.get("calibrated_accuracy", {}), "stages": stages,
            "probe": next((stage for stage in stages if stage["name"] == "probe"), None)}


def usage_snippet(load_from: str, result: RunResult, adapter: dict | None, trust_remote_code: bool = False) -> str:
    """Python source that loads the model from `load_from` and classifies two neutral sentences; tests run it.

    A pipeline for full weights, AutoPeftModelForSequenceClassification with the label names for an adapter
    (`adapter`: the parsed adapter_config.json, None for full weights), label-word scoring for a text-to-text
    head (hf_transfer.text_to_text.usage_snippet). Sentence pairs when the run read two text columns.
    """
    if result.model.get("head") == "text-to-text":  # a seq2seq checkpoint: no text-classification pipeline
        from ..text_to_text import usage_snippet as text_to_text_usage

        return text_to_text_usage(load_from, result)
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
    return (adapter_loading_snippet("AutoPeftModelForSequenceClassification", load_from, result, "labels", problem)
            + "classifier = pipeline(\"text-classification\", model=model, tokenizer=tokenizer)\n"
            f"{comment}print({call})")


def adapter_loading_snippet(peft_class: str, load_from: str, result: RunResult, names: str, extra: str = "") -> str:
    """Python source that loads the peft adapter at `load_from` with `peft_class` (AutoPeftModelFor...) as `model`,
    passing the run's label names (a list called `names`; not part of an adapter) as id2label / label2id, plus
    `extra` arguments, and its tokenizer as `tokenizer`; it imports transformers' pipeline for the lines after."""
    base_remote = ", trust_remote_code=True" if str(result.model.get("model_type", "")).startswith("hft-") else ""
    return (
        f"from peft import {peft_class}\n"
        "from transformers import AutoTokenizer, pipeline\n\n"
        f"{names} = {json.dumps(result.task['label_names'])}\n"
        f"model = {peft_class}.from_pretrained(\n"
        f"    {json.dumps(load_from)}, id2label=dict(enumerate({names})),\n"
        f"    label2id={{label: i for i, label in enumerate({names})}}{extra}{base_remote})\n"
        # config= spares AutoTokenizer a look for config.json, which an adapter repo does not have
        f"tokenizer = AutoTokenizer.from_pretrained({json.dumps(load_from)}, config=model.config)\n"
    )

