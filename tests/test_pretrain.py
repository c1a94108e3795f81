"""Pretraining end to end on a tiny corpus: every architecture, the T5 span corruption, resuming (after an exception
and after SIGKILL), bad input."""

import dataclasses
import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    TrainerCallback,
)

from conftest import sentiment_rows, write_csv
from hf_transfer.classify import run_classify
from hf_transfer.config import ClassifyConfig, load_config
from hf_transfer.errors import UserError
from hf_transfer.config import PretrainConfig
from hf_transfer.pretraining import LanguageModelingCollator, SpanCorruptionCollator, run_pretraining
from hf_transfer.results import RunResult
from test_training import GLIBC, big_tensor_is_mapped

RECIPE = Path(__file__).parents[1] / "recipes" / "pretrain.py"
WORDS = ("thou art the king and queen of fair verona my lord good night sweet prince love doth speak what light "
         "through yonder window breaks it is east juliet sun arise kill envious moon who already sick pale").split()
TINY_MODELS = {
    "bert": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64),
    "gpt2": dict(n_embd=32, n_layer=2, n_head=2),
    "t5": dict(d_model=32, d_kv=16, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=2),
    "hft-attention": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64),
    "hft-textcnn": dict(embedding_dim=32, num_filters=16),
    "hft-rnn": dict(embedding_dim=32, hidden_size=32),
}
LM_CLASSES = {"bert": AutoModelForMaskedLM, "gpt2": AutoModelForCausalLM, "t5": AutoModelForSeq2SeqLM,
              "hft-attention": AutoModelForMaskedLM, "hft-textcnn": AutoModelForMaskedLM,
              "hft-rnn": AutoModelForCausalLM}


@pytest.fixture(scope="module", autouse=True)
def tokenizer_cache(tmp_path_factory):
    """Tokenizers trained here go to a temporary cache, not the user's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_TRANSFER_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Two text files of pseudo-verse, with blank lines between stanzas."""
    folder = tmp_path_factory.mktemp("corpus")
    rng = random.Random(0)
    for name in ("act1.txt", "act2.txt"):
        stanzas = ["\n".join(" ".join(rng.choices(WORDS, k=rng.randint(4, 10))) for _ in range(6)) for _ in range(25)]
        (folder / name).write_text("\n\n".join(stanzas) + "\n")
    return folder


def tiny_config(architecture, corpus, output_dir, **changes) -> PretrainConfig:
    settings = dict(architecture=architecture, corpus=str(corpus), vocab_size=400,
                    model_config=TINY_MODELS[architecture], max_seq_length=32, batch_size=8, max_steps=3,
                    save_steps=100, logging_steps=1, learning_rate=1e-3, precision="fp32", threads=1,
                    output_dir=str(output_dir))
    return PretrainConfig(**{**settings, **changes})


@pytest.fixture(scope="module")
def pretrained(corpus, tmp_path_factory):
    """architecture -> (metrics, output folder) of one tiny run, run on first use."""
    runs = {}

    def get(architecture):
        if architecture not in runs:
            output_dir = tmp_path_factory.mktemp(f"pretrain-{architecture}")
            runs[architecture] = run_pretraining(tiny_config(architecture, corpus, output_dir)), output_dir
        return runs[architecture]

    return get


@pytest.mark.parametrize("architecture", list(TINY_MODELS))
def test_pretrained_folder_loads_as_language_model_and_as_classifier(pretrained, architecture):
    metrics, out = pretrained(architecture)
    assert metrics["global_step"] == 3 and np.isfinite(metrics["train_loss"]) and np.isfinite(metrics["eval_loss"])
    assert metrics["perplexity"] == pytest.approx(np.exp(metrics["eval_loss"]))
    assert metrics["tokens_seen"] > 0 and metrics["tokens_per_second"] > 0
    assert RunResult.load(out).metrics["eval"]["loss"] == metrics["eval_loss"]
    assert (out / "model.safetensors").is_file()

    tokenizer = AutoTokenizer.from_pretrained(out)
    language_model = LM_CLASSES[architecture].from_pretrained(out)
    classifier = AutoModelForSequenceClassification.from_pretrained(out, num_labels=2)
    batch = tokenizer(["thou art the king", "good night sweet prince of verona"], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = classifier.eval()(**batch).logits
    assert logits.shape == (2, 2) and torch.isfinite(logits).all()
    # The classifier starts from the pretrained weights, not from a fresh initialisation.
    assert torch.equal(classifier.get_input_embeddings().weight, language_model.get_input_embeddings().weight)


def test_trained_tokenizers_have_each_family_special_tokens(pretrained):
    bert = AutoTokenizer.from_pretrained(pretrained("bert")[1])
    assert [bert.pad_token, bert.unk_token, bert.cls_token, bert.sep_token, bert.mask_token] == \
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert bert.convert_ids_to_tokens(bert("thou art").input_ids) == ["[CLS]", "thou", "art", "[SEP]"]

    gpt2 = AutoTokenizer.from_pretrained(pretrained("gpt2")[1])
    assert gpt2.bos_token == gpt2.eos_token == gpt2.unk_token == "<|endoftext|>" and gpt2.pad_token is not None
    assert gpt2.decode(gpt2("thou art\nthe king").input_ids) == "thou art\nthe king"  # byte-level: lossless

    t5 = AutoTokenizer.from_pretrained(pretrained("t5")[1])
    assert [t5.pad_token, t5.eos_token, t5.unk_token] == ["<pad>", "</s>", "<unk>"]
    assert t5.convert_tokens_to_ids("<extra_id_0>") == len(t5) - 1, "T5 convention: <extra_id_0> is the last id"
    assert t5("thou art").input_ids[-1] == t5.eos_token_id
    config = json.loads((pretrained("t5")[1] / "config.json").read_text())
    assert config["decoder_start_token_id"] == t5.pad_token_id and config["vocab_size"] == len(t5)


def test_span_corruption_inputs_and_targets_rebuild_the_block():
    sentinels = list(range(1000, 1100))
    collator = SpanCorruptionCollator(sentinels, eos_token_id=1, pad_token_id=0, seed=3)
    blocks = [list(range(2, 130)) for _ in range(64)]
    noise_tokens = spans = 0
    for block in blocks:
        inputs, targets = collator.corrupt(block)
        assert inputs[-1] == 1 and targets[-1] == 1, "both end in </s>"
        assert inputs[0] not in sentinels, "a block never starts with a sentinel"
        span_count = sum(token in sentinels for token in inputs)
        assert [t for t in inputs if t in sentinels] == [t for t in targets if t in sentinels] == sentinels[:span_count]
        # Put each span back where its sentinel stands: the original block comes back.
        span_of, current = {}, None
        for token in targets[:-1]:
            if token in sentinels:
                current = span_of.setdefault(token, [])
            else:
                current.append(token)
        rebuilt = [token for t in inputs[:-1] for token in (span_of[t] if t in sentinels else [t])]
        assert rebuilt == block
        noise_tokens += len(targets) - 1 - span_count
        spans += span_count
    assert noise_tokens / (128 * len(blocks)) == pytest.approx(0.15, abs=0.01)
    assert noise_tokens / spans == pytest.approx(3.0, abs=0.3)

    batch = collator([{"input_ids": block} for block in blocks[:4]] + [{"input_ids": list(range(2, 40))}])
    assert batch["input_ids"].shape[0] == batch["labels"].shape[0] == 5
    short_inputs, short_labels = batch["input_ids"][-1], batch["labels"][-1]
    assert (short_inputs[batch["attention_mask"][-1] == 0] == 0).all() and (batch["attention_mask"][-1] == 0).any()
    assert (short_labels == -100).any(), "padded label positions carry no loss"


def test_collators_draw_each_batch_from_its_number_alone(tiny_bert):
    """Batch k is masked (or corrupted) the same whether batches 0..k-1 were made first or the collator restarted
    at k, as a resumed run does; eval batches have numbers of their own."""
    rng = random.Random(0)
    blocks = [{"input_ids": [rng.randrange(5, 31) for _ in range(48)]} for _ in range(8)]
    makers = {"mlm": lambda: LanguageModelingCollator(AutoTokenizer.from_pretrained(tiny_bert), seed=7),
              "span": lambda: SpanCorruptionCollator(list(range(1000, 1100)), eos_token_id=1, pad_token_id=0, seed=7)}
    for objective, make in makers.items():
        straight = make()
        batches = [straight(blocks) for _ in range(3)]
        restarted = make()
        restarted.restart_batches("train", 2)
        again = restarted(blocks)
        assert all(torch.equal(again[key], batches[2][key]) for key in batches[2]), objective
        assert not torch.equal(batches[1]["labels"], batches[2]["labels"]), objective
        straight.restart_batches("eval")
        restarted.restart_batches("eval")
        assert torch.equal(straight(blocks)["labels"], restarted(blocks)["labels"]), objective


class Interrupt(TrainerCallback):
    """Kills the run right after optimiser step 3, as a crash or Ctrl-C would."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 3:
            raise KeyboardInterrupt


def test_interrupted_run_resumes_from_its_last_checkpoint(corpus, tmp_path):
    settings = dict(max_steps=4, save_steps=2)
    reference = run_pretraining(tiny_config("gpt2", corpus, tmp_path / "reference", **settings))

    out = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        run_pretraining(tiny_config("gpt2", corpus, out, **settings), callbacks=(Interrupt(),))
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint-2"], "no complete-looking output after a crash"

    resumed = run_pretraining(tiny_config("gpt2", corpus, out, **settings))
    assert resumed["resumed_from_step"] == 2 and resumed["global_step"] == 4
    assert_same_run(resumed, out, reference, tmp_path / "reference", AutoModelForCausalLM)


def assert_same_run(resumed: dict, resumed_dir: Path, reference: dict, reference_dir: Path, model_class) -> None:
    """A resumed run saw the same tokens and ended with the reference run's weights and eval loss."""
    assert resumed["tokens_seen"] == reference["tokens_seen"]
    finished = model_class.from_pretrained(resumed_dir).state_dict()
    for name, weight in model_class.from_pretrained(reference_dir).state_dict().items():
        torch.testing.assert_close(finished[name], weight, rtol=1e-5, atol=1e-6, msg=name)
    assert resumed["eval_loss"] == pytest.approx(reference["eval_loss"], abs=1e-5)


class KillAt(TrainerCallback):
    """SIGKILLs its own process right after optimiser step `step`, as the OOM killer or a power cut would."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


KILLED_RUN = """import json, sys
sys.path.insert(0, sys.argv[3])
from test_pretrain import KillAt
from hf_transfer.config import PretrainConfig
from hf_transfer.pretraining import run_pretraining
run_pretraining(PretrainConfig(**json.loads(sys.argv[1])), callbacks=(KillAt(int(sys.argv[2])),))
"""


def run_killed_at(config: PretrainConfig, step: int) -> subprocess.CompletedProcess:
    """Run `config` in a child process that SIGKILLs itself after optimiser step `step`."""
    return subprocess.run([sys.executable, "-c", KILLED_RUN, json.dumps(dataclasses.asdict(config)), str(step),
                           str(Path(__file__).parent)], capture_output=True, text=True)


@pytest.mark.parametrize("architecture", ["bert", "t5"])
def test_run_killed_between_checkpoints_resumes_exactly(corpus, tmp_path, architecture):
    """The masking (MLM) and span-corruption collators draw the same randomness after a resume (issue 15)."""
    settings = dict(max_steps=14, save_steps=4)  # 10 batches an epoch (BERT), 8 (T5): step 13 is in the second
    reference = run_pretraining(tiny_config(architecture, corpus, tmp_path / "reference", **settings))
    for kill_step in (6, 13):
        out = tmp_path / f"killed-at-{kill_step}"
        killed = run_killed_at(tiny_config(architecture, corpus, out, **settings), kill_step)
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        assert all(p.name.startswith("checkpoint-") for p in out.iterdir()), "no complete-looking output after a kill"

        resumed = run_pretraining(tiny_config(architecture, corpus, out, **settings))
        assert resumed["resumed_from_step"] == kill_step // 4 * 4 and resumed["global_step"] == 14
        assert_same_run(resumed, out, reference, tmp_path / "reference", LM_CLASSES[architecture])


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_pretraining_keeps_freed_memory_in_the_heap_while_training(corpus, tmp_path):
    inside = {}

    class Probe(TrainerCallback):
        def __init__(self, reuse):
            self.reuse = reuse

        def on_step_end(self, args, state, control, **kwargs):
            inside.setdefault(self.reuse, big_tensor_is_mapped())

    for reuse in (True, False):
        run_pretraining(tiny_config("bert", corpus, tmp_path / str(reuse), max_steps=1, reuse_freed_memory=reuse),
                        callbacks=(Probe(reuse),))
    assert inside == {True: False, False: True}
    assert big_tensor_is_mapped(), "blocks of 32 MB or more are mapped again once training ends"


def bad_corpora(folder: Path) -> dict:
    """name -> (corpus path, words the error must contain)."""
    (folder / "empty").mkdir()
    (folder / "empty" / "blank.txt").write_text("\n   \n\t\n")
    (folder / "binary.txt").write_bytes(b"PK\x03\x04\x00\x00binary\x00data")
    (folder / "latin1.txt").write_bytes("Ô Roméo, pourquoi es-tu Roméo".encode("latin-1"))
    return {
        "empty corpus": (folder / "empty", "is empty"),
        "binary file": (folder / "binary.txt", "is not text"),
        "not UTF-8": (folder / "latin1.txt", "not UTF-8"),
        "missing path": (folder / "nowhere", "not found"),
    }


def test_bad_corpus_is_one_line_user_error_and_writes_nothing(tmp_path):
    for name, (corpus, words) in bad_corpora(tmp_path).items():
        out = tmp_path / f"out-{name}"
        with pytest.raises(UserError, match=words) as caught:
            run_pretraining(tiny_config("bert", corpus, out))
        assert "\n" not in str(caught.value), name
        assert not out.exists(), name


def test_vocabulary_mismatch_is_one_line_user_error(pretrained, corpus, tmp_path, tiny_bert):
    _, bert_out = pretrained("bert")
    too_small = tiny_config("bert", corpus, tmp_path / "small", tokenizer=str(bert_out),
                            model_config={**TINY_MODELS["bert"], "vocab_size": 50})
    with pytest.raises(UserError, match="vocabulary mismatch") as caught:
        run_pretraining(too_small)
    assert "\n" not in str(caught.value)

    # The tiny BERT's 31-token vocabulary fits the checkpoint's embedding size but means other words.
    other_vocabulary = tiny_config("bert", corpus, tmp_path / "other", tokenizer=str(tiny_bert),
                                   from_checkpoint=str(bert_out))
    with pytest.raises(UserError, match="different vocabulary"):
        run_pretraining(other_vocabulary)
    assert not (tmp_path / "small").exists() and not (tmp_path / "other").exists()


def test_finished_output_dir_is_refused_and_left_as_it_was(pretrained, corpus):
    _, bert_out = pretrained("bert")
    before = {path: path.stat().st_mtime_ns for path in bert_out.rglob("*")}
    with pytest.raises(UserError, match="holds a finished pretraining run") as refused:
        run_pretraining(tiny_config("bert", corpus, bert_out, learning_rate=5e-4))
    assert "\n" not in str(refused.value)
    assert {path: path.stat().st_mtime_ns for path in bert_out.rglob("*")} == before


def test_continue_pretraining_from_a_checkpoint_keeps_its_tokenizer(pretrained, corpus, tmp_path):
    _, bert_out = pretrained("bert")
    metrics = run_pretraining(tiny_config("bert", corpus, tmp_path / "more", from_checkpoint=str(bert_out)))
    assert metrics["global_step"] == 3 and metrics["resumed_from_step"] == 0
    continued = AutoTokenizer.from_pretrained(tmp_path / "more")
    assert continued.get_vocab() == AutoTokenizer.from_pretrained(bert_out).get_vocab()


def test_a_classifier_made_from_a_pretraining_folder_records_and_cards_where_it_came_from(pretrained, tmp_path):
    metrics, bert_out = pretrained("bert")
    data = write_csv(tmp_path / "reviews.csv", sentiment_rows(40))
    result = run_classify(load_config(ClassifyConfig, None, [
        f"model={bert_out}", f"data.dataset={data}", "data.text_columns=review", "data.label_column=sentiment",
        "data.max_length=32", "train.max_steps=2", "train.precision=fp32", "train.threads=1",
        f"output_dir={tmp_path / 'out'}"]))
    assert result.model["pretraining"] == {
        "objective": "mlm", "corpus": metrics["config"]["corpus"], "from_random_weights": True,
        "optimizer_steps": 3, "tokens_seen": metrics["tokens_seen"], "eval_perplexity": metrics["perplexity"]}
    card = " ".join((tmp_path / "out" / "README.md").read_text().split())
    assert "was pretrained by `hf-transfer pretrain` (mlm) on" in card and "from random weights: 3 optimiser" in card


def load_recipe():
    spec = importlib.util.spec_from_file_location("pretrain_recipe", RECIPE)
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    return recipe


def test_recipe_pretrains_from_yaml_and_overrides(corpus, tmp_path, capsys):
    tiny = [f"model_config.{key}={value}" for key, value in TINY_MODELS["gpt2"].items()]
    load_recipe().main(["--config", str(RECIPE.parent / "configs" / "pretrain_gpt2.yaml"), f"corpus={corpus}",
                        "vocab_size=300", "max_seq_length=32", "batch_size=8", "max_steps=2", "threads=1",
                        f"output_dir={tmp_path / 'out'}", *tiny])
    printed = capsys.readouterr()
    assert "tok/s" in printed.err, "the progress bar shows the throughput"
    assert "gpt2: step 2" in printed.out and "tokens/s" in printed.out
    result = RunResult.load(tmp_path / "out")
    assert result.kind == "pretraining"
    assert result.model["name"] == "gpt2" and result.training["optimizer_steps"] == 2
    assert result.config["model_config"]["n_layer"] == 2 and result.config["max_steps"] == 2
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "out").config.n_embd == 32


def test_the_cli_and_the_recipe_default_to_the_same_config():
    bin_dir = Path(sys.executable).parent
    for command in ([str(bin_dir / "hf-transfer"), "pretrain", "--help"], [sys.executable, str(RECIPE), "--help"]):
        shown = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        assert "pretrain_bert.yaml)" in shown.replace("\n", " "), command
        assert "overrides, dotted for sections: max_steps=" in " ".join(shown.split()), command


def test_recipe_bad_input_exits_2_with_one_line(tmp_path):
    corpus, _ = bad_corpora(tmp_path)["binary file"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(RECIPE), f"corpus={corpus}", "output_dir=out"],
                          capture_output=True, text=True, cwd=tmp_path, env=env)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and done.stderr.startswith("hf-transfer: error: corpus file")
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()


def test_config_keys_are_checked(tmp_path):
    with pytest.raises(UserError, match="architecture='bart'"):
        run_pretraining(load_config(PretrainConfig, None, ["architecture=bart", f"output_dir={tmp_path / 'x'}"]))
    with pytest.raises(UserError, match="model_config key 'hidden_sise'"):
        run_pretraining(tiny_config("bert", tmp_path, tmp_path / "y", model_config={"hidden_sise": 64}))
