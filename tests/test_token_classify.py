"""Token classification through the one run path (run_classify with task=token-classification): every strategy and
backbone family, the output folder in stock tools (pipeline and peft in a fresh process, ModelCard), `hf-transfer
predict`, and bad input at the entry point. Tiny checkpoints built here."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from safetensors import safe_open
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel, GPT2Tokenizer

from conftest import tagged_sentences, write_conll
from test_backbones import TINY, t5_tokenizer, tiny_t5  # our backbones' tiny sizes, the word-level T5 checkpoint
from hf_transfer.classify import run_classify
from hf_transfer.cli import main as hf_transfer_main
from hf_transfer.config import TokenClassifyConfig, load_config
from hf_transfer.errors import UserError
from hf_transfer.runtime import cpu_has_fast_bf16
from hf_transfer.subwords import splits_words_like_text
from hf_transfer.token_data import load_token_data
from hf_transfer.token_predict import TokenPredictor

ROOT = Path(__file__).parents[1]
# Learning rates for the tiny random "pretrained" BERT: a head or adapter on random features needs a high one.
STRATEGIES = {"full": "1e-2", "frozen": "1e-1", "adapter": "5e-2", "gradual-unfreeze": "1e-2", "scratch": "1e-2"}
CONTINUATIONS = ("film", "movie")  # the second word of a two-word entity: I- after a sentiment word, nowhere else


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def token_overrides(model, data, output_dir, *extra) -> list[str]:
    return [f"model={model}", f"data.dataset={data}", "data.max_length=32", "train.epochs=4",
            "train.learning_rate=1e-2", "train.batch_size=16", "train.precision=fp32", "train.logging_steps=5",
            f"output_dir={output_dir}", *extra]


def token_config(model, data, output_dir, *extra):
    return load_config(TokenClassifyConfig, None, token_overrides(model, data, output_dir, *extra))


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    """Entities of one or two words among filler words: a two-word entity's type needs the context of its I- tag."""
    return write_conll(tmp_path_factory.mktemp("tagged") / "train.conll", tagged_sentences(200, continuations=CONTINUATIONS))


@pytest.fixture(scope="module")
def strategy_runs(tiny_bert, tagged, tmp_path_factory):
    root = tmp_path_factory.mktemp("token-runs")
    runs = {}
    for strategy, learning_rate in STRATEGIES.items():
        # full gets the epochs to learn the context reliably: tiny_bert's weights are random per session, and at 12
        # epochs full tied the memorisation baseline on some of them (0.74-0.87 test F1 over 6; 0.78-0.91 at 30)
        epochs = 30 if strategy == "full" else 12
        config = token_config(tiny_bert, tagged, root / strategy, f"strategy={strategy}", f"train.epochs={epochs}",
                              f"train.learning_rate={learning_rate}")
        runs[strategy] = (run_classify(config), root / strategy)
    return runs


def test_every_strategy_trains_a_tagger(strategy_runs):
    for strategy, (result, out) in strategy_runs.items():
        assert result.kind == "token-classification" and result.strategy["name"] == strategy
        test = result.metrics["test"]
        assert test["num_entities"] > 0 and 0 <= test["f1_micro"] <= 1, strategy
        assert result.baselines["memorization"]["metrics"]["test"]["num_entities"] == test["num_entities"]
        assert (out / "README.md").is_file() and (out / "predictions.jsonl").is_file(), strategy
    full, baseline = strategy_runs["full"][0], strategy_runs["full"][0].baselines["memorization"]
    assert full.metrics["test"]["f1_micro"] >= 0.75, full.metrics["test"]  # every random tiny_bert passes (above)
    # Memorising words gives "film" in a two-word entity its most frequent type: context beats it.
    assert full.metrics["test"]["f1_micro"] > baseline["metrics"]["test"]["f1_micro"]
    assert strategy_runs["adapter"][0].metrics["test"]["f1_micro"] >= 0.3


def test_each_strategy_trains_the_token_head(strategy_runs):
    frozen = strategy_runs["frozen"][0].parameters
    assert frozen["trainable"] == 32 * 5 + 5, "BertForTokenClassification's classifier alone (no pooler)"
    adapter_result, adapter_out = strategy_runs["adapter"]
    adapter = json.loads((adapter_out / "adapter_config.json").read_text())
    assert adapter["task_type"] == "TOKEN_CLS" and "classifier" in adapter["modules_to_save"]
    with safe_open(str(adapter_out / "adapter_model.safetensors"), framework="pt") as weights:
        assert any("classifier" in name for name in weights.keys()), "the head is saved with the adapter"
    assert not (adapter_out / "model.safetensors").exists()
    unfreezing = [e for e in strategy_runs["gradual-unfreeze"][0].training["log_history"] if "trainable_layer_groups" in e]
    assert unfreezing and unfreezing[0]["trainable_layer_groups"][0] == "head"
    assert strategy_runs["scratch"][0].strategy["transferred"] == "structure"


def test_label_subwords_auto_is_the_strategys_choice(strategy_runs):
    recorded = {name: result.config["data"]["label_subwords"] for name, (result, _) in strategy_runs.items()}
    assert recorded == {"full": "all", "frozen": "first", "adapter": "first", "gradual-unfreeze": "first",
                        "scratch": "first"}


def test_output_folder_and_metrics_json(strategy_runs):
    result, out = strategy_runs["full"]
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertForTokenClassification"]
    assert config["id2label"] == {"0": "O", "1": "B-neg", "2": "I-neg", "3": "B-pos", "4": "I-pos"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["schema_version"] == 1 and metrics["kind"] == "token-classification"
    assert metrics["task"]["entity_types"] == ["neg", "pos"] and metrics["task"]["data_facts"]["tag_scheme"] == "iob2"
    assert metrics["config"]["task"] == "token-classification"
    for key in ("f1_micro", "precision_micro", "recall_micro", "f1_macro", "token_accuracy", "per_class", "strict",
                "windows"):
        assert key in metrics["metrics"]["test"], key
    for key in ("train_time_s", "train_tokens_per_s", "total_time_s", "precision"):
        assert metrics["compute"][key] is not None
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert {row["split"] for row in rows} == {"validation", "test"}
    for row in rows:
        assert len(row["tokens"]) == len(row["tags"]) == len(row["predicted_tags"])


def test_card_parses_with_entity_metrics(strategy_runs):
    for strategy in ("full", "adapter"):
        result, out = strategy_runs[strategy]
        card = ModelCard.load(out / "README.md")
        assert card.data.pipeline_tag == "token-classification"
        values = {(r.dataset_split, r.metric_type, (r.metric_args or {}).get("average")): r.metric_value
                  for r in card.data.eval_results}
        assert {r.task_type for r in card.data.eval_results} == {"token-classification"}
        test = result.metrics["test"]
        assert values[("test", "f1", "micro")] == pytest.approx(test["f1_micro"], abs=1e-4)
        assert values[("test", "accuracy", None)] == pytest.approx(test["token_accuracy"], abs=1e-4)
        baseline = result.baselines["memorization"]["metrics"]["test"]["f1_micro"]
        assert f"{100 * (test['f1_micro'] - baseline):+.1f} points of entity F1 against memorization" in card.text
        assert "The tokenizer lowercases its input" in card.text  # the tiny BERT's WordPiece is uncased
        assert "| Entity type | Precision |" in card.text
    assert "AutoPeftModelForTokenClassification" in ModelCard.load(strategy_runs["adapter"][1] / "README.md").text


ROUND_TRIP = """
import json, sys
from transformers import AutoTokenizer, pipeline
folder, kind = sys.argv[1], sys.argv[2]
rows = [json.loads(line) for line in open(folder + "/predictions.jsonl") if '"test"' in line]
if kind == "adapter":
    from peft import AutoPeftModelForTokenClassification
    tags = json.load(open(folder + "/metrics.json"))["task"]["label_names"]
    model = AutoPeftModelForTokenClassification.from_pretrained(
        folder, id2label=dict(enumerate(tags)), label2id={t: i for i, t in enumerate(tags)})
    tagger = pipeline("token-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(folder),
                      aggregation_strategy="first")
else:
    tagger = pipeline("token-classification", model=folder, aggregation_strategy="first")
found = [[[e["entity_group"], e["word"]] for e in tagger(" ".join(row["tokens"]))] for row in rows]
assert not any(name.startswith("hf_transfer") for name in sys.modules)
print(json.dumps({"found": found, "predicted": [[[e["type"], e["text"]] for e in row["entities"]] for row in rows]}))
"""


@pytest.mark.parametrize("strategy", ["full", "adapter"])
def test_pipeline_in_a_fresh_offline_process_finds_the_runs_entities(strategy_runs, strategy):
    _, out = strategy_runs[strategy]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", ROUND_TRIP, str(out), strategy], capture_output=True, text=True,
                          env=env, cwd=out.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["found"] == answer["predicted"] and any(answer["predicted"])


def test_predict_writes_the_entities_of_each_text(strategy_runs, tmp_path):
    for strategy in ("full", "adapter"):
        _, out = strategy_runs[strategy]
        rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
        texts = tmp_path / "texts.txt"
        lines = [" ".join(row["tokens"]) + "\n" for row in rows if row["split"] == "test"]
        texts.write_text("".join(lines[:1] + ["\n"] + lines[1:]))  # a blank line is no text (read_text_records)
        written = tmp_path / f"{strategy}.jsonl"
        hf_transfer_main(["predict", str(out), str(texts), "--output", str(written)])
        predicted = [json.loads(line) for line in written.read_text().splitlines()]
        test_rows = [row for row in rows if row["split"] == "test"]
        assert [p["tags"] for p in predicted] == [row["predicted_tags"] for row in test_rows], strategy
        entity = next(e for p in predicted for e in p["entities"])
        text = next(p["text"] for p in predicted if entity in p["entities"])
        assert text[entity["start_char"]:entity["end_char"]] == entity["text"]


def byte_level_gpt2(folder: Path, words: list[str]) -> Path:
    """A tiny GPT-2 with a byte-level BPE tokenizer saved without add_prefix_space, as GPT-2's is; its merges make
    each of `words` after a space one token ("Ġgood"), as GPT-2's do for common words. A decoder sees only the
    left context, so a word's first subword must hold the word itself."""
    from tokenizers.pre_tokenizers import ByteLevel

    vocab = {char: i for i, char in enumerate(sorted(ByteLevel.alphabet()))}
    merges = []
    for word in words:
        piece = "Ġ"
        for char in word:
            if piece + char not in vocab:
                merges.append((piece, char))
                vocab[piece + char] = len(vocab)
            piece += char
    end = "<|endoftext|>"
    vocab[end] = len(vocab)
    GPT2Tokenizer(vocab=vocab, merges=merges, bos_token=end, eos_token=end, unk_token=end).save_pretrained(folder)
    config = GPT2Config(vocab_size=len(vocab), n_embd=32, n_layer=2, n_head=2, n_positions=64,
                        bos_token_id=vocab[end], eos_token_id=vocab[end])
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


def test_every_backbone_family_tags(tiny_bert, tagged, tmp_path):
    torch.manual_seed(0)
    words = sorted({word for sentence in tagged_sentences(200, continuations=CONTINUATIONS) for word, _ in sentence})
    models = {"gpt2": [f"model={byte_level_gpt2(tmp_path / 'gpt2', words)}"],
              "t5": [f"model={tiny_t5(tmp_path / 't5', t5_tokenizer(words))}"],
              **{name: [f"model={name}", f"tokenizer={tiny_bert}", f"model_config={sizes}"]
                 for name, sizes in TINY.items()}}
    architectures = {"gpt2": "GPT2ForTokenClassification", "t5": "T5ForTokenClassification",
                     "hft-textcnn": "TextCNNForTokenClassification", "hft-rnn": "RNNForTokenClassification",
                     "hft-attention": "AttentionForTokenClassification"}
    for name, overrides in models.items():
        out = tmp_path / f"{name}-run"
        result = run_classify(token_config(tiny_bert, tagged, out, "train.epochs=12", *overrides))
        assert json.loads((out / "config.json").read_text())["architectures"] == [architectures[name]]
        # Tiny random models learn at different speeds (the LSTM slowest); every one finds entities.
        assert result.metrics["test"]["f1_micro"] >= 0.2, (name, result.metrics["test"])
    # The byte-level tokenizer was loaded, and saved, with add_prefix_space=True: pre-split words read like text.
    saved = AutoTokenizer.from_pretrained(tmp_path / "gpt2-run")
    assert splits_words_like_text(saved) and not splits_words_like_text(AutoTokenizer.from_pretrained(tmp_path / "gpt2"))


@pytest.mark.parametrize("overrides, message", [
    (["strategy=linear-probe"], "strategy=linear-probe does not apply to task=token-classification"),
    (["head=text-to-text"], "head=text-to-text writes one label per text"),
    (["zeroshot_baseline.method=embedding"], "task=token-classification gets the memorisation baseline"),
    (["strategy_options.pooling=mean"], "pooling=mean pools a text into one vector; a tagger classifies every token"),
    (["strategy=frozen", "strategy_options.pooling=cls"], "pooling=cls pools a text into one vector"),
])
def test_what_cannot_apply_is_refused_before_loading(tmp_path, overrides, message):
    # The model and data do not exist: the refusal comes before anything loads.
    with pytest.raises(UserError, match=message):
        run_classify(token_config(tmp_path / "no-model", tmp_path / "no-data.conll", tmp_path / "out", *overrides))
    assert not (tmp_path / "out").exists()


def test_a_pooled_text_classifier_folder_is_refused_naming_its_encoder(tiny_bert, tagged, tmp_path):
    """A frozen or linear-probe run's output (hft-pooled) reads one vector per text: no tagger starts from it."""
    from transformers import BertModel

    from hf_transfer.models import PooledConfig, PooledForSequenceClassification

    encoder = BertModel.from_pretrained(tiny_bert)
    config = PooledConfig(encoder=encoder.config, pooling="mean", id2label={0: "neg", 1: "pos"})
    PooledForSequenceClassification(config, encoder=encoder).save_pretrained(tmp_path / "pooled")
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(tmp_path / "pooled")
    with pytest.raises(UserError, match=r"is a pooled text classifier \(hft-pooled: a frozen or linear-probe run's "
                                        r"output\), which has no token-classification head: start from its encoder"):
        run_classify(token_config(tmp_path / "pooled", tagged, tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def entry_point(args, capsys) -> str:
    """Run `hf-transfer ARGS`; the one error line it exits 2 with."""
    with pytest.raises(SystemExit) as stopped:
        hf_transfer_main(args)
    assert stopped.value.code == 2
    stderr = capsys.readouterr().err
    errors = [line for line in stderr.splitlines() if line.startswith("hf-transfer: error:")]  # besides progress bars
    assert len(errors) == 1 and "Traceback" not in stderr, stderr[-2000:]
    return errors[0]


def test_bad_token_data_is_one_line_at_the_entry_point(tiny_bert, tmp_path, capsys):
    def jsonl(name, rows):
        (tmp_path / name).write_text("".join(json.dumps(row) + "\n" for row in rows))
        return tmp_path / name

    good = [{"tokens": ["good", "film"], "tags": ["B-pos", "O"]}] * 20
    split = tmp_path / "split"
    split.mkdir()
    write_conll(split / "train.conll", tagged_sentences(20))
    write_conll(split / "test.conll", [[("good", "B-pos"), ("film", "B-other")]])
    cases = {
        "lengths differ": (jsonl("lengths.jsonl", good + [{"tokens": ["a", "b", "c"], "tags": ["O", "O"]}]), [],
                           "has 3 words but 2 tags"),
        "I- after O, strict": (write_conll(tmp_path / "i.conll", [[("good", "B-pos")], [("film", "O"), ("fun", "I-pos")]]),
                               ["data.invalid_tags=error"], "follows O and continues no pos entity"),
        "tag not in train": (split, [], "tag 'B-other'"),
        "empty sentence": (jsonl("empty.jsonl", good + [{"tokens": [], "tags": []}]), [], "is empty"),
        "missing tag column": (jsonl("words.jsonl", [{"tokens": ["good"], "labels": ["B-pos"]}]), [],
                               "column 'tags' is not in split 'train'"),
    }
    for name, (data, extra, message) in cases.items():
        out = tmp_path / name.replace(" ", "-")
        line = entry_point(["token-classify", *token_overrides(tiny_bert, data, out, *extra)], capsys)
        assert message in line, (name, line)
        assert not out.exists() and not out.with_name(out.name + ".partial").exists()


def test_repaired_tags_are_counted_in_metrics_json(tiny_bert, tmp_path):
    sentences = tagged_sentences(40) + [[("film", "O"), ("good", "I-pos")]] * 3  # I- after O: repaired to B-
    data = write_conll(tmp_path / "repaired.conll", sentences)
    result = run_classify(token_config(tiny_bert, data, tmp_path / "out", "train.max_steps=2"))
    assert sum(result.task["data_facts"]["repaired_tags"].values()) == 3
    assert "3 I- tags that continued no entity" in (tmp_path / "out" / "README.md").read_text()


def test_recipe_runs_with_plain_python_and_refuses_in_one_line(tiny_bert, tagged, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    recipe = [sys.executable, str(ROOT / "recipes" / "token_classify.py")]
    done = subprocess.run([*recipe, *token_overrides(tiny_bert, tagged, tmp_path / "out", "train.max_steps=3")],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "test entity F1" in done.stdout and "memorisation baseline F1" in done.stdout
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["config"]["model"] == str(tiny_bert)
    refused = subprocess.run([*recipe, *token_overrides(tiny_bert, tagged, tmp_path / "probe", "strategy=linear-probe")],
                             capture_output=True, text=True, env=env, cwd=tmp_path)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1].startswith("hf-transfer: error: strategy=linear-probe")


def test_two_processes_under_accelerate_tag_every_sentence_once(tiny_bert, tagged, tmp_path):
    from test_distributed import free_port

    out = tmp_path / "two-processes"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(ROOT / "recipes" / "accelerate" / "cpu-2proc.yaml"), "--main_process_port", str(free_port()),
               str(ROOT / "recipes" / "token_classify.py"),
               *token_overrides(tiny_bert, tagged, out, "train.max_steps=4", "train.batch_size=8")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("test entity F1") == 1, "one summary from the main process"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["compute"]["processes"] == 2 and metrics["training"]["batch_size"] == 16
    # Evaluation gathers both processes' windows back into order: each sentence once, in the split's order.
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    test_rows = [row["tokens"] for row in rows if row["split"] == "test"]
    split = load_token_data(token_config(tiny_bert, tagged, out).data).splits["test"]
    assert test_rows == list(split["tokens"]) and metrics["metrics"]["test"]["num_examples"] == len(split)


@pytest.mark.skipif(not cpu_has_fast_bf16(), reason="bf16 is emulated (and ~100x slower) without avx512_bf16/AMX")
def test_bf16_evaluation_writes_the_tags_of_fp32(tiny_bert, tagged, tmp_path, capfd):
    out = tmp_path / "bf16"
    # One step at a small learning rate: the new head's logits are small, so words sit near a tie.
    run_classify(token_config(tiny_bert, tagged, out, "train.max_steps=1", "train.learning_rate=1e-5",
                              "train.precision=bf16"))
    assert "re-checked in fp32" in capfd.readouterr().err
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    run = json.loads((out / "metrics.json").read_text())
    fp32 = TokenPredictor(out, run).predict([row["tokens"] for row in rows])  # fp32, as a stock client
    assert [row["predicted_tags"] for row in rows] == [p["tags"] for p in fp32]
