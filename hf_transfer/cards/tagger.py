"""The card of a named-entity tagger (kind "token-classification"): model_cards/tagger.md, which extends the
classifier's card (model_cards/classifier.md, or adapter.md for a peft adapter) with the task's data, entity-level
results per type, the memorisation baseline and what transfer bought over it, and a token-classification usage
snippet.
"""

from __future__ import annotations

import json
from pathlib import Path

from huggingface_hub import ModelCard

from ..config import TokenClassifyConfig, to_dict
from ..results import RunResult
from .base import pretraining_sentence, render_template, reproduce_command
from .classifier import adapter_loading_snippet, trained_model_card_data, trained_model_fields
from .registry import register_card_renderer

# A neutral sentence with entities for the usage snippet: never a text from the user's data, which may not be public.
EXAMPLE_SENTENCE = "Ada Lovelace wrote to Charles Babbage from London ."
BASELINE = "memorization"  # baselines.memorization_baseline, recorded by every token-classification run


@register_card_renderer("token-classification")
def render_tagger_card(result: RunResult, folder: Path, load_from: str, reproduce: str | None = None) -> ModelCard:
    """The card of a token-classification run, `result` (kind "token-classification"), whose files are in `folder`.

    `load_from` and `reproduce` are as for `hf_transfer.cards.render_card`. The header has pipeline_tag
    token-classification and a model-index with entity precision / recall / F1 (micro, macro, weighted) and token
    accuracy per eval split; the headline is the test split. Whether the tokenizer lowercases is read from the
    tokenizer saved in `folder`. A record without a field the card states (e.g. no memorisation baseline, or a
    split without "f1_micro") raises KeyError.
    """
    fields, adapter = trained_model_fields(result, folder, load_from)
    data = trained_model_card_data(result, fields, adapter, ["token-classification", "ner"],
                                   pipeline_tag="token-classification")
    test, baseline = result.metrics["test"], result.baselines[BASELINE]["metrics"]["test"]
    gain = 100 * (test["f1_micro"] - baseline["f1_micro"])
    types = result.task["entity_types"]
    summary = (
        f"A named-entity tagger over {len(types)} entity types, made from `{result.model['name']}` by "
        f"**{result.strategy['name']}** transfer on {result.task['description']}"
        f"{' and published as a peft adapter' if adapter else ''}.{pretraining_sentence(result.model)} "
        f"Test entity F1 **{test['f1_micro']:.4f}** "
        f"(micro; precision {test['precision_micro']:.4f}, recall {test['recall_micro']:.4f}, "
        f"{test['num_entities']} entities), {gain:+.1f} points over the memorisation baseline "
        f"({baseline['f1_micro']:.4f})."
    )
    facts = result.task["data_facts"]
    data_config = result.config.get("data", {})
    return render_template(
        "tagger",
        data,
        **fields,
        parent="adapter.md" if adapter else "classifier.md",
        summary=summary,
        facts=facts,
        repaired=sum(facts["repaired_tags"].values()),
        metrics=result.metrics,
        comparisons=_comparisons(result),
        lowercases=tokenizer_lowercases(folder),
        label_subwords=data_config.get("label_subwords", "first"),
        windowed={split: m["windows"]["sentences_windowed"] for split, m in result.metrics.items() if "windows" in m},
        usage=usage_snippet(load_from, result, adapter, trust_remote_code=bool(fields["code_files"])),
        reproduce=reproduce or reproduce_command("hf-transfer token-classify", result.config,
                                                 to_dict(TokenClassifyConfig()),
                                                 always=("model", "strategy", "data.dataset")),
    )


def _comparisons(result: RunResult) -> list[dict]:
    """Per baseline and split both measured: our micro entity F1 minus the baseline's, in points."""
    return [{"name": name, "split": split, "f1_points": 100 * (result.metrics[split]["f1_micro"] - report["f1_micro"])}
            for name, baseline in result.baselines.items() for split, report in baseline["metrics"].items()
            if split in result.metrics]


def tokenizer_lowercases(folder: Path) -> bool | None:
    """Whether the tokenizer saved in `folder` reads "A" as "a" (BERT uncased, MiniLM: case cues are lost); None
    when no tokenizer loads from there."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError):
        return None
    return tokenizer("A", add_special_tokens=False)["input_ids"] == tokenizer("a", add_special_tokens=False)["input_ids"]


def usage_snippet(load_from: str, result: RunResult, adapter: dict | None, trust_remote_code: bool = False) -> str:
    """Python source that tags a neutral sentence with the model at `load_from` and prints its entity groups; tests
    run it. A token-classification pipeline with aggregation_strategy="first" (each word takes its first subword's
    tag, as the run's scores do) for full weights; for an adapter, peft's
    AutoPeftModelForTokenClassification with the tag names (not part of an adapter), then the same pipeline."""
    call = (f"tagger = pipeline(\"token-classification\", model={{model}}{{tokenizer}}, aggregation_strategy=\"first\")\n"
            f"print(tagger({json.dumps(EXAMPLE_SENTENCE)}))  # entity groups: entity_group (the type), word, score, start, end")
    if not adapter:
        remote = ", trust_remote_code=True" if trust_remote_code else ""
        return "from transformers import pipeline\n\n" + call.format(model=json.dumps(load_from), tokenizer=remote)
    return (adapter_loading_snippet("AutoPeftModelForTokenClassification", load_from, result, "tags")
            + call.format(model="model", tokenizer=", tokenizer=tokenizer"))
