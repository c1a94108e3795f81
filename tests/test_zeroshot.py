"""Zero-shot methods on tiny random checkpoints: semantics against transformers, shared-prompt scoring against
one full forward per label, the output folder, the classify baseline and one-line errors for bad input."""

import json
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (AutoModelForCausalLM, AutoModelForSeq2SeqLM, BertConfig, BertForSequenceClassification,
                          BertTokenizer, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM,
                          PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration, pipeline)

from conftest import VOCAB, sentiment_rows, write_csv
from hf_transfer.cli import main as cli_main
from hf_transfer.classify import run_classify
from hf_transfer.config import ClassifyConfig, load_config
from hf_transfer.data import load_task_data
from hf_transfer.errors import UserError
from hf_transfer.results import RunResult
from hf_transfer.zeroshot import METHODS, ZeroShotClassifier, ZeroShotConfig, get_method, run_zeroshot

RECIPE = Path(__file__).parents[1] / "recipes" / "zeroshot.py"
TEXTS = ["the movie was good", "a really boring and tedious film about the plot", "awful",
         "this story is charming and the acting is superb and moving", "it was a film"]
NLI_LABELS = ["good", "bad", "boring"]
NLI_VOCAB = VOCAB + ["example", "."]


def causal_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level BPE like GPT-2's, trained on a few sentences: verbalizers split into several tokens."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1000, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator([row["review"] for row in sentiment_rows(200)] + TEXTS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<|endoftext|>", eos_token="<|endoftext|>")


@pytest.fixture(scope="module")
def tiny_causal(tmp_path_factory) -> dict[str, Path]:
    """A tiny random GPT-2 (absolute positions) and Llama (rotary, grouped-query attention, like SmolLM2)."""
    tokenizer = causal_tokenizer()
    configs = {
        "gpt2": GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2, n_positions=128)),
        "llama": LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                              num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                              max_position_embeddings=128)),
    }
    folders = {}
    for name, model in configs.items():
        folder = tmp_path_factory.mktemp(f"tiny-{name}")
        torch.manual_seed(0)
        model.init_weights()
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        folders[name] = folder
    return folders


@pytest.fixture(scope="module")
def tiny_nli(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-nli")
    # transformers 5 ignores vocab_file= (a tokenizer of 5 special tokens, every word [UNK]): pass the vocabulary
    BertTokenizer(vocab={token: i for i, token in enumerate(NLI_VOCAB)}).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(NLI_VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=3,
                        id2label={0: "entailment", 1: "neutral", 2: "contradiction"},
                        label2id={"entailment": 0, "neutral": 1, "contradiction": 2})
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_t5(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-t5")
    words = ["<pad>", "</s>", "<unk>"] + VOCAB[5:] + ["label", ":"]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(folder)
    torch.manual_seed(0)
    config = T5Config(vocab_size=len(words), d_model=16, d_kv=8, d_ff=32, num_layers=2, num_heads=2,
                      decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    T5ForConditionalGeneration(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def reviews(tmp_path_factory) -> Path:
    return write_csv(tmp_path_factory.mktemp("data") / "reviews.csv", sentiment_rows(120))


def data_overrides(csv: Path) -> list[str]:
    return [f"data.dataset={csv}", "data.text_columns=review", "data.label_column=sentiment",
            "data.max_length=64"]  # the tiny models' positions


def test_every_method_is_registered():
    assert set(METHODS) == {"nli", "lm", "seq2seq", "embedding"}
    assert isinstance(get_method("nli", {"template": "It is {label}."}), METHODS["nli"])


# --- nli ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("multi_label", [False, True])
def test_nli_matches_the_zero_shot_classification_pipeline(tiny_nli, multi_label):
    classifier = ZeroShotClassifier("nli", str(tiny_nli), NLI_LABELS, multi_label=multi_label,
                                    options={"template": "this movie is {label}."}, batch_size=2)
    ours = classifier.predict_proba(TEXTS)
    assert ours.shape == (len(TEXTS), len(NLI_LABELS))
    reference = pipeline("zero-shot-classification", model=str(tiny_nli))
    theirs = np.array([[dict(zip(out["labels"], out["scores"]))[label] for label in NLI_LABELS]
                       for out in reference(TEXTS, candidate_labels=NLI_LABELS, hypothesis_template="this movie is {}.",
                                            multi_label=multi_label)])
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    np.testing.assert_array_equal(classifier.decide(ours), (theirs > 0.5) if multi_label else theirs.argmax(-1))
    if not multi_label:
        np.testing.assert_allclose(ours.sum(-1), 1.0, atol=1e-6)


# --- lm ----------------------------------------------------------------------------------------------------------


def per_label_full_forward(model, tokenizer, prompt: str, verbalizer: str) -> float:
    """The naive reference: one unpadded forward over prompt + verbalizer, summing the verbalizer's log-probs."""
    prompt_ids = tokenizer(prompt)["input_ids"]
    continuation = tokenizer(verbalizer, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        log_probs = model(torch.tensor([prompt_ids + continuation])).logits[0].log_softmax(-1)
    return sum(log_probs[len(prompt_ids) - 1 + i, token].item() for i, token in enumerate(continuation))


@pytest.mark.parametrize("architecture", ["gpt2", "llama"])
@pytest.mark.parametrize("verbalizers, one_token_each", [
    ({"pos": " good and great", "neg": " bad", "meh": " it was fine"}, False),  # prompt pass + cached continuations
    ({"pos": " good", "neg": " bad", "meh": " the"}, True),  # the prompt pass alone
])
def test_lm_shared_prompt_scores_equal_one_full_forward_per_label(tiny_causal, architecture, verbalizers,
                                                                 one_token_each):
    template = "Review: {text}\nSentiment:"
    classifier = ZeroShotClassifier("lm", str(tiny_causal[architecture]), list(verbalizers),
                                    options={"template": template, "verbalizers": verbalizers})
    tokenizer = classifier.method.tokenizer
    lengths = [len(tokenizer(v, add_special_tokens=False)["input_ids"]) for v in verbalizers.values()]
    assert (max(lengths) == 1) == one_token_each
    shared = classifier.method.log_likelihoods(TEXTS, max_length=128)  # one padded batch of different lengths
    assert shared.shape == (len(TEXTS), len(verbalizers))
    model = AutoModelForCausalLM.from_pretrained(tiny_causal[architecture]).eval()
    naive = torch.tensor([[per_label_full_forward(model, tokenizer, template.replace("{text}", text), verbalizer)
                           for verbalizer in verbalizers.values()] for text in TEXTS])
    torch.testing.assert_close(shared, naive, atol=1e-4, rtol=0)


def test_lm_mean_reduction_divides_by_verbalizer_length(tiny_causal):
    verbalizers = {"pos": " good and great", "neg": " bad"}
    options = {"template": "{text} =", "verbalizers": verbalizers}
    summed = ZeroShotClassifier("lm", str(tiny_causal["gpt2"]), ["pos", "neg"], options=options)
    averaged = ZeroShotClassifier("lm", str(tiny_causal["gpt2"]), ["pos", "neg"],
                                  options={**options, "reduction": "mean"})
    tokenizer = summed.method.tokenizer
    lengths = torch.tensor([len(tokenizer(v, add_special_tokens=False)["input_ids"]) for v in verbalizers.values()])
    torch.testing.assert_close(averaged.method.log_likelihoods(TEXTS, 128),
                               summed.method.log_likelihoods(TEXTS, 128) / lengths, atol=1e-5, rtol=0)


def test_lm_calibration_makes_a_content_free_input_uniform(tiny_causal):
    labels = ["pos", "neg", "meh"]
    options = {"template": "{text}\nLabel:", "calibrate": True, "content_free_inputs": ["N/A"],
               "verbalizers": {"pos": " good and great", "neg": " bad", "meh": " it was fine"}}
    calibrated = ZeroShotClassifier("lm", str(tiny_causal["llama"]), labels, options=options)
    np.testing.assert_allclose(calibrated.predict_proba(["N/A"]), [[1 / 3] * 3], atol=1e-5)
    raw = ZeroShotClassifier("lm", str(tiny_causal["llama"]), labels, options={**options, "calibrate": False})
    p, p_cf = raw.predict_proba(TEXTS), raw.predict_proba(["N/A"])
    np.testing.assert_allclose(calibrated.predict_proba(TEXTS), (p / p_cf) / (p / p_cf).sum(-1, keepdims=True), atol=1e-5)


def test_lm_scores_an_empty_prompt_after_the_start_token(tiny_causal):
    classifier = ZeroShotClassifier("lm", str(tiny_causal["gpt2"]), ["pos", "neg"], options={"template": "{text}"})
    tokenizer = classifier.method.tokenizer
    assert tokenizer("")["input_ids"] == []  # GPT-2 adds no start token of its own
    shared = classifier.method.log_likelihoods(["", "the movie"], max_length=None)
    model = AutoModelForCausalLM.from_pretrained(tiny_causal["gpt2"]).eval()
    for label, verbalizer in enumerate([" pos", " neg"]):
        continuation = tokenizer(verbalizer, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            log_probs = model(torch.tensor([[tokenizer.eos_token_id] + continuation])).logits[0].log_softmax(-1)
        expected = sum(log_probs[i, token].item() for i, token in enumerate(continuation))
        assert shared[0, label].item() == pytest.approx(expected, abs=1e-4)
        assert shared[1, label].item() == pytest.approx(
            per_label_full_forward(model, tokenizer, "the movie", verbalizer), abs=1e-4)


# --- seq2seq -----------------------------------------------------------------------------------------------------


def test_seq2seq_shared_encoder_scores_equal_one_full_forward_per_label(tiny_t5):
    verbalizers = {"pos": "good great", "neg": "bad", "meh": "the film was fine"}
    template = "{text} label :"
    classifier = ZeroShotClassifier("seq2seq", str(tiny_t5), list(verbalizers),
                                    options={"template": template, "verbalizers": verbalizers})
    shared = classifier.method.log_likelihoods(TEXTS, max_length=64)
    assert shared.shape == (len(TEXTS), len(verbalizers))
    tokenizer = classifier.method.tokenizer
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_t5).eval()
    naive = torch.zeros_like(shared)
    for i, text in enumerate(TEXTS):
        inputs = tokenizer(template.replace("{text}", text), return_tensors="pt")
        for j, verbalizer in enumerate(verbalizers.values()):
            target = tokenizer(text_target=verbalizer, return_tensors="pt")["input_ids"]
            assert target[0, -1] == tokenizer.eos_token_id  # the target ends the answer
            with torch.no_grad():
                log_probs = model(**inputs, labels=target).logits[0].log_softmax(-1)
            naive[i, j] = log_probs.gather(-1, target[0, :, None]).sum()
    torch.testing.assert_close(shared, naive, atol=1e-4, rtol=0)
    np.testing.assert_allclose(classifier.predict_proba(TEXTS).sum(-1), 1.0, atol=1e-6)


# --- embedding ---------------------------------------------------------------------------------------------------


def test_embedding_is_padding_free_mean_pooling_with_unit_norm(tiny_bert):
    from transformers import AutoModel, AutoTokenizer

    descriptions = {"pos": "good great fun", "neg": "bad awful boring"}
    classifier = ZeroShotClassifier("embedding", str(tiny_bert), ["pos", "neg"],
                                    options={"label_descriptions": descriptions})
    batched = classifier.method.embed(TEXTS, 64)
    tokenizer, model = AutoTokenizer.from_pretrained(tiny_bert), AutoModel.from_pretrained(tiny_bert).eval()
    with torch.no_grad():
        alone = torch.stack([model(**tokenizer(t, return_tensors="pt")).last_hidden_state[0].mean(0) for t in TEXTS])
    torch.testing.assert_close(batched, torch.nn.functional.normalize(alone, dim=-1), atol=1e-5, rtol=0)
    similarities = batched @ classifier.method.embed(list(descriptions.values()), None).T
    probabilities = classifier.predict_proba(TEXTS)
    np.testing.assert_allclose(probabilities, (20 * similarities).softmax(-1).numpy(), atol=1e-5)
    multi = ZeroShotClassifier("embedding", str(tiny_bert), ["pos", "neg"], multi_label=True,
                               options={"label_descriptions": descriptions, "threshold": 0.5})
    np.testing.assert_array_equal(multi.decide(multi.predict_proba(TEXTS)), (similarities > 0.5).int().numpy())


# --- runs --------------------------------------------------------------------------------------------------------


def test_run_writes_metrics_predictions_and_a_parsable_card(tiny_bert, reviews, tmp_path):
    out = tmp_path / "zs"
    cli_main(["zeroshot", f"model={tiny_bert}", *data_overrides(reviews), f"output_dir={out}",
              "options={label_descriptions: {pos: good great fun, neg: bad awful boring}}"])
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "confusion_matrix.png", "metrics.json",
                                                      "predictions.jsonl"]
    assert not out.with_name("zs.partial").exists()
    result = RunResult.load(out)
    assert result.kind == "zero-shot" and result.schema_version == 1
    assert result.strategy["name"] == "zero-shot" and result.strategy["transferred"] == "none"
    assert result.strategy["method"] == "embedding" and result.parameters["trainable"] == 0
    assert result.strategy["label_prompts"] == {"neg": "bad awful boring", "pos": "good great fun"}
    # The same split classify makes of the same data config.
    task = load_task_data(load_config(ClassifyConfig, None, data_overrides(reviews)).data)
    assert result.task["split_sizes"] == task.sizes()
    assert set(result.metrics) == {"validation", "test"}
    assert result.metrics["test"]["num_examples"] == task.sizes()["test"]
    assert {"accuracy", "f1_macro", "per_class", "confusion_matrix"} <= set(result.metrics["test"])
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == task.sizes()["validation"] + task.sizes()["test"]
    test_rows = [r for r in rows if r["split"] == "test"]
    accuracy = np.mean([r["label"] == r["prediction"] for r in test_rows])
    assert accuracy == pytest.approx(result.metrics["test"]["accuracy"])
    card = ModelCard.load(out / "README.md")
    assert card.data.pipeline_tag == "zero-shot-classification" and "zero-shot:embedding" in card.data.tags
    parsed = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results if r.metric_args is None}
    assert parsed[("test", "accuracy")] == round(result.metrics["test"]["accuracy"], 4)
    assert "good great fun" in card.text


def test_recipe_runs_with_an_lm_on_a_multi_token_verbalizer(tiny_causal, reviews, tmp_path):
    recipe = runpy.run_path(str(RECIPE))
    out = tmp_path / "lm"
    recipe["main"]([f"model={tiny_causal['llama']}", "method=lm", *data_overrides(reviews), f"output_dir={out}",
                    "splits=[test]", "options={verbalizers: {pos: ' good and great', neg: ' bad'}, calibrate: true}"])
    result = RunResult.load(out)
    assert set(result.metrics) == {"test"} and result.strategy["options"]["calibrate"] is True
    assert result.config["method"] == "lm"


def test_classify_records_a_zero_shot_baseline(tiny_bert, reviews, tmp_path):
    config = load_config(ClassifyConfig, None, [
        f"model={tiny_bert}", *data_overrides(reviews), "data.max_length=64", "train.max_steps=2", "train.precision=fp32",
        f"output_dir={tmp_path / 'out'}", "zeroshot_baseline.method=embedding",
        "zeroshot_baseline.options={label_descriptions: {pos: good great fun, neg: bad awful boring}}",
    ])
    result = run_classify(config)
    baseline = result.baselines["zero-shot embedding"]
    assert baseline["method"] == "embedding" and baseline["model"] == str(tiny_bert)
    assert set(baseline["metrics"]) == {"test"}
    assert baseline["metrics"]["test"]["num_examples"] == result.metrics["test"]["num_examples"]
    assert RunResult.load(tmp_path / "out").baselines == json.loads(json.dumps(result.baselines))


# --- bad input ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method, model, labels, options, multi_label, message", [
    ("embedding", "bert", ["pos"], {}, False, "at least two labels"),
    ("nli", "nli", NLI_LABELS, {"template": ""}, False, "options.template is empty"),
    ("nli", "nli", NLI_LABELS, {"template": "This example is good."}, False, "has no {label}"),
    ("lm", "gpt2", ["pos", "neg"], {"template": "Review:"}, False, "has no {text}"),
    ("embedding", "bert", ["pos", "neg"], {"template": "  "}, False, "options.template is empty"),
    ("lm", "bert", ["pos", "neg"], {}, False, "is not a causal (decoder-only) language model"),
    ("lm", "t5", ["pos", "neg"], {}, False, "is not a causal (decoder-only) language model"),
    ("nli", "bert", ["pos", "neg"], {}, False, "none is 'entailment'"),
    ("seq2seq", "gpt2", ["pos", "neg"], {}, False, "is not an encoder-decoder model"),
    ("embedding", "gpt2", ["pos", "neg"], {}, False, "is not a text encoder"),
    ("lm", "gpt2", ["pos", "neg"], {}, True, "picks one label per text"),
    ("lm", "gpt2", ["pos", "neg"], {"verbalizers": {"positive": " good"}}, False, "names label 'positive'"),
    ("lm", "gpt2", ["pos", "neg"], {"verbalizers": {"pos": ""}}, False, "empty or non-text value"),
    ("lm", "gpt2", ["pos", "neg"], {"reduction": "max"}, False, "options.reduction takes sum or mean"),
    ("embedding", "bert", ["pos", "neg"], {"temperature": 2}, False, "unknown config key 'options.temperature'"),
    ("knn", "bert", ["pos", "neg"], {}, False, "unknown zero-shot method 'knn'"),
    ("lm", "hft-rnn", ["pos", "neg"], {}, False, "architecture without pretrained weights"),
])
def test_bad_input_is_one_line_user_error(tiny_bert, tiny_nli, tiny_causal, tiny_t5, method, model, labels, options,
                                          multi_label, message):
    folders = {"bert": tiny_bert, "nli": tiny_nli, "gpt2": tiny_causal["gpt2"], "t5": tiny_t5, "hft-rnn": "hft-rnn"}
    with pytest.raises(UserError) as error:
        ZeroShotClassifier(method, str(folders[model]), labels, multi_label=multi_label, options=options)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_cli_bad_input_exits_with_one_line_before_loading_data_and_leaves_no_folder(tiny_bert, reviews, tmp_path,
                                                                                     capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["zeroshot", "method=lm", f"model={tiny_bert}", "data.dataset=missing.csv", f"output_dir={out}"])
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err.strip()
    assert stderr.count("\n") == 0 and "is not a causal" in stderr  # the model check comes before the data
    assert not out.exists() and not out.with_name("out.partial").exists()


def test_classify_checks_the_baseline_before_training(tiny_bert, reviews, tmp_path):
    config = load_config(ClassifyConfig, None, [
        f"model={tiny_bert}", *data_overrides(reviews), f"output_dir={tmp_path / 'out'}",
        "zeroshot_baseline.method=nli",
    ])
    with pytest.raises(UserError, match="none is 'entailment'"):
        run_classify(config)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_only_held_out_splits_are_scored():
    with pytest.raises(UserError, match="must include test"):
        run_zeroshot(ZeroShotConfig(splits=["train", "test"], output_dir="/nonexistent/zs"))
