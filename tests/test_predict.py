"""`hf-transfer predict`: the labels of transformers.pipeline, from batched (and bf16) inference."""

import json
import shutil

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizer, pipeline

from conftest import VOCAB, sentiment_rows
from hf_transfer.cli import main
from hf_transfer.errors import UserError
from hf_transfer.predict import Predictor, read_inputs


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A saved 3-class classifier; random weights put many texts near a decision boundary."""
    folder = tmp_path_factory.mktemp("classifier")
    BertTokenizer(vocab={token: i for i, token in enumerate(VOCAB)}).save_pretrained(folder)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=3,
                        id2label={0: "neg", 1: "pos", 2: "mixed"}, label2id={"neg": 0, "pos": 1, "mixed": 2})
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def texts():
    return [row["review"] for row in sentiment_rows(150, seed=2)] + ["good", "the movie was the movie and the plot"]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_labels_match_the_pipeline(classifier, texts, precision):
    expected = pipeline("text-classification", model=str(classifier))(texts)
    predictor = Predictor(classifier, precision=precision, max_batch_tokens=256)
    rows = predictor.predict(texts)
    assert [row["label"] for row in rows] == [e["label"] for e in expected]
    assert [row["score"] for row in rows] == pytest.approx([e["score"] for e in expected], abs=2e-2 if precision == "bf16" else 1e-5)
    assert all(sum(row["scores"].values()) == pytest.approx(1, abs=1e-4) for row in rows)


def test_command_writes_one_json_line_per_text(classifier, texts, tmp_path):
    source = tmp_path / "texts.txt"
    source.write_text("\n".join(texts) + "\n")
    out = tmp_path / "labels.jsonl"
    main(["predict", str(classifier), str(source), "--output", str(out)])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["text"] for row in rows] == texts
    assert {row["label"] for row in rows} <= {"neg", "pos", "mixed"}


def test_texts_from_csv_and_jsonl_columns(tmp_path):
    (tmp_path / "t.csv").write_text('review,summary\n"good, really",fine\nbad,poor\n')
    (tmp_path / "t.jsonl").write_text('{"text": "good"}\n\n{"text": "bad"}\n')
    assert read_inputs(tmp_path / "t.csv", ["review"]) == ["good, really", "bad"]
    assert read_inputs(tmp_path / "t.jsonl", ["text"]) == ["good", "bad"]
    assert read_inputs(tmp_path / "t.csv", ["review", "summary"]) == [("good, really", "fine"), ("bad", "poor")]
    with pytest.raises(UserError, match=r"trained on text pairs \(review, summary\): pass a .csv or .jsonl file"):
        read_inputs(tmp_path / "t.txt", ["review", "summary"])
    with pytest.raises(UserError, match="no text field 'text'.*--text-column"):
        read_inputs(tmp_path / "t.csv", ["text"])
    with pytest.raises(UserError, match="not found"):
        read_inputs(tmp_path / "missing.txt", ["text"])


def test_bad_model_folder_is_a_user_error(tmp_path, capsys):
    (tmp_path / "t.txt").write_text("good\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(tmp_path), str(tmp_path / "t.txt")])
    assert exit_info.value.code == 2
    assert "holds no config.json" in capsys.readouterr().err


@pytest.fixture(scope="module")
def pooled_classifier(classifier, tmp_path_factory):
    """The same encoder with a classifier on its mean-pooled states (hft-pooled, saved with its code)."""
    from hf_transfer.models import PooledConfig, PooledForSequenceClassification

    folder = tmp_path_factory.mktemp("pooled")
    head = BertForSequenceClassification.from_pretrained(classifier)
    config = PooledConfig(encoder=head.bert.config, pooling="mean", num_labels=3, id2label=head.config.id2label,
                          label2id=head.config.label2id)
    torch.manual_seed(0)
    PooledForSequenceClassification(config, encoder=head.bert).save_pretrained(folder)
    BertTokenizer.from_pretrained(classifier).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("kind", ["head", "pooled"])
def test_onnx_export_labels_match_the_pipeline_and_optimum_layout(kind, classifier, pooled_classifier, texts,
                                                                  tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    source = classifier if kind == "head" else pooled_classifier
    model_dir = tmp_path / "run"
    shutil.copytree(source, model_dir)
    main(["export", str(model_dir)])
    assert f"hf-transfer predict {model_dir} TEXTS --backend onnxruntime" in capsys.readouterr().out
    if kind == "head":  # elsewhere than MODEL/onnx, which predict reads: no predict command to offer
        main(["export", str(model_dir), "--output", str(tmp_path / "elsewhere")])
        printed = capsys.readouterr().out
        assert "ONNX model in" in printed and "--backend onnxruntime" not in printed
    # What optimum's ORTModelForSequenceClassification.from_pretrained(folder) reads: model.onnx, config, tokenizer.
    assert {"model.onnx", "config.json", "tokenizer_config.json"} <= {p.name for p in (model_dir / "onnx").iterdir()}
    assert not (model_dir / "onnx.partial").exists()
    graph = pytest.importorskip("onnx").load(str(model_dir / "onnx" / "model.onnx")).graph
    assert "SkipLayerNormalization" in {node.op_type for node in graph.node}, "ONNX Runtime's fused BERT kernels"
    expected = pipeline("text-classification", model=str(source), trust_remote_code=kind == "pooled")(texts)
    rows = Predictor(model_dir, backend="onnxruntime", max_batch_tokens=256).predict(texts)
    assert [row["label"] for row in rows] == [e["label"] for e in expected]
    assert [row["score"] for row in rows] == pytest.approx([e["score"] for e in expected], abs=1e-4)


def test_onnx_backend_without_an_export_is_a_user_error(classifier):
    pytest.importorskip("onnxruntime")
    with pytest.raises(UserError, match="hf-transfer export"):
        Predictor(classifier, backend="onnxruntime")

