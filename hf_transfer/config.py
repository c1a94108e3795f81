"""Every run config, in one place: dataclasses filled from a YAML file plus `key=value` command-line overrides.

    load_config(ClassifyConfig, "recipes/configs/classify.yaml", ["train.epochs=3", "data.dataset=my.csv"])

Nested sections use dotted keys on the command line: `train.epochs=3 data.dataset=my.csv`. Each field carries its
help text (`hf-transfer classify --help` prints them), allowed values are declared once in the field's type
(`Literal[...]`) and checked when the config is loaded, and rules between fields are checked in `__post_init__`,
before any data or model loads.

How values are read: YAML, with two differences from PyYAML's YAML 1.1 rules, so that a value means what was
written. (1) A key typed as text keeps the text as written: `language=no` is Norwegian, `data.labels=[yes, no,
null]` are three label names; only a text key that may be empty (`str | None`) reads a bare `null` as empty.
(2) Elsewhere only `true` / `false` are booleans (YAML 1.2), so `yes`, `no`, `on` and `off` stay words in
free-form options too; `1e-4` is a number.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .errors import UserError, first_line

Precision = Literal["auto", "bf16", "fp16", "fp32"]
DELIMITER_NAMES = {"comma": ",", "semicolon": ";", "tab": "\t", "\\t": "\t", "pipe": "|"}
# transformers 5.24's integrations (transformers.integrations.integration_utils.INTEGRATION_TO_CALLBACK)
ReportTo = Literal["azure_ml", "clearml", "codecarbon", "comet_ml", "dagshub", "dvclive", "flyte", "kubeflow",
                   "mlflow", "neptune", "swanlab", "tensorboard", "trackio", "wandb"]


def setting(default: Any = dataclasses.MISSING, *, help: str, factory: Any = dataclasses.MISSING) -> Any:
    """A config field with its help text (what `--help` prints)."""
    return field(default=default, default_factory=factory, metadata={"help": help})


def _positive(owner: str, **values) -> None:
    for key, value in values.items():
        if value is not None and value <= 0:
            raise UserError(f"{owner}{key} must be positive, got {value}")


def _fraction(owner: str, **values) -> None:
    for key, value in values.items():
        if value is not None and not 0 < value < 1:
            raise UserError(f"{owner}{key} must lie between 0 and 1, got {value}")


# ---------------------------------------------------------------------------------------------------------------
# Sections shared by several runs


@dataclass
class DataConfig:
    """Where the examples come from and how they are split (`data.*`)."""

    dataset: str = setting("rotten-tomatoes", help="dataset asset name, local CSV/TSV/JSON/JSONL/Parquet file or "
                                                   "folder of train.*/validation.*/test.*, or Hub dataset id")
    text_columns: list[str] | None = setting(None, help="one text column or a pair; null: the asset's default, "
                                                        "else [text] (token data: the column of word lists, [tokens])")
    label_column: str | None = setting(None, help="column of label names, ids or lists (multi-label); null: the "
                                                  "asset's default, else label (token data: tags, else ner_tags)")
    labels: list[str] | None = setting(None, help="fix the label set and its order; null: sorted labels of the "
                                                  "train split (token data: the entity types)")
    exclude_labels: list[str] | None = setting(None, help="rows with these labels are dropped; null: the asset's "
                                                          "default (token data: these entity types are tagged O)")
    train_split: str = setting("train", help="split to train on")
    validation_split: str | None = setting(None, help="null: 'validation' if present, else carved from train")
    test_split: str | None = setting(None, help="null: 'test' if present, else carved from train")
    test_size: float = setting(0.2, help="share of the data held out as the stratified test split when the data "
                                         "has none")
    validation_size: float = setting(0.1, help="share of what is left after the test split held out for validation")
    seed: int = setting(42, help="seed of the splits made here")
    max_length: int = setting(128, help="tokens per text; longer texts are cut as data.truncation says")
    max_train_samples: int | None = setting(None, help="stratified subsample of the train split, for quick runs")
    subsample_seed: int | None = setting(None, help="seed of the max_train_samples subsample, drawn nested "
                                                    "(hf_transfer.sampling: for one seed the first 16 are among the "
                                                    "first 64) without moving the validation and test splits; null: "
                                                    "data.seed")
    max_eval_samples: int | None = setting(None, help="stratified subsample of the validation and test splits")
    empty_text: Literal["error", "drop"] = setting("error", help="what an example with empty text does: stop the "
                                                                 "run (error) or leave the data (drop)")
    # Token classification (tagged words, hf_transfer/token_data.py and subwords.py)
    tag_scheme: Literal["auto", "iob1", "iob2", "bioes"] = setting(
        "auto", help="token tags as written, converted to IOB2: iob1, iob2, bioes (BILOU too), or auto: bioes if "
                     "E-/S- tags occur, else iob2 if a B- tag opens an entity, else iob1")
    invalid_tags: Literal["repair", "error"] = setting(
        "repair", help="token tags: an I- tag that continues no entity of its type (after O) starts one, as IOB1 "
                       "reads it (repair, counted in metrics.json), or stops the run (error)")
    conll_tag_column: int = setting(-1, help="CoNLL column files: 0-based column of the tags (-1: the last); the "
                                             "words are column 0")
    label_subwords: Literal["auto", "first", "all"] = setting(
        "auto", help="token tags: label the first subword of each word, or all of them (later ones take the I- "
                     "tag); auto: the strategy's choice for tagging (all for full fine-tuning, first otherwise, as "
                     "measured on wnut16); predictions always come from the first")
    stride: int | None = setting(None, help="token tags: subword tokens of context that consecutive windows of a "
                                            "sentence longer than max_length share; null: max_length // 4")
    truncation: Literal["head", "head+tail", "chunks"] = setting(
        "head", help="texts longer than max_length: keep the first tokens (head), the first quarter and the last "
                     "three quarters of the budget (head+tail, Sun et al. 2019's best for long reviews; one text "
                     "column), or windows whose predictions are pooled (chunks)")
    label_case: Literal["merge", "keep", "error"] = setting(
        "merge", help="labels that differ only in case (Positive, positive): merge them into the most frequent "
                      "spelling, keep them apart, or stop the run (error); each case is reported")
    delimiter: str | None = setting(None, help="column separator of CSV/TSV files: comma, semicolon, tab, pipe or "
                                               "the character itself; null: detected among , ; tab |")

    def __post_init__(self):
        _fraction("data.", test_size=self.test_size, validation_size=self.validation_size)
        _positive("data.", max_length=self.max_length, max_train_samples=self.max_train_samples,
                  max_eval_samples=self.max_eval_samples)
        if self.stride is not None and not 0 <= self.stride < self.max_length:
            raise UserError(f"data.stride={self.stride} must lie in [0, data.max_length={self.max_length})")
        if self.text_columns is not None and not 1 <= len(self.text_columns) <= 2:
            raise UserError(f"data.text_columns takes one text column or a pair of them, got {self.text_columns}")
        if self.delimiter is not None:
            self.delimiter = DELIMITER_NAMES.get(self.delimiter.lower(), self.delimiter)
            if len(self.delimiter) != 1 or self.delimiter in "\"\r\n":
                raise UserError(f"data.delimiter takes one character or comma, semicolon, tab, pipe, got "
                                f"{self.delimiter!r} (YAML reads a bare | as empty: write pipe)")


@dataclass
class TrainConfig:
    """Optimisation and precision (`train.*`); mapped onto transformers.TrainingArguments."""

    epochs: float | None = setting(None, help="passes over the training data; null: 2, or as many as a small training "
                                              "set needs, with a batch that fits it (the small-data rule, "
                                              "hf_transfer/schedule.py)")
    learning_rate: float | None = setting(None, help="peak learning rate; null: the strategy's default (full 1e-4, "
                                                     "frozen 2e-3, LoRA 2e-3, ...)")
    batch_size: int = setting(32, help="examples per device per step; the global batch is batch_size x processes x "
                                       "gradient_accumulation_steps")
    eval_batch_size: int = setting(256, help="examples per device per evaluation step")
    gradient_accumulation_steps: int = setting(1, help="micro-batches per optimiser step")
    weight_decay: float = setting(0.01, help="AdamW weight decay (not on biases and norms)")
    warmup_ratio: float = setting(0.06, help="share of the optimiser steps spent warming the learning rate up")
    lr_scheduler: str = setting("linear", help="transformers scheduler name: linear, cosine, constant, ...")
    max_grad_norm: float = setting(1.0, help="gradient clipping norm")
    max_steps: int = setting(-1, help="optimiser steps; > 0 overrides epochs")
    precision: Precision = setting("auto", help="auto: bf16 where the GPU or CPU (avx512_bf16/AMX) has it and the "
                                                "model is not tiny, fp16 on older GPUs, else fp32")
    group_by_length: bool = setting(True, help="length-bucketed batches of a fixed size: little padding")
    # Issue 19 (MiniLM-L6, the default task's 9,221 examples, seeds 42 and 1-5): without dropout the test accuracy
    # tied, 0.834 against 0.832 with MiniLM's 0.1, and the step was 1.34x faster: dropout's masks (torch's bernoulli_)
    # took 10% of a bf16 training step on CPU. Issue 17's small-data rule was measured with the checkpoint's dropout,
    # so small training sets keep it (hf_transfer.schedule.resolve_dropout).
    dropout: float | None = setting(None, help="probability of every dropout of the model (its config's *dropout* "
                                               "and *_pdrop settings not set in model_config); null: 0 for full "
                                               "fine-tuning on 3,200 or more training examples, else the "
                                               "checkpoint's own")
    attn_implementation: str | None = setting(None, help="attention kernel while training, as transformers names it "
                                                         "(eager, sdpa, ...); null: eager on CPU up to max_length 128 "
                                                         "for models that default to sdpa (faster training steps), "
                                                         "else the model's default")
    # true keeps pretrained word embeddings (11.7M of MiniLM-L6's 22.7M parameters) fixed: no dense embedding gradient
    # and half the optimizer work per step (benchmarks/bench_training.py --profile: 1.12x faster steps), but on the
    # default task it cost accuracy: with dropout test 0.830 against 0.834 trained (seeds 42, 1, 2), without it (the
    # recipe since issue 19) 0.827 against 0.836 (seeds 42, 1). No effect on randomly initialised embeddings.
    freeze_word_embeddings: bool = setting(False, help="keep pretrained word embeddings fixed (faster steps; about "
                                                       "-1 test point on the default task)")
    # Activation memory grows with the padded tokens of a pass (rows x longest), ~0.7 MB per token for MiniLM at
    # 512 tokens in bf16. MiniLM at max_length 512, batch 32 peaked at 10.7 GB without a budget, 3.7 GB at 4096 and
    # 2.3 GB at 2048 (benchmarks/bench_training.py --memory). At 2048 the default recipe (batch 32, texts of at most
    # 78 tokens) splits only the few batches longer than 64 tokens; evaluation batches get 8x the budget.
    max_batch_tokens: int | None = setting(2048, help="padded tokens (rows x longest) per forward/backward pass; a "
                                                      "longer batch runs as several micro-batches with the same "
                                                      "optimiser step (null: whole batches)")
    gradient_checkpointing: bool = setting(False, help="recompute activations in the backward pass: less memory, "
                                                       "~30% more compute")
    # Dense AdamW reads and writes all 11.7M of MiniLM's word-embedding weights and both moments every step, and the
    # dense gradient zero-fills 47 MB every pass, where a batch touches a few hundred rows. Deferred steps give dense
    # AdamW's weights (training.DeferredRowsAdamW) with the optimizer phase 21 ms instead of 32 (bench_training.py
    # --profile, three paired runs on an AMD EPYC: 2.3-8.8% less time per step; whole epochs 1.32x C on the mean of
    # four runs; test accuracy 0.8338 against 0.8336 over six seeds); lazy Adam was as fast and scored -0.4 test
    # points on the default task (README).
    embedding_updates: Literal["deferred", "dense", "lazy"] = setting(
        "deferred", help="how AdamW updates the input word embeddings: deferred (dense AdamW's result; the steps of "
                         "rows without a gradient are applied when the row is next read, from a row-sparse "
                         "gradient: on CPU, one process, embeddings not tied; else dense), dense (every row every "
                         "step), lazy (only the rows of each batch's tokens: lazy Adam, another optimiser)")
    # glibc returns every freed block of 32 MB or more to the kernel and page-faults it back in when a tensor of that
    # size is allocated again: ~15,000 page faults per step of the default recipe (MiniLM's dense 47 MB
    # word-embedding gradient, every step), none with reuse once the heap has grown: whole epochs 1.27x faster on an
    # AMD EPYC, peak memory at max_length 512 2.8 GB against 2.4 (benchmarks/bench_training.py, README).
    reuse_freed_memory: bool = setting(True, help="on CPU (glibc), freed memory stays in the process heap for reuse "
                                                  "while training instead of being returned to the system and "
                                                  "page-faulted back in every step; returned when training ends")
    logging_steps: int = setting(50, help="optimiser steps between loss log entries")
    checkpoint_steps: int | None = setting(200, help="optimiser steps between checkpoints in OUTPUT_DIR.partial; "
                                                     "rerunning an interrupted run resumes from the last one (null: "
                                                     "no checkpoints)")
    eval_every_epoch: bool = setting(False, help="evaluate on the validation split after every epoch")
    seed: int = setting(42, help="seed of the training randomness (initialisation, dropout, batch order)")
    threads: int | None = setting(None, help="torch intra-op threads; null: torch's default (a share of the cores "
                                             "under accelerate launch)")
    report_to: list[ReportTo] = setting(factory=list, help="experiment trackers, as transformers names them "
                                                           "(TrainingArguments.report_to): tensorboard, mlflow, "
                                                           "wandb, trackio, ...; empty: none")
    class_weight: Literal["balanced"] | dict[str, float] | None = setting(
        None, help="weights of the labels in the loss, for imbalanced single-label data: balanced (n / (labels x "
                   "count), as scikit-learn's) or {label: weight} (unnamed labels 1); null: every example counts once")
    select_best: bool | None = setting(
        None, help="keep the checkpoint with the best validation accuracy (evaluated 20 times in the run) instead "
                   "of the last; null: when the small-data rule changes the schedule and there is a validation split")

    def __post_init__(self):
        _positive("train.", epochs=self.epochs, learning_rate=self.learning_rate, batch_size=self.batch_size,
                  eval_batch_size=self.eval_batch_size, gradient_accumulation_steps=self.gradient_accumulation_steps,
                  logging_steps=self.logging_steps, threads=self.threads, checkpoint_steps=self.checkpoint_steps,
                  max_batch_tokens=self.max_batch_tokens)
        if not 0 <= self.warmup_ratio < 1:
            raise UserError(f"train.warmup_ratio must lie in [0, 1), got {self.warmup_ratio}")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise UserError(f"train.dropout must lie in [0, 1), got {self.dropout}")


@dataclass
class ZeroShotBaselineConfig:
    """A zero-shot run on the same test split, added to a classify run's metrics and card (`zeroshot_baseline.*`)."""

    method: str | None = setting(None, help="nli | lm | seq2seq | embedding; null: no zero-shot baseline")
    model: str | None = setting(None, help="checkpoint to use zero-shot; null: the classify run's model")
    options: dict[str, Any] = setting(factory=dict, help="the method's options (template, verbalizers, "
                                                         "label_descriptions, ...)")


@dataclass
class TeacherConfig:
    """A zero-shot teacher for few labelled examples (`teacher.*`; hf_transfer/distill.py says the recipe).

    The teacher's probabilities for the train texts whose labels the run does not use (data.max_train_samples) and
    for `unlabelled` texts are computed once and cached; calibrated on the labelled examples, they are the soft
    targets a student distils from, before it fine-tunes on the labelled examples alone.
    """

    method: str | None = setting(None, help="nli | lm | seq2seq | embedding: the zero-shot method that labels the "
                                            "texts; null: no teacher")
    model: str | None = setting(None, help="the teacher's checkpoint; null: the classify run's model")
    options: dict[str, Any] = setting(factory=dict, help="the method's options, as zeroshot's (template, "
                                                         "verbalizers, label_descriptions, ...)")
    ensemble: list[dict[str, Any]] = setting(factory=list, help="more prompts or zero-shot teachers, each {method, "
                                             "model, options} (method and model default to the teacher's; options "
                                             "are not inherited): their label log-probabilities add to the "
                                             "teacher's before calibration (a product of experts)")
    unlabelled: str | None = setting(None, help="a file of unlabelled in-domain texts the teacher labels too: .txt "
                                                "(one per line), .csv, .jsonl, .parquet, ...")
    unlabelled_text_columns: list[str] | None = setting(None, help="the text field(s) of teacher.unlabelled's "
                                                                   "records; null: data.text_columns, else text")
    calibration: Literal["platt", "none"] = setting("platt", help="platt: the teacher's log-probabilities rescaled "
                                                                  "and shifted to fit the labelled examples; none")
    batch_size: int = setting(16, help="texts per forward pass of the teacher")
    distill_epochs: float = setting(10.0, help="passes over the teacher-labelled and labelled texts (issue "
                                    "17's recipe: 10 against 6, +0.6 / -0.5 / -0.1 test points at K=16/32/128 over "
                                    "3 seeds, K=16 lifted above the teacher; 1.6x the time)")
    distill_batch_size: int = setting(64, help="examples per optimiser step while distilling")
    average_from: float | None = setting(None, help="end the distillation with the average of the weights at its "
                                                    "evaluations from this fraction of its steps on (tail weight "
                                                    "averaging), not the best single checkpoint; null: the best")
    gold_steps: int = setting(100, help="at least this many optimiser steps of fine-tuning on the labelled "
                                        "examples alone after distilling (0: none)")
    gold_learning_rate: float | None = setting(None, help="learning rate of that fine-tuning; null: the run's "
                                                          "learning rate / 5 (2e-5 for full fine-tuning)")
    input_noise: float | None = setting(None, help="while distilling, each text loses this share of its tokens, "
                                                   "drawn afresh each time it is read (Noisy Student's input noise); "
                                                   "0: none; null: 0.1, or 0 for linear-probe (one regression)")

    def __post_init__(self):
        _positive("teacher.", batch_size=self.batch_size, distill_epochs=self.distill_epochs,
                  distill_batch_size=self.distill_batch_size, gold_learning_rate=self.gold_learning_rate)
        if self.average_from is not None and not 0 <= self.average_from < 1:
            raise UserError(f"teacher.average_from is a fraction of the distillation's steps in [0, 1), got "
                            f"{self.average_from}: e.g. 0.5, or null for the best checkpoint")
        if self.gold_steps < 0:
            raise UserError(f"teacher.gold_steps must be 0 or more, got {self.gold_steps}")
        if self.input_noise is not None and not 0 <= self.input_noise < 1:
            raise UserError(f"teacher.input_noise is the share of tokens dropped, in [0, 1), got {self.input_noise}: "
                            "e.g. 0.1, or 0 for none")
        for item in self.ensemble:
            if (not isinstance(item, dict) or set(item) - {"method", "model", "options"}
                    or not isinstance(item.get("options", {}), dict)):
                raise UserError(f"teacher.ensemble entries are {{method, model, options}} mappings (options a "
                                f"mapping), got {item!r}: e.g. teacher.ensemble=[{{options: {{template: ...}}}}]")
        if not self.method and (self.unlabelled or self.model or self.options or self.ensemble):
            raise UserError("teacher.* is set but teacher.method is not: name the zero-shot method, e.g. "
                            "teacher.method=lm")


# ---------------------------------------------------------------------------------------------------------------
# Run configs


@dataclass
class ClassifyConfig:
    """A fine-tuning run: `recipes/classify.py`, `hf-transfer classify`, `hf_transfer.run_classify`."""

    task: Literal["text-classification", "token-classification"] = setting(
        "text-classification", help="text-classification (a label per text) or token-classification (a tag per "
                                    "word: named entities, from token data)")
    model: str = setting("minilm-l6", help="model asset name, local folder, Hub id, or hft-textcnn | hft-rnn | "
                                           "hft-attention (built from config)")
    tokenizer: str | None = setting(None, help="null: the model's own; minilm-l6's WordPiece for hft-* models built "
                                               "from config")
    model_config: dict[str, Any] = setting(factory=dict, help="config overrides, e.g. {embedding_dim: 50, "
                                                              "dropout: 0.3}")
    head: Literal["classification", "text-to-text"] = setting(
        "classification", help="classification, or text-to-text (encoder-decoder models such as T5 write the "
                               "label's words)")
    label_words: dict[str, str] = setting(factory=dict, help="head=text-to-text: target text per label (default: "
                                                             "its name)")
    vectors: str | None = setting(None, help="static word vectors for the input embeddings: glove-6b-50d or a "
                                             "word2vec/GloVe text file")
    freeze_vectors: bool = setting(False, help="keep the vector-initialised embeddings fixed (Kim 2014's "
                                               "CNN-static)")
    trust_remote_code: bool = setting(False, help="run the Python code a checkpoint ships (config.json's auto_map); "
                                                  "read it first. Our hft-* models need no remote code")
    strategy: str = setting("full", help="full | frozen | linear-probe | adapter | gradual-unfreeze | scratch | setfit")
    strategy_options: dict[str, Any] = setting(factory=dict, help="the strategy's options, e.g. {method: lora, r: 8}")
    data: DataConfig = setting(factory=DataConfig, help="")
    train: TrainConfig = setting(factory=TrainConfig, help="")
    baselines: list[Literal["majority", "tfidf"]] = setting(
        factory=lambda: ["majority", "tfidf"], help="cheap baselines fitted on the run's own split and shown on its "
                                                    "card with what transfer bought over them (TF-IDF: seconds)")
    zeroshot_baseline: ZeroShotBaselineConfig = setting(factory=ZeroShotBaselineConfig, help="")
    teacher: TeacherConfig = setting(factory=TeacherConfig, help="")
    output_dir: str | None = setting(None, help="null: outputs/<model>-<dataset>-<strategy>")
    overwrite_output_dir: bool = setting(False, help="replace a finished output folder of the same name (false: "
                                                     "such a run is refused before it starts)")
    resume: bool = setting(True, help="resume an interrupted run of the same settings from its last checkpoint in "
                                      "OUTPUT_DIR.partial (false: start over)")
    license: str = setting("apache-2.0", help="license in the model card")
    language: str = setting("en", help="language code in the model card")
    push_to_hub: bool = setting(False, help="publish the output folder to the Hub when the run ends")
    hub_repo_id: str | None = setting(None, help="ORG/NAME to publish to (push_to_hub=true)")
    hub_private: bool = setting(False, help="create the Hub repo private")

    def __post_init__(self):
        if self.freeze_vectors and not self.vectors:
            raise UserError("freeze_vectors=true needs vectors=NAME_OR_FILE; "
                            "to freeze the embeddings without vectors set train.freeze_word_embeddings=true")
        if self.label_words and self.head != "text-to-text":
            raise UserError("label_words only apply to head=text-to-text: set head=text-to-text or drop label_words")
        if self.task == "token-classification":
            if self.head == "text-to-text":
                raise UserError("head=text-to-text writes one label per text; task=token-classification tags every "
                                "word: use head=classification")
            if self.zeroshot_baseline.method:
                raise UserError("zeroshot_baseline scores whole texts; task=token-classification gets the "
                                "memorisation baseline instead: drop zeroshot_baseline.method")


@dataclass
class TokenClassifyConfig(ClassifyConfig):
    """A token-classification run (named entities): `recipes/token_classify.py`, `hf-transfer token-classify`.

    ClassifyConfig with other defaults (task token-classification, the wnut16 data): one run path for both.
    """

    task: Literal["text-classification", "token-classification"] = setting(
        "token-classification", help="token-classification (a tag per word) or text-classification")
    data: DataConfig = setting(factory=lambda: DataConfig(dataset="wnut16"), help="")


ZEROSHOT_SPLITS = ("validation", "test")


@dataclass
class ZeroShotConfig:
    """A zero-shot evaluation: `recipes/zeroshot.py`, `hf-transfer zeroshot`, `hf_transfer.zeroshot.run_zeroshot`."""

    method: str = setting("embedding", help="nli | lm | seq2seq | embedding")
    model: str = setting("minilm-l6", help="model asset name, local folder or Hub id")
    options: dict[str, Any] = setting(factory=dict, help="the method's options: template, verbalizers, "
                                                         "label_descriptions, ...; a dataset asset fills in "
                                                         "its label descriptions")
    candidates: list[dict[str, Any]] = setting(
        factory=list, help="option sets to choose among on the validation split (never test), each over options, "
                           "e.g. [{template: ...}, {label_descriptions: {...}}]; the scores of all are recorded")
    trust_remote_code: bool = setting(False, help="run the Python code a checkpoint ships (config.json's auto_map); "
                                                  "read it first")
    data: DataConfig = setting(factory=DataConfig, help="")
    splits: list[Literal["validation", "test"]] = setting(factory=lambda: list(ZEROSHOT_SPLITS),
                                                          help="held-out splits to score; test is required")
    batch_size: int = setting(32, help="texts per forward pass (nli: times the number of labels)")
    threads: int | None = setting(None, help="torch intra-op threads; null leaves torch's default")
    output_dir: str | None = setting(None, help="null: outputs/zeroshot-<method>-<model>-<dataset>")
    overwrite_output_dir: bool = setting(False, help="replace a finished output folder of the same name (false: "
                                                     "such a run is refused before it starts)")
    license: str = setting("apache-2.0", help="license in the card")
    language: str = setting("en", help="language code in the card")

    def __post_init__(self):
        if "test" not in self.splits or not set(self.splits) <= set(ZEROSHOT_SPLITS):
            raise UserError(f"splits={self.splits} must include test and name only {' and '.join(ZEROSHOT_SPLITS)}: "
                            "zero-shot evaluates on the held-out splits")
        if self.data.truncation != "head":  # the methods tokenize on their own, keeping each text's first tokens
            raise UserError(f"data.truncation={self.data.truncation} does not apply to zero-shot, which reads the "
                            "first data.max_length tokens of each text: set data.truncation=head")
        _positive("", batch_size=self.batch_size, threads=self.threads)


PretrainArchitecture = Literal["bert", "gpt2", "t5", "hft-attention", "hft-textcnn", "hft-rnn"]


@dataclass
class PretrainConfig:
    """A pretraining run: `recipes/pretrain.py`, `hf-transfer pretrain`."""

    architecture: PretrainArchitecture = setting("bert", help="bert | gpt2 | t5 | hft-attention | hft-textcnn | "
                                                              "hft-rnn")
    corpus: str = setting("shakespeare", help="corpus asset name, a .txt file, or a folder of *.txt files")
    tokenizer: str | None = setting(None, help="null: train one on the corpus; else a tokenizer folder or model "
                                               "asset to reuse")
    from_checkpoint: str | None = setting(None, help="null: random weights; else a model folder or asset to "
                                                     "continue pretraining")
    vocab_size: int = setting(8000, help="vocabulary of a tokenizer trained here")
    model_config: dict[str, Any] = setting(factory=dict, help="passed to the architecture's config class")
    max_seq_length: int = setting(128, help="tokens per training block")
    eval_fraction: float = setting(0.01, help="share of the blocks held out for the eval loss")
    epochs: float = setting(1.0, help="passes over the corpus")
    max_steps: int = setting(-1, help="optimiser steps; > 0 overrides epochs")
    batch_size: int = setting(32, help="blocks per step")
    learning_rate: float = setting(5e-4, help="peak learning rate")
    warmup_ratio: float = setting(0.05, help="share of the steps spent warming up")
    weight_decay: float = setting(0.01, help="AdamW weight decay")
    save_steps: int = setting(200, help="checkpoint interval in steps; a re-run with the same output_dir resumes "
                                        "from the last one")
    logging_steps: int = setting(50, help="steps between loss log entries")
    precision: Precision = setting("auto", help="auto: bf16 on GPUs and on CPUs with native bf16 for hidden >= 256, "
                                                "else fp32")
    threads: int | None = setting(None, help="torch intra-op threads; null: torch's default (a share of the cores "
                                             "under accelerate launch)")
    # A masked-LM step frees and reallocates its logits (batch x length x vocabulary, 131 MB in fp32 at the BERT
    # recipe's defaults) and their gradient: 80 steps of pretrain_bert.yaml took ~18 million page faults with
    # glibc's defaults, 0.5-1.2 million with reuse, and ran 1.47-1.53x faster (README's performance section).
    reuse_freed_memory: bool = setting(True, help="on CPU (glibc), freed memory stays in the process heap for reuse "
                                                  "while training (train.reuse_freed_memory of classify)")
    seed: int = setting(42, help="seed of initialisation, masking and batch order")
    output_dir: str | None = setting(None, help="null: outputs/pretrain-<architecture>-<corpus>")

    def __post_init__(self):
        _fraction("", eval_fraction=self.eval_fraction)
        if self.max_seq_length < 8:
            raise UserError(f"max_seq_length={self.max_seq_length} is too short to learn from: use 8 or more "
                            "(e.g. 128)")
        for key in ("batch_size", "save_steps", "logging_steps", "vocab_size", "threads"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise UserError(f"{key}={getattr(self, key)} must be a positive integer")


# ---------------------------------------------------------------------------------------------------------------
# The transfer study (`hf-transfer compare`): a grid of classify and zero-shot runs


@dataclass
class EvalSetConfig:
    """An out-of-domain test set of a study (an item of `eval_sets`): scored by every run, never trained on."""

    name: str | None = setting(None, help="its name in tables and plots (required)")
    dataset: str | None = setting(None, help="dataset asset, file, folder or Hub id, as data.dataset (required)")
    text_columns: list[str] | None = setting(None, help="null: the asset's default, else [text]")
    label_column: str | None = setting(None, help="null: the asset's default, else label")
    split: str | None = setting(None, help="the split to score; null: every row of every split")
    label_map: dict[str, str] = setting(factory=dict, help="its label -> the study task's label, e.g. {1: fresh, "
                                                           "-1: rotten}; unlisted labels must be task labels")


@dataclass
class ExecutorConfig:
    """Where a study's runs execute (`executor.*`): one after another here, or on a Ray cluster."""

    kind: Literal["local", "ray"] = setting("local", help="local: one run after another in this process; ray: "
                                                          "runs in parallel on Ray (pip install "
                                                          "hf-transfer-learning[ray])")
    address: str | None = setting(None, help="ray: null starts a local Ray instance of num_workers CPUs; 'auto' or "
                                             "ray://HOST:PORT joins a cluster (its nodes must see output_dir)")
    num_workers: int = setting(2, help="ray, local instance: CPUs it gets, hence runs at once")
    cpus_per_run: float = setting(1.0, help="ray: CPUs each run reserves")
    gpus_per_run: float = setting(0.0, help="ray: GPUs each run reserves")

    def __post_init__(self):
        _positive("executor.", num_workers=self.num_workers, cpus_per_run=self.cpus_per_run)
        if self.gpus_per_run < 0:
            raise UserError(f"executor.gpus_per_run must be 0 or more, got {self.gpus_per_run}")


ARM_KINDS = ("classify", "zero-shot")
# What a study sets in every run itself: the task and its split (from `data`), the subsample, the seed, the folder.
STUDY_KEYS = {"task", "data", "output_dir", "overwrite_output_dir", "push_to_hub", "hub_repo_id", "hub_private",
              "splits", "license", "language"}
ARM_DATA_KEYS = {"max_length"}  # the data keys an arm may still change
ARM_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"  # arm names become run folder names
QUICK_SIZES = 2  # `quick`: the smallest two sizes, the first seed, the quick_arms


@dataclass
class CompareConfig:
    """A transfer study: `hf-transfer compare`, `hf_transfer.study.run_study`.

    Every arm runs at every size with every seed (zero-shot arms once: they use no training examples) on the same
    task and test split; a size draws a stratified, nested subsample of the train split (hf_transfer.sampling),
    and each seed draws its own. `arm_values` gives an arm's run config before the study fills in size and seed.
    """

    task: Literal["text-classification", "token-classification"] = setting(
        "text-classification", help="the task of every arm: text-classification, or token-classification (named "
                                    "entities: classify arms only, scored by entity F1)")
    model: str = setting("minilm-l6", help="the backbone every arm uses unless it names its own model")
    data: DataConfig = setting(factory=DataConfig, help="")
    train: TrainConfig = setting(factory=TrainConfig, help="")
    arms: dict[str, dict[str, Any]] = setting(
        factory=lambda: {"full": {"strategy": "full"}, "adapter": {"strategy": "adapter"},
                         "linear-probe": {"strategy": "linear-probe"}},
        help="name -> arm: {kind: classify, KEY: VALUE...} with any classify keys (strategy, strategy_options, "
             "model, head, train: {...}, ...) or {kind: zero-shot, method: M, model: ..., options: {...}}")
    sizes: list[int | Literal["all"]] = setting(factory=lambda: [16, 64, 256, 1024, "all"],
                                                help="training examples per run: numbers and/or all")
    seeds: list[int] = setting(factory=lambda: [1, 2, 3], help="one run per seed: its train.seed and "
                                                               "data.subsample_seed (the test split stays fixed)")
    eval_sets: list[EvalSetConfig] = setting(factory=list, help="out-of-domain test sets: [{name, dataset, "
                                                                "text_columns, label_column, split, label_map}]")
    metric: Literal["accuracy", "f1_macro", "f1_micro"] | None = setting(
        None, help="the score of plots and recommendations; null: accuracy for texts, entity F1 (f1_micro) for "
                   "token-classification (whose f1_macro averages over entity types)")
    small_data_rule: bool = setting(True, help="fit batch size and optimiser steps to each size "
                                               "(hf_transfer.schedule.small_data_schedule)")
    executor: ExecutorConfig = setting(factory=ExecutorConfig, help="")
    output_dir: str | None = setting(None, help="the study folder; null: outputs/study-<model>-<dataset>")
    quick: bool = setting(False, help=f"a first look: the {QUICK_SIZES} smallest sizes, the first seed, quick_arms")
    quick_arms: list[str] | None = setting(None, help="arms of a quick study; null: the first three")
    license: str = setting("apache-2.0", help="license in the study card and every run's card")
    language: str = setting("en", help="language code in the cards")

    def __post_init__(self):
        for key in ("max_train_samples", "subsample_seed"):
            if getattr(self.data, key) is not None:
                raise UserError(f"data.{key} is set by the study for each run (from sizes and seeds): remove it")
        self.eval_sets = [_eval_set(item, i) for i, item in enumerate(self.eval_sets)]
        tagging = self.task == "token-classification"
        if self.metric is None:
            self.metric = "f1_micro" if tagging else "accuracy"
        if tagging and self.metric == "accuracy":
            raise UserError("metric=accuracy would score taggers by token accuracy, high even for one that finds no "
                            "entity: use metric=f1_micro (entity F1) or f1_macro")
        if not tagging and self.metric == "f1_micro":
            raise UserError("metric=f1_micro is the entity F1 of task=token-classification; a text study takes "
                            "accuracy or f1_macro")
        if tagging and self.eval_sets:
            raise UserError("out-of-domain eval_sets are scored for texts only: drop eval_sets for "
                            "task=token-classification")
        if len({e.name for e in self.eval_sets} | {"test", "validation"}) != len(self.eval_sets) + 2:
            raise UserError("eval_sets need distinct names other than test and validation")
        if self.quick:
            self.seeds = self.seeds[:1]
            self.sizes = sorted(s for s in self.sizes if s != "all")[:QUICK_SIZES] or self.sizes[:1]
            chosen = self.quick_arms if self.quick_arms is not None else list(self.arms)[:3]
            unknown = [name for name in chosen if name not in self.arms]
            if unknown:
                raise UserError(f"quick_arms names {unknown[0]!r}, which is not an arm ({', '.join(self.arms)})")
            self.arms = {name: self.arms[name] for name in chosen}
        if not self.arms:
            raise UserError("the study has no arms: name at least one, e.g. arms={full: {strategy: full}}")
        if not self.seeds or not self.sizes:
            raise UserError(f"the study's grid is empty ({'seeds' if not self.seeds else 'sizes'}=[]): "
                            "give at least one")
        for key in ("sizes", "seeds"):
            values = getattr(self, key)
            if len(set(values)) != len(values):
                raise UserError(f"{key}={values} repeats a value: list each once")
        _positive("", sizes=min((s for s in self.sizes if s != "all"), default=None))
        for name in self.arms:
            kind, values = self.arm_values(name)
            from_dict(ClassifyConfig if kind == "classify" else ZeroShotConfig, values, prefix=f"arms.{name}.")

    def arm_values(self, name: str) -> tuple[str, dict[str, Any]]:
        """(kind, run config as a dict): the study's model, data and train sections under the arm's own keys.

        Raises UserError for an arm that is not a mapping, of an unknown kind, or setting a key the study owns.
        """
        arm = self.arms[name]
        if not re.fullmatch(ARM_NAME, name):
            raise UserError(f"arm name {name!r} is not a folder name: use letters, digits, '.', '_' and '-'")
        if not isinstance(arm, dict):
            raise UserError(f"arms.{name} must be a mapping of config keys, e.g. {{strategy: full}}; got {arm!r}")
        arm = dict(arm)
        kind = arm.pop("kind", "classify")
        if kind not in ARM_KINDS:
            raise UserError(f"arms.{name}.kind={kind!r}: kind takes one of {', '.join(ARM_KINDS)}")
        if kind != "classify" and self.task == "token-classification":
            raise UserError(f"arms.{name} is a {kind} arm, which labels whole texts: a task=token-classification "
                            "study takes classify arms only (its baseline is memorisation)")
        for section in ("data", "train"):
            if not isinstance(arm.get(section, {}), dict):
                raise UserError(f"arms.{name}.{section} is a section: set its keys, e.g. {{{section}: {{KEY: VALUE}}}}")
        owned = sorted(set(arm) & (STUDY_KEYS - {"data"}) | {f"data.{k}" for k in set(arm.get("data") or {})
                                                              - ARM_DATA_KEYS})
        if owned:
            raise UserError(f"arms.{name}.{owned[0]} is set by the study for every run: drop it (the study's "
                            "data.*, output_dir, license and language apply to every arm)")
        values: dict[str, Any] = {"model": self.model, "data": {**to_dict(self.data), **(arm.pop("data", None) or {})},
                                  "license": self.license, "language": self.language}
        if kind == "classify":
            values["task"] = self.task
            values["train"] = {**to_dict(self.train), **(arm.pop("train", None) or {})}
        else:
            values["threads"] = self.train.threads
        values.update(arm)
        return kind, values


def _eval_set(item: Any, index: int) -> EvalSetConfig:
    if isinstance(item, EvalSetConfig):
        config = item
    elif isinstance(item, dict):
        config = from_dict(EvalSetConfig, item, prefix=f"eval_sets[{index}].")
    else:
        raise UserError(f"eval_sets[{index}] must be a mapping {{name, dataset, label_map, ...}}, got {item!r}")
    for key in ("name", "dataset"):
        if not getattr(config, key):
            raise UserError(f"eval_sets[{index}].{key} is required")
    return config


# ---------------------------------------------------------------------------------------------------------------
# Loading


def to_dict(config) -> dict[str, Any]:
    """A config dataclass as plain nested dicts and lists (dataclasses.asdict): what metrics.json records."""
    return dataclasses.asdict(config)


def load_config(cls, path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()):
    """Build `cls` from an optional YAML file, then apply `key=value` overrides in order.

    Raises UserError naming the key for an unknown key, a value of the wrong type or outside the allowed values,
    and a missing or unreadable file.
    """
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"config file {path} not found: pass an existing YAML file with --config")
        try:
            values = _parse_yaml(path.read_text())
        except yaml.YAMLError as err:
            raise UserError(f"config file {path} is not valid YAML ({first_line(err)}): fix the file") from None
        values = {} if values is None else values
        if not isinstance(values, dict):
            raise UserError(f"config file {path} must hold a mapping of keys to values, not {type(_plain(values)).__name__}")
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UserError(f"override {item!r} is not of the form key=value (for example train.epochs=3)")
        target = values
        *parents, leaf = key.split(".")
        for part in parents:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise UserError(f"override {item!r}: {part!r} is not a section")
        try:
            target[leaf] = _parse_yaml(raw) if raw != "" else ""
        except yaml.YAMLError:
            target[leaf] = raw
    return from_dict(cls, values)


def from_dict(cls, values: dict[str, Any], prefix: str = ""):
    """`cls(**values)` with every value checked against its field's type; nested dataclasses from nested dicts.

    Values may be plain Python (strategy and method options come as dicts from code) or as read from YAML here.
    """
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    values = {str(key): value for key, value in values.items()}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UserError(
            f"unknown config key {prefix + unknown[0]!r}: known keys are {', '.join(prefix + k for k in sorted(known))}"
        )
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise UserError(f"config key {prefix + name!r} is a section: set its keys, e.g. {prefix + name}.KEY=VALUE")
            kwargs[name] = from_dict(hint, value, prefix=f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, hint, prefix + name)
    return cls(**kwargs)


def config_help(cls, prefix: str = "", defaults=None) -> list[tuple[str, str, str]]:
    """(dotted key, default as YAML, help) for every key of a config class, sections expanded; `defaults` is the
    instance whose values are shown (default: cls(); a section shows its owner's default, e.g. TokenClassifyConfig's
    data.dataset)."""
    rows = []
    hints = typing.get_type_hints(cls)
    defaults = cls() if defaults is None else defaults
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            rows += config_help(hint, prefix=f"{prefix}{f.name}.", defaults=getattr(defaults, f.name))
            continue
        default = yaml.safe_dump(getattr(defaults, f.name), default_flow_style=True, width=1000).strip()
        rows.append((prefix + f.name, default.removesuffix("\n...").strip(), f.metadata.get("help", "")))
    return rows


# ---------------------------------------------------------------------------------------------------------------
# YAML as written


class _Plain:
    """An unquoted YAML scalar: the text as written and its YAML 1.2 value."""

    __slots__ = ("text", "value")

    def __init__(self, text: str, value: Any):
        self.text, self.value = text, value

    def __repr__(self) -> str:
        return repr(self.text)


_PLAIN_TAG = "tag:hf-transfer,plain"
_NULL = re.compile(r"~|null|Null|NULL|")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)")


class _Loader(yaml.SafeLoader):
    """SafeLoader that leaves unquoted scalars unresolved, so that the field's type decides what they mean."""

    def resolve(self, kind, value, implicit):
        if kind is yaml.ScalarNode and implicit[0]:
            return _PLAIN_TAG
        return super().resolve(kind, value, implicit)


_Loader.add_constructor(_PLAIN_TAG, lambda loader, node: _Plain(node.value, _yaml12_value(node.value)))


def _yaml12_value(text: str) -> Any:
    if _NULL.fullmatch(text):
        return None
    if text in _BOOL:
        return _BOOL[text]
    if _INT.fullmatch(text):
        return int(text, 0) if text.startswith(("0o", "0x")) else int(text)
    if _FLOAT.fullmatch(text):
        return float(text.lower().replace(".inf", "inf").replace(".nan", "nan"))
    return text


def _parse_yaml(text: str) -> Any:
    return _text_keys(yaml.load(text, Loader=_Loader))  # noqa: S506  a SafeLoader


def _text_keys(value: Any) -> Any:
    """Mapping keys as written (numbers stay numbers), so that overrides find the keys a file set."""
    if isinstance(value, dict):
        return {_key_text(k) if isinstance(k, _Plain) else k: _text_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_text_keys(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    """Plain Python from what _parse_yaml read: unquoted scalars take their YAML 1.2 value."""
    if isinstance(value, _Plain):
        return value.value
    if isinstance(value, dict):
        return {_key_text(k) if isinstance(k, _Plain) else k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _key_text(key: _Plain) -> Any:
    """Mapping keys: numbers stay numbers (`1: yes`), words stay words (`no: ...`)."""
    return key.value if isinstance(key.value, (int, float)) and not isinstance(key.value, bool) else key.text


def _describe(value: Any) -> str:
    return repr(value.text) if isinstance(value, _Plain) else repr(_plain(value))


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check `value` against a field type; text fields keep unquoted YAML scalars as written."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if _plain(value) is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key)
            except UserError as err:
                errors.append(err)
        raise errors[0]
    if hint is Any:
        return _plain(value)
    if origin is Literal:
        text = value.text if isinstance(value, _Plain) else value
        if text not in args:
            raise UserError(f"{key}={_describe(value)}: {key} takes one of {', '.join(map(str, args))}")
        return text
    if origin is list:
        if isinstance(value, (str, int, float, _Plain)):
            value = [value]  # `data.text_columns=review` means a list of one
        if not isinstance(value, list):
            raise UserError(f"config key {key!r} takes a list, got {_describe(value)}")
        return [_coerce(v, args[0], key) for v in value] if args else _plain(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise UserError(f"config key {key!r} takes a mapping, got {_describe(value)}")
        if not args:
            return _plain(value)
        key_hint, value_hint = args
        return {_coerce(k, key_hint, key) if key_hint is not Any else _plain(k): _coerce(v, value_hint, key)
                for k, v in value.items()}
    plain = _plain(value)
    if hint is bool:
        if isinstance(plain, bool):
            return plain
        raise UserError(f"config key {key!r} takes true or false, got {_describe(value)}")
    if hint in (int, float):
        if isinstance(plain, bool) or not isinstance(plain, (int, float)):
            raise UserError(f"config key {key!r} takes {'an integer' if hint is int else 'a number'}, "
                            f"got {_describe(value)}")
        if hint is int and not isinstance(plain, int):
            raise UserError(f"config key {key!r} takes an integer, got {_describe(value)}")
        return float(plain) if hint is float else plain
    if hint is str:
        if isinstance(value, _Plain):
            return value.text
        if isinstance(value, (dict, list)) or value is None:
            raise UserError(f"config key {key!r} takes a string, got {_describe(value)}")
        return str(value)
    return plain
