"""Model cards rendered from the Jinja templates in model_cards/, metadata through huggingface_hub."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .results import RunResult

METRIC_NAMES = {"accuracy": "Accuracy", "f1_macro": "F1 (macro)", "precision_macro": "Precision (macro)",
                "recall_macro": "Recall (macro)"}


def template_path(name: str) -> Path:
    return Path(str(resources.files("hf_transfer.model_cards") / f"{name}.md"))


def eval_results(result: RunResult, model_name: str) -> list[EvalResult]:
    dataset = result.task["dataset"]
    return [
        EvalResult(
            task_type="text-classification",
            dataset_type=dataset,
            dataset_name=result.task["description"],
            dataset_split=split,
            metric_type=metric.split("_")[0],
            metric_name=METRIC_NAMES[metric],
            metric_value=round(float(report[metric]), 4),
            metric_args={"average": metric.split("_")[1]} if "_" in metric else None,
        )
        for split, report in result.metrics.items()
        for metric in METRIC_NAMES
    ]


def card_data(result: RunResult, model_name: str, license: str, language: str) -> ModelCardData:
    base_model = result.model.get("base_model")
    dataset = result.task["dataset"]
    return ModelCardData(
        model_name=model_name,
        base_model=base_model,
        datasets=[dataset] if "/" in dataset else None,  # only Hub ids belong in this field
        language=language,
        license=license,
        library_name="transformers",
        pipeline_tag="text-classification",
        tags=["hf-transfer", f"strategy:{result.strategy['name']}", f"transfer:{result.strategy['transferred']}",
              "text-classification"],
        eval_results=eval_results(result, model_name),
    )


def render_classifier_card(result: RunResult, output_dir: Path, plots: dict[str, str], license: str, language: str,
                           reproduce: str) -> ModelCard:
    model_name = Path(output_dir).name
    labels = result.task["label_names"]
    summary = (
        f"A {'multi-label' if result.task['multi_label'] else ''} text classifier "
        f"({', '.join(labels)}) made from `{result.model['name']}` by **{result.strategy['name']}** transfer "
        f"on {result.task['description']}. Test accuracy **{result.metrics['test']['accuracy']:.4f}**."
    ).replace("A  ", "A ")
    usage = (
        "from transformers import pipeline\n\n"
        f"classifier = pipeline(\"text-classification\", model=\"{output_dir}\")\n"
        "print(classifier([\"A quietly moving film.\", \"Two hours I will never get back.\"]))"
    )
    hyperparameters = {k: v for k, v in result.training.items() if k not in ("log_history",)}
    return ModelCard.from_template(
        card_data(result, model_name, license, language),
        template_path=str(template_path("classifier")),
        model_name=model_name,
        summary=summary,
        model_source=result.model["name"],
        model_type=result.model["model_type"],
        strategy=result.strategy,
        parameters=result.parameters,
        task=result.task,
        metrics=result.metrics,
        baselines=result.baselines,
        plots=plots,
        hyperparameters=hyperparameters,
        compute=result.compute,
        usage=usage,
        seed=result.seed,
        versions=result.versions,
        reproduce=reproduce,
    )
