"""Transfer strategies: which parameters each one trains, what it saves and that the saved folder predicts as the
run did; gradual unfreezing's schedule; bad strategy input. Tiny BERT, GPT-2, T5 and hft-attention checkpoints
(sharing conftest's WordPiece vocabulary) are built here; nothing downloads."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from peft import AutoPeftModelForSequenceClassification
from safetensors.torch import load_file
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from transformers import (AutoModel, AutoModelForSequenceClassification, AutoTokenizer, BertTokenizer, GPT2Config,
                          GPT2LMHeadModel, T5Config, T5ForConditionalGeneration, pipeline)

from conftest import VOCAB, sentiment_rows, write_csv
from hf_transfer.backbones import load_backbone
from hf_transfer.classify import run_classify
from hf_transfer.config import ClassifyConfig, load_config
from hf_transfer.data import load_task_data, tokenize_splits
from hf_transfer.errors import UserError
from hf_transfer.features import classifier_reader, dataset_columns, split_features
from hf_transfer.models import AttentionConfig, AttentionForMaskedLM, RNNConfig, RNNForCausalLM
from hf_transfer.predict import load_predictor
from hf_transfer.strategies import get_strategy
from hf_transfer.strategies.layers import layer_groups, output_layer
from hf_transfer.training import build_trainer, training_arguments

LABELS = ["neg", "pos"]
# The head modules each family trains in every strategy (BERT: its dense+tanh pooler and the classifier).
HEADS = {"bert": ("bert.pooler", "classifier"), "gpt2": ("score",), "t5": ("classification_head",),
         "hft-attention": ("classifier",)}


pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def checkpoints(tiny_bert, tmp_path_factory):
    """Pretrained-style folders. GPT-2 and T5 use the tiny BERT's WordPiece vocabulary: its [SEP] ends every text,
    which T5 classifies from, and its [PAD] pads GPT-2."""
    root = tmp_path_factory.mktemp("strategy-checkpoints")
    vocab = {token: i for i, token in enumerate(VOCAB)}
    torch.manual_seed(0)
    folders = {"bert": tiny_bert}
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(VOCAB), n_embd=16, n_layer=2, n_head=2, n_positions=64,
                                      bos_token_id=vocab["[CLS]"], eos_token_id=vocab["[SEP]"]))
    t5 = T5ForConditionalGeneration(T5Config(vocab_size=len(VOCAB), d_model=16, d_ff=32, d_kv=8, num_layers=2,
                                             num_heads=2, pad_token_id=0, eos_token_id=vocab["[SEP]"],
                                             decoder_start_token_id=0))
    attention = AttentionForMaskedLM(AttentionConfig(vocab_size=len(VOCAB), hidden_size=16, num_attention_heads=2,
                                                     num_hidden_layers=2, intermediate_size=32,
                                                     max_position_embeddings=64, pad_token_id=0))
    rnn = RNNForCausalLM(RNNConfig(vocab_size=len(VOCAB), embedding_dim=16, hidden_size=16, pad_token_id=0))
    for name, model, eos in (("gpt2", gpt2, None), ("t5", t5, "[SEP]"), ("hft-attention", attention, None),
                             ("hft-rnn", rnn, None)):
        folders[name] = root / name
        model.save_pretrained(folders[name])
        BertTokenizer(vocab=vocab, **({"eos_token": eos} if eos else {})).save_pretrained(folders[name])
    return folders


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    return write_csv(tmp_path_factory.mktemp("strategy-data") / "reviews.csv", sentiment_rows(48))


def config(model, data, output_dir, strategy, *overrides):
    return load_config(ClassifyConfig, None, [
        f"model={model}", f"data.dataset={data}", "data.text_columns=review", "data.label_column=sentiment",
        "data.max_length=32", f"strategy={strategy}", "train.epochs=1", "train.batch_size=8", "train.precision=fp32",
        "train.logging_steps=2", f"output_dir={output_dir}", *overrides,
    ])


def loaded(model_name, strategy, reviews, *overrides):
    """The classifier a run would train, after `strategy`'s setup: (strategy, setup, backbone)."""
    run_config = config(model_name, reviews, "unused", strategy, *overrides)
    task = load_task_data(run_config.data)
    chosen = get_strategy(run_config.strategy, run_config.strategy_options)
    run_config.train.learning_rate = run_config.train.learning_rate or chosen.default_learning_rate
    backbone = load_backbone(run_config, task, chosen)
    return chosen, chosen.setup(backbone.model, backbone.family, run_config.train), backbone, task, run_config


def trainable(model) -> set[str]:
    return {name for name, parameter in model.named_parameters() if parameter.requires_grad}


def saved_predictions(out) -> list[dict]:
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


def assert_reproduces(classifier, out):
    """`classifier` (a text-classification pipeline) gives every saved prediction's scores again."""
    rows = saved_predictions(out)
    for row, scores in zip(rows, classifier([row["text"] for row in rows], top_k=None)):
        assert {s["label"]: s["score"] for s in scores} == pytest.approx(row["scores"], abs=2e-6)


def state_dict(folder) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


# ---------------------------------------------------------------------------------------------------------------
# Which parameters train


@pytest.mark.parametrize("family", ["bert", "gpt2", "t5", "hft-attention"])
def test_each_strategy_trains_exactly_its_parameters(family, checkpoints, reviews):
    model_name, heads = checkpoints[family], HEADS[family]
    everything = {name for name, _ in loaded(model_name, "full", reviews)[1].model.named_parameters()}
    head_names = {name for name in everything if name.startswith(tuple(f"{head}." for head in heads))}
    assert head_names and head_names < everything

    assert trainable(loaded(model_name, "full", reviews)[1].model) == everything
    assert trainable(loaded(model_name, "frozen", reviews)[1].model) == head_names
    probe = trainable(loaded(model_name, "linear-probe", reviews)[1].model)
    assert probe and probe <= head_names and all(n.endswith((".weight", ".bias")) for n in probe)
    if family == "t5":  # only the Linear that makes the logits takes the probe; the dense layer stays as it is
        assert probe == {"classification_head.out_proj.weight", "classification_head.out_proj.bias"}

    adapter, setup, _, _, _ = loaded(model_name, "adapter", reviews)
    names = trainable(setup.model)
    lora = {n for n in names if ".lora_" in n}
    head_copy = {n for n in names if any(f".{head}.modules_to_save." in n for head in heads)}
    assert lora and head_copy and names == lora | head_copy, "LoRA matrices and the head, nothing else"
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in lora} == set(setup.options["peft"]["target_modules"])
    assert setup.options["peft"]["lora_alpha"] == 16, "alpha defaults to twice peft's rank 8"
    counts = adapter.count_parameters(setup.model)  # the head once, though peft keeps its pretrained copy
    lora_size = sum(p.numel() for n, p in setup.model.named_parameters() if ".lora_" in n)
    base_size = sum(p.numel() for p in loaded(model_name, "full", reviews)[1].model.parameters())
    head_size = sum(p.numel() for n, p in setup.model.named_parameters() if n in head_copy)
    assert counts == {"trainable": lora_size + head_size, "total": base_size + lora_size,
                      "trainable_fraction": (lora_size + head_size) / (base_size + lora_size)}


@pytest.mark.parametrize("method, family, marker", [("dora", "bert", ".lora_magnitude_vector."),
                                                    ("ia3", "gpt2", ".ia3_l."),
                                                    ("prompt-tuning", "bert", "prompt_encoder.")])
def test_other_adapter_methods_train_their_own_weights_and_the_head(method, family, marker, checkpoints, reviews):
    _, setup, _, _, _ = loaded(checkpoints[family], "adapter", reviews, f"strategy_options.method={method}")
    names = trainable(setup.model)
    assert any(marker in n for n in names)
    head_copies = tuple(f"{head}.modules_to_save." for head in HEADS[family])
    assert all(marker in n or ".lora_" in n or any(copy in n for copy in head_copies) for n in names)


def test_layer_groups_run_from_embeddings_through_blocks_to_the_head(checkpoints, reviews):
    groups = {}
    for family in ("bert", "gpt2", "t5"):
        _, setup, backbone, _, _ = loaded(checkpoints[family], "full", reviews)
        groups[family] = [group.name for group in layer_groups(setup.model, backbone.family)]
    assert groups["bert"] == ["embeddings", "bert.encoder.layer.0", "bert.encoder.layer.1", "head"]
    assert groups["gpt2"] == ["embeddings", "transformer.h.0", "transformer.h.1", "head"]
    assert groups["t5"] == ["embeddings", "transformer.encoder.block.0", "transformer.encoder.block.1",
                            "transformer.decoder.block.0", "transformer.decoder.block.1", "head"]


def test_gradual_unfreezing_optimizer_groups_cover_each_parameter_once(checkpoints, reviews):
    _, setup, _, _, run_config = loaded(checkpoints["bert"], "gradual-unfreeze", reviews, "train.learning_rate=1e-3")
    groups = setup.optimizer_grouped_parameters
    listed = [id(p) for group in groups for p in group["params"]]
    assert sorted(listed) == sorted(id(p) for p in setup.model.parameters())
    names = {id(p): name for name, p in setup.model.named_parameters()}
    for group in groups:
        depth = ["head", "bert.encoder.layer.1", "bert.encoder.layer.0", "embeddings"].index(group["layer_group"])
        assert group["lr"] == pytest.approx(1e-3 / 1.25 ** depth)
        undecayed = [names[id(p)] for p in group["params"] if group["weight_decay"] == 0]
        assert all(name.endswith(".bias") or "LayerNorm" in name for name in undecayed)
        if group["weight_decay"]:
            assert group["weight_decay"] == run_config.train.weight_decay
            assert all(names[id(p)].endswith(".weight") and "LayerNorm" not in names[id(p)] for p in group["params"])


# ---------------------------------------------------------------------------------------------------------------
# Train, save, reload, predict the same


def test_frozen_backbone_is_bit_identical_and_the_saved_model_predicts_the_same(checkpoints, reviews, tmp_path):
    out = tmp_path / "frozen"
    result = run_classify(config(checkpoints["gpt2"], reviews, out, "frozen", "train.epochs=2"))
    assert result.training["learning_rate"] == get_strategy("frozen").default_learning_rate
    pretrained = AutoModelForSequenceClassification.from_pretrained(checkpoints["gpt2"], num_labels=2).state_dict()
    trained = state_dict(out)
    backbone_keys = [key for key in trained if not key.startswith("score.")]
    assert backbone_keys and all(torch.equal(trained[key], pretrained[key]) for key in backbone_keys)
    assert result.parameters["trainable"] == trained["score.weight"].numel()
    assert_reproduces(pipeline("text-classification", model=str(out)), out)


def test_linear_probe_head_reproduces_the_fitted_logistic_regression(checkpoints, reviews, tmp_path):
    """BERT: the probe is fit on what the classifier sees (the pooler's output) and copied into it exactly."""
    strategy, setup, backbone, task, run_config = loaded(checkpoints["bert"], "linear-probe", reviews)
    tokenized = tokenize_splits(task, backbone.tokenizer, 32)
    args = training_arguments(run_config.train, str(tmp_path / "trainer"), "fp32", False)
    trainer = build_trainer(setup.model, args, backbone.tokenizer, tokenized["train"], tokenized["validation"],
                            setup.callbacks, setup.optimizer_grouped_parameters)
    strategy.train(setup, trainer, task, tokenized)
    chosen_C = trainer.state.log_history[-1]["linear_probe_C"]

    output = output_layer(setup.model, setup.family)
    reader = classifier_reader(setup.model, output, backbone.tokenizer.pad_token_id)
    features = {split: split_features(reader, dataset_columns(tokenized[split]), split).astype(np.float64)
                for split in ("train", "test")}  # float64, as the probe is fitted
    encoded = backbone.tokenizer(list(task.texts("test")), padding=True, return_tensors="pt")
    pooled = setup.model.bert(**encoded).pooler_output
    assert np.allclose(features["test"], pooled.detach().numpy(), atol=1e-6), "features = the classifier's input"
    scaler = StandardScaler().fit(features["train"])
    probe = LogisticRegression(C=chosen_C, max_iter=1000)
    probe.fit(scaler.transform(features["train"]), tokenized["train"]["labels"])
    expected = probe.predict_proba(scaler.transform(features["test"]))
    logits = trainer.predict(tokenized["test"]).predictions
    # float32 inference: standardising features of small variance makes large weights whose sums round to ~1e-4
    assert np.allclose(torch.softmax(torch.as_tensor(logits), -1).numpy(), expected, atol=1e-3)
    assert (logits.argmax(-1) == expected.argmax(-1)).all()


def test_linear_probe_saves_a_model_that_pipeline_loads(checkpoints, reviews, tmp_path):
    """GPT-2: last-token features, a head without bias; the probe's accuracy is the saved model's."""
    out = tmp_path / "probe"
    result = run_classify(config(checkpoints["gpt2"], reviews, out, "linear-probe"))
    probe_log = result.training["log_history"][-1]
    assert probe_log["validation_accuracy"] == result.metrics["validation"]["accuracy"]
    pretrained = AutoModelForSequenceClassification.from_pretrained(checkpoints["gpt2"], num_labels=2).state_dict()
    trained = state_dict(out)
    assert all(torch.equal(trained[key], pretrained[key]) for key in trained if key != "score.weight")
    assert_reproduces(pipeline("text-classification", model=str(out)), out)


def test_lora_on_t5_saves_an_adapter_that_loads_offline_and_a_merged_model(checkpoints, reviews, tmp_path):
    out = tmp_path / "lora"
    result = run_classify(config(checkpoints["t5"], reviews, out, "adapter", "strategy_options.r=4",
                                 "strategy_options.merge=true"))
    assert result.training["learning_rate"] == get_strategy("adapter").default_learning_rate
    assert result.strategy["options"]["peft"] == {"r": 4, "lora_alpha": 8, "target_modules": ["q", "v"],
                                                  "modules_to_save": ["classification_head"]}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    assert not (out / "model.safetensors").exists(), "the main folder holds the adapter only"
    adapter_config = json.loads((out / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == str(checkpoints["t5"].resolve())
    assert adapter_config["task_type"] == "SEQ_CLS" and "classification_head" in adapter_config["modules_to_save"]

    model = AutoPeftModelForSequenceClassification.from_pretrained(
        str(out), id2label=dict(enumerate(LABELS)), label2id={label: i for i, label in enumerate(LABELS)})
    assert_reproduces(pipeline("text-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(out)), out)
    assert_reproduces(pipeline("text-classification", model=str(out / "merged")), out)

    # Merged: only the LoRA targets (q, v) and the head differ from the pretrained weights.
    pretrained = AutoModelForSequenceClassification.from_pretrained(checkpoints["t5"], num_labels=2).state_dict()
    merged = state_dict(out / "merged")
    changed = {key for key in merged if key in pretrained and not torch.equal(merged[key], pretrained[key])}
    assert changed and all(key.endswith((".q.weight", ".v.weight")) or key.startswith("classification_head.")
                           for key in changed)


@pytest.mark.parametrize("method, family", [("prompt-tuning", "bert"), ("dora", "hft-attention")])
def test_adapter_methods_reload_and_predict_the_same(method, family, checkpoints, reviews, tmp_path):
    out = tmp_path / method
    run_classify(config(checkpoints[family], reviews, out, "adapter", f"strategy_options.method={method}",
                        "strategy_options.num_virtual_tokens=4" if method == "prompt-tuning" else "strategy_options.r=4"))
    model = AutoPeftModelForSequenceClassification.from_pretrained(
        str(out), id2label=dict(enumerate(LABELS)), label2id={label: i for i, label in enumerate(LABELS)})
    assert_reproduces(pipeline("text-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(out)), out)


def test_shipped_lora_config_adapts_every_encoder_linear_the_word_embeddings_and_biases_and_reloads(
        checkpoints, reviews, tmp_path):
    out = tmp_path / "lora-config"
    shipped = Path(__file__).parents[1] / "recipes" / "configs" / "classify_lora.yaml"
    run_config = load_config(ClassifyConfig, shipped, [
        f"model={checkpoints['bert']}", f"data.dataset={reviews}", "data.text_columns=review",
        "data.label_column=sentiment", "data.max_length=32", "train.epochs=1", "train.batch_size=8",
        "train.precision=fp32", "strategy_options.merge=true", f"output_dir={out}"])
    run_classify(run_config)
    saved = load_file(str(out / "adapter_model.safetensors"))
    adapted = {key.split(".lora_A")[0].split("encoder.layer.")[1] for key in saved if ".lora_A" in key}
    assert adapted == {f"{layer}.{module}" for layer in (0, 1) for module in (
        "attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
        "intermediate.dense", "output.dense")}
    embedding = saved["base_model.model.bert.embeddings.word_embeddings.lora_embedding_A"]
    assert embedding.shape == (1, len(VOCAB)), "rank_pattern: a rank-1 adapter on the word embeddings"

    def plain(key):  # the name in a BertModel checkpoint
        return key.removeprefix("base_model.model.").removeprefix("bert.").replace(".base_layer.", ".")

    biases = {plain(key) for key in load_file(str(checkpoints["bert"] / "model.safetensors")) if key.endswith(".bias")}
    biases -= {key for key in biases if key.startswith("pooler.")}  # the pooler is in the head, saved whole
    assert biases and biases <= {plain(key) for key in saved}, "bias=all trains and saves every bias"

    model = AutoPeftModelForSequenceClassification.from_pretrained(
        str(out), id2label=dict(enumerate(LABELS)), label2id={label: i for i, label in enumerate(LABELS)})
    assert_reproduces(pipeline("text-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(out)), out)
    assert_reproduces(pipeline("text-classification", model=str(out / "merged")), out)


def test_gradual_unfreezing_schedule_and_discriminative_learning_rates(checkpoints, reviews, tmp_path):
    out = tmp_path / "ulmfit"
    result = run_classify(config(checkpoints["bert"], reviews, out, "gradual-unfreeze", "train.epochs=3",
                                 "train.learning_rate=1e-2", "train.warmup_ratio=0", "strategy_options.decay=2",
                                 "strategy_options.groups_per_epoch=1"))
    schedule = [entry for entry in result.training["log_history"] if "trainable_layer_groups" in entry]
    layer0, layer1 = "bert.encoder.layer.0", "bert.encoder.layer.1"
    assert [entry["trainable_layer_groups"] for entry in schedule] == [["head"], ["head", layer1],
                                                                       ["head", layer1, layer0]]
    peak = schedule[0]["layer_group_learning_rates"]  # no warmup: epoch 0 starts at the peak rates
    assert peak == pytest.approx({"head": 1e-2, layer1: 5e-3, layer0: 2.5e-3, "embeddings": 1.25e-3})
    for entry in schedule[1:]:  # the linear schedule scales every group alike
        rates = entry["layer_group_learning_rates"]
        assert 0 < rates["head"] < 1e-2
        assert {group: rate / rates["head"] for group, rate in rates.items()} == pytest.approx(
            {group: rate / 1e-2 for group, rate in peak.items()})

    pretrained = AutoModelForSequenceClassification.from_pretrained(checkpoints["bert"], num_labels=2).state_dict()
    trained = state_dict(out)
    embeddings = [key for key in trained if key.startswith("bert.embeddings.")]
    assert all(torch.equal(trained[key], pretrained[key]) for key in embeddings), "never unfrozen: untouched"
    for layer in (layer0, layer1):
        assert not torch.equal(trained[f"{layer}.attention.self.query.weight"],
                               pretrained[f"{layer}.attention.self.query.weight"])
    assert_reproduces(pipeline("text-classification", model=str(out)), out)


def test_gradual_unfreezing_by_default_trains_every_group_in_the_last_epoch(checkpoints, reviews, tmp_path):
    result = run_classify(config(checkpoints["bert"], reviews, tmp_path / "ulmfit", "gradual-unfreeze",
                                 "train.epochs=2"))
    schedule = [entry["trainable_layer_groups"] for entry in result.training["log_history"]
                if "trainable_layer_groups" in entry]
    layer0, layer1 = "bert.encoder.layer.0", "bert.encoder.layer.1"
    assert schedule == [["head", layer1], ["head", layer1, layer0, "embeddings"]]  # 4 groups over 2 epochs


# ---------------------------------------------------------------------------------------------------------------
# Bad input: one line that names the problem and the fix


@pytest.mark.parametrize("strategy, options, message", [
    ("adapter", ["strategy_options.method=lorra"], "unknown adapter method strategy_options.method='lorra': did you mean 'lora'?"),
    ("adapter", ["strategy_options.lora_alpah=8"], "unknown option strategy_options.lora_alpah for adapter method 'lora': did you mean 'lora_alpha'?"),
    ("adapter", ["strategy_options.method=poly"], "cannot train a sequence classifier"),
    ("adapter", ["strategy_options.method=prompt-tuning", "strategy_options.merge=true"], "merge=true does not apply"),
    ("gradual-unfreeze", ["strategy_options.decay=0.5"], "decay must be at least 1"),
    ("linear-probe", ["strategy_options.C=0"], "C must be positive"),
    ("frozen", ["strategy_options.lr=1"], "unknown config key 'strategy_options.lr'"),
])
def test_bad_strategy_options_fail_before_loading(strategy, options, message):
    run_config = load_config(ClassifyConfig, None, [f"strategy={strategy}", *options])
    with pytest.raises(UserError) as failure:
        get_strategy(run_config.strategy, run_config.strategy_options)
    assert message in str(failure.value) and "\n" not in str(failure.value)


@pytest.mark.parametrize("family, strategy, options, message", [
    ("bert", "adapter", ["strategy_options.target_modules=[query, nonexistent]"],
     "target_modules entry 'nonexistent' matches no module of bert: its adaptable layers are named"),
    ("gpt2", "adapter", ["strategy_options.target_modules=c_att.*"], "entry 'c_att.*' matches no module of gpt2"),
    ("bert", "adapter", ["strategy_options.method=prefix-tuning"], "'prefix_tuning' cannot apply to bert: peft injects"),
    ("t5", "adapter", ["strategy_options.method=prompt-tuning"], "'prompt_tuning' cannot apply to t5"),
    ("gpt2", "adapter", ["strategy_options.method=prompt-tuning"], "'prompt_tuning' cannot apply to gpt2"),
    ("bert", "adapter", ["strategy_options.lora_dropout=2"], "'lora' cannot apply to bert with these options"),
    ("hft-rnn", "adapter", ["strategy_options.method=ia3"], "'ia3' cannot apply to hft-rnn with these options"),
])
def test_strategies_that_cannot_apply_to_the_backbone_fail_clearly(family, strategy, options, message, checkpoints,
                                                                    reviews, tmp_path):
    out = tmp_path / "never"
    with pytest.raises(UserError) as failure:
        run_classify(config(checkpoints[family], reviews, out, strategy, *options))
    assert message in str(failure.value) and "\n" not in str(failure.value)
    assert not out.exists() and not out.with_name("never.partial").exists()


@pytest.mark.parametrize("model_type, strategy, message", [
    ("hft-textcnn", "gradual-unfreeze", "hft-textcnn has no stack of layers to unfreeze one by one"),
    ("hft-textcnn", "adapter", "strategy=adapter needs pretrained weights that peft can load again"),
])
def test_backbones_built_from_config_without_what_a_strategy_needs_fail_clearly(model_type, strategy, message,
                                                                                 tiny_bert, reviews, tmp_path):
    with pytest.raises(UserError) as failure:
        run_classify(config(model_type, reviews, tmp_path / "never", strategy, f"tokenizer={tiny_bert}",
                            "model_config={embedding_dim: 16}"))
    assert message in str(failure.value) and "\n" not in str(failure.value)


def test_the_probes_C_is_cross_validated_on_the_training_examples_with_folds_that_fit_them():
    from hf_transfer.strategies.linear_probe import C_GRID, cross_validated_probe

    rng = np.random.default_rng(0)
    y = np.array([0] * 3 + [1] * 9)  # the rarest label has 3 examples: 3 folds, each holding one of them out
    x = rng.normal(size=(12, 4)) + y[:, None]
    probe, C, fold_scores = cross_validated_probe(x, y, None, 1000, True, seed=1)
    assert C in C_GRID and fold_scores.shape == (3,)
    refitted = LogisticRegression(C=C, max_iter=1000).fit(x, y)  # on all 12: the probe is scikit-learn's own
    assert np.allclose(probe.coef_, refitted.coef_) and np.allclose(probe.intercept_, refitted.intercept_)
    again = cross_validated_probe(x, y, None, 1000, True, seed=1)
    assert again[1] == C and np.array_equal(again[2], fold_scores)
    # one example of a label cannot be held out: scikit-learn's default C, no score; a given C is kept as it is
    assert cross_validated_probe(x, np.r_[np.zeros(11, int), 1], None, 1000, True, 1)[1:] == (1.0, None)
    assert cross_validated_probe(x, y, 0.5, 1000, True, 1)[1:] == (0.5, None)


# ---------------------------------------------------------------------------------------------------------------
# The pooling a checkpoint declares (sentence-transformers' 1_Pooling) for frozen and linear-probe heads


def with_pooling_files(folder, target, settings, modules=True):
    """A copy of checkpoint `folder` at `target` whose sentence-transformers files declare `settings`."""
    import shutil

    shutil.copytree(folder, target)
    (target / "1_Pooling").mkdir()
    (target / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 32, **settings}))
    if modules:
        (target / "modules.json").write_text(json.dumps([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    return target


def test_the_declared_pooling_is_read_from_sentence_transformers_files(tiny_bert, tmp_path):
    from hf_transfer.pooling import declared_pooling

    modes = {"pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False}
    assert declared_pooling(with_pooling_files(tiny_bert, tmp_path / "mean", modes)) == "mean"
    assert declared_pooling(with_pooling_files(tiny_bert, tmp_path / "cls", {"pooling_mode": "cls"}, False)) == "cls"
    assert declared_pooling(tiny_bert) is None and declared_pooling("some/hub-id") is None
    both = with_pooling_files(tiny_bert, tmp_path / "both", {**modes, "pooling_mode_max_tokens": True})
    with pytest.raises(UserError, match="declares pooling pooling_mode_mean_tokens, pooling_mode_max_tokens"):
        declared_pooling(both)


def test_the_linear_probe_reads_the_declared_mean_pooling_and_saves_a_model_pipeline_loads(tiny_bert, reviews,
                                                                                            tmp_path):
    checkpoint = with_pooling_files(tiny_bert, tmp_path / "st", {"pooling_mode_mean_tokens": True})
    strategy, setup, backbone, task, run_config = loaded(checkpoint, "linear-probe", reviews)
    assert setup.options["pooling"] == "mean" and setup.model.config.model_type == "hft-pooled"
    assert trainable(setup.model) == {"classifier.weight", "classifier.bias"}
    tokenized = tokenize_splits(task, backbone.tokenizer, 32)
    reader = classifier_reader(setup.model, output_layer(setup.model, setup.family), backbone.tokenizer.pad_token_id)
    features = split_features(reader, dataset_columns(tokenized["test"]), "test")
    encoded = backbone.tokenizer(list(task.texts("test")), padding=True, return_tensors="pt")
    states = AutoModel.from_pretrained(tiny_bert)(**encoded).last_hidden_state.detach()
    mask = encoded["attention_mask"].unsqueeze(-1).float()
    assert np.allclose(features, ((states * mask).sum(1) / mask.sum(1)).numpy(), atol=1e-5), "masked mean"

    out = tmp_path / "probe"
    result = run_classify(config(checkpoint, reviews, out, "linear-probe"))
    assert result.strategy["options"]["pooling"] == "mean"
    assert json.loads((out / "config.json").read_text())["pooling"] == "mean"
    pretrained = AutoModel.from_pretrained(tiny_bert).state_dict()
    trained = state_dict(out)
    assert all(torch.equal(trained[f"encoder.{key}"], value) for key, value in pretrained.items())
    assert_reproduces(pipeline("text-classification", model=str(out), trust_remote_code=True), out)
    rows = saved_predictions(out)  # and `hf-transfer predict` loads it as any classifier folder
    predicted = load_predictor(out, precision="fp32").predict([row["text"] for row in rows])
    assert all(p["scores"] == pytest.approx(row["scores"], abs=1e-5) for p, row in zip(predicted, rows))


def test_dead_features_get_weight_zero_so_a_probe_folder_fine_tunes(tiny_bert, reviews, tmp_path):
    """all-MiniLM-L6-v2 has three dead units (last layer-norm weights under 2e-9); standardising one gave the probe a
    weight of 1 / its spread (9e30), whose gradients then overflowed in any further training: nothing trained."""
    checkpoint = with_pooling_files(tiny_bert, tmp_path / "st", {"pooling_mode_mean_tokens": True})
    encoder = AutoModel.from_pretrained(checkpoint)
    dead = 5  # one unit of the last layer norm made dead, as MiniLM's unit 127
    with torch.no_grad():
        encoder.encoder.layer[-1].output.LayerNorm.weight[dead] = 5e-33
        encoder.encoder.layer[-1].output.LayerNorm.bias[dead] = -8e-33
    encoder.save_pretrained(checkpoint)
    probe = run_classify(config(checkpoint, reviews, tmp_path / "probe", "linear-probe"))
    weight = state_dict(tmp_path / "probe")["classifier.weight"]
    assert (weight[:, dead] == 0).all() and weight.abs().max() < 1e3
    assert probe.training["log_history"][-1]["dead_features"] == 1

    tuned = run_classify(config(tmp_path / "probe", reviews, tmp_path / "tuned", "full", "train.epochs=2"))
    norms = [entry["grad_norm"] for entry in tuned.training["log_history"] if "grad_norm" in entry]
    assert norms and all(np.isfinite(norms))
    before, after = state_dict(tmp_path / "probe"), state_dict(tmp_path / "tuned")
    assert not torch.equal(before["encoder.encoder.layer.0.attention.self.query.weight"],
                           after["encoder.encoder.layer.0.attention.self.query.weight"]), "the encoder trained"


def test_training_stops_in_one_line_when_the_gradient_norm_overflows(tiny_bert, reviews, tmp_path):
    """Clipping scales an inf norm's gradients by 0: every step would leave the weights as they were, silently."""
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, id2label=dict(enumerate(LABELS)))
    with torch.no_grad():
        model.classifier.weight.copy_(torch.tensor([[1e30], [-1e30]]))  # rows alike would cancel in the gradient
    model.save_pretrained(tmp_path / "huge")
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(tmp_path / "huge")
    out = tmp_path / "out"
    with pytest.raises(UserError, match=r"^training stopped at optimiser step 1 of \d+: the gradient norm is inf.*"
                                        r"largest weight: 1e\+30 in classifier.weight"):
        run_classify(config(tmp_path / "huge", reviews, out, "full"))
    assert not out.exists() and not out.with_name("out.partial").exists()


def test_adapters_and_gradual_unfreezing_start_from_a_frozen_runs_folder(tiny_bert, reviews, tmp_path):
    """A frozen run's output (hft-pooled) is its encoder's family: LoRA finds the encoder's targets, gradual
    unfreezing its blocks."""
    checkpoint = with_pooling_files(tiny_bert, tmp_path / "st", {"pooling_mode_mean_tokens": True})
    run_classify(config(checkpoint, reviews, tmp_path / "frozen", "frozen"))
    _, adapter, _, _, _ = loaded(tmp_path / "frozen", "adapter", reviews)
    assert {n for n in trainable(adapter.model) if "lora_" in n} and adapter.family.head_modules == ("classifier",)
    assert any(".query.lora_A." in n for n in trainable(adapter.model))  # BERT's LoRA targets, inside the encoder
    _, unfreeze, _, _, _ = loaded(tmp_path / "frozen", "gradual-unfreeze", reviews)
    groups = [group.name for group in layer_groups(unfreeze.model, unfreeze.family)]
    assert groups[0] == "embeddings" and groups[-1] == "head" and len(groups) == 2 + 2  # the tiny BERT's 2 blocks


def test_full_fine_tuning_trains_through_the_declared_pooling_when_asked(tiny_bert, reviews, tmp_path):
    checkpoint = with_pooling_files(tiny_bert, tmp_path / "st", {"pooling_mode_mean_tokens": True})
    _, head, _, _, _ = loaded(checkpoint, "full", reviews)  # by default the model's own head: a plain classifier
    assert type(head.model).__name__ == "BertForSequenceClassification" and head.options["pooling"] == "head"
    assert trainable(head.model) == {name for name, _ in head.model.named_parameters()}
    _, setup, _, _, _ = loaded(checkpoint, "full", reviews, "strategy_options.pooling=auto")
    assert setup.options["pooling"] == "mean" and setup.model.config.model_type == "hft-pooled"
    unread = {"encoder.pooler.dense.weight", "encoder.pooler.dense.bias"}  # BERT's pooler: the head reads the mean
    assert trainable(setup.model) == {name for name, _ in setup.model.named_parameters()} - unread
    assert "encoder.embeddings.word_embeddings.weight" in trainable(setup.model)
    assert loaded(tiny_bert, "full", reviews, "strategy_options.pooling=auto")[1].options["pooling"] == "head"

    out = tmp_path / "full"
    result = run_classify(config(checkpoint, reviews, out, "full", "strategy_options.pooling=auto"))
    assert result.strategy["options"]["pooling"] == "mean"
    pretrained = AutoModel.from_pretrained(tiny_bert).state_dict()
    trained = state_dict(out)
    assert not torch.equal(trained["encoder.embeddings.word_embeddings.weight"],
                           pretrained["embeddings.word_embeddings.weight"]), "the encoder trained"
    assert_reproduces(pipeline("text-classification", model=str(out), trust_remote_code=True), out)
    scratch = run_classify(config(checkpoint, reviews, tmp_path / "scratch", "scratch",
                                  "strategy_options.pooling=auto"))
    assert scratch.strategy["options"]["pooling"] == "mean", "the structure-only baseline: the same architecture"


def test_runs_from_an_hft_pooled_folder_record_the_pooling_its_model_applies(tiny_bert, reviews, tmp_path):
    """Such a folder (a frozen or linear-probe run's output) pools by its config, not by a head of its own."""
    folder = tmp_path / "frozen"
    run_classify(config(tiny_bert, reviews, folder, "frozen", "strategy_options.pooling=mean"))
    assert json.loads((folder / "config.json").read_text())["pooling"] == "mean"
    for strategy in ("full", "frozen", "linear-probe"):
        _, setup, _, _, _ = loaded(folder, strategy, reviews)
        assert setup.model.config.model_type == "hft-pooled" and setup.options["pooling"] == "mean", strategy
    assert not {"encoder.pooler.dense.weight", "encoder.pooler.dense.bias"} & trainable(
        loaded(folder, "full", reviews)[1].model), "the head reads the mean, never BERT's pooler"
    out = tmp_path / "full"
    result = run_classify(config(folder, reviews, out, "full"))
    assert result.strategy["options"]["pooling"] == "mean"
    assert "`pooling=mean`" in (out / "README.md").read_text()


def test_full_fine_tuning_pools_an_encoder_built_without_a_pooler():
    from transformers import RobertaConfig, RobertaForSequenceClassification

    from hf_transfer.backbones import family_of

    model = RobertaForSequenceClassification(RobertaConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1,
                                                           num_attention_heads=2, intermediate_size=64))
    assert model.base_model.pooler is None  # RoBERTa's classifiers carry their own head
    setup = get_strategy("full", {"pooling": "mean"}).setup(model, family_of(model.config, "classification",
                                                                             "SEQ_CLS"), None)
    assert setup.model.config.model_type == "hft-pooled" and all(p.requires_grad for p in setup.model.parameters())


def test_frozen_takes_an_explicit_pooling_and_an_encoder_decoder_refuses_one(checkpoints, reviews, tmp_path):
    _, setup, _, _, _ = loaded(checkpoints["bert"], "frozen", reviews, "strategy_options.pooling=max")
    assert setup.options["pooling"] == "max" and trainable(setup.model) == {"classifier.weight", "classifier.bias"}
    assert loaded(checkpoints["bert"], "frozen", reviews)[1].options["pooling"] == "head"  # declares none
    with pytest.raises(UserError, match="pooling=mean needs an encoder or decoder"):
        loaded(checkpoints["t5"], "frozen", reviews, "strategy_options.pooling=mean")
    with pytest.raises(UserError, match="strategy_options.pooling"):
        get_strategy("frozen", {"pooling": "median"})


# ---------------------------------------------------------------------------------------------------------------
# SetFit through its library


def test_setfit_trains_through_its_library_and_the_saved_classifier_predicts_what_setfit_does(tiny_bert, reviews,
                                                                                               tmp_path):
    pytest.importorskip("setfit")
    checkpoint = with_pooling_files(tiny_bert, tmp_path / "st", {"pooling_mode_mean_tokens": True})
    strategy, setup, backbone, task, run_config = loaded(checkpoint, "setfit", reviews,
                                                         "strategy_options.num_iterations=2", "train.seed=5")
    assert setup.options["pooling"] == "mean" and setup.model.config.model_type == "hft-pooled"
    tokenized = tokenize_splits(task, backbone.tokenizer, 32)
    args = training_arguments(run_config.train, str(tmp_path / "trainer"), "fp32", False)
    trainer = build_trainer(setup.model, args, backbone.tokenizer, tokenized["train"], tokenized["validation"], [])
    before = {k: v.clone() for k, v in setup.model.encoder.state_dict().items()}
    strategy.train(setup, trainer, task, tokenized)
    after = setup.model.encoder.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before), "the library trained the body"
    logits = trainer.predict(tokenized["test"]).predictions
    expected = strategy.trained.predict_proba(list(task.texts("test"))).numpy()
    assert np.allclose(torch.softmax(torch.as_tensor(logits), -1).numpy(), expected, atol=1e-4)
    assert trainer.state.log_history[-1]["setfit_body_steps"] > 0

    out = tmp_path / "setfit"
    result = run_classify(config(checkpoint, reviews, out, "setfit", "strategy_options.num_iterations=2"))
    assert result.strategy["name"] == "setfit" and result.training["optimizer_steps"] == 0
    assert_reproduces(pipeline("text-classification", model=str(out), trust_remote_code=True), out)


def test_tagging_uses_the_learning_rates_measured_for_it():
    """A tagger's head sees one example per word, not per text: full fine-tuning and the frozen head were tuned
    separately on wnut16 (recipes/configs/ner.yaml); text classification keeps its own defaults."""
    rates = {name: (get_strategy(name).learning_rate_for("token-classification"),
                    get_strategy(name).learning_rate_for("text-classification"))
             for name in ("full", "scratch", "frozen", "adapter")}
    assert rates == {"full": (2e-4, 1e-4), "scratch": (2e-4, 1e-4), "frozen": (1e-2, 2e-3), "adapter": (2e-3, 2e-3)}
