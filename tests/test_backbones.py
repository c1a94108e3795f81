"""Every backbone family through run_classify: BERT, GPT-2, T5 (head and text-to-text) and our TextCNN, RNN and
attention encoder; family quirks (padding, eos); static word vectors; bad input. Tiny checkpoints built here."""

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, BertConfig, BertModel, CanineConfig,
                          CanineForSequenceClassification, GPT2Config, GPT2LMHeadModel, PretrainedConfig,
                          PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration)

from conftest import NEGATIVE, POSITIVE, VOCAB, sentiment_rows, write_csv
from hf_transfer.backbones import dropout_settings, load_backbone
from hf_transfer.classify import run_classify
from hf_transfer.config import ClassifyConfig, load_config
from hf_transfer.data import load_task_data
from hf_transfer.errors import UserError
from hf_transfer.models import TextCNNConfig, TextCNNForMaskedLM
from hf_transfer.runtime import EAGER_MAX_LENGTH, set_training_attention

WORDS = VOCAB[5:]  # the words of the synthetic reviews, without BERT's special tokens
TINY = {
    "hft-textcnn": "{embedding_dim: 16, num_filters: 8, filter_sizes: [2, 3]}",
    "hft-rnn": "{embedding_dim: 16, hidden_size: 16}",
    "hft-attention": "{hidden_size: 16, num_attention_heads: 2, intermediate_size: 32, max_position_embeddings: 64}",
}


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def word_level_tokenizer(specials: list[str], words=WORDS, eos: str | None = None, **special_tokens):
    """A word-level fast tokenizer; `eos` makes it end every text with that token, as T5's does."""
    vocab = {token: i for i, token in enumerate(specials + list(words))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token=special_tokens.get("unk_token", specials[0])))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    if eos:
        backend.post_processor = processors.TemplateProcessing(
            single=f"$A {eos}", pair=f"$A {eos} $B {eos}", special_tokens=[(eos, vocab[eos])])
    return PreTrainedTokenizerFast(tokenizer_object=backend, **special_tokens)


def gpt2_tokenizer(words=WORDS):
    # GPT-2's conventions, as recipes/pretrain.py saves them: one special token is bos, eos, unk and pad.
    end = "<|endoftext|>"
    return word_level_tokenizer([end], words, bos_token=end, eos_token=end, unk_token=end, pad_token=end)


def t5_tokenizer(words=WORDS, eos="</s>"):
    return word_level_tokenizer(["<pad>", "</s>", "<unk>"], words, eos=eos, pad_token="<pad>", eos_token="</s>",
                                unk_token="<unk>")


def save_checkpoint(folder, model, tokenizer):
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_gpt2(folder, tokenizer, vocab_size=None):
    config = GPT2Config(vocab_size=vocab_size or len(tokenizer), n_embd=32, n_layer=2, n_head=2, n_positions=64,
                        pad_token_id=0, bos_token_id=0, eos_token_id=0)
    return save_checkpoint(folder, GPT2LMHeadModel(config), tokenizer)


def tiny_t5(folder, tokenizer, vocab_size=None):
    config = T5Config(vocab_size=vocab_size or len(tokenizer), d_model=32, d_ff=64, d_kv=16, num_layers=2, num_heads=2,
                      pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    return save_checkpoint(folder, T5ForConditionalGeneration(config), tokenizer)


@pytest.fixture(scope="module")
def checkpoints(tiny_bert, tmp_path_factory):
    """Tiny checkpoints saved as pretraining saves them (language-model heads), plus the tiny BERT's tokenizer."""
    root = tmp_path_factory.mktemp("checkpoints")
    torch.manual_seed(0)
    return {"bert": tiny_bert, "gpt2": tiny_gpt2(root / "gpt2", gpt2_tokenizer()),
            "t5": tiny_t5(root / "t5", t5_tokenizer())}


def overrides_for(family: str, checkpoints) -> list[str]:
    if family.startswith("hft-"):
        return [f"model={family}", f"tokenizer={checkpoints['bert']}", f"model_config={TINY[family]}"]
    if family == "t5-text-to-text":
        return [f"model={checkpoints['t5']}", "head=text-to-text", "label_words={pos: good, neg: bad}"]
    return [f"model={checkpoints[family]}"]


def classify_config(data, output_dir, *overrides):
    return load_config(ClassifyConfig, None, [
        f"data.dataset={data}", "data.text_columns=review", "data.label_column=sentiment", "data.max_length=32",
        "train.epochs=6", "train.learning_rate=5e-3", "train.batch_size=16", "train.precision=fp32",
        "train.logging_steps=5", "train.freeze_word_embeddings=false",  # the tiny checkpoints' embeddings are random
        f"output_dir={output_dir}", *overrides,
    ])


FAMILIES = ["bert", "gpt2", "t5", "t5-text-to-text", "hft-textcnn", "hft-rnn", "hft-attention"]


@pytest.fixture(scope="module")
def runs(checkpoints, tmp_path_factory):
    """One fine-tuning run per family on the same tiny CSV: {family: (RunResult, output folder)}."""
    root = tmp_path_factory.mktemp("runs")
    data = write_csv(root / "reviews.csv", sentiment_rows(200))
    done = {}
    for family in FAMILIES:
        result = run_classify(classify_config(data, root / family, *overrides_for(family, checkpoints)))
        done[family] = (result, root / family)
    return done


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    data = write_csv(tmp_path_factory.mktemp("task") / "reviews.csv", sentiment_rows(40))
    return load_task_data(classify_config(data, "unused").data)


def test_every_family_learns_the_task_and_records_how(runs):
    expected = {  # family: (model_type, family name, head, pretrained weights)
        "bert": ("bert", "bert", "classification", True),
        "gpt2": ("gpt2", "gpt2", "classification", True),
        "t5": ("t5", "t5", "classification", True),
        "t5-text-to-text": ("t5", "t5", "text-to-text", True),
        "hft-textcnn": ("hft-textcnn", "hft-textcnn", "classification", False),
        "hft-rnn": ("hft-rnn", "hft-rnn", "classification", False),
        "hft-attention": ("hft-attention", "hft-attention", "classification", False),
    }
    for family, (result, out) in runs.items():
        model = result.model
        assert (model["model_type"], model["family"], model["head"], model["pretrained"]) == expected[family], family
        assert result.strategy["transferred"] == ("parameters" if model["pretrained"] else "structure"), family
        # The cue word decides the label; a real learner gets (nearly) all of the 40 test texts.
        assert result.metrics["test"]["accuracy"] >= 0.75, (family, result.metrics["test"]["accuracy"])
        assert {"model.safetensors", "config.json", "tokenizer_config.json", "metrics.json", "README.md"} <= {
            p.name for p in out.iterdir()}, family
    assert runs["t5-text-to-text"][0].model["label_words"] == ["bad", "good"]  # label order: neg, pos
    config = json.loads((runs["t5-text-to-text"][1] / "config.json").read_text())
    assert config["architectures"] == ["T5ForConditionalGeneration"] and config["label_words"] == ["bad", "good"]
    for ours in ("hft-textcnn", "hft-rnn", "hft-attention"):
        saved = {p.name for p in runs[ours][1].iterdir()}
        assert any(name.startswith("modeling_") for name in saved), "remote code ships with our backbones"


def test_text_to_text_output_reloads_with_hf_transfer(runs):
    from hf_transfer.text_to_text import TextToTextClassifier

    out = runs["t5-text-to-text"][1]
    model = TextToTextClassifier.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    expected = predictions(out)
    batch = tokenizer([row["text"] for row in expected], padding=True, return_tensors="pt")
    with torch.no_grad():
        probabilities = model(**batch).logits.softmax(-1)
    assert [model.config.id2label[int(i)] for i in probabilities.argmax(-1)] == [row["prediction"] for row in expected]
    assert probabilities[:, 1].tolist() == pytest.approx([row["scores"]["pos"] for row in expected], abs=1e-4)


def test_tokenizer_quirks_are_saved_with_the_model(runs):
    gpt2 = json.loads((runs["gpt2"][1] / "tokenizer_config.json").read_text())
    assert gpt2.get("padding_side", "right") == "right" and gpt2["pad_token"] == gpt2["eos_token"]
    assert json.loads((runs["gpt2"][1] / "config.json").read_text())["pad_token_id"] == 0
    t5_config = json.loads((runs["t5"][1] / "config.json").read_text())
    assert t5_config["architectures"] == ["T5ForSequenceClassification"] and t5_config["eos_token_id"] == 1


def predictions(out, split="test"):
    return [json.loads(line) for line in open(out / "predictions.jsonl") if json.loads(line)["split"] == split]


FRESH_PROCESS = textwrap.dedent(
    """
    import json, re, sys
    import hf_transfer.models  # registers our backbones: their folders then load without trust_remote_code
    from transformers import pipeline

    answers = {}
    for out in sys.argv[1:]:
        texts = [json.loads(l)["text"] for l in open(out + "/predictions.jsonl") if '"test"' in l]
        if json.load(open(out + "/config.json")).get("label_words"):  # text-to-text: the card's own snippet
            card = open(out + "/README.md").read()
            scope = {}
            exec(re.search(r"```python\\n(.*?)```", card, re.S).group(1), scope)
            answers[out] = scope["classify"](texts)
        else:
            answers[out] = pipeline("text-classification", model=out)(texts)
    print(json.dumps(answers))
    """
)


def answers_of(done: subprocess.CompletedProcess) -> dict:
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1:]
    assert last and last[0].startswith("{"), done.stdout[-2000:] + done.stderr[-3000:]
    return json.loads(last[0])


def assert_same_predictions(answer, out):
    expected = predictions(out)
    assert [a["label"] for a in answer] == [row["prediction"] for row in expected], out.name
    for a, row in zip(answer, expected):
        assert a["score"] == pytest.approx(row["scores"][row["prediction"]], abs=1e-4), out.name


def test_a_fresh_process_reproduces_every_familys_predictions(runs, tmp_path):
    outs = [str(out) for _, out in runs.values()]
    done = subprocess.run([sys.executable, "-c", FRESH_PROCESS, *outs], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}, cwd=tmp_path,
                          stdin=subprocess.DEVNULL, timeout=300)
    answers = answers_of(done)
    for _, out in runs.values():
        assert_same_predictions(answers[str(out)], out)


WITHOUT_HF_TRANSFER = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class BlockHfTransfer(importlib.abc.MetaPathFinder):
        # Stands in for a machine without hf_transfer even though it is installed into this venv.
        def find_spec(self, name, path=None, target=None):
            if name == "hf_transfer" or name.startswith("hf_transfer."):
                raise ModuleNotFoundError(name)

    sys.meta_path.insert(0, BlockHfTransfer())
    from transformers import pipeline

    answers = {}
    for out in sys.argv[1:]:
        try:
            pipeline("text-classification", model=out)
            sys.exit(f"{out} loaded without trust_remote_code")
        except ValueError as err:
            assert "trust_remote_code" in str(err), err
        texts = [json.loads(l)["text"] for l in open(out + "/predictions.jsonl") if '"test"' in l]
        answers[out] = pipeline("text-classification", model=out, trust_remote_code=True)(texts)
    assert "hf_transfer" not in sys.modules
    print("\\n" + json.dumps(answers))  # after the unanswered "Do you wish to run the custom code? [y/N]" prompt
    """
)


def test_our_backbones_load_elsewhere_with_trust_remote_code(runs, tmp_path):
    outs = [runs[family][1] for family in ("hft-textcnn", "hft-rnn", "hft-attention")]
    # -I: no PYTHONPATH, no cwd or script folder on sys.path; HF_HOME: remote code is copied there, not into ~/.cache.
    done = subprocess.run([sys.executable, "-I", "-c", WITHOUT_HF_TRANSFER, *map(str, outs)], capture_output=True,
                          text=True, cwd=tmp_path, stdin=subprocess.DEVNULL, timeout=300,
                          env={"HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
                               "PATH": "/usr/bin:/bin"})
    answers = answers_of(done)
    for out in outs:
        assert_same_predictions(answers[str(out)], out)


def logits_of(backbone, texts):
    batch = backbone.tokenizer(texts, padding=True, return_tensors="pt")
    backbone.model.eval()
    with torch.no_grad():
        return backbone.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


@pytest.mark.parametrize("family", ["bert", "gpt2", "t5", "t5-text-to-text", "hft-textcnn", "hft-rnn", "hft-attention"])
def test_padding_does_not_change_a_texts_logits(family, checkpoints, task):
    torch.manual_seed(0)
    backbone = load_backbone(classify_config("unused", "unused", *overrides_for(family, checkpoints)), task)
    short, long = "good film", "the movie was really quite a boring and dull film"
    alone = logits_of(backbone, [short])[0]
    torch.testing.assert_close(logits_of(backbone, [short, long])[0], alone, atol=1e-5, rtol=1e-4)
    if family == "gpt2":
        # Why right padding: GPT-2 numbers positions from 0 whatever the mask says, so left padding shifts them.
        assert backbone.tokenizer.padding_side == "right"
        backbone.tokenizer.padding_side = "left"
        assert not torch.allclose(logits_of(backbone, [short, long])[0], alone, atol=1e-4)


def test_our_backbones_default_to_minilm_wordpiece(checkpoints, task):
    config = load_config(ClassifyConfig, None, ["model=hft-rnn", f"model_config={TINY['hft-rnn']}"])
    backbone = load_backbone(config, task)
    assert backbone.tokenizer_name == "minilm-l6" and backbone.tokenizer.convert_tokens_to_ids("[CLS]") == 101
    assert backbone.model.config.vocab_size == len(backbone.tokenizer) == 30522
    assert backbone.model.config.pad_token_id == backbone.tokenizer.pad_token_id


@pytest.mark.parametrize("family", ["bert", "gpt2", "t5", "hft-textcnn"])
def test_train_dropout_sets_every_dropout_of_the_model(family, checkpoints, task):
    def probabilities(*overrides):
        model = load_backbone(classify_config("unused", "unused", *overrides_for(family, checkpoints), *overrides),
                              task).model
        return {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)}

    assert probabilities("train.dropout=0") == {0.0}
    assert probabilities("train.dropout=0.25") == {0.25}
    assert max(probabilities()) > 0  # null (below the no-dropout size): the checkpoint's own


def test_model_config_dropout_wins_over_train_dropout(checkpoints, task):
    config = classify_config("unused", "unused", f"model={checkpoints['bert']}", "train.dropout=0",
                             "model_config={hidden_dropout_prob: 0.2}")
    model_config = load_backbone(config, task).model.config
    assert (model_config.hidden_dropout_prob, model_config.attention_probs_dropout_prob) == (0.2, 0.0)


def test_dropout_that_cannot_apply_fails_with_one_line():
    assert dropout_settings(PretrainedConfig(), 0.0, "plain") == {}  # no dropout to turn off: nothing to do
    with pytest.raises(UserError, match=r"train.dropout=0.1: model 'plain' .* has no dropout setting"):
        dropout_settings(PretrainedConfig(), 0.1, "plain")
    with pytest.raises(UserError, match=r"train.dropout must lie in \[0, 1\), got 1.5"):
        load_config(ClassifyConfig, None, ["train.dropout=1.5"])


def test_training_attention_is_eager_on_cpu_for_short_texts_unless_asked(checkpoints, task):
    model = load_backbone(classify_config("unused", "unused", f"model={checkpoints['bert']}"), task).model
    assert model.config._attn_implementation == "sdpa"  # transformers' default, kept for prediction
    # long texts: sdpa needs less memory
    assert set_training_attention(model, None, max_length=EAGER_MAX_LENGTH + 1) == "sdpa"
    assert model.config._attn_implementation == "sdpa"
    assert set_training_attention(model, None, max_length=EAGER_MAX_LENGTH) == "eager"
    assert model.config._attn_implementation == "eager"
    assert set_training_attention(model, "sdpa", max_length=32) == "sdpa"
    assert model.config._attn_implementation == "sdpa"
    with pytest.raises(UserError, match="train.attn_implementation=bogus: BertForSequenceClassification cannot use"):
        set_training_attention(model, "bogus", max_length=32)
    cnn = load_backbone(classify_config("unused", "unused", *overrides_for("hft-textcnn", checkpoints)), task).model
    set_training_attention(cnn, None, max_length=32)  # no attention to switch: left as it is
    with pytest.raises(UserError, match="train.attn_implementation=sdpa: TextCNNForSequenceClassification cannot use"):
        set_training_attention(cnn, "sdpa", max_length=32)


def test_a_pretrained_folder_of_our_backbone_transfers_its_weights(checkpoints, task, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(checkpoints["bert"])
    pretrained = TextCNNForMaskedLM(TextCNNConfig(vocab_size=len(tokenizer), embedding_dim=16, num_filters=8,
                                                  filter_sizes=[2, 3]))
    folder = save_checkpoint(tmp_path / "textcnn-mlm", pretrained, tokenizer)
    backbone = load_backbone(classify_config("unused", "unused", f"model={folder}"), task)
    assert type(backbone.model).__name__ == "TextCNNForSequenceClassification" and backbone.pretrained
    assert torch.equal(backbone.model.get_input_embeddings().weight, pretrained.get_input_embeddings().weight)
    assert backbone.transferred("parameters") == "parameters"
    scratch = load_backbone(classify_config("unused", "unused", f"model={folder}", "strategy=scratch"), task)
    assert not torch.equal(scratch.model.get_input_embeddings().weight, pretrained.get_input_embeddings().weight)
    assert scratch.transferred("structure") == "structure"


def write_vectors(path, words, dim, seed=0):
    rng = np.random.default_rng(seed)
    vectors = {word: rng.normal(size=dim).round(4) for word in words}
    lines = [f"{len(words)} {dim}"] + [f"{w} " + " ".join(map(str, v)) for w, v in vectors.items()]
    path.write_text("\n".join(lines) + "\n")
    return vectors


def test_word_vectors_initialise_frozen_embeddings_and_are_reported(checkpoints, tmp_path, capfd):
    covered = POSITIVE + NEGATIVE + ["movie", "film"]
    vectors = write_vectors(tmp_path / "vectors.txt", covered + ["unused", "words"], dim=8)
    data = write_csv(tmp_path / "reviews.csv", sentiment_rows(120))
    out = tmp_path / "out"
    result = run_classify(classify_config(data, out, "model=hft-textcnn", f"tokenizer={checkpoints['bert']}",
                                          "model_config={num_filters: 8, filter_sizes: [2, 3]}", "train.epochs=2",
                                          f"vectors={tmp_path / 'vectors.txt'}", "freeze_vectors=true"))
    report = result.model["vectors"]
    assert report == {"name": "vectors.txt", "dim": 8, "coverage": pytest.approx(len(covered) / len(WORDS)),
                      "matched": len(covered), "vocab_size": len(WORDS), "frozen": True}
    assert result.strategy["transferred"] == "features"
    assert json.loads((out / "metrics.json").read_text())["model"]["vectors"]["matched"] == len(covered)
    assert f"{len(covered)} of {len(WORDS)} tokens" in capfd.readouterr().err
    card = (out / "README.md").read_text()
    assert re.search(r"\| Word vectors \| `vectors.txt` \(8-d\).*\(61.5%\), then stayed frozen", card)

    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.embedding_dim == 8, "the embedding size follows the vectors"
    vocab = json.loads((out / "tokenizer.json").read_text())["model"]["vocab"]
    for word in covered:  # frozen: still exactly the vectors after training
        expected = torch.tensor(vectors[word], dtype=torch.float32)
        assert torch.equal(model.get_input_embeddings().weight[vocab[word]], expected)
    assert result.parameters["trainable"] == result.parameters["total"] - len(VOCAB) * 8


def run_fails(config, message):
    """`config` is a run config, or the arguments of classify_config for one that is refused when it loads."""
    output_dir = config.output_dir if isinstance(config, ClassifyConfig) else str(config[1])
    with pytest.raises(UserError) as caught:
        run_classify(config if isinstance(config, ClassifyConfig) else classify_config(*config))
    text = str(caught.value)
    assert message in text and "\n" not in text, text
    assert not os.path.exists(output_dir) and not os.path.exists(output_dir + ".partial")
    return text


def test_bad_vectors_and_mismatched_sizes_fail_with_one_line(checkpoints, tmp_path):
    data = write_csv(tmp_path / "reviews.csv", sentiment_rows(40))
    out = str(tmp_path / "out")
    textcnn = ["model=hft-textcnn", f"tokenizer={checkpoints['bert']}"]
    (tmp_path / "ragged.txt").write_text("good 0.1 0.2 0.3\nbad 0.1 0.2\n")
    write_vectors(tmp_path / "vectors.txt", POSITIVE, dim=8)
    vectors = f"vectors={tmp_path / 'vectors.txt'}"
    run_fails(classify_config(data, out, *textcnn, f"vectors={tmp_path / 'ragged.txt'}"),
              "line 2: expected a word and 3 numbers")
    run_fails(classify_config(data, out, *textcnn, f"vectors={tmp_path / 'missing.txt'}"), "vectors '")
    run_fails(classify_config(data, out, *textcnn, "vectors=rotten-tomatoes"), "is a dataset, not word vectors")
    run_fails((data, out, *textcnn, "freeze_vectors=true"), "freeze_vectors=true needs vectors")
    run_fails(classify_config(data, out, *textcnn, vectors, "model_config={embedding_dim: 16}"),
              "model_config.embedding_dim=16 but the vectors")
    run_fails(classify_config(data, out, "model=hft-attention", f"tokenizer={checkpoints['bert']}", vectors),
              "set model_config.hidden_size=8")
    run_fails(classify_config(data, out, f"model={checkpoints['bert']}", vectors),
              "the vectors 'vectors.txt' have 8 dimensions but the embeddings of")
    canine = save_checkpoint(tmp_path / "canine", CanineForSequenceClassification(CanineConfig(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, num_hash_buckets=64,
        num_hash_functions=2)), gpt2_tokenizer())
    run_fails(classify_config(data, out, f"model={canine}", vectors), "has no input embedding layer")


def test_tokenizer_larger_than_the_models_embedding_fails_for_every_family(checkpoints, tmp_path):
    data = write_csv(tmp_path / "reviews.csv", sentiment_rows(40))
    out = str(tmp_path / "out")
    big = [f"word{i}" for i in range(40)]
    folders = {
        "bert": save_checkpoint(tmp_path / "bert", BertModel(BertConfig(
            vocab_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)),
            word_level_tokenizer(["[PAD]", "[UNK]"], big, pad_token="[PAD]", unk_token="[UNK]")),
        "gpt2": tiny_gpt2(tmp_path / "gpt2", gpt2_tokenizer(big), vocab_size=8),
        "t5": tiny_t5(tmp_path / "t5", t5_tokenizer(big), vocab_size=8),
        "hft-textcnn": save_checkpoint(tmp_path / "textcnn", TextCNNForMaskedLM(TextCNNConfig(
            vocab_size=8, embedding_dim=8, num_filters=4, filter_sizes=[2])),
            word_level_tokenizer(["[PAD]", "[UNK]"], big, pad_token="[PAD]", unk_token="[UNK]")),
    }
    for family, folder in folders.items():
        run_fails(classify_config(data, out, f"model={folder}"), "token ids but model")
    run_fails(classify_config(data, out, f"model={folders['t5']}", "head=text-to-text"), "token ids but model")
    # A tokenizer named with tokenizer= is checked the same way.
    run_fails(classify_config(data, out, f"model={checkpoints['gpt2']}", f"tokenizer={folders['gpt2']}"),
              "drop tokenizer=")


def test_text_to_text_and_family_misuse_fail_with_one_line(checkpoints, tmp_path):
    data = write_csv(tmp_path / "reviews.csv", sentiment_rows(40))
    out = str(tmp_path / "out")
    t5 = f"model={checkpoints['t5']}"
    run_fails(classify_config(data, out, f"model={checkpoints['bert']}", "head=text-to-text"),
              "needs an encoder-decoder")
    run_fails(classify_config(data, out, t5, "head=text-to-text"), "tokenize to the same target")  # both <unk> </s>
    run_fails(classify_config(data, out, t5, "head=text-to-text", "label_words={meh: so-so}"), "names label 'meh'")
    run_fails((data, out, t5, "label_words={pos: good}"), "only apply to head=text-to-text")
    run_fails((data, out, t5, "head=generate"), "head takes one of")
    words = "label_words={pos: good, neg: bad}"
    run_fails(classify_config(data, out, t5, "head=text-to-text", words, "strategy=frozen"),
              "strategy=frozen does not: use strategy=full or strategy=scratch")
    no_eos = save_checkpoint(tmp_path / "t5-no-eos", T5ForConditionalGeneration.from_pretrained(checkpoints["t5"]),
                             t5_tokenizer(eos=None))
    run_fails(classify_config(data, out, f"model={no_eos}"), "does not end texts with an eos token")
    run_fails(classify_config(data, out, f"model={checkpoints['bert']}", "model_config={hidden_size: 48}"),
              "do not have the shapes its config asks for")
    run_fails(classify_config(data, out, "model=hft-textcnn", "model_config={kernel: 3}"), "model_config key 'kernel'")
    run_fails(classify_config(data, out, "model=hft-rnn", "model_config={cell: transformer}"), "rejects the settings")

    multi = tmp_path / "multi.jsonl"
    multi.write_text("".join(json.dumps({"review": row["review"], "sentiment": [row["sentiment"], "any"]}) + "\n"
                             for row in sentiment_rows(40)))
    run_fails(classify_config(multi, out, t5, "head=text-to-text", "label_words={pos: good, neg: bad}"),
              "the task is multi-label")


def test_a_trained_head_answers_for_the_tasks_labels_by_name(checkpoints, tmp_path):
    """A classifier folder's head is matched to the task's labels by name, not by position: the same labels in
    another order reorder its rows; other labels (of any number) start a fresh output layer."""
    data = write_csv(tmp_path / "reviews.csv", sentiment_rows(40))  # labels neg, pos

    def trained(name, labels):
        torch.manual_seed(1)
        model = AutoModelForSequenceClassification.from_pretrained(checkpoints["bert"],
                                                                   id2label=dict(enumerate(labels)))
        with torch.no_grad():
            model.classifier.bias.copy_(torch.arange(1.0, len(labels) + 1))
        save_checkpoint(tmp_path / name, model, AutoTokenizer.from_pretrained(checkpoints["bert"]))
        return tmp_path / name, model.classifier.weight.detach().clone()

    def loaded(folder, *overrides):
        config = classify_config(data, "unused", f"model={folder}", *overrides)
        return load_backbone(config, load_task_data(config.data)).model

    folder, weight = trained("neg-pos", ["neg", "pos"])
    same = loaded(folder)
    assert torch.equal(same.classifier.weight, weight) and same.classifier.bias.tolist() == [1.0, 2.0]
    swapped = loaded(folder, "data.labels=[pos, neg]")
    assert swapped.config.id2label == {0: "pos", 1: "neg"}
    assert torch.equal(swapped.classifier.weight, weight[[1, 0]]) and swapped.classifier.bias.tolist() == [2.0, 1.0]
    for name, labels in (("other", ["a", "b"]), ("three", ["x", "y", "z"])):
        folder, weight = trained(name, labels)
        fresh = loaded(folder)  # three labels for a task of two: loaded, not refused for its shapes
        assert fresh.classifier.weight.shape == (2, weight.shape[1]) and not torch.allclose(fresh.classifier.weight,
                                                                                              weight[:2])
        assert fresh.classifier.bias.tolist() == [0.0, 0.0]
        assert torch.equal(fresh.bert.encoder.layer[0].attention.self.query.weight,
                           BertModel.from_pretrained(checkpoints["bert"]).encoder.layer[0].attention.self.query.weight)
