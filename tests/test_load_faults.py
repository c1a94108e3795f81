"""Model folders and settings that cannot load (issue 14, items 6, 10, 11): one line naming what is wrong and the fix.

Each folder is the kind people post in bug reports: empty, weights without config.json, no tokenizer, a pickle that
torch's weights-only loader refuses, damaged weights, a model that needs its own code, an unknown model type.
"""

import json
import shutil

import pytest
import torch
from peft import LoraConfig, TaskType, get_peft_model
from transformers import (AutoTokenizer, BertConfig, BertForSequenceClassification, BertModel, GPT2Config,
                          RobertaConfig, T5Config)

from conftest import sentiment_rows, write_csv
from hf_transfer.backbones import load_backbone, position_limit
from hf_transfer.classify import run_classify
from hf_transfer.config import ClassifyConfig, ZeroShotConfig, load_config
from hf_transfer.data import load_task_data
from hf_transfer.errors import UserError
from hf_transfer.models import AttentionConfig, TextCNNConfig
from hf_transfer.zeroshot.run import run_zeroshot


def copy_of(tiny_bert, folder, drop=()):
    shutil.copytree(tiny_bert, folder)
    for name in drop:
        (folder / name).unlink()
    return folder


class Unpicklable:
    """Any object in a pickled state dict makes torch's weights-only loader refuse the file."""


def remote_code_folder(tiny_bert, folder):
    """A checkpoint whose config.json names its own classes (auto_map) in .py files next to it."""
    copy_of(tiny_bert, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="my-bert", auto_map={"AutoConfig": "configuration_my.MyConfig",
                                                  "AutoModelForSequenceClassification": "modeling_my.MyClassifier"})
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "configuration_my.py").write_text(
        "from transformers import BertConfig\n\nclass MyConfig(BertConfig):\n    model_type = 'my-bert'\n")
    (folder / "modeling_my.py").write_text(
        "from transformers import BertForSequenceClassification\nfrom .configuration_my import MyConfig\n\n"
        "class MyClassifier(BertForSequenceClassification):\n    config_class = MyConfig\n")
    return folder


def broken_folders(tiny_bert, root):
    """{name: (folder, what the message must say)}: one folder per way a local checkpoint fails to load."""
    folders = {}
    (root / "empty").mkdir()
    folders["empty"] = (root / "empty", "is empty: save the model there with save_pretrained()")
    only_bin = root / "only-bin"
    only_bin.mkdir()
    torch.save(BertModel.from_pretrained(tiny_bert).state_dict(), only_bin / "pytorch_model.bin")
    folders["only-bin"] = (only_bin, r"holds weights \(pytorch_model.bin\) but no config.json")
    tokenizer_only = copy_of(tiny_bert, root / "tokenizer-only", drop=["config.json", "model.safetensors"])
    folders["tokenizer-only"] = (tokenizer_only,
                                 r"holds no config.json \(it holds tokenizer.json, tokenizer_config.json\)")
    no_weights = copy_of(tiny_bert, root / "no-weights", drop=["model.safetensors"])
    folders["no-weights"] = (no_weights,
                             r"holds no weights \(model.safetensors or pytorch_model.bin; it holds config.json")
    # transformers 5 builds a BERT tokenizer with no vocabulary from config.json alone: every word would be [UNK].
    no_tokenizer = copy_of(tiny_bert, root / "no-tokenizer", drop=["tokenizer.json", "tokenizer_config.json"])
    folders["no-tokenizer"] = (no_tokenizer,
                               r"holds no tokenizer \(tokenizer.json, vocab.txt, ...; it holds config.json")
    pickle_bin = copy_of(tiny_bert, root / "pickle-bin", drop=["model.safetensors"])
    state = BertModel.from_pretrained(tiny_bert).state_dict()
    torch.save({**state, "extra": Unpicklable()}, pickle_bin / "pytorch_model.bin")
    folders["pickle-bin"] = (pickle_bin, "are a pickle .* which torch's safe loader refuses: convert them to "
                                         "model.safetensors")
    damaged = copy_of(tiny_bert, root / "damaged")
    weights = (damaged / "model.safetensors").read_bytes()
    (damaged / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    folders["damaged"] = (damaged, "the weights file of model .* is damaged .*: copy or download it again")
    damaged_bin = copy_of(tiny_bert, root / "damaged-bin", drop=["model.safetensors"])
    torch.save(state, damaged_bin / "pytorch_model.bin")
    data = (damaged_bin / "pytorch_model.bin").read_bytes()
    (damaged_bin / "pytorch_model.bin").write_bytes(data[: len(data) // 2])
    folders["damaged-bin"] = (damaged_bin, "cannot read the weights of model folder .*: a file may be damaged")
    bad_json = copy_of(tiny_bert, root / "bad-json")
    (bad_json / "config.json").write_text("{\"model_type\": \"bert\",")
    folders["bad-json"] = (bad_json, "the config.json of model .* is not valid JSON")
    bad_tokenizer = copy_of(tiny_bert, root / "bad-tokenizer")
    (bad_tokenizer / "tokenizer.json").write_text("{\"version\": \"1.0\", \"model\": {\"type\": \"Nonesuch\"}}")
    folders["bad-tokenizer"] = (bad_tokenizer, "the tokenizer files of model folder .* cannot be read .*: save the "
                                               "tokenizer there again")
    unknown = copy_of(tiny_bert, root / "unknown-type")
    config = json.loads((unknown / "config.json").read_text())
    (unknown / "config.json").write_text(json.dumps({**config, "model_type": "nonesuch"}))
    folders["unknown-type"] = (unknown, "is of type 'nonesuch', which transformers .* does not know")
    adapter = root / "adapter"  # an adapter run's output folder: adapter_config.json, no config.json
    get_peft_model(BertForSequenceClassification.from_pretrained(tiny_bert),
                   LoraConfig(task_type=TaskType.SEQ_CLS, target_modules=["query"])).save_pretrained(adapter)
    folders["adapter"] = (adapter, "holds a peft adapter, not a whole model: start from its base model, or train it "
                                   r"with strategy_options.merge=true")
    folders["remote-code"] = (remote_code_folder(tiny_bert, root / "remote-code"),
                              r"needs its own Python code to load \(config.json's auto_map names it\): read that "
                              "code, then pass trust_remote_code=true")
    return folders


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    data = write_csv(tmp_path_factory.mktemp("task") / "reviews.csv", sentiment_rows(40))
    return load_task_data(config_for("unused", data).data)


def config_for(model, data="unused", *overrides):
    return load_config(ClassifyConfig, None, [f"model={model}", f"data.dataset={data}", "data.text_columns=review",
                                              "data.label_column=sentiment", "data.max_length=32", *overrides])


@pytest.fixture(scope="module")
def folders(tiny_bert, tmp_path_factory):
    return broken_folders(tiny_bert, tmp_path_factory.mktemp("folders"))


@pytest.mark.parametrize("kind", ["empty", "only-bin", "tokenizer-only", "no-weights", "no-tokenizer", "pickle-bin",
                                  "damaged", "damaged-bin", "bad-json", "bad-tokenizer", "unknown-type",
                                  "remote-code", "adapter"])
def test_a_broken_model_folder_says_what_it_lacks(folders, task, kind, capsys):
    folder, message = folders[kind]
    with pytest.raises(UserError, match=message) as raised:
        load_backbone(config_for(folder), task)
    assert "\n" not in str(raised.value) and "not in the local cache" not in str(raised.value)
    assert "Do you wish to run the custom code" not in capsys.readouterr().out  # never an interactive question


def test_remote_code_runs_only_when_trusted(folders, task, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))  # where transformers copies the folder's code
    backbone = load_backbone(config_for(folders["remote-code"][0], "unused", "trust_remote_code=true"), task)
    assert type(backbone.model).__name__ == "MyClassifier"


def test_the_tokenizer_check_sees_an_empty_vocabulary(tiny_bert, task, tmp_path):
    """The kind, not the file names: a tokenizer_config.json without vocabulary files loads as 5 special tokens."""
    folder = copy_of(tiny_bert, tmp_path / "config-no-vocab", drop=["tokenizer.json"])
    assert len(AutoTokenizer.from_pretrained(folder)) <= 5
    with pytest.raises(UserError, match=r"has no vocabulary \(\d special tokens only\)"):
        load_backbone(config_for(folder), task)


def test_position_limits_of_each_kind():
    assert position_limit(BertConfig(max_position_embeddings=512)) == 512
    assert position_limit(RobertaConfig(max_position_embeddings=514, pad_token_id=1)) == 512  # positions after pad
    assert position_limit(GPT2Config(n_positions=1024)) == 1024
    assert position_limit(T5Config()) is None  # relative positions: no table to run out of
    assert position_limit(AttentionConfig(max_position_embeddings=64)) == 64
    assert position_limit(TextCNNConfig()) is None


def test_max_length_above_the_positions_stops_before_training(tiny_bert, tmp_path):
    data = write_csv(tmp_path / "reviews.csv", [{"review": " ".join(["good film"] * 60), "sentiment": s}
                                                 for s in ["pos", "neg"] * 20])
    out = tmp_path / "out"
    config = config_for(tiny_bert, data, "data.max_length=100", f"output_dir={out}", "train.max_steps=1")
    with pytest.raises(UserError, match=r"^data.max_length=100 is more than the 64 positions model .* \(bert\) can "
                                        r"read: set data.max_length=64 or less$"):
        run_classify(config)
    assert not out.exists() and not out.with_name("out.partial").exists()
    # Our attention backbone has a position table too; model_config may enlarge it when it trains from scratch.
    config = config_for("hft-attention", data, f"tokenizer={tiny_bert}", "data.max_length=100", f"output_dir={out}",
                        "model_config={hidden_size: 16, num_attention_heads: 2, intermediate_size: 32, "
                        "max_position_embeddings: 64}")
    with pytest.raises(UserError, match="data.max_length=100 is more than the 64 positions"):
        run_classify(config)


def test_zero_shot_checks_max_length_too(tiny_bert, tmp_path):
    data = write_csv(tmp_path / "reviews.csv", sentiment_rows(40))
    config = load_config(ZeroShotConfig, None, [f"model={tiny_bert}", f"data.dataset={data}", "data.max_length=1024",
                                                "data.text_columns=review", "data.label_column=sentiment",
                                                f"output_dir={tmp_path / 'out'}"])
    with pytest.raises(UserError, match="data.max_length=1024 is more than the 64 positions"):
        run_zeroshot(config)
    assert not (tmp_path / "out").exists()
