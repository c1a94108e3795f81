"""The callable an executor runs for each job: the ordinary run, then its scores on the out-of-domain sets.

    runner = StudyRunner(eval_sets)
    runner(job)   # -> the finished run folder: metrics.json (the run) and eval_sets.json (its out-of-domain scores)

A job is finished when its folder holds metrics.json (and eval_sets.json with every out-of-domain set, when the
study has some): a run writes its folder under OUT.partial and renames it whole, so a study killed mid-run loses
only that run, and rerunning skips the finished ones.

Sharing work between runs:
- data and tokenization once per process (built): run_study turns hf_transfer.data.share_loaded_data on, and so does
  this callable in a Ray worker; every run's load_task_data / tokenize_splits then draws its train subsample from
  the splits and tokens loaded once (the log says "loading once" / "reusing"), with the rows and data facts of a
  fresh load;
- frozen features once per backbone and split (built): this callable turns the feature store on
  (hf_transfer.features, kept in memory and in STUDY/features), so linear-probe and frozen runs on a pooled
  classifier (strategies.on_features) and zero-shot method=embedding forward each split once per backbone, the
  whole train split included (a size's subsample reads its rows), in fp32 and eval mode: the frozen head trains on
  fixed features, without backbone dropout, and evaluation applies the head to stored features. Their
  out-of-domain scores (score_run) read the store too; the log says "features: ... computed" or "... reused";
- teacher labels once per data set and model: hf_transfer.teacher caches them already.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset

from ..backbones import family_of
from ..data import share_loaded_data
from ..features import classifier_reader, share_features
from ..inference import batched_logits
from ..metrics import classification_report
from ..results import METRICS_FILE, RunResult
from ..runtime import device
from ..strategies.layers import output_layer
from ..strategies.on_features import head_logits
from ..training import predictions_from_logits
from .checks import EvalSet
from .grid import Job

EVAL_SETS_FILE = "eval_sets.json"
MAX_BATCH_TOKENS = 4096  # as hf_transfer.predict: padded tokens per inference batch


def is_finished(folder: Path, eval_set_names=()) -> bool:
    """The run's metrics.json is there, and its scores on every named out-of-domain set."""
    folder = Path(folder)
    if not (folder / METRICS_FILE).is_file():
        return False
    return not eval_set_names or set(eval_set_names) <= set(read_eval_sets(folder))


def read_eval_sets(folder: Path) -> dict[str, dict]:
    """{eval set name: classification_report} of a finished run, {} when it has none."""
    path = Path(folder) / EVAL_SETS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


@dataclass
class StudyRunner:
    """Runs one job (run_classify or run_zeroshot as they are) and scores its model on the out-of-domain sets.

    Picklable: Ray ships one copy to each worker. Returns the run folder as a string.
    """

    eval_sets: list[EvalSet]
    features_dir: str | None = None  # the feature store's folder (STUDY/features); None: in memory only

    def __call__(self, job: Job) -> str:
        share_loaded_data(True)  # a Ray worker's later runs reuse its data too (run_study turns it on locally)
        share_features(True, self.features_dir)
        folder = job.folder
        if not (folder / METRICS_FILE).is_file():
            if job.kind == "classify":
                from ..classify import run_classify

                run_classify(job.run_config())
            else:
                from ..zeroshot import run_zeroshot

                run_zeroshot(job.run_config())
        missing = [s for s in self.eval_sets if s.name not in read_eval_sets(folder)]
        if missing:
            scores = read_eval_sets(folder)
            result = RunResult.load(folder)
            for eval_set in missing:
                scores[eval_set.name] = score_run(job, result, eval_set)
            partial = folder / (EVAL_SETS_FILE + ".partial")
            partial.write_text(json.dumps(scores, indent=2) + "\n")
            os.replace(partial, folder / EVAL_SETS_FILE)
        return str(folder)


def score_run(job: Job, result: RunResult, eval_set: EvalSet) -> dict:
    """classification_report of a finished run on an out-of-domain set (its labels already mapped to the task's)."""
    label_names, multi_label = result.task["label_names"], result.task["multi_label"]
    if job.kind == "zero-shot":
        from ..zeroshot import ZeroShotClassifier

        config = job.run_config()
        classifier = ZeroShotClassifier(config.method, config.model, label_names, multi_label, options=config.options,
                                        batch_size=config.batch_size, max_length=config.data.max_length)
        predicted = classifier.decide(classifier.predict_proba(eval_set.texts, desc=f"zero-shot, {eval_set.name}"))
    else:
        logits = folder_logits(job.folder, label_names, eval_set.texts, job.config["data"]["max_length"],
                               eval_set.name if reads_fixed_features(result) else None)
        predicted, _ = predictions_from_logits(logits, multi_label)
    return classification_report(predicted, np.asarray(eval_set.labels), label_names, multi_label)


def reads_fixed_features(result: RunResult) -> bool:
    """Whether a classify run's output layer reads features that training left as pretrained: a linear probe's, or
    a frozen head's on a pooling (hft-pooled; with pooling=head BERT's pooler trained)."""
    name, options = result.strategy["name"], result.strategy.get("options") or {}
    return name == "linear-probe" or (name == "frozen" and options.get("pooling", "head") != "head")


def load_run_model(folder: Path, label_names: list[str]):
    """(model, tokenizer) of a classify run folder: the whole model, or a peft adapter on its base model."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from .. import models  # noqa: F401  registers our own backbones with the Auto classes

    tokenizer = AutoTokenizer.from_pretrained(folder)
    if (Path(folder) / "adapter_config.json").is_file():
        from peft import AutoPeftModelForSequenceClassification

        model = AutoPeftModelForSequenceClassification.from_pretrained(
            folder, id2label=dict(enumerate(label_names)), label2id={n: i for i, n in enumerate(label_names)})
    else:
        model = AutoModelForSequenceClassification.from_pretrained(folder)
    return model.eval(), tokenizer


@torch.inference_mode()
def folder_logits(folder: Path, label_names: list[str], texts: list, max_length: int,
                  features_of: str | None = None) -> np.ndarray:
    """(len(texts), labels) fp32 logits of a classify run folder's model, in batches of similar length; with
    `features_of` (the texts' name), its output layer on the texts' features from the feature store
    (hf_transfer.features), for a head on a frozen backbone."""
    model, tokenizer = load_run_model(folder, label_names)
    model.to(device())
    pairs = bool(texts) and not isinstance(texts[0], str)
    columns = tokenizer(*([list(c) for c in zip(*texts)] if pairs else [texts]), truncation=True,
                        max_length=max_length)
    columns = {k: v for k, v in columns.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    if features_of is not None:
        output = output_layer(model, family_of(model.config))
        reader = classifier_reader(model, output, tokenizer.pad_token_id)
        return head_logits(reader, output[2])(features_of, Dataset.from_dict(columns))
    if not texts:
        return np.zeros((0, len(label_names)), dtype=np.float32)
    return batched_logits(model, columns, np.arange(len(texts)), tokenizer.pad_token_id, model.device,
                          max_batch_tokens=MAX_BATCH_TOKENS)
