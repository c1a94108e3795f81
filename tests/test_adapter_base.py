"""Issue 14, item 14: what a run writes loads as recorded elsewhere, with stock clients.

- An adapter names its base by the Hub id the asset is a copy of, not a path into this machine's asset cache, and
  still loads offline here (the asset linked into the Hugging Face cache under that id).
- Evaluation in bf16 re-checks near-ties in fp32, so a stock fp32 client reproduces predictions.jsonl's labels.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from conftest import sentiment_rows, write_csv
from hf_transfer.assets import ASSETS, cache_dir
from hf_transfer.classify import run_classify
from hf_transfer.config import ClassifyConfig, load_config
from hf_transfer.hub_cache import asset_hub_id, register_asset
from hf_transfer.inference import RECHECK_MARGIN, decision_margins, near_ties
from hf_transfer.predict import load_predictor
from hf_transfer.runtime import cpu_has_fast_bf16

ROOT = Path(__file__).parents[1]
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"


def test_the_hub_id_of_an_asset_folder():
    assert ASSETS["minilm-l6"].extra["hub_id"] == MINILM_HUB_ID
    assert asset_hub_id(cache_dir() / "minilm-l6" / "0123" / "model") == MINILM_HUB_ID
    # A GGUF asset is a quantised conversion: the Hub repository's weights are not what the adapter was trained on.
    assert asset_hub_id(cache_dir() / "smollm2-135m" / "0123") is None
    assert asset_hub_id(ROOT) is None


def test_a_registered_folder_loads_offline_by_its_hub_id(tiny_bert, tmp_path):
    hub_cache = tmp_path / "hub"
    snapshot = register_asset("hf-transfer-tests/tiny-bert", tiny_bert, hub_cache)
    assert snapshot.is_dir() and (snapshot / "config.json").resolve() == (tiny_bert / "config.json").resolve()
    assert register_asset("hf-transfer-tests/tiny-bert", tiny_bert, hub_cache) is None  # there already: untouched
    config = AutoConfig.from_pretrained("hf-transfer-tests/tiny-bert", cache_dir=hub_cache, local_files_only=True)
    assert config.hidden_size == 32


STOCK_CLIENT = textwrap.dedent(
    """
    import json, re, sys
    out = sys.argv[1]
    card = open(out + "/README.md").read()
    scope = {}
    exec(re.search(r"```python\\n(.*?)```", card, re.S).group(1), scope)  # the card's snippet: AutoPeftModel
    rows = [json.loads(l) for l in open(out + "/predictions.jsonl")]
    got = scope["classifier"]([r["text"] for r in rows])
    print(json.dumps([g["label"] for g in got]))
    """
)


def test_an_adapter_on_an_asset_names_its_hub_id_and_loads_offline_here(tmp_path):
    data = write_csv(tmp_path / "reviews.csv", sentiment_rows(60))
    out = tmp_path / "adapter"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "recipes" / "classify.py"), "model=minilm-l6", f"data.dataset={data}",
         "data.text_columns=review", "data.label_column=sentiment", "strategy=adapter", "train.max_steps=2",
         "train.threads=1", "data.max_length=32", f"output_dir={out}"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == MINILM_HUB_ID
    rows = [json.loads(line) for line in open(out / "predictions.jsonl")]

    # A stock client in a fresh offline process, from the card's snippet: the Hub id resolves to the asset here.
    done = subprocess.run([sys.executable, "-c", STOCK_CLIENT, str(out)], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=600, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [row["prediction"] for row in rows]

    # hf-transfer predict needs no Hugging Face cache: the base loads from the asset it was trained on.
    got = load_predictor(out).predict([row["text"] for row in rows])
    assert [g["label"] for g in got] == [row["prediction"] for row in rows]


def test_the_margins_that_are_rechecked():
    logits = np.array([[2.0, 1.9, -1.0], [3.0, 0.0, 0.1], [0.0, 0.0, 0.0]], dtype=np.float32)
    assert decision_margins(logits, multi_label=False) == pytest.approx([0.1, 2.9, 0.0])
    assert list(near_ties(logits, multi_label=False)) == [0, 2]
    # Multi-label: each label is a decision at logit 0; the nearest one counts.
    assert decision_margins(logits, multi_label=True) == pytest.approx([1.0, 0.0, 0.0])
    assert list(near_ties(np.array([[1.0, -0.5], [0.3, -RECHECK_MARGIN / 2]]), multi_label=True)) == [1]


@pytest.mark.skipif(not cpu_has_fast_bf16(), reason="bf16 is emulated (and ~100x slower) without avx512_bf16/AMX")
def test_bf16_evaluation_writes_the_labels_of_fp32(tiny_bert, tmp_path, capfd):
    rows = sentiment_rows(600, seed=3)
    for i, row in enumerate(rows):
        row["sentiment"] = ["pos", "neg", "mixed"][i % 3]  # labels the words do not predict: many near-ties
    data = write_csv(tmp_path / "reviews.csv", rows)
    out = tmp_path / "bf16"
    run_classify(load_config(ClassifyConfig, None, [
        f"model={tiny_bert}", f"data.dataset={data}", "data.text_columns=review", "data.label_column=sentiment",
        "data.max_length=32", "train.max_steps=3", "train.precision=bf16", "train.threads=1", f"output_dir={out}"]))
    assert "logits of a tie (bf16's rounding could flip them) re-checked in fp32" in capfd.readouterr().err
    recorded = [json.loads(line) for line in open(out / "predictions.jsonl")]

    model = AutoModelForSequenceClassification.from_pretrained(out).eval()  # a stock fp32 client
    tokenizer = AutoTokenizer.from_pretrained(out)
    with torch.no_grad():
        batch = tokenizer([row["text"] for row in recorded], padding=True, truncation=True, max_length=32,
                          return_tensors="pt")
        fp32 = model(**batch).logits
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = model(**batch).logits.float()
    labels = [model.config.id2label[i] for i in fp32.argmax(-1).tolist()]
    assert [row["prediction"] for row in recorded] == labels
    # The test means something: bf16 alone sits near enough to a tie to need the re-check on some texts.
    assert (decision_margins(bf16.numpy(), multi_label=False) < RECHECK_MARGIN).any()
