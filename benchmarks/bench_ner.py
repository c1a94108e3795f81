"""Named-entity tagging by transfer strategy: entity F1 (micro, mean ± std over seeds), trainable parameters and train
time, per-type F1 of full fine-tuning, and the memorisation baseline on the same split; MiniLM-L6 on wnut16 unless
overridden (recipes/configs/ner.yaml).

Every run is `recipes/token_classify.py` in its own process; only the training seed changes between seeds, so
every run (and the baseline) sees the same train / validation / test split (data.seed). A run folder that already
holds a metrics.json is read instead of run again, so an interrupted table resumes. Prints markdown tables.

    python benchmarks/bench_ner.py --root outputs/bench-ner train.threads=1          # 4 strategies x seeds 1 2 3
    python benchmarks/bench_ner.py train.epochs=3 --variants full --seeds 1          # a subset (overrides first)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from summary import mean_std  # benchmarks/summary.py, beside this script

RECIPE = Path(__file__).parents[1] / "recipes" / "token_classify.py"
VARIANTS = {
    "full": ["strategy=full"],
    "lora": ["strategy=adapter", "strategy_options.method=lora"],
    "frozen": ["strategy=frozen"],
    "scratch": ["strategy=scratch"],
    "gradual-unfreeze": ["strategy=gradual-unfreeze"],
}
DEFAULT_VARIANTS = ("full", "lora", "frozen", "scratch")
LABELS = {"lora": "adapter (LoRA)"}


def run(variant: str, seed: int, overrides: list[str], root: Path) -> dict:
    """metrics.json of one run (run first unless its folder is complete)."""
    output_dir = root / f"{variant}-seed{seed}"
    if not (output_dir / "metrics.json").is_file():
        args = [*VARIANTS[variant], *overrides, f"train.seed={seed}", f"output_dir={output_dir}"]
        done = subprocess.run([sys.executable, str(RECIPE), *args], capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"{output_dir.name} failed:\n{done.stderr[-3000:]}")
    return json.loads((output_dir / "metrics.json").read_text())


def tables(runs: dict[str, list[dict]]) -> str:
    lines = ["| strategy | test entity F1, micro (%) | validation entity F1 (%) | test token accuracy (%) "
             "| trainable params | learning rate | train time (s) |", "|---|---|---|---|---|---|---|"]
    for variant, group in runs.items():
        lines.append(
            f"| {LABELS.get(variant, variant)} | {mean_std([100 * m['metrics']['test']['f1_micro'] for m in group])} "
            f"| {mean_std([100 * m['metrics']['validation']['f1_micro'] for m in group])} "
            f"| {mean_std([100 * m['metrics']['test']['token_accuracy'] for m in group])} "
            f"| {group[0]['parameters']['trainable']:,} ({100 * group[0]['parameters']['trainable_fraction']:.2f}%) "
            f"| {group[0]['training']['learning_rate']:g} | {mean_std([m['compute']['train_time_s'] for m in group])} |")
    first = next(iter(runs.values()))[0]
    baseline = first["baselines"]["memorization"]["metrics"]
    lines.append(f"| memorisation baseline | {100 * baseline['test']['f1_micro']:.2f} "
                 f"| {100 * baseline['validation']['f1_micro']:.2f} | {100 * baseline['test']['token_accuracy']:.2f} "
                 "| 0 | - | - |")
    for variant, group in runs.items():
        if variant != "full":
            continue
        types = first["task"]["entity_types"]
        lines += ["", f"Per-type test F1 of full fine-tuning (%; support: test entities), and the baseline's:", "",
                  "| type | support | full | memorisation |", "|---|---|---|---|"]
        for kind in types:
            scores = [100 * m["metrics"]["test"]["per_class"].get(kind, {}).get("f1", 0.0) for m in group]
            support = first["task"]["data_facts"]["entities"]["test"][kind]
            base = 100 * baseline["test"]["per_class"].get(kind, {}).get("f1", 0.0)
            lines.append(f"| {kind} | {support} | {mean_std(scores)} | {base:.1f} |")
    gain = [100 * (m["metrics"]["test"]["f1_micro"] - baseline["test"]["f1_micro"]) for m in runs.get("full", [])]
    if gain:
        lines += ["", f"full fine-tuning over the memorisation baseline: {statistics.mean(gain):+.1f} test F1 points "
                      f"(lowest seed {min(gain):+.1f})"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path("outputs/bench-ner"), help="folder of the run folders")
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), choices=list(VARIANTS),
                        metavar="VARIANT", help=f"of {', '.join(VARIANTS)}")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("overrides", nargs="*", help="key=value overrides for every run")
    args = parser.parse_args()
    runs = {variant: [run(variant, seed, args.overrides, args.root) for seed in args.seeds]
            for variant in args.variants}
    print(tables(runs))


if __name__ == "__main__":
    main()
