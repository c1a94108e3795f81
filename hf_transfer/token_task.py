"""Token classification as a task family for the one run path (hf_transfer.tasks): tagged words in, entities out.

The same interface as `tasks.TextClassification` (load_data, tokenize, data_collator, evaluate, record), so that
registering it in `tasks.TASKS` lets `run_classify` train a tagger with every backbone and strategy; plus what the
backbone and adapter layers need to know of the task: the Auto class and peft's task type (which picks the head
modules of each family's ...ForTokenClassification, in backbones.Family).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from transformers import DataCollatorForTokenClassification

from .baselines import memorization_baseline
from .inference import RECHECK_MARGIN, batched_logits, near_ties, own_forward
from .log import logger
from .metrics import entity_report
from .subwords import tokenize_token_splits, window_facts, word_logits
from .token_data import TokenTaskData, load_token_data, token_prediction_rows
from .training import predict_logits

EVAL_SPLITS = ("validation", "test")


class TokenClassification:
    """One IOB2 tag per word; entity-level precision, recall and F1 (seqeval) per split."""

    name: ClassVar[str] = "token-classification"
    result_kind: ClassVar[str] = "token-classification"  # RunResult.kind, which picks the card
    auto_class: ClassVar[str] = "AutoModelForTokenClassification"  # for every family, our backbones included
    # peft's task type; it also picks each family's token head (backbones.Family.token_head_modules), which trains
    # under every strategy and is saved with an adapter (peft adds classifier/score to modules_to_save itself).
    peft_task_type: ClassVar[str] = "TOKEN_CLS"
    split_into_words: ClassVar[bool] = True  # byte-level BPE tokenizers load with add_prefix_space=True

    @staticmethod
    def load_data(data_config) -> TokenTaskData:
        """Read and check the tagged sentences `data_config` names (token_data.load_token_data)."""
        return load_token_data(data_config)

    @staticmethod
    def tokenize(task: TokenTaskData, tokenizer, data_config):
        """Windows of labelled words (hf_transfer.subwords; data_config.label_subwords first or all: run_classify
        resolves auto per strategy first); rows carry word_index / sentence / unk_words besides the model inputs,
        which the Trainer drops before collating (not forward arguments)."""
        return tokenize_token_splits(task, tokenizer, data_config.max_length, data_config.stride,
                                     data_config.label_subwords)

    @staticmethod
    def data_collator(tokenizer):
        """transformers' DataCollatorForTokenClassification: pads input ids and labels (with -100, no loss) per batch.
        """
        return DataCollatorForTokenClassification(tokenizer)  # pads labels with -100, on the tokenizer's side

    @staticmethod
    def evaluate(trainer, task: TokenTaskData, tokenized, splits=EVAL_SPLITS) -> tuple[dict[str, dict], list[dict]]:
        """(entity_report per split with the split's window facts under "windows", predictions.jsonl rows): one
        prediction per word, from the window where the word has the most context. The model must see right-padded
        input (what hf_transfer.backbones sets).

        Tags are fp32-exact, as for whole texts (inference.recheck_near_ties): after a bf16/fp16 evaluation, every
        window of a sentence holding a word within RECHECK_MARGIN of a tie is run again in fp32, so that the stock
        fp32 pipeline and `hf-transfer predict` reproduce predictions.jsonl."""
        metrics, rows = {}, []
        for split in splits:
            encoded = tokenized[split]
            num_words = [len(words) for words in task.splits[split]["tokens"]]
            logits = predict_logits(trainer, encoded)
            per_word = word_logits(logits, encoded["word_index"], encoded["sentence"], num_words=num_words)
            unsure = [s for s, words in enumerate(per_word) if len(near_ties(words, multi_label=False))]
            if unsure and (trainer.args.bf16 or trainer.args.fp16):
                windows = np.flatnonzero(np.isin(np.asarray(encoded["sentence"]), unsure))
                with own_forward(trainer.model.eval()) as model:
                    exact = batched_logits(model, encoded.select(windows)[:], np.arange(len(windows)),
                                           trainer.processing_class.pad_token_id, trainer.args.device)
                logits = logits.copy()
                logits[windows] = -100.0
                logits[windows, :exact.shape[1]] = exact
                per_word = word_logits(logits, encoded["word_index"], encoded["sentence"], num_words=num_words)
                logger.info(f"{split}: {len(unsure)} of {len(per_word)} sentences hold a tag within {RECHECK_MARGIN} "
                            "logits of a tie (bf16's rounding could flip it): re-checked in fp32")
            probabilities = [torch.softmax(torch.as_tensor(logits, dtype=torch.float32), -1).numpy()
                             for logits in per_word]
            predicted = [np.argmax(p, axis=-1).tolist() for p in probabilities]
            names = [[task.label_names[t] for t in tags] for tags in predicted]
            metrics[split] = {**entity_report(names, task.tag_names(split)), "windows": window_facts(encoded)}
            rows += token_prediction_rows(task, split, predicted, probabilities)
        return metrics, rows

    @staticmethod
    def baselines(task: TokenTaskData, names) -> dict:
        """The memorisation baseline (baselines.memorization_baseline), which every token-classification run
        records; the text baselines `names` (majority, TF-IDF) classify whole texts and have no tagger form."""
        return {"memorization": memorization_baseline(task)}

    @staticmethod
    def record(task: TokenTaskData) -> dict:
        """The `task` section of metrics.json: source, tag names, entity types, split sizes and the data facts
        (tag scheme read, repaired tags, tokens and entities per split, overlap with train)."""
        return {"dataset": task.source, "description": task.description, "label_names": task.label_names,
                "entity_types": task.entity_types, "split_sizes": task.sizes(), "data_facts": task.facts()}
