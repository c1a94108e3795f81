"""How often transformers' token-classification pipeline finds exactly a tagging run's test entities (type and
character span), per aggregation strategy; run in its own process, it imports transformers only (no hf_transfer).

    HF_HUB_OFFLINE=1 python benchmarks/ner_pipeline_agreement.py outputs/minilm-l6-wnut16-full

The run scores whitespace-separated words, each from its first subword; the pipeline finds word ends from the
tokenizer (for WordPiece, a piece without `##` starts a word), so a word split at punctuation (`@user`, `#tag`) is
several words to it. The second count leaves out the sentences holding such a word.
"""

import json
import re
import sys

from transformers import pipeline

SPLIT_FREE = re.compile(r"[A-Za-z0-9']+|[^\w\s]")  # a word no pre-tokenizer splits further


def char_entities(row: dict) -> set[tuple[str, int, int]]:
    """(type, start, end) of the run's entities in the text `" ".join(row["tokens"])`."""
    starts, position = [], 0
    for word in row["tokens"]:
        starts.append(position)
        position += len(word) + 1
    return {(e["type"], starts[e["start"]], starts[e["end"] - 1] + len(row["tokens"][e["end"] - 1]))
            for e in row["entities"]}


def main() -> None:
    folder = sys.argv[1]
    with open(f"{folder}/predictions.jsonl") as handle:
        rows = [row for row in map(json.loads, handle) if row["split"] == "test"]
    plain = [all(SPLIT_FREE.fullmatch(word) for word in row["tokens"]) for row in rows]
    for strategy in ("simple", "first"):
        tagger = pipeline("token-classification", model=folder, aggregation_strategy=strategy)
        found = [{(e["entity_group"], e["start"], e["end"]) for e in tagger(" ".join(row["tokens"]))} for row in rows]
        same = [char_entities(row) == entities for row, entities in zip(rows, found)]
        print(f"{strategy}: identical entities in {sum(same)}/{len(rows)} test sentences; in "
              f"{sum(s for s, p in zip(same, plain) if p)}/{sum(plain)} whose words hold no inner punctuation")
    assert not any(name.startswith("hf_transfer") for name in sys.modules)


if __name__ == "__main__":
    main()
