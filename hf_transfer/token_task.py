"""Token classification as a task family for the one run path (hf_transfer.tasks): tagged words in, entities out.

The same interface as `tasks.TextClassification` (load_data, tokenize, data_collator, evaluate, record), so that
registering it in `tasks.TASKS` lets `run_classify` train a tagger with every backbone and strategy; plus what the
backbone and adapter layers need to know of the task: the Auto class, peft's task type and the head modules of
each family's ...ForTokenClassification in transformers 5.24.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from transformers import DataCollatorForTokenClassification

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
    peft_task_type: ClassVar[str] = "TOKEN_CLS"  # peft adds "classifier" and "score" to modules_to_save itself
    # The head of each family's ...ForTokenClassification: it trains under every strategy and is saved with an
    # adapter. Not the sequence heads: BERT's token head has no pooler, DistilBERT's no pre_classifier, GPT-2's is
    # `classifier` (not `score`), T5's is `classifier` over a T5EncoderModel (no decoder, no classification_head),
    # ModernBERT's a `head` (dense + norm) before `classifier`.
    head_modules: ClassVar[dict[str, tuple[str, ...]]] = {
        "bert": ("classifier",), "distilbert": ("classifier",), "roberta": ("classifier",),
        "deberta-v2": ("classifier",), "electra": ("classifier",), "gpt2": ("classifier",), "llama": ("score",),
        "t5": ("classifier",), "modernbert": ("head", "classifier"),
        "hft-textcnn": ("classifier",), "hft-rnn": ("classifier",), "hft-attention": ("classifier",),
    }
    # Byte-level BPE tokenizers read pre-split words as words only when loaded with add_prefix_space=True (in
    # 5.24 GPT-2's too, whatever its docstring says); subwords.encode_words refuses them otherwise.
    tokenizer_kwargs: ClassVar[dict[str, dict]] = {"roberta": {"add_prefix_space": True},
                                                   "gpt2": {"add_prefix_space": True},
                                                   "llama": {"add_prefix_space": True}}

    @staticmethod
    def load_data(data_config) -> TokenTaskData:
        return load_token_data(data_config)

    @staticmethod
    def tokenize(task: TokenTaskData, tokenizer, data_config):
        """Windows of first-subword-labelled words (hf_transfer.subwords); rows carry word_index / sentence /
        unk_words besides the model inputs, which the Trainer drops before collating (not forward arguments)."""
        return tokenize_token_splits(task, tokenizer, data_config.max_length, data_config.stride,
                                     data_config.label_subwords)

    @staticmethod
    def data_collator(tokenizer):
        return DataCollatorForTokenClassification(tokenizer)  # pads labels with -100, on the tokenizer's side

    @staticmethod
    def evaluate(trainer, task: TokenTaskData, tokenized, splits=EVAL_SPLITS) -> tuple[dict[str, dict], list[dict]]:
        """(entity_report per split with the split's window facts under "windows", predictions.jsonl rows): one
        prediction per word, from the window where the word has the most context. The model must see right-padded
        input (what hf_transfer.backbones sets)."""
        metrics, rows = {}, []
        for split in splits:
            encoded = tokenized[split]
            per_word = word_logits(predict_logits(trainer, encoded), encoded["word_index"], encoded["sentence"],
                                   num_words=[len(words) for words in task.splits[split]["tokens"]])
            probabilities = [torch.softmax(torch.as_tensor(logits, dtype=torch.float32), -1).numpy()
                             for logits in per_word]
            predicted = [np.argmax(p, axis=-1).tolist() for p in probabilities]
            names = [[task.label_names[t] for t in tags] for tags in predicted]
            metrics[split] = {**entity_report(names, task.tag_names(split)), "windows": window_facts(encoded)}
            rows += token_prediction_rows(task, split, predicted, probabilities)
        return metrics, rows

    @staticmethod
    def record(task: TokenTaskData) -> dict:
        """The `task` section of metrics.json: source, tag names, entity types, split sizes and the data facts
        (tag scheme read, repaired tags, tokens and entities per split, overlap with train)."""
        return {"dataset": task.source, "description": task.description, "label_names": task.label_names,
                "entity_types": task.entity_types, "split_sizes": task.sizes(), "data_facts": task.facts()}
