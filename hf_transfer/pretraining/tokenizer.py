"""The run's tokenizer: trained on the corpus with `tokenizers` (once, then cached), or reused."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from accelerate import PartialState
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from ..assets import cache_dir
from ..backbones import ResolvedModel, load_tokenizer, resolve_model
from ..config import PretrainConfig
from ..errors import UserError
from .architectures import Architecture

T5_SENTINELS = 100  # <extra_id_0> ... <extra_id_99>, as in the original T5 vocabulary


def prepare_tokenizer(config: PretrainConfig, architecture: Architecture, files: list[Path], resume_from: Path | None,
                      checkpoint: ResolvedModel | None, state: PartialState) -> PreTrainedTokenizerFast:
    """The run's tokenizer, the first that applies: a resumed run's own (saved in `resume_from`), the `tokenizer`
    the config names, the `checkpoint`'s own, or one trained on the corpus `files`.

    A tokenizer without a pad token gets its eos token as pad (GPT-2's custom). Raises UserError for a checkpoint
    without a tokenizer, and for one that lacks what the objective needs ([MASK] for masked LM; </s> and
    <extra_id_0> for span corruption).
    """
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
    if architecture.objective == "span" and (tokenizer.eos_token is None or not sentinel_ids(tokenizer)):
        raise UserError(f"tokenizer of {name!r} lacks </s> or <extra_id_0>, which T5 span corruption "
                        "needs: use a T5 tokenizer or leave tokenizer unset")
    if tokenizer.pad_token is None:  # GPT-2 style tokenizers ship without one; eos is the customary stand-in
        tokenizer.pad_token = tokenizer.eos_token


def corpus_tokenizer(files: list[Path], objective: str, vocab_size: int, state: PartialState) -> PreTrainedTokenizerFast:
    """A tokenizer trained on these files, trained once and then read from $HF_TRANSFER_CACHE/tokenizers.

    The cache key is the objective, `vocab_size` and each file's path, size and modification time. Training is not
    deterministic (ties between equally frequent merges fall either way), so every process of a run, and every
    later run on the same corpus, reads one saved copy; the datasets cache relies on that too.
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
    """A new tokenizer of about `vocab_size` tokens (fewer if the corpus is small), in each family's convention.

    mlm: lowercasing WordPiece with [PAD] [UNK] [CLS] [SEP] [MASK] and [CLS] text [SEP] templates (BERT).
    causal: byte-level BPE with <|endoftext|> as bos, eos, unk and pad (GPT-2; lossless on any text).
    span: Metaspace BPE (sentencepiece-style "▁" word starts) with <pad> </s> <unk>, then T5_SENTINELS sentinels
    <extra_id_N> with <extra_id_0> last, and </s> appended to every text (T5).
    """
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


def sentinel_ids(tokenizer) -> list[int]:
    """Ids of <extra_id_0>, <extra_id_1>, ... for as long as the tokenizer has them (T5's span sentinels)."""
    vocab = tokenizer.get_vocab()
    ids = []
    while f"<extra_id_{len(ids)}>" in vocab:
        ids.append(vocab[f"<extra_id_{len(ids)}>"])
    return ids
