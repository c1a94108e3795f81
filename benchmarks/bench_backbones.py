"""Backbone families side by side on the default task (Rotten Tomatoes, default split): test accuracy as mean ±
std over seeds, with training time, for the note on what each kind of transfer buys.

Rows (each one run_classify per seed, with the overrides listed in ROWS):
- TextCNN (Kim 2014) with random embeddings vs GloVe-initialised (fine-tuned, and frozen as in CNN-static). Same
  architecture and tokenizer (minilm-l6's WordPiece), 50-d embeddings in every row. Kim saw about +4 points from
  static vectors on movie-review sentences; a subword vocabulary matches GloVe's words only in part (87.5% here).
- a small GPT-2 and a small T5 pretrained on Shakespeare by recipes/pretrain.py (--gpt2, --t5) vs the same
  architecture and tokenizer from random init (strategy=scratch); T5 also text-to-text (head=text-to-text).
- MiniLM-L6 fine-tuned, for reference.

    python benchmarks/bench_backbones.py                                   # every row, seeds 1 2 3
    python benchmarks/bench_backbones.py --quick                           # 1 seed, 500 train texts, 1 epoch
    python benchmarks/bench_backbones.py --rows textcnn-random textcnn-glove --seeds 1 2 3 4 5
    python benchmarks/bench_backbones.py --gpt2 outputs/pretrain-gpt2-shakespeare train.threads=2

Rows whose pretrained folder is missing are skipped with a note. Prints a markdown table, writes one CSV row per
run (ROOT/results.csv); run folders are deleted unless --keep-outputs. After a --quick run it estimates how long
the full table takes from the training throughput it measured.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from hf_transfer.classify import run_classify
from hf_transfer.config import ClassifyConfig, DataConfig, load_config
from hf_transfer.data import load_task_data
from hf_transfer.schedule import DEFAULT_EPOCHS
from summary import mean_std  # benchmarks/summary.py, beside this script


@dataclass(frozen=True)
class Row:
    name: str
    description: str
    overrides: tuple[str, ...]
    needs: str | None = None  # "gpt2" | "t5": the model is the pretrained folder passed as --gpt2 / --t5


TEXTCNN = ("model=hft-textcnn", "train.learning_rate=1e-3", "train.epochs=5", "train.batch_size=50")
SMALL_LM = ("train.learning_rate=3e-4", "train.epochs=3")
ROWS = {row.name: row for row in [
    Row("textcnn-random", "TextCNN, random 50-d embeddings", (*TEXTCNN, "model_config={embedding_dim: 50}")),
    Row("textcnn-glove", "TextCNN, GloVe 6B 50-d embeddings, fine-tuned", (*TEXTCNN, "vectors=glove-6b-50d")),
    Row("textcnn-glove-static", "TextCNN, GloVe 6B 50-d embeddings, frozen",
        (*TEXTCNN, "vectors=glove-6b-50d", "freeze_vectors=true")),
    Row("gpt2-pretrained", "GPT-2 small, pretrained on Shakespeare", SMALL_LM, needs="gpt2"),
    Row("gpt2-scratch", "GPT-2 small, random init", ("strategy=scratch", *SMALL_LM), needs="gpt2"),
    Row("t5-pretrained", "T5 small, pretrained on Shakespeare, classification head", SMALL_LM, needs="t5"),
    Row("t5-scratch", "T5 small, random init, classification head", ("strategy=scratch", *SMALL_LM), needs="t5"),
    Row("t5-text-to-text", "T5 small, pretrained on Shakespeare, text-to-text", ("head=text-to-text", *SMALL_LM),
        needs="t5"),
    Row("minilm", "MiniLM-L6 (pretrained sentence encoder), reference", ("model=minilm-l6",)),
]}
QUICK = ["data.max_train_samples=500", "data.max_eval_samples=500", "train.epochs=1"]
COLUMNS = ["row", "seed", "test_accuracy", "test_f1_macro", "train_time_s", "train_cpu_s", "train_examples_per_s",
           "epochs", "train_examples", "trainable", "transferred", "vectors_coverage", "device"]


def run(row: Row, seed: int, paths: dict, overrides: list[str], root: Path, keep: bool) -> dict:
    output_dir = root / f"{row.name}-seed{seed}"
    model = [f"model={paths[row.needs]}"] if row.needs else []
    config = load_config(ClassifyConfig, None, [*model, *row.overrides, *overrides, f"train.seed={seed}",
                                                f"output_dir={output_dir}"])
    cpu_started, wall_started = time.process_time(), time.perf_counter()
    result = run_classify(config, command=f"benchmarks/bench_backbones.py --rows {row.name} --seeds {seed}")
    # CPU seconds (all threads) do not grow when other jobs share the machine, unlike wall time: the run's share
    # spent training estimates what training costs on idle cores.
    train_share = result.compute["train_time_s"] / (time.perf_counter() - wall_started)
    train_cpu_s = (time.process_time() - cpu_started) * train_share
    if not keep:
        shutil.rmtree(output_dir, ignore_errors=True)
    vectors = result.model.get("vectors") or {}
    return {
        "row": row.name, "seed": seed, "test_accuracy": result.metrics["test"]["accuracy"],
        "test_f1_macro": result.metrics["test"]["f1_macro"], "train_time_s": result.compute["train_time_s"],
        "train_cpu_s": train_cpu_s,
        "train_examples_per_s": result.compute["train_examples_per_s"], "epochs": result.training["epochs"],
        "train_examples": result.task["split_sizes"]["train"], "trainable": result.parameters["trainable"],
        "transferred": result.strategy["transferred"], "vectors_coverage": vectors.get("coverage"),
        "device": result.compute["hardware"],
    }


def table(results: list[dict]) -> str:
    lines = ["| backbone | transfer | test accuracy (%) | seeds | train time (s) | trainable params |",
             "|---|---|---|---|---|---|"]
    for name, row in ROWS.items():
        runs = [r for r in results if r["row"] == name]
        if runs:
            lines.append(f"| {row.description} | {runs[0]['transferred']} "
                         f"| {mean_std([100 * r['test_accuracy'] for r in runs], 2)} | {len(runs)} "
                         f"| {mean_std([r['train_time_s'] for r in runs], 0)} | {runs[0]['trainable']:,} |")
    return "\n".join(lines)


def full_mode_estimate(results: list[dict], seeds: int) -> str:
    """Training time of the full table (full train split x each row's epochs x seeds), from this run's wall-clock
    throughput and from its CPU time spread over torch's threads (what idle cores would take)."""
    full_train = load_task_data(DataConfig()).sizes()["train"]
    measured = idle = 0.0
    for name, row in ROWS.items():
        runs = [r for r in results if r["row"] == name]
        if runs:
            epochs = next((float(o.split("=")[1]) for o in row.overrides if o.startswith("train.epochs=")),
                          DEFAULT_EPOCHS)
            examples = seeds * full_train * epochs
            measured += examples / statistics.mean(r["train_examples_per_s"] for r in runs)
            idle += examples * statistics.mean(r["train_cpu_s"] / (r["train_examples"] * r["epochs"]) for r in runs)
    idle /= torch.get_num_threads()
    return (f"full mode ({seeds} seeds, {full_train:,} training texts, each row's epochs) would train for about "
            f"{idle / 3600:.1f} h on {torch.get_num_threads()} idle cores ({measured / 3600:.1f} h at this run's "
            "wall-clock throughput), plus evaluation and loading")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help="default: 1 2 3 (--quick: 1)")
    parser.add_argument("--quick", action="store_true", help="1 seed, " + " ".join(QUICK) + ": proves the rows run")
    parser.add_argument("--gpt2", default="/tmp/pretrained/gpt2-shakespeare",
                        help="GPT-2 folder from recipes/pretrain.py")
    parser.add_argument("--t5", default="/tmp/pretrained/t5-shakespeare", help="T5 folder from recipes/pretrain.py")
    parser.add_argument("--root", type=Path, default=Path("outputs/bench-backbones"), help="run folders go here")
    parser.add_argument("--csv", type=Path, default=None, help="default: ROOT/results.csv")
    parser.add_argument("--keep-outputs", action="store_true", help="keep every run's output folder")
    parser.add_argument("overrides", nargs="*", help="key=value overrides for every run, e.g. train.threads=2")
    args = parser.parse_args(argv)
    seeds = args.seeds or ([1] if args.quick else [1, 2, 3])
    overrides = [*(QUICK if args.quick else []), *args.overrides]
    paths = {"gpt2": args.gpt2, "t5": args.t5}

    results, skipped, started = [], [], time.perf_counter()
    for name in args.rows:
        row = ROWS[name]
        if row.needs and not (Path(paths[row.needs]) / "config.json").is_file():
            skipped.append(f"{name} (no pretrained model in {paths[row.needs]}: pass --{row.needs})")
            continue
        for seed in seeds:
            results.append(run(row, seed, paths, overrides, args.root, args.keep_outputs))
            done = results[-1]
            print(f"{name} seed {seed}: test accuracy {done['test_accuracy']:.4f}, {done['train_time_s']:.0f} s",
                  file=sys.stderr, flush=True)
    if not results:
        sys.exit("no row ran: " + "; ".join(skipped))

    csv_path = args.csv or args.root / "results.csv"
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(results)
    print(table(results))
    print(f"\n{len(results)} runs in {(time.perf_counter() - started) / 60:.1f} min on {results[0]['device']}; "
          f"overrides: {' '.join(overrides) or 'none'}; CSV: {csv_path}")
    if skipped:
        print("skipped: " + "; ".join(skipped))
    if args.quick:
        print(full_mode_estimate(results, seeds=3))


if __name__ == "__main__":
    main()
