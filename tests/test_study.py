"""The transfer study end to end on a tiny BERT: the local executor, resuming a study killed with SIGKILL, the Ray
executor with two local workers, out-of-domain scores, and one-line errors before any training."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import sentiment_rows, write_csv
from hf_transfer.config import CompareConfig, load_config
from hf_transfer.errors import UserError
from hf_transfer.study import run_study
from hf_transfer.study.report import RESULT_KEYS, read_results

RUNS = 1 + 2 * 2 * 2  # zero-shot once; full and LoRA at 2 sizes x 2 seeds


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("study-data")
    ood = [{"text": row["review"], "stars": {"pos": 5, "neg": 1}[row["sentiment"]]}
           for row in sentiment_rows(40, seed=9)]
    return {"train": write_csv(folder / "reviews.csv", sentiment_rows(160)), "ood": write_csv(folder / "ood.csv", ood)}


def study_overrides(model, data, output_dir, *extra) -> list[str]:
    return [
        f"model={model}", f"data.dataset={data['train']}", "data.text_columns=review", "data.label_column=sentiment",
        "data.max_length=64", "train.learning_rate=5e-3", "train.precision=fp32", "train.threads=1", "train.freeze_word_embeddings=false",
        "train.epochs=8", "train.batch_size=16", "train.logging_steps=5", "small_data_rule=false",
        "arms={zs: {kind: zero-shot, method: embedding}, full: {strategy: full}, lora: {strategy: adapter}}",
        "sizes=[16, all]", "seeds=[1, 2]", f"output_dir={output_dir}",
        f"eval_sets=[{{name: ood, dataset: {data['ood']}, label_column: stars, label_map: {{5: pos, 1: neg}}}}]",
        *extra,
    ]


def table(rows: list[dict]) -> list[tuple]:
    """The results table without times and memory, which vary from run to run."""
    return [tuple(row[key] for key in RESULT_KEYS) for row in rows]


@pytest.fixture(scope="module")
def local_study(tiny_bert, data, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "study"
    result = run_study(load_config(CompareConfig, None, study_overrides(tiny_bert, data, out)))
    return result


def test_a_study_folder_holds_runs_tables_plots_and_card(local_study):
    from huggingface_hub import ModelCard

    out = local_study.folder
    runs = sorted(p.name for p in (out / "runs").iterdir() if not p.name.startswith("."))  # not the runs' locks
    assert len(runs) == RUNS and "full-16-seed1" in runs and "zs" in runs
    for run in runs:
        assert (out / "runs" / run / "metrics.json").is_file() and (out / "runs" / run / "eval_sets.json").is_file()
    assert (out / "runs" / "lora-16-seed1" / "adapter_config.json").is_file(), "ood scores read adapters too"
    rows = read_results(out)
    assert rows == local_study.rows
    assert len(rows) == (RUNS + 2) * 2, "every run and both baselines, on test and ood"
    assert {row["eval_set"] for row in rows} == {"test", "ood"}
    full = [r for r in rows if r["arm"] == "full" and r["size"] == "all" and r["eval_set"] == "test"]
    assert len(full) == 2 and all(r["accuracy"] > 0.8 and r["train_examples"] == 115 for r in full)
    sixteen = next(r for r in rows if r["arm"] == "lora" and r["size"] == 16)
    assert sixteen["train_examples"] == 16 and sixteen["trainable_parameters"] > 0
    for name in ("summary.csv", "summary.md", "learning_curves.png", "score_vs_train_time.png",
                 "ood_vs_in_domain.png", "study.yaml", "baselines.json"):
        assert (out / name).stat().st_size > 0, name
    card = ModelCard.load(out / "README.md")
    assert "transfer-study" in card.data.tags and "labelled examples: **" in card.text
    assert load_config(CompareConfig, out / "study.yaml").arms == load_config(
        CompareConfig, None, study_overrides("m", {"train": "d", "ood": "o"}, out)).arms


def test_a_rerun_skips_finished_runs_and_refuses_changed_ones(local_study, tiny_bert, data):
    out = local_study.folder
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/metrics.json")}
    # threads and trackers do not change results: finished runs stay finished
    again = run_study(load_config(CompareConfig, None, study_overrides(tiny_bert, data, out, "train.threads=2",
                                                                       "train.checkpoint_steps=7")))
    assert table(again.rows) == table(local_study.rows)
    assert stamps == {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/metrics.json")}
    with pytest.raises(UserError, match=r"run full-16-seed1 .* made with train.learning_rate=0.005, now 0.001"):
        run_study(load_config(CompareConfig, None, study_overrides(tiny_bert, data, out,
                                                                   "arms.full.train={learning_rate: 1.0e-3}")))


def test_a_study_killed_during_a_run_resumes_to_the_same_results(local_study, tiny_bert, data, tmp_path):
    out = tmp_path / "study"
    overrides = study_overrides(tiny_bert, data, out)
    script = ("import json, sys\nfrom hf_transfer.config import CompareConfig, load_config\n"
              "from hf_transfer.study import run_study\n"
              "run_study(load_config(CompareConfig, None, json.loads(sys.argv[1])))\n")
    with open(tmp_path / "log.txt", "w") as log:
        process = subprocess.Popen([sys.executable, "-c", script, json.dumps(overrides)], stdout=log, stderr=log,
                                   env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.monotonic() + 600
    while len(list(out.glob("runs/*[!l]/metrics.json"))) < 3 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # into the next run
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, (tmp_path / "log.txt").read_text()[-3000:]
    # *[!l]: not OUT.partial, where a run killed between writing its metrics and its rename leaves them
    finished = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("runs/*[!l]/metrics.json")}
    assert 3 <= len(finished) < RUNS
    for folder in (out / "runs").iterdir():
        if not folder.name.startswith("."):  # a run's lock file
            assert folder.name.endswith(".partial") or (folder / "metrics.json").is_file(), "no half-written folder"

    resumed = run_study(load_config(CompareConfig, None, overrides))
    assert table(resumed.rows) == table(local_study.rows)
    assert finished == {name: (out / "runs" / name / "metrics.json").stat().st_mtime_ns for name in finished}


def test_ray_with_two_local_workers_gives_the_local_results(local_study, tiny_bert, data, tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "study"
    result = run_study(load_config(CompareConfig, None, study_overrides(
        tiny_bert, data, out, "executor.kind=ray", "executor.num_workers=2")))
    assert table(result.rows) == table(local_study.rows)
    assert sorted((out / "runs").glob("*/metrics.json")) == sorted(
        out / path.relative_to(local_study.folder) for path in (local_study.folder / "runs").glob("*/metrics.json"))


@pytest.mark.parametrize("extra, message", [
    (["arms={bad: {strategy: adapter, strategy_options: {target_modules: [nowhere]}}}"], "arm bad: "),
    (["arms={lm: {kind: zero-shot, method: lm}}"], "arm lm: "),
    (["arms={t2t: {head: text-to-text}}"], "arm t2t: head=text-to-text needs an encoder-decoder model"),
    (["sizes=[16, 500]"], "size 500 is larger than the train split (115 examples"),
    (["eval_sets=[{name: shifted, dataset: OOD, label_column: stars, label_map: {5: pos}}]"],
     "eval set 'shifted': its label '1' is not a label of the task (neg, pos)"),
    (["eval_sets=[{name: shifted, dataset: OOD, label_column: stars, label_map: {5: good, 1: neg}}]"],
     "label_map maps to 'good', which is not a label of the task"),
    (["arms={majority: {strategy: full}}"], "arm name 'majority' is taken by a baseline"),
])
def test_bad_input_is_one_line_before_any_training(tiny_bert, data, tmp_path, extra, message):
    out = tmp_path / "study"
    extra = [item.replace("OOD", str(data["ood"])) for item in extra]
    with pytest.raises(UserError) as err:
        run_study(load_config(CompareConfig, None, study_overrides(tiny_bert, data, out, *extra)))
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not out.exists(), "nothing written, nothing trained"


def test_publish_writes_a_study_folders_card_tables_and_plots(local_study, tmp_path):
    from huggingface_hub import ModelCard

    hub = tmp_path / "hub"
    command = [str(Path(sys.executable).parent / "hf-transfer"), "publish", str(local_study.folder), "--repo-id",
               "test-org/study", "--to", str(hub)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("published study: ") and "runs/ (folder" in done.stdout and "jobs.json" in done.stdout
    repo = hub / "models--test-org--study"
    snapshot = repo / "snapshots" / (repo / "refs" / "main").read_text()
    assert {p.name for p in snapshot.iterdir()} == {
        "README.md", "study.yaml", "baselines.json", "results.jsonl", "summary.csv", "summary.md",
        "learning_curves.png", "score_vs_train_time.png", "ood_vs_in_domain.png"}
    assert (snapshot / "README.md").read_bytes() == (local_study.folder / "README.md").read_bytes()
    assert "transfer-study" in ModelCard.load(snapshot / "README.md").data.tags

    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    for name in ("README.md", "study.yaml"):
        (unfinished / name).write_bytes((local_study.folder / name).read_bytes())
    command[2] = str(unfinished)
    refused = subprocess.run(command, capture_output=True, text=True, timeout=300,
                             env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert refused.returncode == 2 and "has no results.jsonl: it has not finished" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert [p.name for p in hub.iterdir()] == [repo.name] and len(list((repo / "snapshots").iterdir())) == 1


@pytest.mark.parametrize("extra, message", [
    (["seeds=[]"], "the study's grid is empty (seeds=[])"),
    (["sizes=[16, 500]"], "size 500 is larger than the train split (115 examples"),
])
def test_hf_transfer_compare_says_bad_input_in_one_line_and_exits_2(tiny_bert, data, tmp_path, extra, message):
    out = tmp_path / "study"
    command = [str(Path(sys.executable).parent / "hf-transfer"), "compare", "--config",
               str(Path(__file__).parents[1] / "recipes" / "configs" / "compare.yaml"),
               *study_overrides(tiny_bert, data, out, *extra)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 2 and message in done.stderr.strip().splitlines()[-1], done.stderr[-2000:]
    assert "Traceback" not in done.stderr and not out.exists()
