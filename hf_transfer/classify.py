"""The classify run: data -> backbone -> strategy -> Trainer -> evaluation -> output folder with a card.

One path for every task family (`config.task`: text classification, token classification; hf_transfer.tasks).

`recipes/classify.py`, `hf-transfer classify` and `hf_transfer.run_classify` all come here. The output folder is
locked, staged and published atomically by hf_transfer.run_folder; an interrupted run resumes from its last
checkpoint when the same command runs again.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from accelerate import PartialState
from transformers import set_seed

from .backbones import load_backbone
from .cards import collapsed_label
from .config import ClassifyConfig, to_dict
from .publish import check_hub_target, publish_to_hub
from .results import RunResult
from .run_folder import RunFolder, default_output_dir
from .log import logger
from .runtime import hardware_description, peak_memory_mb, resolve_precision, set_threads, set_training_attention
from .schedule import SELECT_EVALUATIONS, optimizer_steps, resolve_schedule
from .strategies import get_strategy
from .tasks import TASKS
from .distill import distil, teacher_baseline
from .losses import TargetCrossEntropy, class_weights
from .selection import EvaluateLastStep, selecting_arguments, selects_on_validation, validation_accuracy
from .teacher import prepare_teacher
from .training import TENSORBOARD_DIR, build_trainer, check_report_to, mean_train_loss, training_arguments
from .zeroshot import prepare_baseline

# Keys that say where a run writes, not what it computes: a resumed run may differ in these.
NOT_SETTINGS = ("output_dir", "overwrite_output_dir", "resume", "push_to_hub", "hub_repo_id", "hub_private")
# how fast, how often it checkpoints, where it logs: none of them changes the result
NOT_TRAIN_SETTINGS = ("threads", "reuse_freed_memory", "checkpoint_steps", "report_to")


def classify_output_dir(config: ClassifyConfig) -> Path:
    """The run's output folder: `config.output_dir`, else outputs/<model>-<dataset>-<strategy>."""
    if config.output_dir:
        return Path(config.output_dir)
    return default_output_dir(config.model, config.data.dataset, config.strategy)


def run_classify(config: ClassifyConfig, command: str | None = None, callbacks: tuple = ()) -> RunResult:
    """Train, evaluate and write the output folder `config` describes; returns the run's record (metrics.json).

    `command` is the reproduce line the card shows (default: built from the config); `callbacks` are extra
    transformers TrainerCallbacks. Raises UserError for anything the user can fix, before any training where the
    problem is in the config, the data or the model.
    """
    started = time.perf_counter()
    state = PartialState()
    task_family = TASKS[config.task]
    strategy = get_strategy(config.strategy, config.strategy_options)  # bad options fail before any loading
    strategy.check_head(config.head)
    strategy.check_task(task_family.name)
    # The resolved config (the strategy's learning rate and tagging label_subwords filled in) is what the run
    # records; the caller's stays as is.
    learning_rate = config.train.learning_rate or strategy.learning_rate_for(task_family.name)
    resolved = dataclasses.replace(config, train=dataclasses.replace(config.train, learning_rate=learning_rate))
    if config.data.label_subwords == "auto" and task_family.name == "token-classification":  # tags only
        resolved = dataclasses.replace(resolved, data=dataclasses.replace(
            config.data, label_subwords=strategy.tagging_label_subwords))
    output_dir = classify_output_dir(config)
    if config.push_to_hub:
        check_hub_target(config.hub_repo_id)  # a bad repo id or missing token fails now, not after training
    check_report_to(config.train.report_to)
    set_threads(config.train.threads)

    settings = {key: value for key, value in to_dict(resolved).items() if key not in NOT_SETTINGS}
    settings["train"] = {key: value for key, value in settings["train"].items() if key not in NOT_TRAIN_SETTINGS}
    with RunFolder(output_dir, overwrite=config.overwrite_output_dir, settings=settings,
                   resume=config.resume) as folder:
        set_seed(config.train.seed)
        task = task_family.load_data(config.data)
        teacher = prepare_teacher(config.teacher, config.model, task, config.data.dataset, strategy)
        # The rule sees the learning rate the user set (null: it may pick the strategy's small-data rate); a
        # teacher's stages have schedules of their own (hf_transfer.distill).
        train_config, schedule_changes = (config.train, ()) if teacher else resolve_schedule(
            config.train, strategy.name, len(task.splits["train"]), state.num_processes)
        if schedule_changes:
            logger.info(f"small-data rule for {len(task.splits['train'])} training examples: "
                        + "; ".join(schedule_changes))
        learning_rate = train_config.learning_rate or learning_rate
        resolved = dataclasses.replace(resolved, train=dataclasses.replace(train_config, learning_rate=learning_rate))
        baseline = prepare_baseline(config.zeroshot_baseline, config.model, task, config.train.eval_batch_size)
        backbone = load_backbone(dataclasses.replace(config, train=resolved.train), task, strategy)
        model, tokenizer = backbone.model, backbone.tokenizer
        attention = set_training_attention(model, config.train.attn_implementation, config.data.max_length)
        precision = resolve_precision(config.train.precision, _hidden_size(model.config))
        setup = strategy.setup(model, backbone.family, resolved.train)
        if (config.train.freeze_word_embeddings and backbone.pretrained) or config.freeze_vectors:
            model.get_input_embeddings().weight.requires_grad_(False)
        parameters = strategy.count_parameters(setup.model)
        tokenized = task_family.tokenize(task, tokenizer, resolved.data)

        args = training_arguments(resolved.train, str(folder.checkpoints), precision, config.train.eval_every_epoch,
                                  logging_dir=str(folder.staging / TENSORBOARD_DIR), run_name=output_dir.name)
        weights = class_weights(config.train.class_weight, task.label_names, tokenized["train"]["labels"],
                                task.multi_label)
        select = selects_on_validation(config.train.select_best, schedule_changes, strategy.name, task, teacher)
        # Recorded as true when the rule chose it: the card's reproduce command fixes the rule's schedule, under
        # which null would not select.
        resolved = dataclasses.replace(resolved, train=dataclasses.replace(
            resolved.train, select_best=select or config.train.select_best))
        if select:
            args = selecting_arguments(args, optimizer_steps(len(tokenized["train"]), resolved.train,
                                                             state.num_processes), SELECT_EVALUATIONS)
        trainer = build_trainer(setup.model, args, tokenizer, tokenized["train"], tokenized["validation"],
                                [*setup.callbacks, *callbacks, *([EvaluateLastStep()] if select else [])],
                                setup.optimizer_grouped_parameters, task_family.data_collator(tokenizer),
                                compute_loss_func=TargetCrossEntropy(weights) if weights is not None else None,
                                compute_metrics=validation_accuracy(task.multi_label) if select else None)
        train_started = time.perf_counter()
        distilled = {}
        if teacher:
            distilled = distil(teacher, strategy, setup, task, tokenized, tokenizer, resolved.train,
                               folder.checkpoints, folder.resume_from, precision, [*setup.callbacks, *callbacks],
                               config.data.max_length, weights)
        else:
            strategy.train(setup, trainer, task, tokenized, resume_from=folder.resume_from)
        train_time = time.perf_counter() - train_started

        eval_started = time.perf_counter()
        metrics, predictions = strategy.evaluate(setup, trainer, task_family, task, tokenized)
        eval_time = time.perf_counter() - eval_started
        for split, report in metrics.items():
            if label := collapsed_label(report, task.label_names):
                logger.warning(f"the model predicts {label!r} for every {split} example: it learned nothing beyond "
                               "a constant (the card says so)")
        baselines = task_family.baselines(task, config.baselines)
        if baseline:
            baselines[baseline.name] = baseline.evaluate(task, config.data.max_length)
        if teacher:
            baselines[teacher.name] = teacher_baseline(teacher, task, config.data.max_length,
                                                       distilled["teacher"]["calibration"])

        train_tokens = sum(len(ids) for ids in tokenized["train"]["input_ids"])
        epochs_run = trainer.state.epoch or resolved.train.epochs or 0.0
        resumed_at = _step_of(folder.resume_from)
        if "examples_seen" in distilled:
            seen = distilled.pop("examples_seen")  # a teacher's: both stages, this session's
        else:  # this session's, as train_time is: a resumed run trained its first `resumed_at` steps before
            seen = len(tokenized["train"]) * epochs_run * (1 - resumed_at / max(1, trainer.state.global_step))
        result = RunResult(
            kind=task_family.result_kind,
            model=backbone.record(),
            strategy={"name": strategy.name, "description": strategy.description,
                      "transferred": backbone.transferred(strategy.transferred),
                      "options": setup.options or strategy.applied_options()},
            task=task_family.record(task),
            metrics=metrics,
            parameters=parameters,
            compute={
                "train_time_s": train_time,
                "train_examples_per_s": seen / train_time,
                "train_tokens_per_s": seen * train_tokens / max(1, len(tokenized["train"])) / train_time,
                "eval_time_s": eval_time,
                "total_time_s": 0.0,  # set when the folder is written
                "peak_memory_mb": peak_memory_mb(),
                "precision": precision,
                "device": str(trainer.args.device),
                "hardware": hardware_description(),
                "processes": state.num_processes,
            },
            training={
                "epochs": resolved.train.epochs if resolved.train.max_steps <= 0 else None,  # max_steps overrides
                **({"max_steps": resolved.train.max_steps} if resolved.train.max_steps > 0 else {}),
                "learning_rate": learning_rate,
                "batch_size": resolved.train.batch_size * resolved.train.gradient_accumulation_steps
                * state.num_processes,
                **({"schedule_changes": list(schedule_changes)} if schedule_changes else {}),
                "lr_scheduler": config.train.lr_scheduler,
                "warmup_ratio": resolved.train.warmup_ratio,
                "weight_decay": config.train.weight_decay,
                "dropout": resolved.train.dropout,  # null: the checkpoint's own
                "attn_implementation": attention,
                "max_length": config.data.max_length,
                "optimizer_steps": trainer.state.global_step,
                "resumed_from_step": resumed_at,  # 0: not resumed
                "final_train_loss": mean_train_loss(trainer.state.log_history, resumed_at),
                "log_history": trainer.state.log_history,
                **({"selected_on_validation": {"evaluations": SELECT_EVALUATIONS,
                                               "best_validation_accuracy": trainer.state.best_metric}}
                   if select else {}),
                **distilled,  # a teacher's run: its stages, steps, loss and log
            },
            config=to_dict(resolved),
            seed=config.train.seed,
            baselines=baselines,
        )
        if state.is_main_process:
            strategy.save(setup, tokenizer, folder.staging)
            folder.write_outputs(result, predictions, command, started)
            folder.commit()
        state.wait_for_everyone()
    if config.push_to_hub and state.is_main_process:
        publish_to_hub(output_dir, config.hub_repo_id, private=config.hub_private)
    return result


def _step_of(checkpoint: Path | None) -> int:
    """The optimiser step of a Trainer checkpoint folder (`checkpoint-STEP`); 0 for None."""
    return int(checkpoint.name.rsplit("-", 1)[1]) if checkpoint else 0


def _hidden_size(model_config) -> int | None:
    """The width precision policy looks at (runtime.resolve_precision); None where a config has no such key."""
    text_config = model_config.get_text_config() if hasattr(model_config, "get_text_config") else model_config
    for key in ("hidden_size", "d_model", "n_embd", "embedding_dim"):
        if isinstance(getattr(text_config, key, None), int):
            return getattr(text_config, key)
    return None
