"""Frozen features once per backbone and split (hf_transfer.features): a study of linear-probe, frozen and zero-shot
embedding arms on one tiny BERT forwards each split through the backbone once, gives the results of runs that
compute their own features, and a rerun reads the stored features back."""

import json
import shutil

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, BertModel, pipeline

from conftest import sentiment_rows, write_csv
from hf_transfer.classify import run_classify
from hf_transfer.config import ClassifyConfig, CompareConfig, from_dict, load_config
from hf_transfer.data import share_loaded_data
from hf_transfer.features import pooled_reader, share_features, sharing_features, split_features
from hf_transfer.study import run_study

pytestmark = pytest.mark.usefixtures("single_torch_thread")

ARMS = ("arms={zs: {kind: zero-shot, method: embedding}, "
        "probe: {strategy: linear-probe, strategy_options: {pooling: mean}}, "
        "frozen: {strategy: frozen, strategy_options: {pooling: mean}}}")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("features-data")
    ood = [{"text": row["review"], "stars": {"pos": 5, "neg": 1}[row["sentiment"]]}
           for row in sentiment_rows(30, seed=9)]
    return {"train": write_csv(folder / "reviews.csv", sentiment_rows(120)), "ood": write_csv(folder / "ood.csv", ood)}


def overrides(model, data, output_dir) -> list[str]:
    return [
        f"model={model}", f"data.dataset={data['train']}", "data.text_columns=review", "data.label_column=sentiment",
        "data.max_length=64", "train.precision=fp32", "train.threads=1", "train.epochs=3", "train.batch_size=8",
        "train.learning_rate=1e-2", "small_data_rule=false", ARMS, "sizes=[16, 32]", "seeds=[1, 2]",
        f"output_dir={output_dir}",
        f"eval_sets=[{{name: ood, dataset: {data['ood']}, label_column: stars, label_map: {{5: pos, 1: neg}}}}]",
    ]


class BackboneRows:
    """Texts (rows of input_ids) that went through any BertModel's forward while counting: a forward hook on the
    real modules."""

    def __enter__(self):
        self.rows = 0

        def hook(module, args, kwargs, output):
            if isinstance(module, BertModel):
                ids = kwargs.get("input_ids", args[0] if args else None)
                self.rows += ids.shape[0]

        self.handle = torch.nn.modules.module.register_module_forward_hook(hook, with_kwargs=True)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


@pytest.fixture(scope="module")
def study(tiny_bert, data, tmp_path_factory):
    out = tmp_path_factory.mktemp("features-study") / "study"
    with BackboneRows() as counted:
        result = run_study(load_config(CompareConfig, None, overrides(tiny_bert, data, out)))
    return result, counted.rows


def split_sizes(folder):
    return json.loads((folder / "runs" / "zs" / "metrics.json").read_text())["task"]["split_sizes"]


def test_each_split_goes_through_the_backbone_once(study, caplog):
    result, rows = study
    sizes = split_sizes(result.folder)  # the zero-shot run's: the whole train split
    assert len(list((result.folder / "runs").glob("*/metrics.json"))) == 1 + 2 * 2 * 2
    # train (all of it, once, for both sizes and seeds), validation, test, the ood set, and the 2 label prompts
    assert rows == sizes["train"] + sizes["validation"] + sizes["test"] + 30 + 2
    assert len(list((result.folder / "features").glob("*.npy"))) == 5
    assert not list((result.folder / "features").glob("*.partial"))
    assert not sharing_features(), "run_study turns the store off again"


def test_stored_features_give_the_results_of_runs_that_compute_their_own(study, tmp_path):
    result, _ = study
    jobs = json.loads((result.folder / "jobs.json").read_text())
    assert not sharing_features()
    previous = share_loaded_data(False)
    try:
        for name in ("probe-16-seed2", "frozen-32-seed1"):
            alone = tmp_path / name
            run_classify(from_dict(ClassifyConfig, {**jobs[name], "output_dir": str(alone)}))
            study_run = result.folder / "runs" / name
            for split in ("validation", "test"):
                ours, theirs = (json.loads((f / "metrics.json").read_text())["metrics"][split]
                                for f in (study_run, alone))
                assert ours["accuracy"] == theirs["accuracy"] and ours["f1_macro"] == pytest.approx(theirs["f1_macro"])
            ours, theirs = ([json.loads(line)["scores"] for line in (f / "predictions.jsonl").read_text().splitlines()]
                            for f in (study_run, alone))
            assert all(a == pytest.approx(b, abs=1e-4) for a, b in zip(ours, theirs))
    finally:
        share_loaded_data(previous)


def test_a_frozen_run_trained_on_features_saves_a_whole_model_pipeline_loads(study):
    result, _ = study
    out = result.folder / "runs" / "frozen-16-seed1"
    record = json.loads((out / "metrics.json").read_text())
    assert record["training"]["optimizer_steps"] == 3 * 2  # 16 examples, batch 8, 3 epochs
    classifier = pipeline("text-classification", model=str(out), trust_remote_code=True)
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    for row, scores in zip(rows, classifier([row["text"] for row in rows], top_k=None)):
        assert {s["label"]: s["score"] for s in scores} == pytest.approx(row["scores"], abs=2e-6)


def test_a_rerun_reads_the_stored_features_back(study, tiny_bert, data, caplog):
    result, _ = study
    for name in ("zs", "probe-32-seed2", "frozen-16-seed2"):  # as if the study had been killed before them
        shutil.rmtree(result.folder / "runs" / name)
    caplog.set_level("INFO", logger="hf_transfer")
    with BackboneRows() as counted:
        again = run_study(load_config(CompareConfig, None, overrides(tiny_bert, data, result.folder)))
    assert counted.rows == 0
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("features: ")]
    assert lines and all(line.endswith(": reused") for line in lines)
    assert any(", split train (" in line for line in lines) and any(", split ood (" in line for line in lines)
    table = {(r["arm"], r["size"], r["seed"], r["eval_set"]): r["accuracy"] for r in again.rows}
    assert table == {(r["arm"], r["size"], r["seed"], r["eval_set"]): r["accuracy"] for r in result.rows}


def test_the_key_changes_with_max_length_and_pooling(tiny_bert):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    encoder = BertModel.from_pretrained(tiny_bert)
    texts = [row["review"] for row in sentiment_rows(6)]
    columns = {length: dict(tokenizer(texts, truncation=True, max_length=length)) for length in (64, 32, 5)}
    mean, maximum = (pooled_reader(encoder, pooling, tokenizer.pad_token_id, "tiny") for pooling in ("mean", "max"))
    assert mean.key(columns[64]) != mean.key(columns[5]), "a max_length that cuts texts"
    assert mean.key(columns[64]) == mean.key(columns[32]), "one that cuts none: the same tokens, the same features"
    assert mean.key(columns[64]) != maximum.key(columns[64])
    assert mean.key(columns[64]) == pooled_reader(encoder, "mean", 0, "again").key(columns[64])
    with torch.no_grad():
        encoder.encoder.layer[0].output.dense.bias.add_(1.0)
    assert pooled_reader(encoder, "mean", 0, "changed").key(columns[64]) != mean.key(columns[64])


def test_store_reuses_within_a_process_and_from_its_folder(tiny_bert, tmp_path, caplog):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    reader = pooled_reader(BertModel.from_pretrained(tiny_bert), "mean", tokenizer.pad_token_id, "tiny")
    columns = dict(tokenizer([row["review"] for row in sentiment_rows(7)]))
    caplog.set_level("INFO", logger="hf_transfer")
    assert not sharing_features()
    try:
        share_features(True, tmp_path)
        first = split_features(reader, columns, "test")
        share_features(False)
        share_features(True, tmp_path)  # a new process: memory empty, the folder holds the features
        again = split_features(reader, columns, "test")
    finally:
        share_features(False)
    alone = split_features(reader, columns, "test")  # store off: computed again
    assert first.dtype == np.float32 and first.shape == (7, 32)
    assert np.array_equal(first, again) and np.allclose(first, alone, atol=1e-6)
    assert [r.getMessage().rsplit(": ", 1)[1] for r in caplog.records
            if r.getMessage().startswith("features: ")] == ["computed", "reused", "computed"]


def test_a_frozen_head_on_features_ends_with_its_best_validation_checkpoint(tiny_bert, data, tmp_path):
    """train.select_best: the head trainer evaluates on stored validation features and loads its best checkpoint."""
    config = load_config(ClassifyConfig, None, [
        f"model={tiny_bert}", f"data.dataset={data['train']}", "data.text_columns=review",
        "data.label_column=sentiment", "data.max_length=64", "strategy=frozen", "strategy_options={pooling: mean}",
        "train.precision=fp32", "train.threads=1", "train.epochs=6", "train.batch_size=8", "train.learning_rate=1e-1",
        "train.select_best=true", "baselines=[]", f"output_dir={tmp_path / 'out'}"])
    result = run_classify(config)
    evaluations = [e["eval_accuracy"] for e in result.training["log_history"] if "eval_accuracy" in e]
    assert len(evaluations) > 1
    best = result.training["selected_on_validation"]["best_validation_accuracy"]
    assert best == max(evaluations) == pytest.approx(result.metrics["validation"]["accuracy"])
