"""`hf-transfer predict` reproduces every kind of run's own predictions.jsonl (issue 14, item 9).

One tiny run of each kind the product writes: a classifier (full), an adapter and its merged copy, one of our
backbones, T5 writing label words, text pairs, a max_length that cuts texts (head, and head+tail), multi-label, and
zero-shot. Predict reads
what each run recorded (metrics.json) and must give the labels and scores of the run's evaluation.
"""

import json

import pytest
from transformers import BertForMaskedLM

from conftest import POSITIVE, sentiment_rows, write_csv
from hf_transfer.classify import run_classify
from hf_transfer.cli import main
from hf_transfer.config import ClassifyConfig, ZeroShotConfig, load_config
from hf_transfer.errors import UserError
from hf_transfer.predict import load_predictor
from hf_transfer.zeroshot.run import run_zeroshot
from test_backbones import t5_tokenizer, tiny_t5

TEXTCNN = "model_config={embedding_dim: 16, num_filters: 8, filter_sizes: [2, 3]}"


def three_classes(n: int, seed: int = 0) -> list[dict]:
    rows = sentiment_rows(n, seed)
    for i, row in enumerate(rows):
        if i % 3 == 2:
            row["sentiment"] = "mixed"
    return rows


def classify(out, data, *overrides):
    config = load_config(ClassifyConfig, None, [
        f"data.dataset={data}", "data.text_columns=review", "data.label_column=sentiment", "data.max_length=32",
        "train.max_steps=4", "train.learning_rate=5e-3", "train.batch_size=8", "train.precision=fp32",
        "train.freeze_word_embeddings=false", "train.threads=1", f"output_dir={out}", *overrides])
    run_classify(config)
    return out


@pytest.fixture(scope="module")
def runs(tiny_bert, tmp_path_factory):
    """{kind: output folder}: one run of each kind, all on tiny models."""
    root = tmp_path_factory.mktemp("runs")
    data = write_csv(root / "reviews.csv", three_classes(60))
    pairs = write_csv(root / "pairs.csv", [{"review": row["review"], "summary": f"{POSITIVE[i % 3]} film",
                                           "sentiment": row["sentiment"]} for i, row in enumerate(three_classes(60))])
    multi = root / "multi.jsonl"
    multi.write_text("".join(json.dumps({"review": row["review"], "sentiment": [row["sentiment"], "any"][: 1 + i % 2]})
                             + "\n" for i, row in enumerate(sentiment_rows(60))))
    t5 = tiny_t5(root / "t5", t5_tokenizer())
    done = {
        "full": classify(root / "full", data, f"model={tiny_bert}"),
        "adapter": classify(root / "adapter", data, f"model={tiny_bert}", "strategy=adapter",
                            "strategy_options={merge: true}"),
        "hft-textcnn": classify(root / "textcnn", data, "model=hft-textcnn", f"tokenizer={tiny_bert}", TEXTCNN),
        "text-to-text": classify(root / "t2t", data, f"model={t5}", "head=text-to-text",
                                 "label_words={pos: good, neg: bad, mixed: so so}"),
        "pairs": classify(root / "pairs", pairs, f"model={tiny_bert}", "data.text_columns=[review, summary]"),
        "max-length-4": classify(root / "short", data, f"model={tiny_bert}", "data.max_length=4"),
        "head+tail-6": classify(root / "head-tail", data, f"model={tiny_bert}", "data.max_length=6",
                                "data.truncation=head+tail"),
        "chunks-6": classify(root / "chunks", data, f"model={tiny_bert}", "data.max_length=6", "data.truncation=chunks"),
        "multi-label": classify(root / "multi", multi, f"model={tiny_bert}"),
    }
    done["adapter-merged"] = done["adapter"] / "merged"
    zeroshot = load_config(ZeroShotConfig, None, [f"model={tiny_bert}", f"data.dataset={data}", "method=embedding",
                                                  "data.text_columns=review", "data.label_column=sentiment",
                                                  "data.max_length=32", "threads=1", f"output_dir={root / 'zeroshot'}"])
    run_zeroshot(zeroshot)
    done["zero-shot"] = root / "zeroshot"
    return done


def recorded(out):
    folder = out.parent if out.name == "merged" else out
    return [json.loads(line) for line in open(folder / "predictions.jsonl")]


def texts_of(rows):
    return [tuple(row["text"]) if isinstance(row["text"], list) else row["text"] for row in rows]


@pytest.mark.parametrize("kind", ["full", "adapter", "adapter-merged", "hft-textcnn", "text-to-text", "pairs",
                                  "max-length-4", "head+tail-6", "chunks-6", "multi-label",
                                  "zero-shot"])
def test_predict_reproduces_the_runs_predictions(runs, kind):
    rows = recorded(runs[kind])
    got = load_predictor(runs[kind], precision="fp32").predict(texts_of(rows))
    assert [g["label"] for g in got] == [row["prediction"] for row in rows]
    for g, row in zip(got, rows):
        assert g["scores"] == pytest.approx(row["scores"], abs=1e-4)
    if kind == "max-length-4":  # the run cut texts at 4 tokens; predict must cut them there too
        assert load_predictor(runs[kind]).max_length == 4
    if kind == "head+tail-6":  # and keep both ends where the run did
        predictor = load_predictor(runs[kind])
        assert (predictor.max_length, predictor.truncation) == (6, "head+tail")
    if kind == "chunks-6":  # one prediction per text, its chunks pooled as evaluation pooled them
        metrics = json.loads((runs[kind] / "metrics.json").read_text())
        assert len(rows) == sum(metrics["task"]["split_sizes"][split] for split in ("validation", "test"))
        assert metrics["task"]["data_facts"]["truncation"]["truncated"]["test"] > 0


def test_the_command_reads_the_runs_columns(runs, tmp_path, capsys):
    rows = recorded(runs["pairs"])
    source = write_csv(tmp_path / "to_label.csv", [{"summary": b, "review": a} for a, b in texts_of(rows)])
    main(["predict", str(runs["pairs"]), str(source), "--output", str(tmp_path / "out.jsonl"), "--precision", "fp32"])
    got = [json.loads(line) for line in open(tmp_path / "out.jsonl")]
    assert [g["label"] for g in got] == [row["prediction"] for row in rows]
    assert [g["text"] for g in got] == [row["text"] for row in rows]

    (tmp_path / "t.txt").write_text("good film\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(runs["pairs"]), str(tmp_path / "t.txt")])
    assert exit_info.value.code == 2
    assert "trained on text pairs (review, summary): pass a .csv or .jsonl file" in capsys.readouterr().err

    adapter_rows = recorded(runs["adapter"])  # an adapter folder: the column the run read (review), by default
    source = write_csv(tmp_path / "reviews.csv", [{"review": text} for text in texts_of(adapter_rows)])
    main(["predict", str(runs["adapter"]), str(source), "--output", str(tmp_path / "adapter.jsonl")])
    got = [json.loads(line) for line in open(tmp_path / "adapter.jsonl")]
    assert [g["label"] for g in got] == [row["prediction"] for row in adapter_rows]


def test_a_folder_without_a_trained_head_is_refused(tiny_bert, tmp_path):
    """A pretraining output (a masked-LM checkpoint) would get a random classifier: refused, not predicted."""
    BertForMaskedLM.from_pretrained(tiny_bert).save_pretrained(tmp_path / "mlm")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (tmp_path / "mlm" / name).write_bytes((tiny_bert / name).read_bytes())
    with pytest.raises(UserError, match=r"holds a BertForMaskedLM without a trained classification head "
                                        r"\(classifier\.\w+ is not in its weights\): fine-tune it first"):
        load_predictor(tmp_path / "mlm")


def test_an_adapter_without_its_run_record_is_refused(runs, tmp_path):
    import shutil

    shutil.copytree(runs["adapter"], tmp_path / "adapter", ignore=shutil.ignore_patterns("metrics.json", "merged"))
    with pytest.raises(UserError, match="holds a peft adapter but no metrics.json of a classify run"):
        load_predictor(tmp_path / "adapter")


def test_an_adapter_whose_base_folder_now_holds_other_weights_is_refused(tiny_bert, tmp_path):
    """peft puts an adapter on whatever its base folder holds: a base retrained in place would silently change
    the adapter's predictions, so the run records the base's weights and predict checks them."""
    import shutil

    import torch
    from transformers import BertModel

    base = tmp_path / "base"
    shutil.copytree(tiny_bert, base)
    data = write_csv(tmp_path / "reviews.csv", sentiment_rows(40))
    adapter = classify(tmp_path / "adapter", data, f"model={base}", "strategy=adapter")
    assert json.loads((adapter / "metrics.json").read_text())["model"]["weights_sha256"]
    texts = ["a good film", "a bad film"]
    assert len(load_predictor(adapter).predict(texts)) == 2
    retrained = BertModel.from_pretrained(base)
    with torch.no_grad():
        retrained.encoder.layer[0].attention.self.query.weight.add_(0.5)
    retrained.save_pretrained(base)
    with pytest.raises(UserError, match=r"the base model folder .*base holds other weights than the adapter in "
                                        r".*adapter was trained on"):
        load_predictor(adapter)
