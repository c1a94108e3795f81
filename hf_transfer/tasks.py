"""Task families behind one run path: what differs between classifying whole texts and other tasks.

A task family reads its data, tokenizes it, picks the Auto class and peft task type of its models, evaluates
predictions and writes prediction rows. `hf_transfer.classify.run_classify` runs any of them with the same
backbones, strategies, training, run folder and cards (`config.task` picks one from TASKS).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from .baselines import majority_baseline, tfidf_baseline
from .data import TaskData, load_task_data, prediction_rows, tokenize_splits
from .inference import RECHECK_MARGIN, near_tie_rows, recheck_near_ties
from .log import logger
from .metrics import classification_report
from .training import predict_logits, predictions_from_logits

EVAL_SPLITS = ("validation", "test")
BASELINES = {"majority": majority_baseline, "tfidf": tfidf_baseline}


class TextClassification:
    """One label (or a set of labels) per text or text pair; accuracy, precision, recall and F1 per split."""

    name: ClassVar[str] = "text-classification"
    result_kind: ClassVar[str] = "classification"  # RunResult.kind, which picks the card
    auto_class: ClassVar[str] = "AutoModelForSequenceClassification"
    peft_task_type: ClassVar[str] = "SEQ_CLS"  # also picks the family's head modules (backbones.family_of)
    split_into_words: ClassVar[bool] = False  # texts, not pre-split words

    @staticmethod
    def load_data(data_config) -> TaskData:
        """Read, check and split `data_config`'s data (data.load_task_data; UserError for bad input)."""
        return load_task_data(data_config)

    @staticmethod
    def tokenize(task: TaskData, tokenizer, data_config):
        """The tokenized splits (data.tokenize_splits; UserError when a text has no tokens). With
        data.truncation=chunks a long text trains as several chunks with its label, and evaluation pools its chunks'
        logits (inference.pool_chunk_logits)."""
        tokenized = tokenize_splits(task, tokenizer, data_config.max_length, pooled_chunks=True)
        if "example_id" in tokenized["train"].column_names:
            tokenized["train"] = tokenized["train"].remove_columns("example_id")
        return tokenized

    @staticmethod
    def data_collator(tokenizer):
        """None: build_trainer's default, DataCollatorWithPadding (dynamic padding per batch)."""
        return None  # the Trainer's default: dynamic padding

    @staticmethod
    def evaluate(trainer, task: TaskData, tokenized, splits=EVAL_SPLITS, logits=None) -> tuple[dict[str, dict],
                                                                                          list[dict]]:
        """(report per split, predictions.jsonl rows): the trained model's predictions on each split, in order.

        Decisions are fp32-exact: after a bf16/fp16 evaluation the near-ties are run again in fp32
        (inference.recheck_near_ties), so that a stock fp32 client reproduces predictions.jsonl. Chunks of a long
        text (data.truncation=chunks) are pooled into one decision per text there too. `logits(split, tokenized
        split)` -> [rows, labels] fp32, when given, replaces the trainer's forward pass (a head on stored features:
        StrategySetup.head_logits).
        """
        metrics, rows = {}, []
        for split in splits:
            if logits is not None:
                decided, rechecked = near_tie_rows(logits(split, tokenized[split]), task.multi_label,
                                                     *_chunks(tokenized[split]))[0], 0
            else:
                decided, rechecked = recheck_near_ties(trainer, tokenized[split],
                                                         predict_logits(trainer, tokenized[split]), task.multi_label)
            if rechecked:
                logger.info(f"{split}: {rechecked} of {len(decided)} decisions within {RECHECK_MARGIN} logits of a "
                            "tie (bf16's rounding could flip them) re-checked in fp32")
            predicted, probabilities = predictions_from_logits(decided, task.multi_label)
            metrics[split] = classification_report(predicted, task.splits[split]["labels"], task.label_names,
                                                   task.multi_label)
            rows += prediction_rows(task, split, predicted, probabilities)
        return metrics, rows

    @staticmethod
    def baselines(task: TaskData, names) -> dict[str, dict]:
        """{name: {method, model, metrics, fit_time_s}}: the named cheap baselines (majority, tfidf) fitted on the
        train split and scored on the validation and test splits (hf_transfer.baselines)."""
        fitted = (BASELINES[name](task) for name in names)
        return {record["method"]: record for record in fitted}

    @staticmethod
    def record(task: TaskData) -> dict:
        """The `task` section of metrics.json."""
        return {"dataset": task.source, "description": task.description, "text_columns": task.text_columns,
                "label_names": task.label_names, "multi_label": task.multi_label, "split_sizes": task.sizes(),
                "data_facts": task.data_facts}


def _chunks(dataset) -> tuple:
    """(example_id per row, examples) of a tokenized split with a row per chunk (data.truncation=chunks); else ()."""
    if "example_id" not in dataset.column_names:
        return ()
    ids = np.asarray(dataset["example_id"])
    return ids, int(ids.max(initial=-1)) + 1


from .token_task import TokenClassification  # noqa: E402  (it reuses this module's building blocks, not this module)

TASKS = {family.name: family for family in (TextClassification, TokenClassification)}
