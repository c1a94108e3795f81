"""metrics.json: the record of one run, read by cards, comparisons and publishing.

Schema (version 1) — every run kind writes the same top-level keys:

    schema_version   1
    kind             "classification" | "token-classification" | "zero-shot" | "pretraining"
    created          ISO 8601 time, UTC
    model            {name, location, base_model, model_type, family}; classification runs add head
                     ("classification" | "text-to-text"), tokenizer, pretrained (bool), vectors (null or {name, dim,
                     coverage, matched, vocab_size, frozen}), for text-to-text label_words, and for a backbone
                     `hf-transfer pretrain` wrote, pretraining {objective, corpus, from_random_weights,
                     optimizer_steps, tokens_seen, eval_perplexity}
    strategy         {name, description, transferred ("parameters" | "features" | "structure" | "none"), options}
    task             {dataset, description, text_columns, label_names, multi_label, split_sizes, data_facts}:
                     data_facts as hf_transfer.data.TaskData documents them (label_format, labels_stripped,
                     label_case, label_case_variants, carved_splits, subsampled, duplicate_texts, overlap,
                     truncation; keys present when they apply)
    metrics          {split: report}; a report holds accuracy, precision/recall/f1 _macro/_micro/_weighted,
                     per_class {label: {precision, recall, f1, support}}, confusion_matrix (single-label),
                     num_examples
    parameters       {trainable, total, trainable_fraction}
    compute          {train_time_s, train_examples_per_s, train_tokens_per_s, eval_time_s, total_time_s,
                      peak_memory_mb, precision, device, hardware, processes}: times and rates are this session's
                     (a resumed run counts the steps after its checkpoint, training.resumed_from_step)
    training         {epochs (null when train.max_steps overrode them), max_steps (only when set), learning_rate,
                     batch_size (over all processes and accumulation steps),
                     schedule_changes (only when the small-data rule changed the schedule: one line per change),
                     lr_scheduler, warmup_ratio, weight_decay, dropout (null: the checkpoint's own),
                     attn_implementation (the attention kernel it trained with; null: the model has no choice),
                     max_length, optimizer_steps, resumed_from_step (the checkpoint's step; 0 for a fresh run),
                     final_train_loss, log_history, selected_on_validation
                     (only when the run kept its best checkpoint: {evaluations, best_validation_accuracy})}
                     A run with a teacher (teacher.method, hf_transfer.distill) adds teacher {method, model,
                     options, ensemble [{method, model, options}] (teacher.ensemble's), calibration {method, a,
                     b}, texts {train_without_labels, unlabelled, gold},
                     unlabelled_file, labelled {what: {texts, cached}}} and stages [{name ("distil" | "gold"),
                     examples, optimizer_steps, learning_rate, batch_size, warmup_ratio, best_validation_accuracy,
                     best_step, train_loss; the distil stage adds input_noise (the share of its texts'
                     tokens deleted each epoch, 0: none), and teacher.average_from averaged_evaluations and
                     average_validation_accuracy}] (strategy=linear-probe: one stage {name
                     "probe", examples, optimizer_steps 0, C, gold_accuracy, validation_accuracy, train_loss}); its
                     optimizer_steps, final_train_loss and log_history (entries tagged with their stage) cover both
                     stages
    baselines        {name: {"method", "model", "metrics": {split: report}}}, maybe empty: majority and tfidf add
                     fit_time_s; "zero-shot METHOD" (zeroshot_baseline, test split only); a teacher run's "teacher
                     zero-shot METHOD" (validation and test) adds calibrated_accuracy {split: accuracy} and role
                     "teacher"
    config           the resolved run config
    seed             the training seed
    versions         {python, torch, transformers, datasets, evaluate, accelerate, peft, huggingface_hub,
                     hf-transfer-learning} (package versions; "not installed" where one is missing)

A "zero-shot" run (hf_transfer.zeroshot.run) fills these keys so:

    model            {name, location, base_model, model_type, family}
    strategy         {name "zero-shot", method, description, transferred "none", options, label_prompts (the text
                     each label is scored by), selection (only with candidates: {split "validation", candidates
                     [{options, validation_accuracy}], chosen (options)})}
    task             as classification
    parameters       trainable 0
    compute          train_* 0.0, processes 1
    training, baselines  {}
    seed             data.seed

A "token-classification" run (run_classify with task=token-classification: named entities) fills these keys so:

    model            as classification (head "classification": the family's ...ForTokenClassification)
    task             {dataset, description, label_names (IOB2 tags: "O", then B-/I- per type), entity_types,
                     split_sizes (sentences), data_facts: {tag_scheme (as read), repaired_tags {split: I- tags that
                     started an entity}, sentences, tokens (words) and entities {split: {type: count}} per split,
                     overlap_with_train {split: sentences also in train}}}
    metrics          {split: entity report}: precision/recall/f1 _micro/_macro/_weighted (entity level, seqeval's
                     default mode: CoNLL conlleval), per_class {entity type: {precision, recall, f1, support}},
                     strict {precision/recall/f1 _micro/_macro in strict IOB2 mode}, token_accuracy, num_examples
                     (sentences), num_tokens, num_entities (gold), num_predicted_entities, windows {sentences,
                     windows, sentences_windowed, unk_words}
    baselines        always {"memorization": {"method": "memorization", "model": null, "metrics": {split: entity
                     report without windows}}}: each word's most frequent training tag, unseen words O
    compute          as classification; examples are windows (a sentence longer than max_length is several)

A "pretraining" run (hf_transfer.pretraining) fills these keys with what pretraining has:

    model            {name (the architecture), location and base_model (of from_checkpoint; null from scratch),
                     model_type, family, pretrained (bool: continued from a checkpoint), tokenizer (the tokenizer or
                     from_checkpoint named, or "trained on the corpus"), vocab_size}
    strategy         {name "pretraining", objective ("mlm" | "causal" | "span"), description, transferred
                     ("parameters" | "none"), options: {mlm_probability, mask_replace_prob, random_replace_prob}
                     (mlm), {noise_density, mean_span_length} (span), {} (causal)}
    task             {dataset (the corpus), description, files, block_length (tokens), split_sizes {train, eval}
                     (blocks)}
    metrics          {"eval": {loss (mean cross-entropy, nats per predicted token: masked tokens, next tokens or
                     span targets), perplexity (exp(loss)), num_examples (blocks)}}
    compute          the keys above except train_examples_per_s; times and tokens/s are this session's (a resumed run
                     counts from its checkpoint)
    training         {epochs, max_steps, learning_rate, batch_size (over all processes), warmup_ratio, weight_decay,
                     max_seq_length, optimizer_steps, resumed_from_step, train_loss (this session's mean),
                     final_train_loss (last logging window), tokens_seen (non-pad input tokens, all sessions),
                     log_history}
    baselines        {}
"""

from __future__ import annotations

import datetime
import json
import platform
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
METRICS_FILE = "metrics.json"
VERSIONED_PACKAGES = ("torch", "transformers", "datasets", "evaluate", "accelerate", "peft", "huggingface_hub",
                      "hf-transfer-learning")


@dataclass
class RunResult:
    """One run's metrics.json: the sections of the module docstring's schema, one field each. `versions` and `created`
    (UTC) fill themselves."""

    kind: str
    model: dict[str, Any]
    strategy: dict[str, Any]
    task: dict[str, Any]
    metrics: dict[str, dict]
    parameters: dict[str, Any]
    compute: dict[str, Any]
    config: dict[str, Any]
    seed: int
    training: dict[str, Any] = field(default_factory=dict)
    baselines: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=lambda: package_versions())
    created: str = field(default_factory=lambda: datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    schema_version: int = SCHEMA_VERSION

    def save(self, output_dir: Path) -> Path:
        """Write OUTPUT_DIR/metrics.json (indented JSON; numpy and torch scalars as plain numbers); returns its path."""
        path = Path(output_dir) / METRICS_FILE
        path.write_text(json.dumps(asdict(self), indent=2, default=_jsonable) + "\n")
        return path

    @classmethod
    def load(cls, output_dir: Path) -> "RunResult":
        """Read OUTPUT_DIR/metrics.json back. Raises OSError (no file), ValueError (not JSON) or TypeError (keys that
        are not the schema's); publish turns those into a UserError."""
        data = json.loads((Path(output_dir) / METRICS_FILE).read_text())
        return cls(**data)


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def package_versions() -> dict[str, str]:
    """{python, and each VERSIONED_PACKAGES name: its installed version, or "not installed"}."""
    versions = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
