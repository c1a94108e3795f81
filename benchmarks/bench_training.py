"""Training throughput, model-FLOPs utilisation, peak memory and test accuracy: our default classify recipe
against three plain-Trainer baselines, measured in one run.

Same model (minilm-l6), data (rotten-tomatoes, the recipe's splits), batch size, learning rate and epochs for all:
  A     transformers' text-classification example defaults: every text padded to max_length=128, default collator, fp32
  B     A with dynamic padding (DataCollatorWithPadding)
  C     B + train_sampling_strategy="group_by_length" + bf16=True: the best of Trainer's flags alone
  C-fp32  C without bf16: the best of Trainer's flags on a CPU without avx512_bf16/AMX
  ours  the default recipe (recipes/configs/classify.yaml), built as hf_transfer.classify builds it (since
        2026-11-30 without dropout and with eager attention on CPU: train.dropout, train.attn_implementation)
  ours-fp32  the same in fp32: the accuracy reference for bf16

Each configuration lives in its own worker process (so peak memory is its own) holding a Trainer that pauses
every --steps steps. Throughput: after a warm-up, the workers run --steps steps each in turn, --rounds times,
so a busy machine slows all of them alike; the median round counts. Accuracy: the workers named by --accuracy
then train to the end and label the test split (same fp32 evaluation code for all).

MFU = (6 x non-embedding parameters + attention) FLOPs per real token x real tokens/s / the matmul peak of the
precision used, which this script measures itself (square matmuls, best of several). On a CPU without
avx512_bf16/AMX (AVX2 only) bf16 matmuls are emulated (1 GFLOP/s against 55 in fp32, one thread, measured
2026-11-25): C then crawls, and ours runs fp32 (train.precision=auto); compare with C-fp32 there
(--configs A,B,C-fp32,ours).

    python benchmarks/bench_training.py                         # throughput + accuracy of every configuration
    python benchmarks/bench_training.py --accuracy ours,ours-fp32,C --steps 15 --rounds 3
    python benchmarks/bench_training.py --accuracy none --configs C,ours   # throughput only
    python benchmarks/bench_training.py --accuracy none --configs C,ours --steps 288 --rounds 2 --warmup 2
                                                                           # turns of a whole epoch each

Short turns see different batches per side (Trainer's length grouping and ours draw different lengths), so their
examples/s ratio moves with the draw (1.13x and 1.58x C in two runs); turns of a whole epoch (288 steps at batch
32) compare the same examples.

`--ours-overrides "train.embedding_updates=dense ..."` applies config overrides to ours and ours-fp32, to
measure a lever against the baselines in the same run. The header names the machine kind (avx512_bf16: bf16 is
native, or AVX2: bf16 emulated), the CPU and the load average before and after.

Where the step time goes, and what each lever gives: `--profile --steps 10 --rounds 2` times forward, backward
and optimizer of the recipe's training step and of variants (sdpa attention, MiniLM's dropout, both: the recipe
before 2026-11-30, word embeddings frozen or updated lazily, foreach AdamW, fp32, two threads), alternating, in one
process, all on the same --steps batches.

Peak memory (valid on a busy machine too): `--memory` runs `hf-transfer classify` on long texts (convention
speeches, max_length 512, batch 32, --steps steps and the evaluation) without a token budget, at the default
budget (bf16 where native, and fp32), and with gradient checkpointing, each in its own process, and prints
metrics.json's peak memory. The run without a budget peaked at 10.7 GB: leave it out on a small machine
(`--memory-runs "default,default in fp32,default + checkpointing"`).

Kept (2026-12-02, late; an idle avx512_bf16 AMD EPYC, one thread): deferred word-embedding steps
  (train.embedding_updates=deferred, training.DeferredRowsAdamW): dense AdamW's result (a row's steps without a
  gradient applied in closed form when it is next read), the optimizer phase 21 instead of 32 ms. Three paired
  `--profile` runs on one host: 289 / 321 / 333 ms per step against 317 / 330 / 341 dense (8.8%, 2.7%, 2.3% less
  time). Whole epochs (`--configs C,ours --steps 288 --rounds 2 --warmup 2`): ours 123.4, 123.1, 125.1, 128.0
  examples/s against C's 96.6, 91.4, 93.2, 98.9 (1.28x, 1.35x, 1.34x, 1.29x: 1.32x on the mean). Test accuracy over six seeds 0.8338 against 0.8336 dense.
Kept (2026-12-02, an idle avx512_bf16 AMD EPYC, one thread): freed memory reused (train.reuse_freed_memory=true,
  runtime.freed_memory_reused): glibc unmaps every freed block of 32 MB or more and the next step's tensor of that
  size page-faults its memory back in from the kernel: ~15,000 minor faults per step of the recipe (its dense 47 MB
  word-embedding gradient, every step), none with the blocks kept in the heap. Whole epochs (`--configs C,ours
  --steps 288 --rounds 2 --warmup 2`): ours 118.3, 121.0, 125.4 examples/s (1.35x, 1.21x, 1.33x C, whose own speed
  moved 87.6-100.4 between runs; 1.29x in turns of 144 steps; on a later instance 124.8, 1.16x C at 108.0; on another
  103.4, 1.32x C at 78.4: 1.28x on the mean of the six) against 95.2 without it (1.08x C); with the same setting
  given to C as well
  (GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=1073741824): 1.30x. `--profile`: 318 against 355 ms per step. Same numbers (test 0.8361 both ways); peak memory at max_length
  512 (--memory): 2,838 MB against 2,380 (freed blocks of other sizes stay in the heap), 2,856 MB over 30 steps.
  glibc's hugetlb tunable on top (transparent huge pages for the heap): no gain (median step 279 and 328 ms against
  265 and 259, two runs each).
Kept (2026-11-30, an idle avx512_bf16 AMD EPYC, one thread, `--profile --steps 10 --rounds 2`, same batches):
- No dropout (train.dropout=null: 0 for full fine-tuning on 3,200+ examples) with eager attention on CPU
  (train.attn_implementation=null, up to max_length 128): 214 ms per bf16 step against 286 for MiniLM's dropout
  with sdpa, 1.34x. Above max_length 128 null keeps sdpa: at 512 eager peaked at 2,759 MB against 2,298 (--memory).
  torch.profiler over 6 steps: dropout masks (bernoulli_) took 10% of a step; without dropout sdpa picks its fused
  kernel, whose backward took 239 against eager's 125 ms. What is left (torch.profiler, the recipe): matmuls 61%,
  zero-filling (fill_, mostly the dense 47 MB word-embedding gradient) 7%, fused AdamW 5%, autocast's casts 5%,
  softmax and GELU 6%, clipping's per-tensor norms and scaling 3%. Accuracy: README.
- Before that, this profile ran every variant without autocast (transformers 5's autocast_smart_context_manager is
  a no-op): its "bf16" rows were fp32. It now enters accelerate's autocast, as Trainer's prepared model does.

What was tried (2026-11-29/30, an avx512_bf16 + AMX Xeon shared by 8 jobs on 2 cores, one thread: ROUGH, relative
shares only; the lead's idle-machine run is the measurement):
- The matmul peak this script measures at one thread here: fp32 110 GFLOP/s, bf16 1312 GFLOP/s (AMX), against
  507 on the Zen 5 avx512_bf16 machine of issue #19: MFU in bf16 is a share of a much higher peak on AMX CPUs.
- torch.profiler over 4 steps of the recipe (bf16): fused AdamW 18% of the step's CPU time, autocast's dtype casts
  (aten::copy_/_to_copy) 13%, matmuls (mm/addmm/bmm) 25%, dropout masks (bernoulli_) 5%, gradient clipping's
  per-tensor norms 3%, zero-filling (fill_) 3%. Half the AdamW work, most of the fill and half the norm work is
  the 11.7M-weight word-embedding matrix, of which a batch touches a few hundred rows.
- Lazy embedding rows (train.embedding_updates=lazy, hf_transfer.training.LazyRowsAdamW), rows taken from the
  token ids the embedding saw: the optimizer step over MiniLM's parameters took 0.53x the fused dense AdamW's time
  (alternating, 12 steps, 400 touched rows). A first version found the rows by scanning the gradient
  (grad.any(dim=1)): that scan cost nearly what it saved (0.93x). Still paid per step with lazy rows then: the
  dense embedding gradient (zero-filled, 47 MB) and its share of clipping's norm; since 2026-11-30 one process
  gets a row-sparse gradient instead (nn.Embedding(sparse=True), clipped by training.clip_gradients): on the idle
  EPYC, whole epochs, 1.26x C against the dense recipe's 1.21x, at -0.38 test points over six seeds (README): off.
- foreach AdamW instead of fused: optimizer phase 3.5x slower (1682 vs 486 ms/step under load): fused stays.
- eager vs sdpa attention: within the noise of a loaded machine (with dropout, sdpa in bf16 training runs the math
  path, the same bmm/softmax ops as eager); on the idle EPYC above eager took 0.92x sdpa's step time.
- torch.compile(model, dynamic=True) of the training step: 0.96x the eager time per padded token after 93 s of
  compiling (bf16, alternating): not worth it.
- Two threads in one process while the machine is loaded: 4x slower than one (oversubscribed cores).
- (2026-12-02, idle AMD EPYC, one thread) An fp32 model with oneDNN's bf16 math for fp32 matmuls
  (torch.set_float32_matmul_precision("medium"), or torch.backends.mkldnn.matmul.fp32_precision = "bf16"), which
  would drop autocast's casts (copy_: 6.4% of a step in torch.profiler): a [864, 384] x [384, 1536] matmul took
  5.1 ms against 2.55 ms with bf16 inputs (12.7 ms in fp32); matmuls are 70% of the step: not tried further.
- (same day and host) Fusing each layer's query, key and value projections into one matmul (model surgery, not
  done): three [960, 384] x [384, 384] bf16 matmuls took 2.63 ms against 2.23 for one [960, 384] x [384, 1152]:
  ~7 ms of a ~300 ms step with the backward, ~2%.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import subprocess
import time

import numpy as np

SIDES = ("A", "B", "C", "C-fp32", "ours", "ours-fp32")
BASELINES = ("A", "B", "C", "C-fp32")  # the table's ratio columns


def matmul_peak(dtype_name: str, size: int = 1024, seconds: float = 1.0) -> float:
    """FLOP/s of the best of repeated square matmuls (torch, all threads), at least 3 of them."""
    import torch

    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    torch.matmul(a, b)
    best, runs, deadline = 0.0, 0, time.perf_counter() + seconds
    while runs < 3 or time.perf_counter() < deadline:
        started = time.perf_counter()
        torch.matmul(a, b)
        best, runs = max(best, 2 * size**3 / (time.perf_counter() - started)), runs + 1
    return best


def build(side: str, args):
    """(trainer, model, test dataset) for one configuration."""
    import torch
    from transformers import (DataCollatorWithPadding, Trainer, TrainingArguments, default_data_collator, set_seed)

    from hf_transfer.backbones import load_backbone
    from hf_transfer.config import ClassifyConfig, load_config
    from hf_transfer.data import load_task_data, tokenize_splits
    from hf_transfer.strategies import get_strategy
    from hf_transfer.runtime import resolve_precision, set_training_attention
    from hf_transfer.schedule import resolve_schedule
    from hf_transfer.training import build_trainer, training_arguments

    overrides = [f"data.max_train_samples={args.max_train_samples}"] if args.max_train_samples else []
    if side.startswith("ours"):
        overrides += args.ours_overrides.split()
    if side == "ours-fp32":
        overrides.append("train.precision=fp32")
    config = load_config(ClassifyConfig, None, overrides)
    strategy = get_strategy(config.strategy, config.strategy_options)
    set_seed(config.train.seed)
    task = load_task_data(config.data)
    if side.startswith("ours"):  # resolved as hf_transfer.classify does: the small-data rule, train.dropout
        config.train = resolve_schedule(config.train, strategy.name, len(task.splits["train"]))[0]
    if config.train.learning_rate is None:
        config.train.learning_rate = strategy.default_learning_rate
    backbone = load_backbone(config, task, strategy)
    model, tokenizer = backbone.model, backbone.tokenizer
    tokenized = tokenize_splits(task, tokenizer, config.data.max_length)
    output_dir = os.path.join(args.scratch, side)
    if side.startswith("ours"):
        set_training_attention(model, config.train.attn_implementation, config.data.max_length)
        setup = strategy.setup(model, backbone.family, config.train)
        if config.train.freeze_word_embeddings:
            model.get_input_embeddings().weight.requires_grad_(False)
        training_args = training_arguments(config.train, output_dir, resolve_precision(config.train.precision), False)
        trainer = build_trainer(setup.model, training_args, tokenizer, tokenized["train"], None, [],
                                setup.optimizer_grouped_parameters)
        return trainer, setup.model, tokenized["test"]  # the classifier it trains (hft-pooled with a pooling option)

    train = tokenized["train"]
    if side == "A":  # the example's `padding="max_length"`: every text padded to max_length
        train = task.splits["train"].map(
            lambda b: tokenizer(b[task.text_columns[0]], padding="max_length", truncation=True, max_length=128),
            batched=True, remove_columns=task.text_columns)
    training_args = TrainingArguments(
        output_dir=output_dir, num_train_epochs=config.train.epochs or 2, learning_rate=config.train.learning_rate,
        per_device_train_batch_size=config.train.batch_size, seed=config.train.seed, report_to="none",
        save_strategy="no", logging_steps=50, use_cpu=not torch.cuda.is_available(),
        bf16=side == "C", train_sampling_strategy="group_by_length" if side.startswith("C") else "random")
    collator = default_data_collator if side == "A" else DataCollatorWithPadding(tokenizer)
    trainer = Trainer(model=model, args=training_args, train_dataset=train, processing_class=tokenizer,
                      data_collator=collator)
    return trainer, model, tokenized["test"]


def worker(side: str, args, connection) -> None:
    """Build one configuration, then train in chunks on the parent's word and report what each chunk did."""
    import torch
    from transformers import TrainerCallback

    from hf_transfer.batching import length_sorted_batches, pad_batch
    from hf_transfer.training import model_flops

    if args.threads:
        torch.set_num_threads(args.threads)
    trainer, model, test = build(side, args)
    counts = {"examples": 0, "tokens": 0, "flops": 0.0}

    def count(module, positional, keywords):
        if module.training:
            lengths = keywords["attention_mask"].sum(-1).tolist()
            counts["examples"] += len(lengths)
            counts["tokens"] += sum(lengths)
            counts["flops"] += model_flops(model, lengths, training=True)

    model.register_forward_pre_hook(count, with_kwargs=True)

    class Pause(TrainerCallback):
        def __init__(self):
            self.budget, self.started = 0, 0.0

        def wait(self, control):
            command = connection.recv()
            if command == "stop":
                control.should_training_stop = True
                return
            self.budget = command  # steps to run before the next pause; None: to the end
            for key in counts:
                counts[key] = 0
            self.started = time.perf_counter()

        def on_train_begin(self, args_, state, control, **kwargs):
            connection.send({"ready": True, "precision": "bf16" if args_.bf16 else "fp32"})
            self.wait(control)

        def on_step_end(self, args_, state, control, **kwargs):
            if self.budget is None:
                return
            self.budget -= 1
            if self.budget == 0:
                connection.send({"seconds": time.perf_counter() - self.started, **counts,
                                 "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
                self.wait(control)

    pause = Pause()
    trainer.add_callback(pause)
    trainer.train()
    report = {"done": True, "seconds": time.perf_counter() - pause.started, **counts}
    if trainer.state.global_step >= trainer.state.max_steps:  # trained to the end: label the test split
        model.eval()
        columns = {k: test[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in test.column_names}
        predicted = np.zeros(len(test), dtype=np.int64)
        with torch.inference_mode():
            for batch in length_sorted_batches([len(ids) for ids in columns["input_ids"]], 8192):
                inputs = pad_batch(columns, batch, trainer.processing_class.pad_token_id)
                predicted[batch] = model(**inputs).logits.argmax(-1).numpy()
        report["accuracy"] = float((predicted == np.asarray(test["labels"])).mean())
    report["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    connection.send(report)


PROFILE_VARIANTS = {  # name: (config overrides, threads: None = --threads)
    "recipe (no dropout, eager attention, deferred embedding steps)": ([], None),
    "sdpa attention": (["train.attn_implementation=sdpa"], None),
    "dropout 0.1 (MiniLM's own)": (["train.dropout=0.1"], None),
    "dropout 0.1, sdpa attention (the recipe before)": (["train.dropout=0.1", "train.attn_implementation=sdpa"], None),
    "word embeddings frozen": (["train.freeze_word_embeddings=true"], None),
    "word embeddings dense AdamW (the recipe before)": (["train.embedding_updates=dense"], None),
    "word embeddings lazy (LazyRowsAdamW)": (["train.embedding_updates=lazy"], None),
    "foreach AdamW (not fused)": (["optim=adamw_torch"], None),
    "fp32": (["train.precision=fp32"], None),
    "freed memory returned to the system (train.reuse_freed_memory=false)": (["train.reuse_freed_memory=false"], None),
    "two threads": ([], 2),
}


def profile(args) -> None:
    """Milliseconds per training step of the recipe in forward / backward / optimizer, for each lever, all
    on the same --steps batches (the recipe's first ones), under the precision's autocast as Trainer runs it."""
    import torch

    from hf_transfer.config import ClassifyConfig, load_config
    from hf_transfer.data import load_task_data, tokenize_splits
    from hf_transfer.backbones import load_backbone
    from hf_transfer.strategies import get_strategy
    from hf_transfer.runtime import freed_memory_reused, resolve_precision, set_training_attention
    from hf_transfer.schedule import resolve_schedule
    from hf_transfer.training import build_trainer, training_arguments

    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    base = load_config(ClassifyConfig, None, [])
    task = load_task_data(base.data)
    prepared = {}
    for name, (overrides, _) in PROFILE_VARIANTS.items():
        optim = next((o.split("=")[1] for o in overrides if o.startswith("optim=")), None)
        config = load_config(ClassifyConfig, None, [o for o in overrides if not o.startswith("optim=")])
        strategy = get_strategy(config.strategy)
        config.train = resolve_schedule(config.train, strategy.name, len(task.splits["train"]))[0]
        config.train.learning_rate = config.train.learning_rate or strategy.default_learning_rate
        torch.manual_seed(0)
        backbone = load_backbone(config, task, strategy)
        set_training_attention(backbone.model, config.train.attn_implementation, config.data.max_length)
        model = strategy.setup(backbone.model, backbone.family, config.train).model
        if config.train.freeze_word_embeddings:
            model.get_input_embeddings().weight.requires_grad_(False)
        tokenized = tokenize_splits(task, backbone.tokenizer, config.data.max_length)
        training_args = training_arguments(config.train, os.path.join(args.scratch, "profile"),
                                           resolve_precision(config.train.precision), False)
        if optim:
            training_args.optim = optim
        trainer = build_trainer(model, training_args, backbone.tokenizer, tokenized["train"], None, [])
        trainer.create_optimizer()
        if not prepared:  # every variant steps through the same batches: their lengths set a step's cost
            loader = iter(trainer.get_train_dataloader())
            batches = [next(loader) for _ in range(args.steps)]
        prepared[name] = (trainer, {k: 0.0 for k in ("forward", "backward", "optimizer")}, [0, 0.0],
                          config.train.reuse_freed_memory)
    print(f"profile: {machine_kind()}; {time.strftime('%Y-%m-%d %H:%M:%S')}  {load_average()}", flush=True)
    for round_ in range(args.rounds + 1):  # round 0 warms up
        for name, (trainer, phases, totals, reuse) in prepared.items():
            torch.set_num_threads(PROFILE_VARIANTS[name][1] or threads)
            model, optimizer = trainer.model, trainer.optimizer
            model.train()
            with freed_memory_reused(reuse):  # as TransferTrainer.train runs
                run_batches(trainer, model, optimizer, batches, phases, totals, round_)
    print(f"profile done: {time.strftime('%H:%M:%S')}  {load_average()}\n")
    steps = args.rounds * args.steps
    print("| variant | forward ms | backward ms | optimizer ms | step ms | examples/s | GFLOP/s |")
    print("|---|---|---|---|---|---|---|")
    for name, (_, phases, (examples, flops), _) in prepared.items():
        total = sum(phases.values())
        print(f"| {name} | " + " | ".join(f"{1000 * v / steps:.0f}" for v in phases.values()) +
              f" | {1000 * total / steps:.0f} | {examples / total:.1f} | {flops / total / 1e9:.0f} |")


def run_batches(trainer, model, optimizer, batches, phases, totals, round_) -> None:
    """One training step per batch, timing forward / backward / optimizer into `phases` (not in round 0)."""
    from hf_transfer.training import clip_gradients, model_flops

    for batch in batches:
        t1 = time.perf_counter()
        # accelerate's autocast (bf16 where the run uses it); Trainer 5's autocast_smart_context_manager is a no-op
        # that leaves autocast to accelerate's prepared model, which this loop does not use
        with trainer.accelerator.autocast():
            loss = model(**batch).loss
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        clip_gradients(model.parameters(), 1.0)  # Trainer's clipping, sparse embedding gradients too
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        t4 = time.perf_counter()
        if round_:
            for key, seconds in zip(phases, (t2 - t1, t3 - t2, t4 - t3)):
                phases[key] += seconds
            totals[0] += len(batch["input_ids"])
            totals[1] += model_flops(model, batch["attention_mask"].sum(-1).tolist())


def load_average() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def machine_kind() -> str:
    """`avx512_bf16` (native bf16: avx512_bf16 or AMX) or `AVX2` (bf16 emulated), with the CPU and its cores."""
    from hf_transfer.runtime import cpu_has_fast_bf16, hardware_description

    kind = "avx512_bf16" if cpu_has_fast_bf16() else "AVX2 (no native bf16)"
    return f"machine kind {kind}; {hardware_description().split(', ')[0]}, {len(os.sched_getaffinity(0))} cores"


MEMORY_RUNS = {  # name: overrides of the long-text run
    "no budget": ["train.max_batch_tokens=null"],
    "default": [],
    "default without heap reuse": ["train.reuse_freed_memory=false"],
    "default in fp32": ["train.precision=fp32"],
    "default + checkpointing": ["train.gradient_checkpointing=true"],
    "budget 4096 + checkpointing": ["train.max_batch_tokens=4096", "train.gradient_checkpointing=true"],
}


def memory(args) -> None:
    """Peak memory (metrics.json's compute.peak_memory_mb) of a full fine-tune on long texts, per memory setting."""
    import json
    import sys

    print(f"memory: {machine_kind()}; {time.strftime('%Y-%m-%d %H:%M:%S')}  {load_average()}", flush=True)
    common = ["data.dataset=political-speeches", "data.max_length=512", "train.batch_size=32",
              f"train.max_steps={args.steps}", "train.checkpoint_steps=null", "overwrite_output_dir=true",
              f"train.threads={args.threads or 1}"]
    rows = {}
    for name in args.memory_runs.split(","):
        overrides = MEMORY_RUNS[name]
        output = os.path.join(args.scratch, "memory-" + name.replace(" ", "-").replace("+", "and"))
        command = [sys.executable, "-m", "hf_transfer.cli", "classify", *common, *overrides, f"output_dir={output}"]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{name} failed:\n{done.stderr[-2000:]}")
        record = json.loads(open(os.path.join(output, "metrics.json")).read())
        rows[name] = (record["compute"], record["config"]["train"], time.perf_counter() - started)
        print(f"{name}: {record['compute']['peak_memory_mb']:.0f} MB", flush=True)
    print(f"\nMiniLM-L6 full fine-tune, political-speeches, max_length 512, batch 32, {args.steps} steps + evaluation:\n")
    print("| setting | precision | max_batch_tokens | gradient checkpointing | peak memory MB | wall s (with loading) |")
    print("|---|---|---|---|---|---|")
    for name, (compute, train, seconds) in rows.items():
        print(f"| {name} | {compute['precision']} | {train['max_batch_tokens']} | {train['gradient_checkpointing']} | "
              f"{compute['peak_memory_mb']:.0f} | {seconds:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default=",".join(SIDES), help="which configurations (default: all)")
    parser.add_argument("--steps", type=int, default=15, help="optimizer steps per turn")
    parser.add_argument("--rounds", type=int, default=3, help="turns per configuration (alternating)")
    parser.add_argument("--warmup", type=int, default=3, help="steps before timing starts")
    parser.add_argument("--accuracy", default="all", help="configurations trained to the end: all, none or a list")
    parser.add_argument("--max-train-samples", type=int, default=None, help="smaller training split, for a quick look")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per worker (default: torch's)")
    parser.add_argument("--scratch", default="/tmp/bench_training", help="Trainer output folders (nothing is saved)")
    parser.add_argument("--profile", action="store_true", help="time the phases of the recipe's step and its levers")
    parser.add_argument("--memory", action="store_true", help="peak memory of a long-text run per memory setting "
                                                              "(--steps optimiser steps each)")
    parser.add_argument("--memory-runs", default=",".join(MEMORY_RUNS), help="--memory: which runs (default: all)")
    parser.add_argument("--ours-overrides", default="", help="config overrides for ours and ours-fp32, space-separated")
    args = parser.parse_args()
    if args.profile:
        return profile(args)
    if args.memory:
        return memory(args)
    sides = args.configs.split(",")
    accuracy_sides = sides if args.accuracy == "all" else [] if args.accuracy == "none" else args.accuracy.split(",")
    print(f"{machine_kind()}\nstart: {time.strftime('%Y-%m-%d %H:%M:%S')}  {load_average()}", flush=True)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)  # the peak at the workers' thread count
    peaks = {"fp32": matmul_peak("float32"), "bf16": matmul_peak("bfloat16")}

    context = mp.get_context("spawn")
    workers, precisions = {}, {}
    for side in sides:  # one at a time: building loads data and weights
        parent, child = context.Pipe()
        process = context.Process(target=worker, args=(side, args, child), daemon=True)
        process.start()
        ready = parent.recv()
        assert ready.get("ready")
        workers[side] = (process, parent)
        precisions[side] = ready["precision"]
    for side in sides:
        workers[side][1].send(args.warmup)
        workers[side][1].recv()
    turns = {side: [] for side in sides}
    for round_ in range(args.rounds):
        order = sides[round_ % len(sides):] + sides[:round_ % len(sides)]
        for side in order:
            workers[side][1].send(args.steps)
            turns[side].append(workers[side][1].recv())
    peaks = {k: max(v, matmul_peak("float32" if k == "fp32" else "bfloat16")) for k, v in peaks.items()}
    print(f"throughput measured: {time.strftime('%H:%M:%S')}  {load_average()}", flush=True)

    results = {}
    for side in sides:
        process, connection = workers[side]
        connection.send(None if side in accuracy_sides else "stop")
        results[side] = connection.recv()
        process.join()
        if side in accuracy_sides:
            done = results[side]
            print(f"{side}: rest of training {done['seconds']:.0f} s ({done['examples'] / done['seconds']:.1f} "
                  f"examples/s), test accuracy {done['accuracy']:.4f}", flush=True)
    print(f"end: {time.strftime('%H:%M:%S')}  {load_average()}")

    rows = {}
    for side in sides:
        rates = sorted(turns[side], key=lambda t: t["examples"] / t["seconds"])
        median = rates[len(rates) // 2]
        precision = precisions[side]
        rows[side] = {
            "examples_per_s": median["examples"] / median["seconds"],
            "tokens_per_s": median["tokens"] / median["seconds"],
            "mfu": median["flops"] / median["seconds"] / peaks[precision],
            "precision": precision,
            "peak_mb": results[side]["peak_mb"] if side in accuracy_sides else max(t["peak_mb"] for t in turns[side]),
            "accuracy": results[side].get("accuracy"),
        }
    print(f"\n{machine_kind()}; matmul peak measured here at {torch.get_num_threads()} thread(s): "
          f"fp32 {peaks['fp32'] / 1e9:.0f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s; "
          f"{args.rounds} alternating turns of {args.steps} steps per configuration, median turn"
          + (f"; ours with {args.ours_overrides}" if args.ours_overrides else "") + "\n")
    header = "| config | precision | examples/s | real tokens/s | MFU | peak memory MB | test accuracy |" + \
             "".join(f" x {b} |" for b in BASELINES if b in rows)
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for side, row in rows.items():
        accuracy = f"{row['accuracy']:.4f}" if row["accuracy"] is not None else "-"
        ratios = "".join(f" {row['examples_per_s'] / rows[b]['examples_per_s']:.2f} |" for b in BASELINES if b in rows)
        print(f"| {side} | {row['precision']} | {row['examples_per_s']:.1f} | {row['tokens_per_s']:.0f} | "
              f"{100 * row['mfu']:.1f}% | {row['peak_mb']:.0f} | {accuracy} |{ratios}")


if __name__ == "__main__":
    main()
