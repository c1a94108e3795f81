"""Trainer assembly: TrainingArguments from our TrainConfig, the precision policy, prediction and FLOP helpers.

What each choice here buys is measured by benchmarks/bench_training.py (`--profile` splits a step into data,
forward, backward and optimizer).
"""

from __future__ import annotations

import os

import numpy as np
import safetensors.torch
import torch
from peft import PeftModel
from torch.utils.data import SequentialSampler
from transformers import DataCollatorWithPadding, PreTrainedModel, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer import TRAINING_ARGS_NAME
from transformers.utils import SAFE_WEIGHTS_NAME

from .batching import LengthBucketedSampler
from .config import TrainConfig
from .schedule import DEFAULT_EPOCHS

def training_arguments(config: TrainConfig, output_dir: str, precision: str, evaluate_each_epoch: bool) -> TrainingArguments:
    """TrainingArguments for `config` (learning_rate resolved), checkpointing into `output_dir` every
    `config.checkpoint_steps` optimiser steps (only the newest checkpoint is kept)."""
    return TrainingArguments(
        output_dir=output_dir,
        num_train_epochs=DEFAULT_EPOCHS if config.epochs is None else config.epochs,
        max_steps=config.max_steps,
        learning_rate=config.learning_rate,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.eval_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_ratio,  # transformers 5 reads a float below 1 as a fraction of all steps
        lr_scheduler_type=config.lr_scheduler,
        max_grad_norm=config.max_grad_norm,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=not torch.cuda.is_available(),
        train_sampling_strategy="group_by_length" if config.group_by_length else "random",
        eval_strategy="epoch" if evaluate_each_epoch else "no",
        save_strategy="steps" if config.checkpoint_steps else "no",  # for resuming; the final model is saved apart
        save_steps=config.checkpoint_steps or 500,
        save_total_limit=1,
        logging_strategy="steps",
        logging_steps=config.logging_steps,
        logging_first_step=True,
        report_to="none",
        seed=config.seed,
        data_seed=config.seed,
        dataloader_num_workers=0,  # tokenized once up front: collation is ~1% of a step, workers only add copies
        optim="adamw_torch_fused",
    )


class LogAtCheckpoints(TrainerCallback):
    """Logs the training loss at every checkpoint as well as every `logging_steps`: no logging window then spans
    a checkpoint, so a run resumed from one logs the loss curve of an uninterrupted run, and `mean_train_loss`
    adds up the steps before the resume exactly. (It runs after transformers' DefaultFlowCallback, which decides
    to save.)"""

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_save:
            control.should_log = True


def mean_train_loss(log_history: list[dict], resumed_at_step: int = 0) -> float | None:
    """The mean training loss over every optimiser step of the run, resumed or not; None when nothing logged one.

    Trainer's `train_loss` averages the steps of its own train() call: after a resume from the checkpoint at
    step s, steps s+1 to the end only. Steps 1..s are covered by the `loss` entries restored with the checkpoint's
    log history (each the mean of its logging window, and with LogAtCheckpoints one window ends at s).
    """
    final = next((entry for entry in reversed(log_history) if "train_loss" in entry), None)
    if final is None:
        return None
    if not resumed_at_step:
        return final["train_loss"]
    before, previous = 0.0, 0
    for entry in log_history:
        if "loss" in entry and entry["step"] <= resumed_at_step:
            before += entry["loss"] * (entry["step"] - previous)
            previous = entry["step"]
    return (before + final["train_loss"] * (final["step"] - resumed_at_step)) / final["step"]


class TransferTrainer(Trainer):
    """Trainer with length-bucketed training batches and evaluation in dataset order.

    transformers' `group_by_length` also reorders evaluation (its eval sampler is length-grouped too), so
    `predict` would return predictions in a shuffled order; here evaluation is sequential and `predict_logits`
    does the length sorting, and puts the rows back.
    """

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.train_sampling_strategy != "group_by_length" or dataset is None:
            return super()._get_train_sampler(train_dataset)
        lengths = [len(ids) for ids in dataset["input_ids"]]
        args = self.args
        global_batch = args.per_device_train_batch_size * args.gradient_accumulation_steps * max(1, args.world_size)
        return LengthBucketedSampler(lengths, global_batch, seed=args.data_seed)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """Checkpoints of our wrappers (head=text-to-text), which are no PreTrainedModel and tie the seq2seq
        model's embeddings: safetensors' save_model keeps one name per tied group, where Trainer's save_file
        refuses shared tensors. Loading it back (Trainer's non-strict load_state_dict) fills the whole group."""
        model = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
        if isinstance(model, (PreTrainedModel, PeftModel)):
            return super()._save(output_dir, state_dict)
        output_dir = output_dir or self.args.output_dir
        if self.args.should_save:
            os.makedirs(output_dir, exist_ok=True)
            safetensors.torch.save_model(model, os.path.join(output_dir, SAFE_WEIGHTS_NAME), metadata={"format": "pt"})
            torch.save(self.args, os.path.join(output_dir, TRAINING_ARGS_NAME))

    def _get_eval_sampler(self, eval_dataset):
        # One process: in order. Several: None lets accelerate shard in order and gather back in order.
        return SequentialSampler(eval_dataset) if self.args.world_size <= 1 else None


def build_trainer(model, args: TrainingArguments, tokenizer, train_dataset, eval_dataset, callbacks, optimizer_groups=None,
                  data_collator=None, compute_loss_func=None, compute_metrics=None):
    """A TransferTrainer; `optimizer_groups` (param groups with their own learning rates) get a fused AdamW, and
    `data_collator` defaults to dynamic padding (DataCollatorWithPadding). The loss is logged at checkpoints too
    (LogAtCheckpoints). `compute_loss_func` replaces the model's loss (hf_transfer.losses: soft targets, class
    weights) and `compute_metrics` scores evaluations (hf_transfer.selection), as Trainer takes them."""
    optimizers = (None, None)
    if optimizer_groups is not None:
        optimizers = (torch.optim.AdamW(optimizer_groups, lr=args.learning_rate, weight_decay=args.weight_decay,
                                        fused=True), None)
    return TransferTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        data_collator=data_collator or DataCollatorWithPadding(tokenizer, pad_to_multiple_of=None),
        callbacks=[LogAtCheckpoints(), *callbacks],
        optimizers=optimizers,
        compute_loss_func=compute_loss_func,
        compute_metrics=compute_metrics,
    )


def predict_logits(trainer: Trainer, dataset) -> np.ndarray:
    """Logits for every row of a tokenized dataset, in its order; computed shortest-first to skip padding."""
    lengths = np.asarray([len(ids) for ids in dataset["input_ids"]])
    order = np.argsort(lengths, kind="stable")
    logits = trainer.predict(dataset.select(order)).predictions
    logits = logits[0] if isinstance(logits, tuple) else logits
    in_order = np.empty_like(logits)
    in_order[order] = logits
    return in_order


def predictions_from_logits(logits: np.ndarray, multi_label: bool) -> tuple[np.ndarray, np.ndarray]:
    """(predicted label ids or multi-hot rows, probabilities)."""
    logits = torch.as_tensor(np.asarray(logits, dtype=np.float32))
    if multi_label:
        probabilities = torch.sigmoid(logits)
        return (probabilities > 0.5).int().numpy(), probabilities.numpy()
    probabilities = torch.softmax(logits, dim=-1)
    return probabilities.argmax(-1).numpy(), probabilities.numpy()


def count_parameters(model) -> dict:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable": trainable, "total": total, "trainable_fraction": trainable / total if total else 0.0}


def non_embedding_parameters(model) -> int:
    """Parameters outside the input embeddings (word, position, token type): those doing matmuls per token."""
    embedding_ids = set()
    for module in model.modules():
        if isinstance(module, torch.nn.Embedding):
            embedding_ids |= {id(p) for p in module.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in embedding_ids)


def model_flops(model, lengths, training: bool = True) -> float:
    """Useful FLOPs for sequences of these real (unpadded) lengths: 2 x non-embedding parameters per token
    forward plus the attention score and value matmuls (4 x layers x hidden x length per token), and twice that
    again for the backward pass (the usual 6N + attention estimate)."""
    config = model.config
    layers = getattr(config, "num_hidden_layers", 0) or 0
    hidden = getattr(config, "hidden_size", 0) or 0
    lengths = np.asarray(lengths, dtype=np.float64)
    forward = 2 * non_embedding_parameters(model) * lengths.sum() + 4 * layers * hidden * (lengths ** 2).sum()
    return float(forward * (3 if training else 1))
