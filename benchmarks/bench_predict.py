"""Labelling a file of texts with a trained classifier: `hf_transfer.predict.Predictor` (what `hf-transfer predict`
runs) against `transformers.pipeline("text-classification")` at its default settings, on the same texts.

The sides alternate (--repeats times) and the median counts, so a busy machine slows all alike; the labels must be
identical to the pipeline's (the fp32 model's). The header names the machine kind (avx512_bf16: bf16 is native, or
AVX2: bf16 emulated, where ours runs fp32), the CPU and the load average before and after. --levers adds the pieces
of ours and the other levers one at a time: batched fp32; bf16 without the fp32 re-check of near-ties (fast but
may flip labels); token budgets per batch; torch.compile of the model (compile time left out: the first pass
warms up); ONNX Runtime (fp32, fused attention) on the model `hf-transfer export` writes (needs the onnx extra;
exported into the model folder when missing); one thread instead of torch's default.

    accelerate launch recipes/classify.py                    # writes outputs/minilm-l6-rotten-tomatoes-full
    python benchmarks/bench_predict.py                       # its test split's texts
    python benchmarks/bench_predict.py --model OUT --texts 1000 --repeats 3 --levers

What was tried (2026-11-29, an avx512_bf16/AMX Xeon shared by 8 jobs on 2 cores, one thread, 600 test texts,
4096 tokens per batch: ROUGH): torch bf16 2.0-2.3x torch fp32; torch.compile(dynamic=True) bf16 1.2x eager bf16
after minutes of compiling, fp32 0.85x eager; ONNX Runtime fp32 with fused attention 0.6x torch fp32 (without
the fusions too): on this machine bf16 in torch is the lever. ONNX Runtime on an AVX2 CPU is for the lead's run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
from transformers import pipeline

from hf_transfer.config import DataConfig
from hf_transfer.data import load_task_data
from hf_transfer.inference import decision_margins
from hf_transfer.predict import RECHECK_MARGIN, Predictor
from hf_transfer.runtime import cpu_has_fast_bf16, hardware_description


def timed(repeats: int, sides: dict) -> dict:
    """Run every side `repeats` times, alternating; {side: (median seconds, last result)}."""
    times = {name: [] for name in sides}
    results = {}
    for _ in range(repeats):
        for name, run in sides.items():
            started = time.perf_counter()
            results[name] = run()
            times[name].append(time.perf_counter() - started)
    return {name: (statistics.median(times[name]), results[name]) for name in sides}


def machine_kind() -> str:
    kind = "avx512_bf16" if cpu_has_fast_bf16() else "AVX2 (no native bf16)"
    return (f"machine kind {kind}; {hardware_description().split(', ')[0]}, {len(os.sched_getaffinity(0))} cores, "
            f"torch threads {torch.get_num_threads()}")


def labels_of(predictor: Predictor, texts: list[str]) -> list:
    return [row["label"] for row in predictor.predict(texts)]


def lever_sides(args, texts: list[str], ours: Predictor) -> dict:
    """The --levers sides: name -> callable returning labels."""
    sides = {}
    fp32 = Predictor(args.model, precision="fp32")
    sides["ours, fp32 batched"] = lambda: labels_of(fp32, texts)
    if ours.bf16:
        sides["ours, bf16 without re-check"] = lambda: [ours.labels[i] for i in ours._run(
            *_columns(ours, texts), rows=np.arange(len(texts)), bf16=True).argmax(-1)]
    for budget in (1024, 16384):
        sized = Predictor(args.model, max_batch_tokens=budget)
        sides[f"ours, {budget} tokens per batch"] = lambda p=sized: labels_of(p, texts)
    compiled = Predictor(args.model)
    compiled.model = torch.compile(compiled.model, dynamic=True)
    started = time.perf_counter()
    labels_of(compiled, texts)  # compiles (both precisions when near-ties are re-checked)
    print(f"torch.compile: first pass {time.perf_counter() - started:.0f} s", flush=True)
    sides["ours + torch.compile"] = lambda: labels_of(compiled, texts)
    try:
        if not (Path(args.model) / "onnx" / "model.onnx").is_file():
            from hf_transfer.export import export_onnx

            export_onnx(args.model)
        onnx = Predictor(args.model, backend="onnxruntime")
        sides["ours, ONNX Runtime fp32"] = lambda: labels_of(onnx, texts)
    except Exception as err:  # noqa: BLE001  the extra may be missing; the other sides still run
        print(f"ONNX Runtime side left out: {err}")

    def one_thread():
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return labels_of(ours, texts)
        finally:
            torch.set_num_threads(threads)

    sides["ours, one thread"] = one_thread
    return sides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="outputs/minilm-l6-rotten-tomatoes-full", help="a classify output folder")
    parser.add_argument("--texts", type=int, default=None, help="first N test texts (default: all)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads for every side (default: torch's)")
    parser.add_argument("--levers", action="store_true", help="also time the levers one at a time (see above)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    texts = list(load_task_data(DataConfig()).texts("test"))[: args.texts]
    print(f"{machine_kind()}\n{len(texts)} texts, {time.strftime('%Y-%m-%d %H:%M:%S')}, {load_average()}", flush=True)

    classifier = pipeline("text-classification", model=args.model)
    ours = Predictor(args.model)
    sides = {"pipeline (defaults)": lambda: [row["label"] for row in classifier(texts)],
             f"ours ({'bf16 + fp32 re-check' if ours.bf16 else 'fp32'})": lambda: labels_of(ours, texts)}
    if args.levers:
        sides.update(lever_sides(args, texts, ours))

    rows = timed(args.repeats, sides)
    print(f"measured: {time.strftime('%H:%M:%S')}, {load_average()}")
    reference_seconds, reference = rows["pipeline (defaults)"]
    print(f"\n{machine_kind()}; median of {args.repeats} alternating runs\n")
    print("| side | texts/s | x pipeline | labels identical to the pipeline (fp32) |\n|---|---|---|---|")
    for name, (seconds, labels) in rows.items():
        same = sum(a == b for a, b in zip(labels, reference))
        print(f"| {name} | {len(texts) / seconds:.1f} | {reference_seconds / seconds:.2f} | "
              f"{'yes' if same == len(texts) else f'no: {len(texts) - same} differ'} |")
    if ours.bf16:
        columns, lengths = _columns(ours, texts)
        low = ours._run(columns, lengths, rows=np.arange(len(texts)), bf16=True)
        full = ours._run(columns, lengths, rows=np.arange(len(texts)), bf16=False)
        shift = np.abs(decision_margins(low, ours.multi_label) - decision_margins(full, ours.multi_label)).max()
        print(f"\nbf16 moved the decision margin by at most {shift:.3f} logits (RECHECK_MARGIN {RECHECK_MARGIN}); "
              f"near-ties re-run in fp32: "
              f"{(decision_margins(low, ours.multi_label) < RECHECK_MARGIN).mean():.1%} of texts")


def load_average() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _columns(predictor: Predictor, texts: list[str]):
    encoded = predictor.tokenizer(texts, truncation=True, max_length=predictor.max_length)
    columns = {k: v for k, v in encoded.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    return columns, [len(ids) for ids in columns["input_ids"]]


if __name__ == "__main__":
    main()
