"""Model cards: every output kind renders, parses back with ModelCard.load, states what the run recorded, and the
usage snippet it shows runs. Output folders come from tiny random models and hand-made RunResults, not training;
test_publish.py builds on the same folders (`build_output`)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from sklearn.metrics import precision_recall_fscore_support

from hf_transfer.cards import CARD_RENDERERS, render_card, reproduce_command
from hf_transfer.config import ClassifyConfig, DataConfig, TrainConfig, load_config, to_dict
from hf_transfer.errors import UserError
from hf_transfer.results import RunResult

LABELS = ["neg", "neutral", "pos"]
SPLIT_TEXTS = {
    "validation": ["the movie was good", "a dull plot", "the acting is brilliant", "boring film", "it was fun",
                   "the story is clumsy"],
    "test": ["good fun movie", "bad boring plot", "the film was moving", "awful acting", "a charming story",
             "the plot is tedious", "this movie was superb", "lifeless and dull"],
}
TINY_PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                         "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")
KINDS = ["full", "adapter", "remote-code", "multi-label"]
HUB_BASE = "test-org/tiny-bert"  # the Hub id test_publish.py gives the tiny base model


# ---------------------------------------------------------------------------------------------------------------
# Output folders as a classify run writes them


def report(predicted: np.ndarray, references: np.ndarray, multi_label: bool) -> dict:
    """What hf_transfer.metrics.classification_report returns, computed with scikit-learn."""
    label_ids = list(range(len(LABELS)))
    accuracy = float(np.mean(np.all(predicted == references, axis=-1) if multi_label else predicted == references))
    result = {"accuracy": accuracy}
    for average in ("macro", "micro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(references, predicted, average=average, labels=label_ids,
                                                     zero_division=0)
        result.update({f"precision_{average}": p, f"recall_{average}": r, f"f1_{average}": f})
    p, r, f, _ = precision_recall_fscore_support(references, predicted, average=None, labels=label_ids, zero_division=0)
    support = references.sum(axis=0) if multi_label else np.bincount(references, minlength=len(LABELS))
    result["per_class"] = {label: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                                   "support": int(support[i])} for i, label in enumerate(LABELS)}
    if not multi_label:
        result["confusion_matrix"] = [[int(np.sum((references == t) & (predicted == p_))) for p_ in label_ids]
                                      for t in label_ids]
    result["num_examples"] = len(references)
    return result


def references_for(split: str, multi_label: bool) -> np.ndarray:
    n = len(SPLIT_TEXTS[split])
    if multi_label:
        return np.array([[(i + j) % 2 for j in range(len(LABELS))] for i in range(n)])
    return np.arange(n) % len(LABELS)


def probabilities(model, tokenizer, texts: list[str], multi_label: bool) -> np.ndarray:
    with torch.no_grad():
        logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    return (torch.sigmoid(logits) if multi_label else torch.softmax(logits, -1)).numpy()


def make_result(kind: str, model_info: dict, strategy: dict, split_probabilities: dict, parameters: dict,
                multi_label: bool, baselines: dict | None = None) -> tuple[RunResult, list[dict]]:
    metrics, rows = {}, []
    for split, probs in split_probabilities.items():
        predicted = (probs > 0.5).astype(int) if multi_label else probs.argmax(-1)
        references = references_for(split, multi_label)
        metrics[split] = report(predicted, references, multi_label)

        def named(value):
            return [LABELS[i] for i, on in enumerate(value) if on] if multi_label else LABELS[value]

        rows += [{"split": split, "text": text, "label": named(label), "prediction": named(pred),
                  "scores": {name: round(float(p), 6) for name, p in zip(LABELS, row)}}
                 for text, label, pred, row in zip(SPLIT_TEXTS[split], references.tolist(), predicted.tolist(), probs)]
    config = ClassifyConfig(model=model_info["name"], strategy=strategy["name"], strategy_options=strategy["options"],
                            data=DataConfig(dataset="data/reviews.csv", text_columns=["review"], max_train_samples=40),
                            train=TrainConfig(epochs=3.0, learning_rate=5e-4), output_dir=f"outputs/{kind}")
    result = RunResult(
        kind="classification",
        model=model_info,
        strategy=strategy,
        task={"dataset": "data/reviews.csv", "description": "local file reviews.csv", "text_columns": ["review"],
              "label_names": LABELS, "multi_label": multi_label,
              "split_sizes": {"train": 40, **{s: len(t) for s, t in SPLIT_TEXTS.items()}}},
        metrics=metrics,
        parameters=parameters,
        compute={"train_time_s": 12.5, "train_examples_per_s": 9.6, "train_tokens_per_s": 77.0, "eval_time_s": 0.4,
                 "total_time_s": 14.2, "peak_memory_mb": 612.0, "precision": "fp32", "device": "cpu",
                 "hardware": "CPU: test machine, 2 threads", "processes": 1},
        config=to_dict(config),
        seed=42,
        training={"epochs": 3.0, "learning_rate": 5e-4, "batch_size": 8, "lr_scheduler": "linear", "warmup_ratio": 0.06,
                  "weight_decay": 0.01, "max_length": 32, "optimizer_steps": 15, "final_train_loss": 0.9876543,
                  "log_history": [{"loss": 1.1, "step": 5}, {"train_loss": 0.9876543, "step": 15}]},
        baselines=baselines or {},
    )
    return result, rows


def _bert_classifier(base: Path, multi_label: bool):
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(
        base, id2label=dict(enumerate(LABELS)), label2id={l: i for i, l in enumerate(LABELS)},
        problem_type="multi_label_classification" if multi_label else "single_label_classification")
    torch.nn.init.normal_(model.classifier.weight, std=2.0)  # decisive, text-dependent scores
    return model.eval()


def build_output(kind: str, base: Path, folder: Path) -> Path:
    """An output folder of `kind` as run_classify writes it: weights, tokenizer, predictions, metrics.json, card."""
    from transformers import AutoTokenizer

    folder.mkdir(parents=True)
    tokenizer = AutoTokenizer.from_pretrained(base)
    multi_label = kind == "multi-label"
    model_info = {"name": "tiny-bert", "location": str(base), "base_model": HUB_BASE, "model_type": "bert",
                  "family": "bert"}
    strategy = {"name": "full", "description": "all weights start from the checkpoint and train",
                "transferred": "parameters", "options": {}}
    baselines = None
    if kind in ("full", "multi-label"):
        model = _bert_classifier(base, multi_label)
        saved = model
        if kind == "full":
            baselines = {"zero-shot nli": {"method": "nli", "model": "tiny-nli", "metrics": {
                "test": report(np.zeros(8, dtype=int), references_for("test", False), False)}}}
    elif kind == "adapter":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(_bert_classifier(base, False), LoraConfig(
            task_type="SEQ_CLS", target_modules=["query", "value"], r=4, lora_alpha=8, modules_to_save=["classifier"]))
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if "lora_B" in name:
                    parameter.normal_(std=0.5)
        saved = model.eval()
        strategy = {"name": "adapter", "description": "LoRA on the attention projections; the base stays frozen",
                    "transferred": "parameters", "options": {"r": 4, "alpha": 8}}
    elif kind == "remote-code":
        from transformers import AutoConfig, AutoModelForSequenceClassification

        import hf_transfer.models  # noqa: F401  registers hft-textcnn

        torch.manual_seed(0)
        config = AutoConfig.for_model("hft-textcnn", vocab_size=len(tokenizer), embedding_dim=16, num_filters=8,
                                      filter_sizes=(2, 3), pad_token_id=tokenizer.pad_token_id,
                                      id2label=dict(enumerate(LABELS)), label2id={l: i for i, l in enumerate(LABELS)})
        model = saved = AutoModelForSequenceClassification.from_config(config).eval()
        model_info = {"name": "hft-textcnn", "location": "hft-textcnn", "base_model": None,
                      "model_type": "hft-textcnn", "family": "hft-textcnn"}
        strategy = {"name": "scratch", "description": "the architecture and tokenizer, weights from random init",
                    "transferred": "structure", "options": {}}
    else:
        raise ValueError(kind)
    split_probabilities = {s: probabilities(model, tokenizer, t, multi_label) for s, t in SPLIT_TEXTS.items()}
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    result, rows = make_result(kind, model_info, strategy, split_probabilities,
                               {"trainable": trainable, "total": total, "trainable_fraction": trainable / total},
                               multi_label, baselines)
    saved.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "predictions.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (folder / "loss_curve.png").write_bytes(TINY_PNG)
    result.save(folder)
    render_card(result, folder, str(folder)).save(folder / "README.md")
    return folder


@pytest.fixture(scope="session")
def outputs(tiny_bert, tmp_path_factory):
    """kind -> output folder, built on first use."""
    built: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in built:
            built[kind] = build_output(kind, tiny_bert, tmp_path_factory.mktemp("outputs") / kind)
        return built[kind]

    return get


def python_block(card_text: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", card_text, flags=re.DOTALL)
    assert len(blocks) == 1, "a card shows exactly one python snippet"
    return blocks[0]


# Runs card snippets in one fresh process (one import of torch and transformers for all of them): each snippet
# file runs as __main__; what it printed is kept and, given texts, the `classifier` it built scores them.
SNIPPET_RUNNER = """
import contextlib, io, json, runpy, sys
results = {}
for job in json.loads(sys.argv[1]):
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        namespace = runpy.run_path(job["path"], run_name="__main__")
    scores = None
    if job["texts"]:
        scores = [{r["label"]: r["score"] for r in row} for row in namespace["classifier"](job["texts"], top_k=None)]
    results[job["name"]] = {"printed": printed.getvalue(), "scores": scores}
print("RESULTS " + json.dumps(results))
"""


def run_snippets(snippets: dict[str, str], cwd: Path, texts: dict[str, list[str]] | None = None, **env) -> dict:
    """{name: {"printed", "scores"}} from running each snippet in a fresh Python process (HF_HUB_OFFLINE=1)."""
    jobs = []
    for name, code in snippets.items():
        path = cwd / f"snippet_{name}.py"
        path.write_text(code)
        jobs.append({"name": name, "path": str(path), "texts": (texts or {}).get(name)})
    runner = cwd / "run_snippets.py"
    runner.write_text(SNIPPET_RUNNER)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **env}
    done = subprocess.run([sys.executable, str(runner), json.dumps(jobs)], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.split("RESULTS ", 1)[1])


# ---------------------------------------------------------------------------------------------------------------
# Tests


@pytest.mark.parametrize("kind", KINDS)
def test_card_metadata_holds_every_split_and_metric(kind, outputs):
    folder = outputs(kind)
    result = RunResult.load(folder)
    card = ModelCard.load(folder / "README.md")
    data = card.data

    assert data.library_name == ("peft" if kind == "adapter" else "transformers")
    assert data.pipeline_tag == "text-classification"
    assert data.license == "apache-2.0" and data.language == "en"
    assert f"strategy:{result.strategy['name']}" in data.tags and "hf-transfer" in data.tags
    assert data.datasets is None  # a local CSV has no Hub id
    # Random init transfers no weights, so such a model claims no base model.
    assert data.base_model == (None if kind == "remote-code" else HUB_BASE)
    assert ("multi-label-classification" in data.tags) == (kind == "multi-label")

    recorded = {(r.dataset_split, r.metric_name): r.metric_value for r in data.eval_results}
    assert {split for split, _ in recorded} == {"validation", "test"}
    for split, metrics in result.metrics.items():
        assert recorded[(split, "Accuracy")] == round(metrics["accuracy"], 4)
        for metric, title in (("precision", "Precision"), ("recall", "Recall"), ("f1", "F1")):
            for average in ("macro", "micro", "weighted"):
                assert recorded[(split, f"{title} ({average})")] == round(metrics[f"{metric}_{average}"], 4)
    assert all(r.dataset_type == "reviews.csv" for r in data.eval_results)  # no local path in the metadata
    assert str(folder.parent) not in str(data.to_yaml())


@pytest.mark.parametrize("kind", KINDS)
def test_card_body_states_what_the_run_recorded(kind, outputs):
    folder = outputs(kind)
    result = RunResult.load(folder)
    text = ModelCard.load(folder / "README.md").text

    for heading in ("## What was transferred", "## Data", "## Results", "## Training", "## Compute", "## Usage",
                    "## Limitations", "## Reproduce"):
        assert heading in text
    fraction = 100 * result.parameters["trainable_fraction"]
    assert f"{result.parameters['trainable']:,} of {result.parameters['total']:,} ({fraction:.2f}%)" in text
    for split, metrics in result.metrics.items():
        margin = 1.96 * np.sqrt(metrics["accuracy"] * (1 - metrics["accuracy"]) / metrics["num_examples"])
        assert f"| {split} | {metrics['num_examples']} | {metrics['accuracy']:.4f} ± {margin:.4f} |" in text
        assert f"Per class, {split} split:" in text
        for label, row in metrics["per_class"].items():
            cells = f"{row['precision']:.4f} | {row['recall']:.4f} | {row['f1']:.4f} | {row['support']}"
            assert f"| {label} | {cells} |" in text
    assert "`neg`, `neutral`, `pos`" in text
    assert "max_train_samples=40" in text  # the subsample is disclosed
    assert "![Training loss](loss_curve.png)" in text
    assert "| final_train_loss | 0.9877 |" in text and "| learning_rate | 0.0005 |" in text
    assert "CPU: test machine, 2 threads (1 process, device `cpu`)" in text
    assert "Peak process memory (RSS) | 612 MiB" in text
    assert f"| max_batch_tokens (padded tokens per forward/backward pass) | {TrainConfig().max_batch_tokens} |" in text
    test = result.metrics["test"]
    margin_points = 100 * 1.96 * np.sqrt(test["accuracy"] * (1 - test["accuracy"]) / test["num_examples"])
    assert f"On 8 test examples the 95% interval\n  of accuracy is ±{margin_points:.1f} points" in text
    assert ("## Comparison" in text) == (kind == "full")
    if kind == "full":
        baseline = result.baselines["zero-shot nli"]["metrics"]["test"]
        cells = f"{baseline['accuracy']:.4f} | {baseline['f1_macro']:.4f}"
        assert f"| zero-shot nli (`tiny-nli`) | nli | test | {cells} |" in text
        points = 100 * (test["accuracy"] - baseline["accuracy"])
        assert f"Test: {points:+.1f} points of accuracy" in text
    if kind == "adapter":
        assert "| Adapter | LORA, r=4, alpha=8" in text and "`query`, `value`" in text
        assert f"(`adapter_config.json`, `adapter_model.safetensors`) on top of `{HUB_BASE}`" in text
    if kind == "remote-code":
        assert "its weights were **not** used" in text and "a control that measures what pretraining buys" in text
        assert "`configuration_textcnn.py`" in text and "trust_remote_code=True" in text
    if kind == "multi-label":
        assert "Accuracy is exact match" in text and "sigmoid score exceeds 0.5" in text


def test_reproduce_command_rebuilds_the_run_config(outputs):
    folder = outputs("full")
    result = RunResult.load(folder)
    text = ModelCard.load(folder / "README.md").text
    command = re.search(r"```bash\n(hf-transfer classify .*)\n```", text).group(1)
    words = shlex.split(command)
    assert words[:2] == ["hf-transfer", "classify"]
    rebuilt = to_dict(load_config(ClassifyConfig, None, words[2:]))
    local = ("output_dir", "overwrite_output_dir", "push_to_hub", "hub_repo_id", "hub_private")
    assert {k: v for k, v in rebuilt.items() if k not in local} == {
        k: v for k, v in result.config.items() if k not in local}
    assert "output_dir" not in command


def test_reproduce_command_quotes_values_that_yaml_would_misread():
    config = to_dict(ClassifyConfig(data=DataConfig(dataset="true", labels=["1", "no"]), strategy_options={"r": 8}))
    command = reproduce_command("hf-transfer classify", config, to_dict(ClassifyConfig()))
    rebuilt = load_config(ClassifyConfig, None, shlex.split(command)[2:])
    assert rebuilt.data.dataset == "true" and rebuilt.data.labels == ["1", "no"]
    assert rebuilt.strategy_options == {"r": 8}


def test_usage_snippets_run_on_the_output_folders(outputs, tmp_path):
    snippets = {}
    for kind in KINDS:
        snippets[kind] = python_block(ModelCard.load(outputs(kind) / "README.md").text)
        assert json.dumps(str(outputs(kind))) in snippets[kind]
    # A run on two text columns encoded them as pairs: its snippet passes pairs.
    paired = RunResult.load(outputs("full"))
    paired.task["text_columns"] = ["premise", "hypothesis"]
    snippets["pairs"] = python_block(render_card(paired, outputs("full"), str(outputs("full"))).text)
    assert '"text_pair": ' in snippets["pairs"]
    for kind, result in run_snippets(snippets, tmp_path).items():
        printed = result["printed"].strip().splitlines()[-1]
        assert "'label': " in printed and any(f"'{label}'" in printed for label in LABELS), (kind, printed)


def test_a_chunks_runs_card_says_long_texts_were_read_whole_and_points_to_predict_not_the_pipeline(outputs):
    """data.truncation=chunks pools the logits of a long text's windows; a pipeline call reads one window at most."""
    folder = outputs("full")
    card = ModelCard.load(folder / "README.md").text  # head, the default: the pipeline cuts as the run did
    assert "`classifier(texts, truncation=True, max_length=32)` scores texts as they were scored here" in card
    result = RunResult.load(folder)
    result.config["data"]["truncation"] = "chunks"
    result.task["data_facts"] = {"truncation": {"strategy": "chunks", "max_length": 32, "truncated": {"test": 2},
                                               "truncated_share": {"test": 0.25}, "median_tokens": {"test": 20}}}
    text = render_card(result, folder, str(folder)).text
    assert ("Texts longer than 32 tokens were read whole, in overlapping windows of 32 tokens (chunks): test 25.0% "
            "(median 20 tokens). Each window trained with its text's label, and a text's prediction is the mean of its "
            "windows' logits.") in text
    assert "not read" not in text and "truncation=True, max_length" not in text
    assert "`hf-transfer predict FOLDER texts.txt`" in text and "scores texts as they were scored here" in text


def test_a_max_train_samples_above_the_train_split_is_no_subsample_in_the_card(outputs):
    """The whole train split (40 examples) is used: the card must not say it was subsampled."""
    folder = outputs("full")
    result = RunResult.load(folder)
    result.config["data"]["max_train_samples"] = 100000
    assert "subsampled" not in render_card(result, folder, str(folder)).text
    result.config["data"]["max_eval_samples"] = 6
    assert "The splits were subsampled for this run (max_eval_samples=6)." in render_card(result, folder,
                                                                                          str(folder)).text
    # A record with the sizes before the caps (data facts' subsampled) names only the caps that made a split smaller.
    result.task["data_facts"] = {"subsampled": {"test": 9}}
    assert "The splits were subsampled for this run (max_eval_samples=6 (test: of 9))." in render_card(
        result, folder, str(folder)).text
    result.task["data_facts"] = {"subsampled": {}}
    assert "subsampled" not in render_card(result, folder, str(folder)).text


def test_card_for_a_repo_id_loads_from_the_repo(outputs):
    folder = outputs("adapter")
    card = render_card(RunResult.load(folder), folder, "my-org/tiny-adapter")
    code = python_block(card.text)
    assert card.data.eval_results[0].dataset_split == "validation"
    assert card.content.count("my-org/tiny-adapter") >= 2 and str(folder) not in code
    assert "# tiny-adapter" in card.text
    assert 'labels = ["neg", "neutral", "pos"]' in code  # an adapter carries no label names: the snippet does


def test_unknown_run_kind_has_no_card(outputs):
    result = RunResult.load(outputs("full"))
    result.kind = "regression"
    with pytest.raises(UserError, match="no model card template for runs of kind 'regression'"):
        render_card(result, outputs("full"), "x")


def test_every_renderer_module_registers_its_kind():
    import importlib

    from hf_transfer.cards import RENDERER_MODULES

    for kind, module in RENDERER_MODULES.items():
        importlib.import_module(module)
        assert CARD_RENDERERS[kind].__module__ == module, f"{module} does not register a renderer for {kind!r}"


def zero_shot_result() -> RunResult:
    """The record of a zero-shot evaluation; skips the test while the zero-shot card does not exist."""
    try:
        import hf_transfer.cards.zeroshot  # noqa: F401  registers the "zero-shot" renderer
        from hf_transfer.config import ZeroShotConfig
    except ImportError as err:
        pytest.skip(f"the zero-shot card is not there yet ({err})")
    probs = {split: np.tile(np.array([[0.2, 0.3, 0.5]]), (len(texts), 1)) for split, texts in SPLIT_TEXTS.items()}
    result, _ = make_result("zero-shot", {"name": "tiny-nli", "location": "tiny-nli", "base_model": "test-org/tiny-nli",
                                          "model_type": "bert", "family": "bert"},
                            {"name": "zero-shot", "method": "nli", "description": "entailment of a hypothesis",
                             "transferred": "none", "options": {"hypothesis_template": "This text is {}."},
                             "label_prompts": {label: f"This text is {label}." for label in LABELS}},
                            probs, {"trainable": 0, "total": 1000, "trainable_fraction": 0.0}, False)
    result.kind = "zero-shot"
    result.config = to_dict(ZeroShotConfig())
    return result


def test_zero_shot_card_renders_and_parses(tmp_path):
    result = zero_shot_result()
    assert "zero-shot" in CARD_RENDERERS
    (tmp_path / "confusion_matrix.png").write_bytes(TINY_PNG)
    render_card(result, tmp_path, "my-org/tiny-nli-zero-shot").save(tmp_path / "README.md")
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.pipeline_tag == "zero-shot-classification"
    assert {r.dataset_split for r in card.data.eval_results} == {"validation", "test"}
    assert "This text is pos." in card.text and "# tiny-nli-zero-shot" in card.text
