"""run_pretraining: the Trainer loop, its checkpoints, resuming from them, and the finished output folder."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from accelerate import PartialState
from transformers import ProgressCallback, Trainer, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..config import PretrainConfig
from ..errors import UserError
from ..log import logger
from ..results import METRICS_FILE
from ..runtime import freed_memory_reused, resolve_precision, set_threads
from .architectures import Architecture, check_config
from .corpus import corpus_files, split_blocks, token_blocks
from .model import build_model, load_checkpoint_model, starting_checkpoint
from .objectives import ResumedBatchNumbers, collator_for
from .record import SessionFacts, pretraining_result, summary
from .tokenizer import prepare_tokenizer


def run_pretraining(config: PretrainConfig, callbacks: tuple = ()) -> dict:
    """Pretrain as `config` says; return the run's summary (see record.summary: losses in nats per token).

    Writes the model, its config and tokenizer, and metrics.json (a RunResult of kind "pretraining") into
    output_dir, where the Trainer also keeps its last two checkpoints (every `save_steps` steps). Run again with
    the same output_dir after a crash, it resumes from the newest complete checkpoint and finishes with the same
    weights and losses as an uninterrupted run; an output_dir holding a finished run (its metrics.json) is refused.
    `callbacks` are extra transformers TrainerCallbacks. Bad input raises UserError before output_dir is written.
    """
    started = time.perf_counter()
    architecture = check_config(config)
    output_dir = Path(config.output_dir or f"outputs/pretrain-{config.architecture}-{Path(config.corpus).stem}")
    if (output_dir / METRICS_FILE).is_file():  # resuming past the end would step beyond max_steps
        raise UserError(f"output_dir {output_dir} holds a finished pretraining run: pick another output_dir "
                        f"(from_checkpoint={output_dir} continues from it there) or delete it")
    files = corpus_files(config.corpus)
    resume_from = last_checkpoint(output_dir, architecture)
    checkpoint = starting_checkpoint(config, architecture)
    state = PartialState(cpu=not torch.cuda.is_available())  # as TrainingArguments(use_cpu=...) will see it
    set_threads(config.threads)

    tokenizer = prepare_tokenizer(config, architecture, files, resume_from, checkpoint, state)
    if checkpoint is not None:
        model = load_checkpoint_model(checkpoint, architecture, tokenizer, config)
    else:
        model = build_model(architecture, tokenizer, config)
    # Trainer multiplies the loss by the process count for models whose forward takes **kwargs, assuming they
    # divide by the global token count; T5 and our backbones average per batch, which doubled their loss under DDP.
    model.accepts_loss_kwargs = False
    if architecture.positions_key:  # pipelines truncate to this; longer inputs would overrun the position table
        tokenizer.model_max_length = getattr(model.config, architecture.positions_key)
    with state.main_process_first():  # the main process fills the datasets cache, the others read it
        blocks = token_blocks(files, tokenizer, architecture.objective, config.max_seq_length)
    train_blocks, eval_blocks = split_blocks(blocks, config)
    precision = resolve_precision(config.precision, getattr(model.config, "hidden_size", 0))
    logger.info(f"pretraining {config.architecture} ({model.num_parameters() / 1e6:.1f}M parameters, vocabulary "
                f"{len(tokenizer)}) on {len(train_blocks)} blocks of {config.max_seq_length} tokens, {precision}"
                + (f", resuming from {resume_from}" if resume_from else ""))

    collator = collator_for(architecture.objective, tokenizer, config.seed, state.process_index)
    trainer = Trainer(
        model=model,
        args=pretraining_arguments(config, output_dir, precision),
        data_collator=collator,
        train_dataset=train_blocks,
        eval_dataset=eval_blocks,
        processing_class=tokenizer,
        callbacks=[ResumedBatchNumbers(collator), *callbacks],
    )
    throughput = ThroughputProgressCallback()
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(throughput)
    with freed_memory_reused(config.reuse_freed_memory, trainer.args.device):
        train_output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    collator.restart_batches("eval")
    eval_started = time.perf_counter()
    eval_loss = trainer.evaluate()["eval_loss"]
    eval_seconds = time.perf_counter() - eval_started
    trainer.save_model(str(output_dir))  # model (safetensors), config and tokenizer

    session = SessionFacts(
        resumed_from_step=int(resume_from.name.rsplit("-", 1)[1]) if resume_from else 0,
        train_loss=train_output.training_loss,
        train_seconds=train_output.metrics["train_runtime"],
        tokens=trainer.state.num_input_tokens_seen - throughput.tokens_at_start,
        eval_seconds=eval_seconds,
        wall_seconds=time.perf_counter() - started,
    )
    split_sizes = {"train": len(train_blocks), "eval": len(eval_blocks)}
    result = pretraining_result(config, architecture, checkpoint, files, split_sizes, trainer, tokenizer, eval_loss,
                                session, state.num_processes)
    if trainer.is_world_process_zero():
        result.save(output_dir)
    return summary(result, output_dir)


def last_checkpoint(output_dir: Path, architecture: Architecture) -> Path | None:
    """The newest complete checkpoint-N folder of an interrupted run in `output_dir`, if any.

    Raises UserError when it holds checkpoints of another model type.
    """
    if not output_dir.is_dir():
        return None
    steps = {}
    for folder in output_dir.glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        step = folder.name.rsplit("-", 1)[1]
        # trainer_state.json is written last: a checkpoint without it was cut off while saving.
        if step.isdigit() and (folder / "trainer_state.json").is_file():
            steps[int(step)] = folder
    if not steps:
        return None
    newest = steps[max(steps)]
    model_type = json.loads((newest / "config.json").read_text()).get("model_type")
    if model_type != architecture.model_type:
        raise UserError(f"output_dir {output_dir} holds checkpoints of a {model_type} run, "
                        f"not {architecture.model_type}: pick another output_dir or delete that one")
    return newest


def pretraining_arguments(config: PretrainConfig, output_dir: Path, precision: str) -> TrainingArguments:
    """The Trainer's arguments: checkpoints every `save_steps` (the last two kept), one evaluation at the end."""
    return TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_ratio,  # transformers 5 reads a float below 1 as a fraction of all steps
        weight_decay=config.weight_decay,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=not torch.cuda.is_available(),
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=2,  # the newest checkpoint to resume from, and one before it in case that one is cut off
        eval_strategy="no",  # one evaluation at the end
        logging_steps=config.logging_steps,
        logging_first_step=True,
        include_num_input_tokens_seen="non_padding",  # logs also carry train_tokens_per_second
        remove_unused_columns=False,  # the collators take exactly the columns token_blocks makes
        report_to="none",
        seed=config.seed,
        data_seed=config.seed,
    )


class ThroughputProgressCallback(ProgressCallback):
    """The Trainer's progress bar, with this session's (non-pad) input tokens per second beside it."""

    def on_train_begin(self, args, state, control, **kwargs):
        """Start this session's clock and token count (a resumed run's counter starts at its checkpoint's)."""
        super().on_train_begin(args, state, control, **kwargs)
        self.started = time.perf_counter()
        self.tokens_at_start = state.num_input_tokens_seen  # a resumed run counts from its checkpoint

    def on_step_end(self, args, state, control, **kwargs):
        """Show input tokens per second since this session began beside the bar."""
        super().on_step_end(args, state, control, **kwargs)
        if self.training_bar is not None:
            rate = (state.num_input_tokens_seen - self.tokens_at_start) / (time.perf_counter() - self.started)
            self.training_bar.set_postfix_str(f"{rate:,.0f} tok/s", refresh=False)
