"""hf_transfer.models: our backbones as transformers Auto models, remote-code saving, word-vector init."""

import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from peft import LoraConfig, get_peft_model
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    PreTrainedTokenizerFast,
    Trainer,
    TrainingArguments,
    pipeline,
)

from hf_transfer.models import (
    DEFAULT_LORA_TARGETS,
    HEAD_MODULES,
    init_embeddings_from_vectors,
    load_word_vectors,
)
from hf_transfer.token_data import entities_from_tags

MODEL_TYPES = ["hft-textcnn", "hft-rnn", "hft-attention"]
LM_AUTO_CLASS = {
    "hft-textcnn": AutoModelForMaskedLM,
    "hft-rnn": AutoModelForCausalLM,
    "hft-attention": AutoModelForMaskedLM,
}
TINY_SIZES = {
    "hft-textcnn": {"embedding_dim": 16, "num_filters": 8, "filter_sizes": (2, 3)},  # width 2: asymmetric padding
    "hft-rnn": {"embedding_dim": 16, "hidden_size": 16},
    "hft-attention": {
        "hidden_size": 16,
        "num_attention_heads": 2,
        "intermediate_size": 32,
        "max_position_embeddings": 32,
    },
}
ID2LABEL = {0: "negative", 1: "positive"}
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = "good great fine bad awful poor the movie film plot was is really quite a".split()
TRAIN_TEXTS = [
    ("the movie was good", 1),
    ("a really great film", 1),
    ("the plot is fine", 1),
    ("good good film", 1),
    ("quite a great plot", 1),
    ("the film was really good", 1),
    ("the movie was bad", 0),
    ("a really awful film", 0),
    ("the plot is poor", 0),
    ("bad bad film", 0),
    ("quite a awful plot", 0),
    ("the film was really bad", 0),
]


def make_tokenizer():
    """BERT-style word-level tokenizer: [CLS] ... [SEP], returns token_type_ids too; nothing downloads."""
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + WORDS)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer()


def tiny_config(model_type, tokenizer, **overrides):
    """What a generic recipe does: sizes from the config, vocabulary, padding and labels from the task."""
    settings = {
        **TINY_SIZES[model_type],
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "id2label": ID2LABEL,
        "label2id": {name: i for i, name in ID2LABEL.items()},
        **overrides,
    }
    return AutoConfig.for_model(model_type, **settings)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_auto_classes_build_our_models(model_type, tokenizer):
    config = tiny_config(model_type, tokenizer)
    expected_prefix = {"hft-textcnn": "TextCNN", "hft-rnn": "RNN", "hft-attention": "Attention"}[model_type]
    lm_suffix = "ForCausalLM" if model_type == "hft-rnn" else "ForMaskedLM"
    built = {
        "Model": AutoModel.from_config(config),
        "ForSequenceClassification": AutoModelForSequenceClassification.from_config(config),
        lm_suffix: LM_AUTO_CLASS[model_type].from_config(config),
    }
    for suffix, model in built.items():
        assert type(model).__name__ == expected_prefix + suffix
        assert model.accepts_loss_kwargs is False
        assert set(config.auto_map) >= {"AutoConfig", "AutoModel", "AutoModelForSequenceClassification"}

    batch = tokenizer(["the movie was good", "bad"], padding=True, return_tensors="pt")
    assert "token_type_ids" in batch  # BERT-style input the models must tolerate
    classifier = built["ForSequenceClassification"].eval()
    output = classifier(**batch)
    assert output.logits.shape == (2, 2)
    as_tuple = classifier(**batch, return_dict=False)
    assert isinstance(as_tuple, tuple) and torch.equal(as_tuple[0], output.logits)
    base_output = built["Model"](**batch)
    assert base_output.last_hidden_state.shape[:2] == batch["input_ids"].shape
    assert base_output.pooler_output.shape[0] == 2


@pytest.mark.parametrize(
    "model_type, overrides",
    [
        ("hft-textcnn", {}),
        ("hft-rnn", {"cell": "lstm", "pooling": "mean"}),
        ("hft-rnn", {"cell": "gru", "pooling": "max", "num_layers": 2}),
        ("hft-rnn", {"cell": "lstm", "pooling": "last"}),
        ("hft-attention", {"pooling": "mean"}),
        ("hft-attention", {"pooling": "cls"}),
    ],
)
def test_padding_does_not_change_logits(model_type, overrides, tokenizer):
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(tiny_config(model_type, tokenizer, **overrides)).eval()
    with torch.no_grad():  # a non-zero padding row, so only the attention mask can keep padding out
        model.get_input_embeddings().weight[tokenizer.pad_token_id].normal_()
    texts = ["good", "the film was really quite bad", "a fine plot"]
    alone = torch.cat([model(**tokenizer(text, return_tensors="pt")).logits for text in texts])
    for side in ("right", "left"):
        tokenizer.padding_side = side
        batch = tokenizer(texts, padding="max_length", max_length=12, return_tensors="pt")
        torch.testing.assert_close(model(**batch).logits, alone, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(model(input_ids=batch["input_ids"]).logits, alone, rtol=1e-5, atol=1e-6)
    tokenizer.padding_side = "right"


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_problem_types_pick_bert_losses(model_type, tokenizer):
    batch = tokenizer(["good film", "bad film"], padding=True, return_tensors="pt")
    cases = {
        "single_label_classification": (2, torch.tensor([1, 0])),
        "multi_label_classification": (3, torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])),
        "regression": (1, torch.tensor([0.5, -1.0])),
    }
    for problem_type, (num_labels, labels) in cases.items():
        config = tiny_config(model_type, tokenizer, id2label=None, label2id=None, num_labels=num_labels)
        model = AutoModelForSequenceClassification.from_config(config).eval()
        output = model(**batch, labels=labels)
        assert model.config.problem_type == problem_type  # inferred from num_labels and the labels' dtype
        if problem_type == "single_label_classification":
            expected = torch.nn.functional.cross_entropy(output.logits, labels)
        elif problem_type == "multi_label_classification":
            expected = torch.nn.functional.binary_cross_entropy_with_logits(output.logits, labels)
        else:
            expected = torch.nn.functional.mse_loss(output.logits.squeeze(-1), labels)
        torch.testing.assert_close(output.loss, expected)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_lm_heads_are_tied_resizable_and_train(model_type, tokenizer, tmp_path):
    torch.manual_seed(0)
    config = tiny_config(model_type, tokenizer)
    model = LM_AUTO_CLASS[model_type].from_config(config)
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight

    input_ids = tokenizer(["the movie was really good"], return_tensors="pt")["input_ids"]
    labels = input_ids.clone()
    if model_type == "hft-rnn":
        assert model.config.bidirectional is False and config.bidirectional is True  # the caller's config is untouched
        # Causal: changing the last token leaves every earlier prediction unchanged.
        model.eval()
        changed = input_ids.clone()
        changed[0, -1] = tokenizer.convert_tokens_to_ids("bad")
        torch.testing.assert_close(model(changed).logits[:, :-1], model(input_ids).logits[:, :-1])
        model.train()
    else:
        # Masked LM: only the masked position is scored, the rest is ignored via -100.
        input_ids[0, 2] = tokenizer.mask_token_id
        labels[0, [0, 1, 3, 4, 5, 6]] = -100
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(8):
        loss = model(input_ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]

    # The transfer path: save the pretrained LM, reload it, and start a classifier from its backbone.
    model.eval()
    model.save_pretrained(tmp_path)
    reloaded = LM_AUTO_CLASS[model_type].from_pretrained(tmp_path).eval()
    assert reloaded.get_output_embeddings().weight is reloaded.get_input_embeddings().weight
    assert torch.equal(reloaded(input_ids).logits, model(input_ids).logits)
    classifier = AutoModelForSequenceClassification.from_pretrained(tmp_path, num_labels=3)
    for name, param in model.model.state_dict().items():
        assert torch.equal(classifier.model.state_dict()[name], param), name

    model.resize_token_embeddings(len(tokenizer) + 3)
    assert model.config.vocab_size == len(tokenizer) + 3
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert model(input_ids).logits.shape[-1] == len(tokenizer) + 3


def train_classifier(model, tokenizer, steps=25):
    """A few full-batch Adam steps on the good/bad task; returns the eval-mode loss before and after."""
    batch = tokenizer([text for text, _ in TRAIN_TEXTS], padding=True, return_tensors="pt")
    labels = torch.tensor([label for _, label in TRAIN_TEXTS])

    def eval_loss():
        model.eval()
        with torch.no_grad():
            return model(**batch, labels=labels).loss.item()

    before = eval_loss()
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        model(**batch, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return before, eval_loss()


PROBE_TEXTS = ["a really good movie", "the plot was awful", "bad"]


@pytest.fixture(scope="module")
def finetuned(tokenizer, tmp_path_factory):
    """Fine-tunes each model type, saves it with the tokenizer; returns {model_type: (dir, losses, probe logits)}."""
    results = {}
    for model_type in MODEL_TYPES:
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_config(tiny_config(model_type, tokenizer))
        losses = train_classifier(model, tokenizer)
        model.eval()
        with torch.no_grad():
            logits = model(**tokenizer(PROBE_TEXTS, padding=True, return_tensors="pt")).logits
        save_dir = tmp_path_factory.mktemp(model_type)
        model.save_pretrained(save_dir)
        tokenizer.save_pretrained(save_dir)
        torch.save({"texts": PROBE_TEXTS, "logits": logits}, save_dir / "expected.pt")
        results[model_type] = (save_dir, losses, logits)
    return results


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_finetune_save_reload_and_pipeline(model_type, finetuned, tokenizer):
    save_dir, (loss_before, loss_after), logits = finetuned[model_type]
    assert loss_after < 0.5 * loss_before

    module_name = {"hft-textcnn": "textcnn", "hft-rnn": "rnn", "hft-attention": "attention"}[model_type]
    saved = {path.name for path in save_dir.iterdir()}
    assert {f"configuration_{module_name}.py", f"modeling_{module_name}.py", "config.json"} <= saved

    reloaded = AutoModelForSequenceClassification.from_pretrained(save_dir).eval()
    with torch.no_grad():
        reloaded_logits = reloaded(**tokenizer(PROBE_TEXTS, padding=True, return_tensors="pt")).logits
    assert torch.equal(reloaded_logits, logits)

    classify = pipeline("text-classification", model=str(save_dir))
    predictions = classify(PROBE_TEXTS)
    assert [p["label"] for p in predictions] == [ID2LABEL[i] for i in logits.argmax(-1).tolist()]
    assert [p["label"] for p in predictions] == ["positive", "negative", "negative"]


# ----- token classification heads -----

NER_TAGS = {0: "O", 1: "B-POS", 2: "I-POS", 3: "B-NEG", 4: "I-NEG"}
SENTIMENT = {"good": "POS", "great": "POS", "fine": "POS", "bad": "NEG", "awful": "NEG", "poor": "NEG"}
TAGGING_TEXTS = [text for text, _ in TRAIN_TEXTS] + [
    "the film was quite good", "the plot is quite poor", "quite great", "quite awful film", "a fine movie"]


def sentiment_tags(words):
    """Sentiment words are entities; "quite" before one opens it (a two-word entity: B- then I-)."""
    tags = []
    for i, word in enumerate(words):
        after = SENTIMENT.get(words[i + 1]) if i + 1 < len(words) else None
        if word == "quite" and after:
            tags.append(f"B-{after}")
        elif word in SENTIMENT:
            tags.append(f"{'I' if i and words[i - 1] == 'quite' else 'B'}-{SENTIMENT[word]}")
        else:
            tags.append("O")
    return tags


def tagging_batch(tokenizer, texts):
    """Right-padded word-level batch with per-token labels (-100 at [CLS], [SEP] and padding)."""
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    tag_ids = {name: i for i, name in NER_TAGS.items()}
    labels = torch.full_like(batch["input_ids"], -100)
    for row, text in enumerate(texts):
        tags = sentiment_tags(text.split())
        labels[row, 1:len(tags) + 1] = torch.tensor([tag_ids[t] for t in tags])
    return batch, labels


def tagger_config(model_type, tokenizer):
    return tiny_config(model_type, tokenizer, id2label=NER_TAGS, label2id={t: i for i, t in NER_TAGS.items()})


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_token_classification_heads(model_type, tokenizer):
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_config(tagger_config(model_type, tokenizer)).eval()
    assert type(model).__name__.endswith("ForTokenClassification")
    assert "AutoModelForTokenClassification" in model.config.auto_map
    assert getattr(model, HEAD_MODULES[model_type]).out_features == len(NER_TAGS)
    with torch.no_grad():  # a non-zero padding row, so only the attention mask can keep padding out
        model.get_input_embeddings().weight[tokenizer.pad_token_id].normal_()

    texts = ["the movie was quite good", "bad", "a fine plot"]
    batch, labels = tagging_batch(tokenizer, texts)
    output = model(**batch, labels=labels)
    assert output.logits.shape == (*batch["input_ids"].shape, len(NER_TAGS))
    expected = torch.nn.functional.cross_entropy(output.logits.view(-1, len(NER_TAGS)), labels.view(-1))
    torch.testing.assert_close(output.loss, expected)  # -100 positions are ignored

    alone = [model(**tokenizer(text, return_tensors="pt")).logits[0] for text in texts]
    for side in ("right", "left"):
        tokenizer.padding_side = side
        padded = tokenizer(texts, padding="max_length", max_length=10, return_tensors="pt")
        logits = model(**padded).logits
        for row, expected_row in enumerate(alone):
            real = padded["attention_mask"][row].bool()
            torch.testing.assert_close(logits[row][real], expected_row, rtol=1e-5, atol=1e-6)
    tokenizer.padding_side = "right"


@pytest.fixture(scope="module")
def finetuned_taggers(tokenizer, tmp_path_factory):
    """Trains a tagger of each type, saves it with the tokenizer; returns {model_type: (dir, losses, logits)}."""
    batch, labels = tagging_batch(tokenizer, TAGGING_TEXTS)
    results = {}
    for model_type in MODEL_TYPES:
        torch.manual_seed(0)
        model = AutoModelForTokenClassification.from_config(tagger_config(model_type, tokenizer))
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        model.eval()
        with torch.no_grad():
            before = model(**batch, labels=labels).loss.item()
        model.train()
        for _ in range(150):
            model(**batch, labels=labels).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        model.eval()
        with torch.no_grad():
            after = model(**batch, labels=labels).loss.item()
            logits = model(**tokenizer(PROBE_TAGGING, padding=True, return_tensors="pt")).logits
        save_dir = tmp_path_factory.mktemp(f"{model_type}-tagger")
        model.save_pretrained(save_dir)
        tokenizer.save_pretrained(save_dir)
        torch.save({"texts": PROBE_TAGGING, "logits": logits, "auto_class": "AutoModelForTokenClassification"},
                   save_dir / "expected.pt")
        results[model_type] = (save_dir, (before, after), logits)
    return results


PROBE_TAGGING = ["the film was quite good", "a really awful film", "quite great"]  # from the training texts


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_taggers_learn_reload_and_group_entities_in_the_pipeline(model_type, finetuned_taggers, tokenizer):
    save_dir, (loss_before, loss_after), logits = finetuned_taggers[model_type]
    assert loss_after < 0.2 * loss_before
    assert "modeling_" + {"hft-textcnn": "textcnn", "hft-rnn": "rnn", "hft-attention": "attention"}[model_type] + \
        ".py" in {path.name for path in save_dir.iterdir()}
    reloaded = AutoModelForTokenClassification.from_pretrained(save_dir).eval()
    with torch.no_grad():
        assert torch.equal(reloaded(**tokenizer(PROBE_TAGGING, padding=True, return_tensors="pt")).logits, logits)

    tag = pipeline("token-classification", model=str(save_dir), aggregation_strategy="simple")
    for text, row in zip(PROBE_TAGGING, logits):
        words = text.split()
        predicted = [NER_TAGS[i] for i in row[1:len(words) + 1].argmax(-1).tolist()]
        assert predicted == sentiment_tags(words)  # fitted, two-word entities included
        groups = [(g["entity_group"], g["word"]) for g in tag(text)]
        assert groups == [(e["type"], e["text"]) for e in entities_from_tags(words, predicted)]


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_lora_token_classification_saves_the_head(model_type, tokenizer):
    model = AutoModelForTokenClassification.from_config(tagger_config(model_type, tokenizer))
    # TOKEN_CLS adds peft's default heads ("classifier", "score") to modules_to_save: ours is "classifier".
    peft_model = get_peft_model(
        model, LoraConfig(task_type="TOKEN_CLS", r=2, target_modules=DEFAULT_LORA_TARGETS[model_type]))
    trainable = [name for name, param in peft_model.named_parameters() if param.requires_grad]
    assert any(f".{HEAD_MODULES[model_type]}.modules_to_save." in name for name in trainable)
    assert not any("lora_" not in name and "modules_to_save" not in name for name in trainable)
    batch, labels = tagging_batch(tokenizer, ["quite good film", "bad"])
    peft_model(**batch, labels=labels).loss.backward()


REMOTE_LOADER = textwrap.dedent(
    """
    import importlib.abc, sys

    class BlockHfTransfer(importlib.abc.MetaPathFinder):
        # Stands in for a clean environment even if hf_transfer is installed into the venv.
        def find_spec(self, name, path=None, target=None):
            if name == "hf_transfer" or name.startswith("hf_transfer."):
                raise ModuleNotFoundError(name)

    sys.meta_path.insert(0, BlockHfTransfer())
    try:
        import hf_transfer
        sys.exit("hf_transfer is importable: not a clean environment")
    except ModuleNotFoundError:
        pass

    import torch
    import transformers
    from transformers import AutoModel, AutoTokenizer

    for save_dir in sys.argv[1:]:
        expected = torch.load(save_dir + "/expected.pt")
        auto_class = getattr(transformers, expected.get("auto_class", "AutoModelForSequenceClassification"))
        model = auto_class.from_pretrained(save_dir, trust_remote_code=True).eval()
        assert model.__module__.startswith("transformers_modules."), model.__module__
        tokenizer = AutoTokenizer.from_pretrained(save_dir)
        with torch.no_grad():
            logits = model(**tokenizer(expected["texts"], padding=True, return_tensors="pt")).logits
        assert torch.equal(logits, expected["logits"]), (save_dir, logits, expected["logits"])
        base = AutoModel.from_pretrained(save_dir, trust_remote_code=True)
        assert type(base).__name__.endswith("Model"), type(base).__name__
        assert "hf_transfer" not in sys.modules
    print("remote code OK")
    """
)


def test_saved_directories_load_without_hf_transfer(finetuned, finetuned_taggers, tmp_path):
    script = tmp_path / "load_remote.py"
    script.write_text(REMOTE_LOADER)
    save_dirs = [str(trained[model_type][0]) for trained in (finetuned, finetuned_taggers) for model_type in MODEL_TYPES]
    # -I: isolated mode, no PYTHONPATH, no user site, no cwd/script dir on sys.path (the repo is not reachable).
    result = subprocess.run(
        [sys.executable, "-I", str(script), *save_dirs],
        cwd=tmp_path,
        env={
            "HF_HOME": str(tmp_path / "hf_home"),  # the remote-code module cache goes here, not into ~/.cache
            "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": "1",
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "remote code OK" in result.stdout


def test_trainer_with_gradient_accumulation_lowers_loss(tokenizer, tmp_path):
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(tiny_config("hft-textcnn", tokenizer))
    features = [
        {**tokenizer(text, padding="max_length", max_length=8), "labels": label} for text, label in TRAIN_TEXTS
    ]
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=6,
        gradient_accumulation_steps=2,
        max_steps=12,
        learning_rate=1e-2,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=features)
    assert trainer.model_accepts_loss_kwargs is False
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_default_lora_targets_are_accepted_by_peft(model_type, tokenizer):
    model = AutoModelForSequenceClassification.from_config(tiny_config(model_type, tokenizer))
    targets = DEFAULT_LORA_TARGETS[model_type]
    peft_model = get_peft_model(
        model, LoraConfig(r=2, target_modules=targets, modules_to_save=[HEAD_MODULES[model_type]])
    )
    trainable = [name for name, param in peft_model.named_parameters() if param.requires_grad]
    for target in targets:
        assert any(f".{target}.lora_" in name for name in trainable), target
    assert any(f".{HEAD_MODULES[model_type]}.modules_to_save." in name for name in trainable)
    assert not any("lora_" not in name and "modules_to_save" not in name for name in trainable)
    batch = tokenizer(["good film", "bad"], padding=True, return_tensors="pt")
    peft_model(**batch, labels=torch.tensor([1, 0])).loss.backward()


# ----- word vectors -----

VECTORS = {"good": [1.0, 2.0, 3.0], "film": [0.5, 0.5, 0.5], "ing": [9.0, 9.0, 9.0], "the": [-1.0, 0.0, 1.0]}


def write_text_vectors(path, header=False):
    lines = [f"{word} {' '.join(str(v) for v in vector)}" for word, vector in VECTORS.items()]
    if header:
        lines.insert(0, f"{len(VECTORS)} 3")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_npy_parquet_vectors(folder):
    folder.mkdir(parents=True)
    np.save(folder / "glove_6B_3d_emb.npy", np.array(list(VECTORS.values()), dtype=np.float32))
    pq.write_table(pa.table({"index": list(VECTORS)}), folder / "glove_6B_index.parquet")
    return folder


def test_load_word_vectors_reads_all_layouts(tmp_path):
    expected = np.array(list(VECTORS.values()), dtype=np.float32)
    glove = load_word_vectors(write_text_vectors(tmp_path / "glove.txt"))
    word2vec = load_word_vectors(write_text_vectors(tmp_path / "w2v.txt", header=True))
    folder = load_word_vectors(write_npy_parquet_vectors(tmp_path / "pkg" / "data"))
    package_root = load_word_vectors(tmp_path / "pkg")  # the wheel's layout keeps the files in data/
    for words, vectors in (glove, word2vec, folder, package_root):
        assert list(words) == list(VECTORS)
        np.testing.assert_array_equal(np.asarray(vectors), expected)


@pytest.mark.parametrize(
    "content, message",
    [
        ("good 1 2 3\nbad 1 2\n", "line 2"),
        ("2 3\ngood 1 2 3\nbad 1 2 3 4\n", "line 3"),
        ("good 1 2 3\nbad 1 x 3\n", "line 2"),
        ("", "no word vectors"),
        ("1 3\n", "no word vectors"),
    ],
)
def test_bad_vector_files_raise_one_clear_line(tmp_path, content, message):
    path = tmp_path / "vectors.txt"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as error:
        load_word_vectors(path)
    assert "\n" not in str(error.value)


def test_missing_or_inconsistent_vector_sources_raise(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_word_vectors(tmp_path / "nope.txt")
    with pytest.raises(ValueError, match=r"exactly one '\*emb\*.npy'"):
        load_word_vectors(tmp_path)
    folder = write_npy_parquet_vectors(tmp_path / "short")
    pq.write_table(pa.table({"index": ["good", "film"]}), folder / "glove_6B_index.parquet")
    with pytest.raises(ValueError, match="lists 2 words"):
        load_word_vectors(folder)


def wordpiece_tokenizer():
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "Good", "film", "##ing", "zzz"]
    vocab = {token: i for i, token in enumerate(tokens)}
    backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]"
    )


@pytest.mark.parametrize("freeze", [False, True])
def test_init_embeddings_from_vectors_aligns_vocab(tmp_path, freeze):
    tokenizer = wordpiece_tokenizer()
    config = AutoConfig.for_model("hft-rnn", vocab_size=len(tokenizer), pad_token_id=0, embedding_dim=3, hidden_size=4)
    model = AutoModelForSequenceClassification.from_config(config)
    before = model.get_input_embeddings().weight.detach().clone()

    report = init_embeddings_from_vectors(model, tokenizer, write_text_vectors(tmp_path / "v.txt"), freeze=freeze)

    # 5 regular tokens: "the" as-is, "Good" lowercased, "film" as-is, "##ing" stripped; "zzz" unknown.
    assert report == {"vocab_size": 5, "matched": 4, "coverage": 0.8, "dim": 3}
    weight = model.get_input_embeddings().weight
    vocab = tokenizer.get_vocab()
    for token, word in [("the", "the"), ("Good", "good"), ("film", "film"), ("##ing", "ing")]:
        assert weight[vocab[token]].tolist() == VECTORS[word]
    for special in ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]:
        assert torch.equal(weight[vocab[special]], before[vocab[special]])
    assert not torch.equal(weight[vocab["zzz"]], before[vocab["zzz"]])  # redrawn on the vectors' scale
    assert weight.requires_grad is (not freeze)


def test_init_embeddings_rejects_mismatches(tokenizer):
    vectors = (list(VECTORS), np.array(list(VECTORS.values()), dtype=np.float32))
    for model_type, size_name in [("hft-textcnn", "embedding_dim"), ("hft-attention", "hidden_size")]:
        model = AutoModelForSequenceClassification.from_config(tiny_config(model_type, tokenizer))
        with pytest.raises(ValueError, match=f"dimension 3 .* {size_name}=3") as error:
            init_embeddings_from_vectors(model, tokenizer, vectors)
        assert "\n" not in str(error.value)
    small = AutoModelForSequenceClassification.from_config(
        tiny_config("hft-rnn", tokenizer, vocab_size=5, embedding_dim=3)
    )
    with pytest.raises(ValueError, match="resize_token_embeddings"):
        init_embeddings_from_vectors(small, tokenizer, vectors)
