"""Labelling a file of texts with a trained classifier: `hf_transfer.predict.Predictor` (what `hf-transfer predict`
runs) against `transformers.pipeline("text-classification")` at its default settings, on the same texts.

The sides alternate (--repeats times) and the median counts, so a busy machine slows both alike; the labels
must be identical. --levers adds the pieces of ours one at a time: batched fp32, then bf16 without the fp32
re-check of near-ties (fast but may flip labels), then the token budget per batch.

    accelerate launch recipes/classify.py                    # writes outputs/minilm-l6-rotten-tomatoes-full
    python benchmarks/bench_predict.py                       # its test split's texts
    python benchmarks/bench_predict.py --model OUT --texts 1000 --repeats 3 --levers
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time

import numpy as np
from transformers import pipeline

from hf_transfer.config import DataConfig
from hf_transfer.data import load_task_data
from hf_transfer.predict import RECHECK_MARGIN, Predictor


def timed(function, repeats: int, sides: dict) -> None:
    """Run every side `repeats` times, alternating; store (median seconds, last result) per side."""
    times = {name: [] for name in sides}
    results = {}
    for _ in range(repeats):
        for name, run in sides.items():
            started = time.perf_counter()
            results[name] = run()
            times[name].append(time.perf_counter() - started)
    for name in sides:
        function(name, statistics.median(times[name]), results[name])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="outputs/minilm-l6-rotten-tomatoes-full", help="a classify output folder")
    parser.add_argument("--texts", type=int, default=None, help="first N test texts (default: all)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--levers", action="store_true", help="also time fp32-batched, bf16 without re-check, budgets")
    args = parser.parse_args()
    texts = load_task_data(DataConfig()).texts("test")[: args.texts]
    print(f"{len(texts)} texts, {time.strftime('%Y-%m-%d %H:%M:%S')}, "
          f"{subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}", flush=True)

    classifier = pipeline("text-classification", model=args.model)
    ours = Predictor(args.model)
    sides = {"pipeline (defaults)": lambda: [row["label"] for row in classifier(texts)],
             f"ours ({'bf16 + fp32 re-check' if ours.bf16 else 'fp32'})": lambda: [r["label"] for r in ours.predict(texts)]}
    if args.levers:
        fp32 = Predictor(args.model, precision="fp32")
        sides["ours, fp32 batched"] = lambda: [r["label"] for r in fp32.predict(texts)]
        if ours.bf16:
            sides["ours, bf16 without re-check"] = lambda: [ours.labels[i] for i in ours._run(
                *_columns(ours, texts), rows=np.arange(len(texts)), bf16=True).argmax(-1)]
        for budget in (1024, 16384):
            sized = Predictor(args.model, max_batch_tokens=budget)
            sides[f"ours, {budget} tokens per batch"] = lambda p=sized: [r["label"] for r in p.predict(texts)]

    rows = {}
    timed(lambda name, seconds, labels: rows.__setitem__(name, (seconds, labels)), args.repeats, sides)
    reference_seconds, reference = rows["pipeline (defaults)"]
    print("\n| side | texts/s | x pipeline | labels identical to the pipeline |\n|---|---|---|---|")
    for name, (seconds, labels) in rows.items():
        same = sum(a == b for a, b in zip(labels, reference))
        print(f"| {name} | {len(texts) / seconds:.1f} | {reference_seconds / seconds:.2f} | "
              f"{'yes' if same == len(texts) else f'no: {len(texts) - same} differ'} |")
    if ours.bf16:
        columns, lengths = _columns(ours, texts)
        low = ours._run(columns, lengths, rows=np.arange(len(texts)), bf16=True)
        full = ours._run(columns, lengths, rows=np.arange(len(texts)), bf16=False)
        shift = np.abs(ours._margin(low) - ours._margin(full)).max()
        print(f"\nbf16 moved the decision margin by at most {shift:.3f} logits (RECHECK_MARGIN {RECHECK_MARGIN}); "
              f"near-ties re-run in fp32: {(ours._margin(low) < RECHECK_MARGIN).mean():.1%} of texts")


def _columns(predictor: Predictor, texts: list[str]):
    encoded = predictor.tokenizer(texts, truncation=True, max_length=predictor.max_length)
    columns = {k: v for k, v in encoded.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    return columns, [len(ids) for ids in columns["input_ids"]]


if __name__ == "__main__":
    main()
