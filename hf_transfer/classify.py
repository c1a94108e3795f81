"""The classify run: data -> backbone -> strategy -> Trainer -> evaluation -> output folder with a card.

`recipes/classify.py` and `hf-transfer classify` both call `run_classify`. The output folder is written under a
`.partial` name and renamed when complete, so a failed run never leaves a folder that looks finished.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from accelerate import PartialState
from transformers import set_seed

from .backbones import load_backbone
from .cards import render_card
from .config import ClassifyConfig, to_dict
from .data import load_task_data, name_slug, prediction_rows, tokenize_splits
from .errors import UserError
from .metrics import classification_report
from .plots import confusion_matrix_plot, loss_curve_plot
from .publish import check_hub_target, publish_to_hub
from .results import RunResult
from .runtime import hardware_description, peak_memory_mb, resolve_precision, set_threads
from .strategies import get_strategy
from .training import build_trainer, predict_logits, predictions_from_logits, training_arguments
from .zeroshot import prepare_baseline

EVAL_SPLITS = ("validation", "test")


def default_output_dir(config: ClassifyConfig) -> Path:
    return Path("outputs") / f"{name_slug(config.model)}-{name_slug(config.data.dataset)}-{config.strategy}"


def run_classify(config: ClassifyConfig, command: str | None = None) -> RunResult:
    started = time.perf_counter()
    state = PartialState()
    output_dir = Path(config.output_dir) if config.output_dir else default_output_dir(config)
    if output_dir.exists() and not config.overwrite_output_dir:
        raise UserError(f"output folder {output_dir} exists: pass output_dir=ANOTHER or overwrite_output_dir=true")
    if config.push_to_hub:
        check_hub_target(config.hub_repo_id)  # a bad repo id or missing token fails now, not after training
    set_threads(config.train.threads)
    strategy = get_strategy(config.strategy, config.strategy_options)  # bad options fail before any loading
    if config.train.learning_rate is None:
        config.train.learning_rate = strategy.default_learning_rate
    precision = resolve_precision(config.train.precision)
    set_seed(config.train.seed)

    task = load_task_data(config.data)
    baseline = prepare_baseline(config.zeroshot_baseline, config.model, task, config.train.eval_batch_size)
    backbone = load_backbone(config, task, strategy)
    model, tokenizer = backbone.model, backbone.tokenizer
    setup = strategy.setup(model, backbone.family, config.train)
    if (config.train.freeze_word_embeddings and backbone.pretrained) or config.freeze_vectors:
        model.get_input_embeddings().weight.requires_grad_(False)
    parameters = strategy.count_parameters(setup.model)
    tokenized = tokenize_splits(task, tokenizer, config.data.max_length)

    staging = output_dir.with_name(output_dir.name + ".partial")
    try:
        args = training_arguments(config.train, str(staging / "trainer"), precision, config.train.eval_every_epoch)
        trainer = build_trainer(setup.model, args, tokenizer, tokenized["train"], tokenized["validation"],
                                setup.callbacks, setup.optimizer_grouped_parameters)
        train_started = time.perf_counter()
        if setup.trains_with_trainer:
            trainer.train()
        else:
            strategy.fit(setup, trainer, task, tokenized, config.train)
        train_time = time.perf_counter() - train_started

        eval_started = time.perf_counter()
        inference_model = strategy.model_for_inference(setup.model)
        trainer.model = inference_model
        metrics, predictions = {}, []
        for split in EVAL_SPLITS:
            logits = predict_logits(trainer, tokenized[split])
            logits = logits[0] if isinstance(logits, tuple) else logits  # seq2seq models add encoder states
            predicted, probabilities = predictions_from_logits(logits, task.multi_label)
            metrics[split] = classification_report(predicted, tokenized[split]["labels"], task.label_names, task.multi_label)
            predictions += prediction_rows(task, split, predicted, probabilities)
        eval_time = time.perf_counter() - eval_started
        baselines = {baseline.name: baseline.evaluate(task, config.data.max_length)} if baseline else {}

        train_tokens = sum(len(ids) for ids in tokenized["train"]["input_ids"])
        epochs_run = trainer.state.epoch or config.train.epochs
        result = RunResult(
            kind="classification",
            model=backbone.record(),
            strategy={"name": strategy.name, "description": strategy.description,
                      "transferred": backbone.transferred(strategy.transferred),
                      "options": to_dict(strategy.options)},
            task={"dataset": task.source, "description": task.description, "text_columns": task.text_columns,
                  "label_names": task.label_names, "multi_label": task.multi_label, "split_sizes": task.sizes()},
            metrics=metrics,
            parameters=parameters,
            compute={
                "train_time_s": train_time,
                "train_examples_per_s": len(tokenized["train"]) * epochs_run / train_time,
                "train_tokens_per_s": train_tokens * epochs_run / train_time,
                "eval_time_s": eval_time,
                "total_time_s": 0.0,  # filled in below, after saving
                "peak_memory_mb": peak_memory_mb(),
                "precision": precision,
                "device": str(trainer.args.device),
                "hardware": hardware_description(),
                "processes": state.num_processes,
            },
            training={
                "epochs": config.train.epochs,
                "learning_rate": config.train.learning_rate,
                "batch_size": config.train.batch_size * config.train.gradient_accumulation_steps * state.num_processes,
                "lr_scheduler": config.train.lr_scheduler,
                "warmup_ratio": config.train.warmup_ratio,
                "weight_decay": config.train.weight_decay,
                "max_length": config.data.max_length,
                "optimizer_steps": trainer.state.global_step,
                "final_train_loss": next((e["train_loss"] for e in reversed(trainer.state.log_history) if "train_loss" in e), None),
                "log_history": trainer.state.log_history,
            },
            config=to_dict(config),
            seed=config.train.seed,
            baselines=baselines,
        )
        if state.is_main_process:
            _write_output(staging, output_dir, result, strategy, inference_model, tokenizer, task, predictions, command,
                          started)
        state.wait_for_everyone()
    except BaseException:
        if state.is_main_process:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    if config.push_to_hub and state.is_main_process:
        publish_to_hub(output_dir, config.hub_repo_id, private=config.hub_private)
    return result


def _write_output(staging, output_dir, result, strategy, model, tokenizer, task, predictions, command, started):
    shutil.rmtree(staging / "trainer", ignore_errors=True)
    staging.mkdir(parents=True, exist_ok=True)
    strategy.save(model, tokenizer, staging)
    with open(staging / "predictions.jsonl", "w") as handle:
        for row in predictions:
            handle.write(json.dumps(row) + "\n")
    if not task.multi_label:
        confusion_matrix_plot(result.metrics["test"]["confusion_matrix"], task.label_names,
                              staging / "confusion_matrix.png", "test split")
    loss_curve_plot(result.training["log_history"], staging / "loss_curve.png")
    result.compute["total_time_s"] = time.perf_counter() - started
    result.save(staging)
    # The card describes the files in staging and tells readers to load the final folder.
    render_card(result, staging, str(output_dir.resolve()), command).save(staging / "README.md")
    if output_dir.exists():
        shutil.rmtree(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(output_dir)
