"""The transfer study with task=token-classification (issue 18, item 8): tagger arms scored by entity F1, the
memorisation baseline, and one-line refusals of what a token study cannot run. Tiny BERT, made-up tagged data."""

import json

import pytest
from huggingface_hub import ModelCard

from conftest import tagged_sentences, write_conll
from hf_transfer.config import CompareConfig, load_config
from hf_transfer.errors import UserError
from hf_transfer.study import run_study
from hf_transfer.study.report import read_results

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def token_study_overrides(model, data, output_dir, *extra) -> list[str]:
    return [f"model={model}", "task=token-classification", f"data.dataset={data}", "data.max_length=32",
            "train.learning_rate=1e-2", "train.precision=fp32", "train.threads=1", "train.epochs=6",
            "train.batch_size=16", "small_data_rule=false", "arms={full: {strategy: full}, frozen: {strategy: frozen}}",
            "sizes=[40, all]", "seeds=[1, 2]", f"output_dir={output_dir}", *extra]


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    return write_conll(tmp_path_factory.mktemp("study-tagged") / "train.conll", tagged_sentences(160))


def test_a_token_study_scores_taggers_by_entity_f1(tiny_bert, tagged, tmp_path):
    result = run_study(load_config(CompareConfig, None, token_study_overrides(tiny_bert, tagged, tmp_path / "study")))
    out = result.folder
    run = json.loads((out / "runs" / "full-40-seed1" / "metrics.json").read_text())
    assert run["kind"] == "token-classification" and run["task"]["split_sizes"]["train"] == 40
    rows = read_results(out)
    assert {row["arm"] for row in rows} == {"full", "frozen", "memorization"}
    for row in rows:  # every row carries the run's own entity F1 and token accuracy
        folder = out / row["run_folder"] if row["run_folder"] else None
        test = (json.loads((folder / "metrics.json").read_text())["metrics"]["test"] if folder
                else json.loads((out / "baselines.json").read_text())["records"]["memorization"]["metrics"]["test"])
        assert (row["f1_micro"], row["accuracy"]) == (test["f1_micro"], test["token_accuracy"])
    full_all = [r["f1_micro"] for r in rows if r["arm"] == "full" and r["size"] == "all"]
    assert len(full_all) == 2 and min(full_all) > 0.5
    # Recommendations rank by entity F1: the best arm at each size has the highest mean f1_micro there.
    for item in result.recommendations:
        means = {}
        for row in rows:
            if row["size"] == item.size or (item.size == "all" and row["kind"] == "baseline"):
                means.setdefault(row["arm"], []).append(row["f1_micro"])
        assert item.best == max(means, key=lambda arm: sum(means[arm]) / len(means[arm]))
    summary = (out / "summary.md").read_text()
    assert "| Entity F1, micro (%) | Entity F1, macro (%) | Token accuracy (%) |" in summary
    card = ModelCard.load(out / "README.md")
    assert "token-classification" in card.data.tags and "test entity F1" in card.text
    assert "memorization" in card.text and "Scores (entity F1, micro; entity F1, macro; token accuracy)" in card.text


@pytest.mark.parametrize("extra, message", [
    (["arms={zs: {kind: zero-shot, method: embedding}}"], "arms.zs is a zero-shot arm, which labels whole texts"),
    (["arms={full: {strategy: full, task: text-classification}}"], "arms.full.task is set by the study"),
    (["metric=accuracy"], "metric=accuracy would score taggers by token accuracy"),
    (["eval_sets=[{name: other, dataset: other.conll}]"], "eval_sets are scored for texts only"),
    (["arms={probe: {strategy: linear-probe}}"], "strategy=linear-probe does not apply to task=token-classification"),
])
def test_what_a_token_study_cannot_run_is_one_line(tiny_bert, tagged, tmp_path, extra, message):
    with pytest.raises(UserError) as failure:
        run_study(load_config(CompareConfig, None, token_study_overrides(tiny_bert, tagged, tmp_path / "s", *extra)))
    assert message in str(failure.value) and "\n" not in str(failure.value)
    assert not (tmp_path / "s" / "runs").exists()


def test_a_text_study_refuses_entity_f1():
    with pytest.raises(UserError, match="metric=f1_micro is the entity F1 of task=token-classification"):
        load_config(CompareConfig, None, ["metric=f1_micro"])
    assert load_config(CompareConfig, None, []).metric == "accuracy"
    assert load_config(CompareConfig, None, ["task=token-classification"]).metric == "f1_micro"


def test_the_shipped_token_study_config_loads():
    from test_config import CONFIGS

    config = load_config(CompareConfig, CONFIGS / "compare_ner.yaml")
    assert (config.task, config.metric, config.data.dataset) == ("token-classification", "f1_micro", "wnut16")
    assert {config.arm_values(name)[1]["task"] for name in config.arms} == {"token-classification"}
