"""The classify run end to end on tiny checkpoints, and the recipe's behaviour on bad input."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from transformers import TrainerCallback

from conftest import sentiment_rows, write_csv
from hf_transfer.cards import collapsed_label
from hf_transfer.classify import classify_output_dir, run_classify
from hf_transfer.cli import CONFIG_COMMANDS
from hf_transfer.config import ClassifyConfig, load_config
from hf_transfer.errors import UserError

RECIPE = Path(__file__).parents[1] / "recipes" / "classify.py"


def tiny_config(model, data, output_dir, *extra):
    return load_config(ClassifyConfig, None, [
        f"model={model}", f"data.dataset={data}", "data.text_columns=review", "data.label_column=sentiment",
        "data.max_length=64",  # the tiny BERT's positions
        "train.epochs=6", "train.learning_rate=5e-3", "train.batch_size=16", "train.precision=fp32",
        "train.logging_steps=5", "train.freeze_word_embeddings=false",  # its embeddings are random
        f"output_dir={output_dir}", *extra,
    ])


@pytest.fixture(scope="module")
def finished_run(tiny_bert, tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    data = write_csv(folder / "reviews.csv", sentiment_rows(200))
    result = run_classify(tiny_config(tiny_bert, data, folder / "out"))
    return result, folder / "out"


def test_output_folder_is_complete(finished_run):
    result, out = finished_run
    for name in ("model.safetensors", "config.json", "tokenizer.json", "metrics.json", "predictions.jsonl",
                 "README.md", "confusion_matrix.png", "loss_curve.png"):
        assert (out / name).is_file(), name
    assert not out.with_name("out.partial").exists()
    assert not list(out.glob("*.bin")) and not (out / "trainer").exists()
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "neg", "1": "pos"}
    assert result.metrics["test"]["accuracy"] > 0.8, "the cue words make this task easy"


def test_the_summary_line_names_the_folder_the_run_writes(finished_run, tiny_bert):
    result, out = finished_run
    summary = CONFIG_COMMANDS["classify"].summary
    assert summary(tiny_config(tiny_bert, "reviews.csv", out), result).endswith(f"output in {out}")
    default = load_config(ClassifyConfig, None, [f"model={tiny_bert}", "data.dataset=reviews.csv"])
    folder = classify_output_dir(default)
    assert folder.parent == Path("outputs") and folder.name.endswith("-reviews-csv-full")
    assert summary(default, result).endswith(f"output in {folder}")


def test_a_run_cut_by_max_steps_records_and_cards_its_steps_not_epochs(tiny_bert, tmp_path):
    data = write_csv(tmp_path / "reviews.csv", sentiment_rows(60))
    result = run_classify(tiny_config(tiny_bert, data, tmp_path / "out", "train.max_steps=3"))
    assert result.training["epochs"] is None and result.training["max_steps"] == 3
    assert result.training["optimizer_steps"] == 3
    card = (tmp_path / "out" / "README.md").read_text()
    assert "| max_steps | 3 |" in card and "| epochs |" not in card


class StopAt(TrainerCallback):
    """Raises when optimiser step `step` ends, as a killed run stops: its last checkpoint stays for a rerun."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise RuntimeError("stopped")


def test_a_resumed_runs_rates_count_the_steps_it_trained_and_the_card_says_the_times_are_this_sessions(
        tiny_bert, tmp_path):
    """Its train_time_s is this session's: dividing all of the run's examples by it overstated the rates."""
    data = write_csv(tmp_path / "reviews.csv", sentiment_rows(60))
    config = tiny_config(tiny_bert, data, tmp_path / "out", "train.checkpoint_steps=4", "baselines=[]")
    with pytest.raises(RuntimeError, match="stopped"):
        run_classify(config, callbacks=(StopAt(5),))
    result = run_classify(config)
    steps, resumed = result.training["optimizer_steps"], result.training["resumed_from_step"]
    assert resumed == 4 and steps > 2 * resumed
    trained = result.task["split_sizes"]["train"] * result.training["epochs"] * (steps - resumed) / steps
    assert result.compute["train_examples_per_s"] * result.compute["train_time_s"] == pytest.approx(trained)
    card = (tmp_path / "out" / "README.md").read_text()
    assert "| Resumed | from the checkpoint at optimiser step 4: the times and rates below are this session's" in card


def test_metrics_json_schema(finished_run):
    _, out = finished_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["schema_version"] == 1 and metrics["kind"] == "classification"
    assert set(metrics["metrics"]) == {"validation", "test"}
    for key in ("trainable", "total", "trainable_fraction"):
        assert key in metrics["parameters"]
    for key in ("train_time_s", "train_examples_per_s", "peak_memory_mb", "total_time_s", "precision"):
        assert metrics["compute"][key] is not None
    assert metrics["config"]["data"]["text_columns"] == ["review"]
    assert metrics["config"]["data"]["label_subwords"] == "auto", "a tagging key: a classify run leaves it as given"
    assert metrics["seed"] == 42 and "transformers" in metrics["versions"]


def test_card_parses_with_eval_results(finished_run):
    result, out = finished_run
    card = ModelCard.load(out / "README.md")
    results = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert results[("test", "accuracy")] == pytest.approx(result.metrics["test"]["accuracy"], abs=1e-4)
    assert card.data.pipeline_tag == "text-classification"
    assert "strategy:full" in card.data.tags


def test_pipeline_in_a_fresh_offline_process_reproduces_the_test_accuracy(finished_run):
    result, out = finished_run
    script = (
        "import json, sys\n"
        "from transformers import pipeline\n"
        "rows = [json.loads(l) for l in open(sys.argv[1] + '/predictions.jsonl') if '\"test\"' in l]\n"
        "out = pipeline('text-classification', model=sys.argv[1])([r['text'] for r in rows])\n"
        "print(json.dumps({'labels': [o['label'] for o in out], 'gold': [r['label'] for r in rows]}))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True, text=True, env=env, check=True)
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(answer["labels"]) <= {"neg", "pos"}, "labels come back as names, not LABEL_0"
    accuracy = sum(p == g for p, g in zip(answer["labels"], answer["gold"])) / len(answer["gold"])
    assert accuracy == pytest.approx(result.metrics["test"]["accuracy"])


def run_recipe(*args, cwd):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, str(RECIPE), *args], capture_output=True, text=True, cwd=cwd, env=env)


def test_recipe_bad_input_exits_with_one_line_and_no_output(tiny_bert, tmp_path):
    data = write_csv(tmp_path / "reviews.csv", sentiment_rows(40))
    cases = {
        "missing file": ([f"data.dataset={tmp_path / 'nope.csv'}"], "not found"),
        "misnamed column": ([f"data.dataset={data}", "data.label_column=stars"], "column 'stars'"),
        "unknown model": ([f"data.dataset={data}", "model=no-such-org/no-such-model"], "of model 'no-such-org/no-such-model'"),
        "unknown strategy": ([f"data.dataset={data}", "strategy=magic"], "unknown strategy 'magic'"),
    }
    for name, (overrides, message) in cases.items():
        out = tmp_path / name.replace(" ", "-")
        done = run_recipe(f"model={tiny_bert}", "data.text_columns=review", "data.label_column=sentiment",
                          f"output_dir={out}", *overrides, cwd=tmp_path)
        assert done.returncode == 2, (name, done.stderr[-2000:])
        errors = [line for line in done.stderr.splitlines() if line.startswith("hf-transfer: error:")]
        assert len(errors) == 1 and message in errors[0], (name, done.stderr[-2000:])
        assert "Traceback" not in done.stderr
        assert not out.exists() and not out.with_name(out.name + ".partial").exists()


def test_a_failed_run_leaves_no_complete_looking_folder(tiny_bert, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    write_csv(folder / "train.csv", sentiment_rows(40))
    write_csv(folder / "test.csv", sentiment_rows(6) + [{"review": "so so", "sentiment": "meh"}])
    with pytest.raises(UserError, match="label 'meh'"):
        run_classify(tiny_config(tiny_bert, folder, tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_offline_model_asset_without_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TRANSFER_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_TRANSFER_FIND_LINKS", str(tmp_path))
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))  # the machine's own wheel folder must not serve it either
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    from hf_transfer.backbones import resolve_model

    with pytest.raises(UserError, match="asset 'minilm-l6' is not cached"):
        resolve_model("minilm-l6")


def test_the_card_says_what_changes_what_a_score_means(tiny_bert, tmp_path):
    """Truncation, merged label spellings, the small-data rule and the cheap baselines reach metrics.json and the
    card (issues 14, 16, 17)."""
    rows = sentiment_rows(120)
    rows[3]["sentiment"] = "Pos"  # one spelling of `pos` in another case
    data = write_csv(tmp_path / "reviews.csv", rows)
    config = load_config(ClassifyConfig, None, [
        f"model={tiny_bert}", f"data.dataset={data}", "data.text_columns=review", "data.label_column=sentiment",
        "data.max_length=6", "data.max_train_samples=40", "train.precision=fp32",
        f"output_dir={tmp_path / 'out'}"])
    result = run_classify(config)
    facts = result.task["data_facts"]
    assert facts["label_case_variants"] == {"pos": ["Pos"]}
    assert facts["truncation"]["truncated"]["test"] > 0 and facts["truncation"]["max_length"] == 6
    assert result.training["epochs"] == 40 and result.training["schedule_changes"], "40 examples: batch 8, 40 epochs"
    assert set(result.baselines) == {"majority class", "TF-IDF + logistic regression"}
    card = (tmp_path / "out" / "README.md").read_text()
    assert "Texts longer than 6 tokens were cut (head)" in card
    assert "'Pos' into 'pos'" in card
    assert "The small-data rule changed the schedule: batch size 32 -> 8" in card
    assert "| majority class (`always " in card and "| TF-IDF + logistic regression (`word 1-2 grams" in card
    # The reproduce command fixes the rule's schedule (epochs, batch, warmup), under which train.select_best=null
    # keeps the last step: it must ask for the best validation checkpoint, as the rule did.
    assert result.training["selected_on_validation"] and result.config["train"]["select_best"] is True
    words = shlex.split(re.search(r"```bash\n(hf-transfer classify .*)\n```", card).group(1))
    rebuilt = load_config(ClassifyConfig, None, words[2:])
    assert rebuilt.train.epochs == 40 and rebuilt.train.select_best is True


def test_a_model_that_predicts_one_label_for_everything_is_named():
    assert collapsed_label({"confusion_matrix": [[0, 5], [0, 7]], "num_examples": 12}, ["neg", "pos"]) == "pos"
    assert collapsed_label({"confusion_matrix": [[3, 2], [1, 6]], "num_examples": 12}, ["neg", "pos"]) is None
