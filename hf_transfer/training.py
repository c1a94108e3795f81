"""Trainer assembly: TrainingArguments from our TrainConfig, the precision policy, prediction and FLOP helpers.

What each choice here buys is measured by benchmarks/bench_training.py (`--profile` splits a step into data,
forward, backward and optimizer).
"""

from __future__ import annotations

import contextlib
import math
import os
import weakref
from dataclasses import dataclass, field

import numpy as np
import safetensors.torch
import torch
from peft import PeftModel
from torch.utils.data import DataLoader, SequentialSampler
from transformers import DataCollatorWithPadding, PreTrainedModel, Trainer, TrainerCallback, TrainingArguments
from transformers.integrations import TensorBoardCallback
from transformers.trainer import TRAINING_ARGS_NAME
from transformers.utils import SAFE_WEIGHTS_NAME

from .batching import LengthBucketedSampler, budget_batches, budget_row_slices
from .config import TrainConfig
from .errors import UserError
from .runtime import freed_memory_reused
from .schedule import DEFAULT_EPOCHS

# Evaluation keeps no activations for a backward pass: MiniLM at 512 tokens in bf16 took ~22 kB per token of an
# inference batch against ~0.7 MB per token of a training micro-batch, so evaluation batches of 8x the training
# budget stay well below a training step's peak (benchmarks/bench_training.py --memory).
EVAL_BUDGET_FACTOR = 8

# TensorBoard event files go to OUT/runs/, the folder transformers' Trainer uses and the Hub shows as training
# metrics; the other trackers log where their own settings say (MLFLOW_TRACKING_URI, WANDB_DIR, ...).
TENSORBOARD_DIR = "runs"
# pip names of the train.report_to integrations whose package is not named like the integration
TRACKER_PACKAGES = {"tensorboard": "tensorboard (or tensorboardX)", "comet_ml": "comet-ml",
                    "azure_ml": "azureml-core", "flyte": "flytekit"}


@dataclass
class TransferTrainingArguments(TrainingArguments):
    """TrainingArguments plus what TransferTrainer adds."""

    max_batch_tokens: int | None = field(default=None, metadata={
        "help": "padded tokens per forward/backward pass; a longer batch runs as several micro-batches (None: off)"})
    embedding_updates: str = field(default="dense", metadata={
        "help": "AdamW on the input embeddings: dense, deferred (DeferredRowsAdamW) or lazy (LazyRowsAdamW)"})
    reuse_freed_memory: bool = field(default=False, metadata={
        "help": "on CPU, keep freed memory in the heap for reuse while training (runtime.freed_memory_reused)"})
    logging_dir: str | None = field(default=None, metadata={
        "help": "TensorBoard event file folder (None: TENSORBOARD_LOGGING_DIR, else output_dir/runs/DATE_HOST)"})


def check_report_to(report_to: list[str]) -> None:
    """Raise UserError naming the package to install when a tracker in `report_to` (transformers' integration
    names, TrainConfig.report_to) has no library installed; transformers would fail only once the Trainer is
    built, after loading data and model."""
    if not report_to:
        return
    from transformers.integrations import get_available_reporting_integrations, is_azureml_available

    # transformers lists azure_ml as available only without mlflow (for report_to=all); asked by name it works
    available = set(get_available_reporting_integrations()) | ({"azure_ml"} if is_azureml_available() else set())
    missing = [name for name in report_to if name not in available]
    if missing:
        raise UserError(f"train.report_to={missing[0]} needs {TRACKER_PACKAGES.get(missing[0], missing[0])}, which "
                        f"is not installed: pip install it, or drop {missing[0]} from train.report_to")


def training_arguments(config: TrainConfig, output_dir: str, precision: str, evaluate_each_epoch: bool,
                       logging_dir: str | None = None, run_name: str | None = None) -> TrainingArguments:
    """TrainingArguments for `config` (learning_rate resolved), checkpointing into `output_dir` every
    `config.checkpoint_steps` optimiser steps (only the newest checkpoint is kept).

    `config.report_to` goes to TrainingArguments.report_to as it is (transformers' integration names), under
    `run_name` (the trackers' name for the run); TensorBoard writes its event files into `logging_dir`.
    """
    return TransferTrainingArguments(
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
        report_to=list(config.report_to) or "none",
        run_name=run_name,
        logging_dir=logging_dir,
        seed=config.seed,
        data_seed=config.seed,
        dataloader_num_workers=0,  # tokenized once up front: collation is ~1% of a step, workers only add copies
        optim="adamw_torch_fused",
        max_batch_tokens=config.max_batch_tokens,
        embedding_updates=config.embedding_updates,
        reuse_freed_memory=config.reuse_freed_memory,
        activation_checkpointing=config.gradient_checkpointing,  # transformers 5's name for gradient checkpointing
    )


class LogAtCheckpoints(TrainerCallback):
    """Logs the training loss at every checkpoint as well as every `logging_steps`: no logging window then spans
    a checkpoint, so a run resumed from one logs the loss curve of an uninterrupted run, and `mean_train_loss`
    adds up the steps before the resume exactly. (It runs after transformers' DefaultFlowCallback, which decides
    to save.)"""

    def on_step_end(self, args, state, control, **kwargs):
        """Log at every step that saves a checkpoint."""
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
    """Trainer with length-bucketed training batches, a token budget per pass, and evaluation in dataset order.

    transformers' `group_by_length` also reorders evaluation (its eval sampler is length-grouped too), so
    `predict` would return predictions in a shuffled order; here evaluation is sequential and `predict_logits`
    does the length sorting, and puts the rows back.

    Token budget (`args.max_batch_tokens`, TransferTrainingArguments): a batch whose padded size (rows x longest)
    exceeds it runs as consecutive row slices within the budget, each loss weighted by its share of the batch's
    loss terms, gradients accumulating: the optimiser step sees the same examples and (up to float rounding) the
    same gradient as the whole batch, while activation memory is bounded by the budget, not by batch x max_length.
    """

    _loss_share = 1.0  # the share of its batch's loss terms the micro-batch in flight holds (token budget)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        logging_dir = getattr(self.args, "logging_dir", None)
        for callback in self.callback_handler.callbacks:
            # transformers 5 has no TrainingArguments.logging_dir: its callback reads TENSORBOARD_LOGGING_DIR, which
            # stays in force when set
            if isinstance(callback, TensorBoardCallback) and callback.logging_dir is None and logging_dir:
                callback.logging_dir = logging_dir

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

    def train(self, *args, **kwargs):
        """Trainer.train; on a CPU with `args.reuse_freed_memory`, freed memory stays in the heap for the next step's
        tensors while it runs (runtime.freed_memory_reused). Deferred embedding steps are all applied at the end."""
        try:
            with freed_memory_reused(getattr(self.args, "reuse_freed_memory", False), self.args.device):
                return super().train(*args, **kwargs)
        finally:
            if self._deferred_steps():  # the weights in memory become dense AdamW's, for whoever reads them next
                self._deferred_steps().catch_up()

    def training_step(self, model, inputs, num_items_in_batch=None):
        """Trainer.training_step, within the token budget: a batch over args.max_batch_tokens runs as row slices
        (batching.budget_row_slices), each loss scaled by its share of the batch's loss terms, unless Trainer already
        divides the loss by the whole step's item count; returns the batch's loss (the sum of the slices' shares)."""
        budget = getattr(self.args, "max_batch_tokens", None)
        slices = budget_row_slices(inputs["input_ids"].shape, budget) if budget else [slice(None)]
        if len(slices) == 1:
            return super().training_step(model, inputs, num_items_in_batch)
        rows = inputs["input_ids"].shape[0]
        items = [loss_terms(inputs.get("labels"), part) for part in slices]
        # A loss Trainer already divides by the whole step's item count sums over micro-batches as it is.
        scaled = self.loss_is_scaled_for_ga if self.loss_is_scaled_for_ga is not None else (
            (self.model_accepts_loss_kwargs and num_items_in_batch is not None) or self.compute_loss_func is not None)
        total = 0.0
        try:
            for i, part in enumerate(slices):
                self._loss_share = 1.0 if scaled else items[i] / max(1, sum(items))
                micro_batch = {key: value[part] if isinstance(value, torch.Tensor) and value.dim() and
                               value.shape[0] == rows else value for key, value in inputs.items()}
                # Gradients synchronise across processes once, with the last micro-batch (if this step does at all).
                sync = contextlib.nullcontext() if i == len(slices) - 1 else self.accelerator.no_sync(model)
                with sync:
                    total = total + super().training_step(model, micro_batch, num_items_in_batch)
        finally:
            self._loss_share = 1.0
        return total

    def create_optimizer(self, model=None):
        """Trainer's AdamW (or the one build_trainer passed), with the input word embeddings' steps deferred
        (DeferredRowsAdamW) or lazy (LazyRowsAdamW) as `args.embedding_updates` says, where they train."""
        optimizer = super().create_optimizer(model)
        model = model if model is not None else self.model
        mode = getattr(self.args, "embedding_updates", "dense")
        embeddings = _input_embeddings(model)
        if isinstance(_unwrapped(optimizer), LazyRowsAdamW) or embeddings is None:  # made before, or no embeddings
            return self.optimizer
        uses = sum(p is embeddings.weight for _, p in model.named_parameters(remove_duplicate=False))
        # A row-sparse gradient skips the dense one's zero-filled 11.7M floats per pass and names its rows itself;
        # clipping takes it here (_clip_grad_norm), not across processes (DDP reduces dense gradients) or under
        # fp16's scaler.
        sparse = uses == 1 and self.args.world_size == 1 and self.accelerator.scaler is None and \
            isinstance(embeddings, torch.nn.Embedding) and embeddings.weight.requires_grad
        # Else dense AdamW, the same result: deferring pays only with a sparse gradient, and was measured on CPU only
        # (a GPU's fused AdamW streams the dense embedding fast, and deferring syncs with the host every step).
        if mode == "deferred" and sparse and self.args.device.type == "cpu":
            self.optimizer = DeferredRowsAdamW.from_adamw(optimizer, embeddings)
        elif mode == "lazy" and embeddings.weight.requires_grad:
            self.optimizer = LazyRowsAdamW.from_adamw(optimizer, [embeddings.weight], None if sparse else embeddings,
                                                      shared=uses > 1)
        if isinstance(embeddings, torch.nn.Embedding):
            embeddings.sparse = sparse and self.optimizer is not optimizer
        return self.optimizer

    def _deferred_steps(self) -> "DeferredRowsAdamW | None":
        optimizer = _unwrapped(self.optimizer)
        return optimizer if isinstance(optimizer, DeferredRowsAdamW) else None

    def _clip_grad_norm(self, model):
        """Trainer's clipping, or clip_gradients where a gradient is sparse (lazy embedding updates)."""
        if not _has_sparse_gradient(model):
            return super()._clip_grad_norm(model)
        return clip_gradients(model.parameters(), self.args.max_grad_norm)

    def _get_grad_norm(self, model, grad_norm=None):
        """Trainer's gradient norm for the log (computed by clip_gradients where a gradient is sparse), checked.

        Raises UserError when it is not finite and no fp16 loss scaler is there to skip the step: clipping would
        scale every gradient by max_grad_norm / inf = 0 (NaN where a gradient is itself inf), so the step, and every
        one like it, would leave the weights as they were or make them NaN, and the run would report a model that
        learnt nothing (a linear-probe folder of MiniLM did so before its dead features were left out)."""
        if grad_norm is None and _has_sparse_gradient(model):
            grad_norm = clip_gradients(model.parameters(), float("inf"))
        grad_norm = super()._get_grad_norm(model, grad_norm)
        if grad_norm is not None and self.accelerator.scaler is None and not np.isfinite(float(grad_norm)):
            if self._deferred_steps():
                self._deferred_steps().catch_up()
            largest, name = max((p.detach().abs().max().item(), n) for n, p in model.named_parameters() if p.numel())
            raise UserError(f"training stopped at optimiser step {self.state.global_step + 1} of "
                            f"{self.state.max_steps}: the gradient norm is {float(grad_norm)}, so the update would "
                            f"leave the weights as they are or make them NaN (the largest weight: {largest:.3g} in "
                            f"{name}): lower train.learning_rate, or start from another checkpoint")
        return grad_norm

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Trainer.compute_loss, scaled by the share of the batch the micro-batch in flight holds."""
        outputs = super().compute_loss(model, inputs, return_outputs=return_outputs,
                                       num_items_in_batch=num_items_in_batch)
        if self._loss_share == 1.0:
            return outputs
        return (outputs[0] * self._loss_share, outputs[1]) if return_outputs else outputs * self._loss_share

    def get_eval_dataloader(self, eval_dataset=None):
        """Token-budgeted evaluation batches (see _budgeted_loader), else Trainer's."""
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        return self._budgeted_loader(dataset, "evaluation") or super().get_eval_dataloader(eval_dataset)

    def get_test_dataloader(self, test_dataset):
        """Token-budgeted prediction batches (see _budgeted_loader), else Trainer's."""
        return self._budgeted_loader(test_dataset, "test") or super().get_test_dataloader(test_dataset)

    def _budgeted_loader(self, dataset, description: str) -> DataLoader | None:
        """Evaluation batches in dataset order, each at most eval_batch_size rows and EVAL_BUDGET_FACTOR x
        max_batch_tokens padded tokens; None (Trainer's fixed-size batches) without a budget, in several
        processes (accelerate shards fixed-size batches), or for anything but a tokenized datasets.Dataset."""
        budget = getattr(self.args, "max_batch_tokens", None)
        if not budget or self.args.world_size > 1 or not hasattr(dataset, "column_names") or \
                "input_ids" not in dataset.column_names:
            return None
        lengths = [len(ids) for ids in dataset["input_ids"]]
        batches = budget_batches(range(len(lengths)), lengths, budget * EVAL_BUDGET_FACTOR, self.args.eval_batch_size)
        dataset = self._remove_unused_columns(dataset, description=description)
        loader = DataLoader(dataset, batch_sampler=[b.tolist() for b in batches], collate_fn=self.data_collator,
                            num_workers=self.args.dataloader_num_workers, pin_memory=self.args.dataloader_pin_memory)
        return self.accelerator.prepare(loader)

    def _get_eval_sampler(self, eval_dataset):
        # One process: in order. Several: None lets accelerate shard in order and gather back in order.
        return SequentialSampler(eval_dataset) if self.args.world_size <= 1 else None


def _input_embeddings(model) -> torch.nn.Module | None:
    """The model's input embedding module; None for models without one (a head trained on features)."""
    try:
        return model.get_input_embeddings()
    except (AttributeError, NotImplementedError):
        return None


def _unwrapped(optimizer):
    """The optimizer under accelerate's AcceleratedOptimizer, which Trainer wraps it in."""
    return getattr(optimizer, "optimizer", optimizer)


def _has_sparse_gradient(model) -> bool:
    return any(p.grad is not None and p.grad.is_sparse for p in model.parameters())


def clip_gradients(parameters, max_norm: float) -> torch.Tensor:
    """torch.nn.utils.clip_grad_norm_ (L2 norm over all gradients; each scaled by max_norm / (norm + 1e-6) where
    that is below 1) for gradients that may be sparse COO tensors, which torch's norm kernels refuse: a sparse
    gradient is coalesced in place (duplicate rows summed) and its values count and are scaled. Returns the total
    norm before clipping (0-dim tensor); max_norm=inf only measures it."""
    parameters = [p for p in parameters if p.grad is not None]
    for p in parameters:
        if p.grad.is_sparse and not p.grad.is_coalesced():
            p.grad = p.grad.coalesce()
    grads = [p.grad.values() if p.grad.is_sparse else p.grad for p in parameters]  # values(): views, scaled in place
    total = torch.nn.utils.get_total_norm(grads, 2.0)
    if max_norm != float("inf"):
        coefficient = torch.clamp(max_norm / (total + 1e-6), max=1.0)
        for grad in grads:
            grad.mul_(coefficient.to(grad.dtype))
    return total


class LazyRowsAdamW(torch.optim.AdamW):
    """AdamW in which the param groups marked `lazy_rows=True` (2-D weights: the input word embeddings) update only
    the rows of the tokens in the step's batches.

    That is lazy Adam (TensorFlow Addons' LazyAdam; torch.optim.SparseAdam does it for sparse gradients, without
    AdamW's weight decay and fused dense groups): those rows get AdamW's update (moments, bias correction by the step
    count, decoupled weight decay); the other rows keep their weights and moments, where dense AdamW keeps moving
    them on their old momentum and decays them every step. The other groups step as torch's AdamW (fused where
    asked). The state has AdamW's keys and shapes, so checkpoints load either way.

    Which rows: those a sparse gradient holds (TransferTrainer makes the embedding sparse=True where it can:
    its weight used by that module alone, one process, no fp16 loss scaler); else the token ids the embedding module
    given to `from_adamw` saw in training forward passes since the last step (a forward pre-hook), when its weight
    is used by that module alone and one process trains; otherwise (tied weights, several processes whose batches
    differ, no module given) the rows whose gradient is nonzero, found by reading the whole gradient.

    Why: a batch of 32 short texts touches a few hundred of MiniLM's 30,522 embedding rows, but dense AdamW reads
    and writes all 11.7M embedding weights and both moments every step (benchmarks/bench_training.py --profile).
    """

    _seen_ids: dict | None = None  # {"weight": the embedding weight, "ids": token id tensors since the last step}

    @classmethod
    def from_adamw(cls, optimizer: torch.optim.AdamW, lazy: list[torch.Tensor],
                   embeddings: torch.nn.Embedding | None = None, shared: bool = False) -> "LazyRowsAdamW":
        """The same param groups and settings as `optimizer` (an AdamW without state yet), with the parameters in
        `lazy` moved to groups of their own marked lazy_rows. `embeddings`, the module whose weight is lazy[0],
        reports its token ids unless `shared` (its weight is also used elsewhere, e.g. tied to an output layer).
        Raises UserError for another optimizer."""
        if not isinstance(optimizer, torch.optim.AdamW) or optimizer.state:
            raise UserError(f"train.embedding_updates={'deferred' if cls is DeferredRowsAdamW else 'lazy'} needs a "
                            f"fresh AdamW, not {type(optimizer).__name__}: set train.embedding_updates=dense")
        lazy_ids, groups = {id(p) for p in lazy}, []
        for group in optimizer.param_groups:
            settings = {key: value for key, value in group.items() if key != "params"}
            dense = [p for p in group["params"] if id(p) not in lazy_ids]
            rows = [p for p in group["params"] if id(p) in lazy_ids]
            groups += [{**settings, "params": dense}] if dense else []
            groups += [{**settings, "params": rows, "lazy_rows": True}] if rows else []
        lazy_optimizer = cls(groups, **{key: value for key, value in optimizer.defaults.items() if key in (
            "lr", "betas", "eps", "weight_decay", "foreach", "fused")})
        if embeddings is not None and not shared:
            lazy_optimizer._seen_ids = {"weight": embeddings.weight, "ids": []}
            embeddings.register_forward_pre_hook(lazy_optimizer._record_ids)
        return lazy_optimizer

    def _record_ids(self, module, args) -> None:
        if module.training and torch.is_grad_enabled():
            self._seen_ids["ids"].append(args[0].detach().reshape(-1))

    @torch.no_grad()
    def step(self, closure=None):
        """One AdamW step: the dense groups as torch's AdamW, the lazy_rows groups on the rows seen since the last step
        only; returns the closure's loss (None without a closure)."""
        every_group = self.param_groups
        self.param_groups = [group for group in every_group if not group.get("lazy_rows")]
        try:
            loss = super().step(closure)  # the dense groups
        finally:
            self.param_groups = every_group
        for group in every_group:
            if group.get("lazy_rows"):
                for parameter in group["params"]:
                    grad = parameter.grad
                    if grad is not None and grad.is_sparse:  # the rows it holds (an Embedding with sparse=True)
                        grad = grad.coalesce()
                        self._update_rows(parameter, group, grad.indices()[0], grad.values())
                    elif grad is not None:
                        rows = self._rows(parameter)
                        self._update_rows(parameter, group, rows, grad.index_select(0, rows))
        if self._seen_ids:
            self._seen_ids["ids"].clear()
        return loss

    def _rows(self, parameter: torch.Tensor) -> torch.Tensor:
        seen = self._seen_ids
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized() and \
            torch.distributed.get_world_size() > 1
        if seen and seen["weight"] is parameter and seen["ids"] and not distributed:
            return torch.unique(torch.cat(seen["ids"]))
        return parameter.grad.any(dim=1).nonzero().squeeze(1)

    def _update_rows(self, parameter: torch.Tensor, group: dict, rows: torch.Tensor, g: torch.Tensor) -> None:
        """AdamW on `rows` of `parameter`, whose gradient rows are `g` [len(rows), dim]."""
        state = self.state[parameter]
        if not state:
            state["step"] = torch.tensor(0.0)
            state["exp_avg"] = torch.zeros_like(parameter, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(parameter, memory_format=torch.preserve_format)
        state["step"] += 1
        step = float(state["step"])
        (beta1, beta2), lr = group["betas"], float(group["lr"])
        exp_avg = state["exp_avg"].index_select(0, rows).mul_(beta1).add_(g, alpha=1 - beta1)
        exp_avg_sq = state["exp_avg_sq"].index_select(0, rows).mul_(beta2).addcmul_(g, g, value=1 - beta2)
        state["exp_avg"].index_copy_(0, rows, exp_avg)
        state["exp_avg_sq"].index_copy_(0, rows, exp_avg_sq)
        denominator = (exp_avg_sq / (1 - beta2 ** step)).sqrt_().add_(group["eps"])
        weights = parameter.index_select(0, rows).mul_(1 - lr * group["weight_decay"])
        weights.addcdiv_(exp_avg, denominator, value=-lr / (1 - beta1 ** step))
        parameter.index_copy_(0, rows, weights)


# The deferred steps' sum is cut where (beta1 / sqrt(beta2)) ** j, which scales a step j steps after a row's last
# gradient, falls below this share of the first (at torch's default betas 0.9 / 0.999: after 264 steps).
DEFERRED_CUTOFF = 1e-12
# float64 elements of one [rows, steps] block of the closed form (32 MB): all 30,522 rows of MiniLM come up to date in
# blocks of ~15,000, not in one 60 MB-per-array pass
DEFERRED_BLOCK = 1 << 22


def _weak_hook(method):
    """A module hook calling the bound `method` while its object lives."""
    reference = weakref.WeakMethod(method)

    def hook(*args):
        bound = reference()
        return None if bound is None else bound(*args)
    return hook


class DeferredRowsAdamW(LazyRowsAdamW):
    """AdamW with dense AdamW's result for the input word embeddings, at lazy Adam's cost: a row without a gradient
    in a step has that step deferred, and applied in closed form when the row is next read (the embedding's forward
    looks it up, a state_dict is taken, or `catch_up()` is called).

    A step with a zero gradient only decays a row's moments (m <- beta1 m, v <- beta2 v) and weight (AdamW's decoupled
    decay) and moves it by the decayed momentum, so from its last gradient at step s to step T:

        m_T = beta1^(T-s) m_s,  v_T = beta2^(T-s) v_s,  p_T = p_s D - C m_s / (sqrt(v_s) + eps'),
        D = prod_{i=s+1..T} (1 - lr_i wd),
        C = sum_{i=s+1..T} lr_i sqrt(1 - beta2^i) / (1 - beta1^i) (beta1 / sqrt(beta2))^(i-s) prod_{l=i+1..T} (1 - lr_l wd)

    with lr_i each step's learning rate (the schedule's, recorded), c_i the terms of C, and eps' = eps C / sum_i (c_i /
    f_i), f_i = sqrt(1 - beta2^i) / beta2^((i-s)/2) being how eps enters step i: exact where sqrt(v_s) >> eps and where
    sqrt(v_s) << eps, and the sum stops where (beta1 / sqrt(beta2))^(i-s) < DEFERRED_CUTOFF. Up to float rounding (D
    and C in float64; against dense AdamW in float64, within twice the rounding of torch's fused float32 AdamW) the
    weights anyone reads are dense AdamW's (tests/test_training.py). The rows with a gradient come from the
    embedding's row-sparse gradient (TransferTrainer makes it sparse=True); a dense gradient is scanned for them.

    Why: dense AdamW reads and writes all 11.7M of MiniLM's word-embedding weights and both moments every step, and
    the dense gradient fills 47 MB with zeros every pass, where a batch of 32 short texts touches a few hundred rows
    (benchmarks/bench_training.py --profile). Lazy Adam (LazyRowsAdamW) skips those steps instead, and scored lower.
    """

    _weight: torch.Tensor | None = None  # the deferred weight
    _steps_done = 0  # optimiser steps taken on it
    _last_step: torch.Tensor | None = None  # int64 [rows]: the step each row was last brought up to
    _learning_rates: list | None = None  # each step's learning rate, by step number (index 0 unused)
    _history: tuple | None = None  # (steps done, learning rates, log of the weight decay's factor kept): float64

    @classmethod
    def from_adamw(cls, optimizer: torch.optim.AdamW, embeddings: torch.nn.Embedding) -> "DeferredRowsAdamW":
        """The same param groups and settings as `optimizer` (an AdamW without state yet), with `embeddings.weight`
        deferred. The embedding must own its weight alone (no tied output layer) and one process must train it:
        its forward pre-hook brings the rows it looks up to date. Raises UserError for another optimizer."""
        deferred = super().from_adamw(optimizer, [embeddings.weight])
        deferred._weight, deferred._learning_rates = embeddings.weight, [0.0]
        # The module outlives a Trainer's optimizer: the hooks hold it weakly, and do nothing once it is gone.
        embeddings.register_forward_pre_hook(_weak_hook(deferred._catch_up_looked_up_rows), with_kwargs=True)
        embeddings.register_state_dict_pre_hook(_weak_hook(deferred._catch_up_before_saving))
        embeddings.register_load_state_dict_pre_hook(_weak_hook(deferred._forget_deferred_steps))
        return deferred

    def _catch_up_looked_up_rows(self, module, args, kwargs) -> None:
        ids = args[0] if args else kwargs.get("input")
        if isinstance(ids, torch.Tensor):
            self._catch_up_rows(torch.unique(ids.detach()))
        else:
            self.catch_up()

    def _catch_up_before_saving(self, module, prefix, keep_vars) -> None:
        self.catch_up()

    def _forget_deferred_steps(self, module, state_dict, prefix, *args) -> None:
        """Weights loaded into the module (e.g. Trainer's best checkpoint) replace what deferred steps would move."""
        if prefix + "weight" in state_dict and self._last_step is not None:
            self._last_step.fill_(self._steps_done)

    def catch_up(self) -> None:
        """Apply every deferred step to every row: the weight and its moments are then dense AdamW's."""
        if self._last_step is not None:
            self._catch_up_rows(torch.arange(len(self._last_step), device=self._last_step.device))

    def state_dict(self):
        """AdamW's state dict, every deferred step applied first (so a checkpoint holds dense AdamW's state)."""
        self.catch_up()
        return super().state_dict()

    def load_state_dict(self, state_dict) -> None:
        """AdamW's; every row counts as up to date at the loaded step (a saved state has no deferred steps)."""
        super().load_state_dict(state_dict)
        self._last_step = None
        self._steps_done = int(self.state[self._weight]["step"]) if "step" in self.state[self._weight] else 0
        self._learning_rates, self._history = [0.0] * (self._steps_done + 1), None

    def _learning_rate_history(self, device) -> tuple[torch.Tensor, torch.Tensor]:
        """float64 [steps + 1]: each step's learning rate, and the log of prod_{l<=i} (1 - lr_l wd) (so that
        prod_{l=a+1..b} (1 - lr_l wd) = exp(log_kept[b] - log_kept[a])), computed once per step."""
        if self._history is None or self._history[0] != self._steps_done:
            group = self._group()
            rates = torch.tensor(self._learning_rates, dtype=torch.float64, device=device)
            log_kept = torch.cumsum(torch.log1p(-rates * group["weight_decay"]), 0)
            self._history = (self._steps_done, rates, log_kept)  # rates[0] = 0: log_kept[0] = 0
        return self._history[1], self._history[2]

    @torch.no_grad()
    def _catch_up_rows(self, rows: torch.Tensor) -> None:
        """Apply the steps deferred for `rows` (int64 row indices) up to the last step done."""
        if self._last_step is None:
            return
        rows = rows.to(self._last_step.device)
        behind = self._steps_done - self._last_step[rows]
        rows, behind = rows[behind > 0], behind[behind > 0]
        if not len(rows):
            return
        beta1, beta2 = self._group()["betas"]
        decay = beta1 / beta2 ** 0.5
        window = int(behind.max())  # (beta1 / sqrt(beta2))^j does not fall with j when beta1 >= sqrt(beta2)
        if decay < 1:
            window = min(window, math.ceil(math.log(DEFERRED_CUTOFF) / math.log(decay)))
        block = max(1, DEFERRED_BLOCK // window)
        for start in range(0, len(rows), block):
            self._apply_deferred_steps(rows[start:start + block], behind[start:start + block], window)

    @torch.no_grad()
    def _apply_deferred_steps(self, rows: torch.Tensor, behind: torch.Tensor, window: int) -> None:
        """The closed form (class docstring) for `rows`, each `behind` steps behind, summing at most `window` steps."""
        group = self._group()
        (beta1, beta2), done = group["betas"], self._steps_done
        rates, log_kept = self._learning_rate_history(rows.device)
        first = self._last_step[rows]
        lags = torch.arange(1, min(int(behind.max()), window) + 1, device=rows.device)
        steps = (first[:, None] + lags[None, :]).clamp(max=done)  # [rows, lags]: the deferred step numbers
        step_f = steps.to(torch.float64)
        terms = rates[steps] * torch.sqrt(1 - beta2 ** step_f) / (1 - beta1 ** step_f) * \
            (beta1 / beta2 ** 0.5) ** lags.to(torch.float64)[None, :] * torch.exp(log_kept[done] - log_kept[steps])
        terms = torch.where(lags[None, :] <= behind[:, None], terms, 0.0)
        moved = terms.sum(1)  # C per row
        kept = torch.exp(log_kept[done] - log_kept[first])  # D per row
        # eps enters step s+j as eps f_j, f_j = sqrt(1 - beta2^(s+j)) / beta2^(j/2); eps' = eps C / sum_j(c_j / f_j)
        # is exact both where sqrt(v_s) >> eps f_j and where it is << (steps early in a run change f_j most)
        scaled = torch.sqrt(1 - beta2 ** step_f) / beta2 ** (lags.to(torch.float64)[None, :] / 2)
        harmonic = (terms / scaled).sum(1)
        eps = group["eps"] * torch.where(harmonic > 0, moved / harmonic.clamp(min=1e-300), 1.0)
        state, weight = self.state[self._weight], self._weight
        exp_avg, exp_avg_sq = state["exp_avg"].index_select(0, rows), state["exp_avg_sq"].index_select(0, rows)
        update = exp_avg / (exp_avg_sq.sqrt() + eps.to(exp_avg.dtype)[:, None])
        moved_weights = weight.index_select(0, rows).mul_(kept.to(weight.dtype)[:, None])
        weight.index_copy_(0, rows, moved_weights.sub_(update.mul_(moved.to(update.dtype)[:, None])))
        behind_f = behind.to(torch.float64)[:, None]
        state["exp_avg"].index_copy_(0, rows, exp_avg.mul_((beta1 ** behind_f).to(exp_avg.dtype)))
        state["exp_avg_sq"].index_copy_(0, rows, exp_avg_sq.mul_((beta2 ** behind_f).to(exp_avg_sq.dtype)))
        self._last_step[rows] = done

    def _group(self) -> dict:
        return next(group for group in self.param_groups if any(p is self._weight for p in group["params"]))

    def _update_rows(self, parameter: torch.Tensor, group: dict, rows: torch.Tensor, g: torch.Tensor) -> None:
        """AdamW's step on `rows` (gradient rows `g`), which the embedding's forward brought up to the step before;
        raises UserError for rows it did not (the model read the weight without the module)."""
        if self._last_step is None:
            self._last_step = torch.full((parameter.shape[0],), self._steps_done, dtype=torch.int64,
                                         device=parameter.device)
        stale = int((self._last_step[rows] < self._steps_done).sum())
        if stale:  # a row with a gradient that the embedding's forward did not bring up to date first
            raise UserError(f"train.embedding_updates=deferred: {stale} word-embedding rows got a gradient without "
                            "passing through the embedding module's forward (the model reads its weight some other "
                            "way), so they were read before their deferred steps: set train.embedding_updates=dense")
        super()._update_rows(parameter, group, rows, g)
        self._steps_done = int(self.state[parameter]["step"])
        self._learning_rates += [0.0] * (self._steps_done + 1 - len(self._learning_rates))
        self._learning_rates[self._steps_done] = float(group["lr"])
        self._last_step[rows] = self._steps_done


def loss_terms(labels: torch.Tensor | None, rows: slice) -> int:
    """How many terms the mean loss of these rows averages over: labelled positions (label != -100) for integer
    labels (one per row for classification, one per token for token labels), every entry of float labels
    (multi-label), one per row without labels. Losses that average otherwise (the text-to-text head's mean over
    target tokens) are weighted by this count only approximately, as under Trainer's gradient accumulation."""
    if labels is None:
        return rows.stop - rows.start
    part = labels[rows]
    return part.numel() if part.is_floating_point() else int((part != -100).sum())


def build_trainer(model, args: TrainingArguments, tokenizer, train_dataset, eval_dataset, callbacks, optimizer_groups=None,
                  data_collator=None, compute_loss_func=None, compute_metrics=None):
    """A TransferTrainer; `optimizer_groups` (param groups with their own learning rates) get a fused AdamW, and
    `data_collator` defaults to dynamic padding (DataCollatorWithPadding). The loss is logged at checkpoints too
    (LogAtCheckpoints). `compute_loss_func` replaces the model's loss (hf_transfer.losses: soft targets, class
    weights) and `compute_metrics` scores evaluations (hf_transfer.selection), as Trainer takes them.

    Raises UserError when args ask for gradient checkpointing of a model that does not support it.
    """
    if getattr(args, "activation_checkpointing", False) and not getattr(model, "supports_gradient_checkpointing", False):
        raise UserError(f"train.gradient_checkpointing=true: {type(model).__name__} does not support gradient "
                        "checkpointing; set train.gradient_checkpointing=false (train.max_batch_tokens bounds memory "
                        "too)")
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
    """{trainable, total, trainable_fraction}: parameter counts (elements) of `model`, as metrics.json reports them."""
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
    config = getattr(model, "base_model", model).config  # the encoder's, under a wrapping head (hft-pooled)
    layers = getattr(config, "num_hidden_layers", 0) or 0
    hidden = getattr(config, "hidden_size", 0) or 0
    lengths = np.asarray(lengths, dtype=np.float64)
    forward = 2 * non_embedding_parameters(model) * lengths.sum() + 4 * layers * hidden * (lengths ** 2).sum()
    return float(forward * (3 if training else 1))
