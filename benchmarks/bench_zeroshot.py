"""Zero-shot scoring speed: what the shared prompt and batched hypotheses buy.

1. lm (smollm2-135m): our scoring (one prompt pass per text, its KV cache expanded to the labels' continuations)
   against one full forward per label (prompt + verbalizer, batched over texts, logits only where needed),
   at 2, 5 and 10 labels, with one-token and multi-token verbalizers.
2. nli: ours against transformers' zero-shot-classification pipeline on the same checkpoint (MiniLM-L6's encoder
   with a 3-way entailment head; random head weights cost the same compute as trained ones), at 2 and 5 labels.

Each side runs `--repeats` times, alternating, and the median is reported, so a busy machine hurts both alike.

    python benchmarks/bench_zeroshot.py                      # 64 Rotten Tomatoes test texts
    python benchmarks/bench_zeroshot.py --texts 32 --repeats 5 --only lm --lm-label-sets 2 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch
from transformers import AutoTokenizer, BertForSequenceClassification, pipeline

from hf_transfer.assets import asset_path
from hf_transfer.config import DataConfig
from hf_transfer.data import load_task_data
from hf_transfer.zeroshot import ZeroShotClassifier

LM_TEMPLATE = "Review: {text}\nSentiment:"
LM_LABEL_SETS = {  # name -> verbalizers; one-token verbalizers need the prompt pass only
    "2": [" positive", " negative"],
    "5": [" terrible", " bad", " okay", " good", " great"],
    "5-multi-token": [" very negative", " somewhat negative", " neutral", " somewhat positive", " very positive"],
    "10": [" awful", " terrible", " bad", " poor", " okay", " fine", " good", " great", " excellent", " superb"],
}
NLI_LABEL_SETS = {
    "2 labels": ["positive", "negative"],
    "5 labels": ["terrible", "bad", "okay", "good", "great"],
}


def alternate(ours, baseline, repeats: int) -> tuple[float, float, object, object]:
    """Median seconds of each side over `repeats` alternating runs, and each side's last result."""
    times = {ours: [], baseline: []}
    results = {}
    for _ in range(repeats):
        for side in (ours, baseline):
            started = time.perf_counter()
            results[side] = side()
            times[side].append(time.perf_counter() - started)
    return statistics.median(times[ours]), statistics.median(times[baseline]), results[ours], results[baseline]


@torch.inference_mode()
def one_forward_per_label(method, texts: list[str], max_length: int) -> torch.Tensor:
    """The naive way: for each label, a full forward over prompt + verbalizer for every text (batched, left-padded)."""
    tokenizer, model = method.tokenizer, method.model
    prompts = tokenizer([method.options.template.replace("{text}", t) for t in texts], truncation=True,
                        max_length=max_length)["input_ids"]
    scores = torch.zeros(len(texts), len(method.continuations))
    for label, (ids, mask) in enumerate(zip(method.continuations, method.continuation_mask)):
        continuation = ids[mask.bool()].tolist()
        batch = tokenizer.pad({"input_ids": [p + continuation for p in prompts]}, return_tensors="pt")
        attention = batch["attention_mask"]
        logits = model(input_ids=batch["input_ids"], attention_mask=attention,
                       position_ids=(attention.cumsum(-1) - 1).clamp(min=0),
                       logits_to_keep=len(continuation) + 1).logits[:, :-1].float()
        targets = torch.tensor(continuation).expand(len(texts), -1)
        scores[:, label] = logits.log_softmax(-1).gather(-1, targets[..., None]).squeeze(-1).sum(-1)
    return scores


def bench_lm(texts: list[str], repeats: int, batch_size: int, label_sets: list[str]) -> list[tuple]:
    rows = []
    classifier = None
    for name in label_sets:
        words = LM_LABEL_SETS[name]
        labels = [w.strip().replace(" ", "-") for w in words]
        verbalizers = dict(zip(labels, words))
        if classifier is None:
            classifier = ZeroShotClassifier("lm", "smollm2-135m", labels, batch_size=batch_size,
                                            options={"template": LM_TEMPLATE, "verbalizers": verbalizers})
        else:  # the weights take minutes to load: keep them, redo only the label side
            classifier.method.options.verbalizers = verbalizers
            classifier.method.prepare(labels, multi_label=False)
        method = classifier.method
        batches = [texts[i:i + batch_size] for i in range(0, len(texts), batch_size)]
        ours_s, naive_s, ours, naive = alternate(
            lambda: torch.cat([method.log_likelihoods(b, 128) for b in batches]),
            lambda: torch.cat([one_forward_per_label(method, b, 128) for b in batches]), repeats)
        tokens = max(len(method.tokenizer(w, add_special_tokens=False)["input_ids"]) for w in words)
        agree = (ours.argmax(-1) == naive.argmax(-1)).float().mean().item()
        rows.append(("lm", f"{len(words)} labels, verbalizers of up to {tokens} token(s)", len(texts) / ours_s, len(texts) / naive_s, naive_s / ours_s,
                     f"max abs diff {(ours - naive).abs().max().item():.1e}, same argmax {agree:.0%}"))
        print(rows[-1], flush=True)
    return rows


def nli_checkpoint(folder: str) -> str:
    minilm = asset_path("minilm-l6")
    model = BertForSequenceClassification.from_pretrained(
        minilm, num_labels=3, id2label={0: "entailment", 1: "neutral", 2: "contradiction"},
        label2id={"entailment": 0, "neutral": 1, "contradiction": 2})
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(minilm).save_pretrained(folder)
    return folder


def bench_nli(texts: list[str], repeats: int, batch_size: int) -> list[tuple]:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = nli_checkpoint(folder)
        reference = pipeline("zero-shot-classification", model=checkpoint, device="cpu")
        for name, labels in NLI_LABEL_SETS.items():
            classifier = ZeroShotClassifier("nli", checkpoint, labels, batch_size=batch_size, max_length=512)
            for pipeline_batch in (1, batch_size * len(labels)):
                def run_pipeline():
                    outputs = reference(texts, candidate_labels=labels, batch_size=pipeline_batch)
                    return np.array([[dict(zip(o["labels"], o["scores"]))[label] for label in labels] for o in outputs])

                ours_s, theirs_s, ours, theirs = alternate(lambda: classifier.predict_proba(texts, desc="nli"),
                                                           run_pipeline, repeats)
                same = (ours.argmax(-1) == theirs.argmax(-1)).mean()
                rows.append(("nli", f"{name} vs pipeline(batch_size={pipeline_batch})", len(texts) / ours_s,
                             len(texts) / theirs_s, theirs_s / ours_s,
                             f"same predictions {same:.0%}, max abs diff {np.abs(ours - theirs).max():.1e}"))
                print(rows[-1], flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=64, help="Rotten Tomatoes test texts to score")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--only", choices=["lm", "nli"], default=None)
    parser.add_argument("--lm-label-sets", nargs="+", choices=list(LM_LABEL_SETS), default=list(LM_LABEL_SETS))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    texts = list(load_task_data(DataConfig(max_eval_samples=args.texts)).texts("test"))
    rows = []
    if args.only in (None, "lm"):
        rows += bench_lm(texts, args.repeats, args.batch_size, args.lm_label_sets)
    if args.only in (None, "nli"):
        rows += bench_nli(texts, args.repeats, args.batch_size)
    print(f"\n{len(texts)} texts, batch size {args.batch_size}, {torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"| method | case | ours (examples/s) | baseline (examples/s) | speed-up | check |")
    print("|---|---|---|---|---|---|")
    for method, case, ours, baseline, speedup, check in rows:
        print(f"| {method} | {case} | {ours:.1f} | {baseline:.1f} | {speedup:.2f}x | {check} |")


if __name__ == "__main__":
    main()
