"""Every bad input through the real entry points: exit 2, one line naming the problem and the fix, nothing left.

Issue 14's acceptance test. Each case runs a real process: `python recipes/classify.py`, `accelerate launch
recipes/classify.py` (the README's launcher; simple and 2-process), `hf-transfer classify`, `hf-transfer predict`,
`hf-transfer zeroshot`, and asserts: exit status 2; exactly one `hf-transfer: error:` line on stderr, matching the
case's message; no traceback and no interactive question; no output folder (OUT, OUT.partial) or output file left.

The inputs are the kinds of issue 14 (the data-fault folders' inputs, in small form), the classic ones (missing file or
column, one class, empty text, unknown label, wrong type, broken archive, an option that cannot apply) and the model
faults (broken folders, remote code, max_length above the positions, weights whose gradient norm overflows). Every
case runs under plain python or its own command; the accelerate launchers run a representative subset (a config
error, a data error, a model error, remote code; under two processes one data error and one raised mid-training in
both), as each launch costs a process tree.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch
from peft import LoraConfig, TaskType, get_peft_model
from transformers import BertForMaskedLM, BertForSequenceClassification

from conftest import sentiment_rows, write_csv
from test_load_faults import broken_folders, remote_code_folder

ROOT = Path(__file__).parents[1]
BIN = Path(sys.executable).parent
RECIPE = ROOT / "recipes" / "classify.py"


@dataclass(frozen=True)
class Case:
    name: str
    entry: str  # python | accelerate | accelerate-2proc | hf-transfer | predict | zeroshot
    args: Callable[[dict], list[str]]  # from the inputs (paths by name) and the case's output path ("out")
    message: str  # regex the error line must match after "hf-transfer: error: "


def classify(*extra: str) -> Callable[[dict], list[str]]:
    """A tiny classify run's arguments: `extra` entries are formatted with the inputs ({tiny_bert}, {out}, ...)."""
    base = ["model={tiny_bert}", "data.dataset={reviews}", "data.text_columns=review", "data.label_column=sentiment",
            "data.max_length=32", "train.max_steps=1", "train.threads=1", "train.precision=fp32", "output_dir={out}"]
    return lambda inputs: [arg.format(**inputs) for arg in (*base, *extra)]


def command(*args: str) -> Callable[[dict], list[str]]:
    return lambda inputs: [arg.format(**inputs) for arg in args]


def zeroshot(*extra: str) -> Callable[[dict], list[str]]:
    base = ["method=embedding", "model={tiny_bert}", "data.dataset={reviews}", "data.text_columns=review",
            "data.label_column=sentiment", "data.max_length=32", "threads=1", "output_dir={out}"]
    return command(*base, *extra)


MISSING_FILE = classify("data.dataset={tmp}/nope.csv")
REMOTE_CODE = r"model '.*' needs its own Python code to load \(config.json's auto_map names it\)"

CASES = [
    # The classic kinds
    Case("missing-file", "python", MISSING_FILE, r"data file '.*nope.csv' not found: check data.dataset"),
    Case("missing-column", "python", classify("data.text_columns=body"),
         r"column 'body' is not in split 'train' .*set data.text_columns"),
    Case("one-class", "python", classify("data.dataset={one_class}"), r"holds one class only \('pos'\)"),
    Case("empty-text", "python", classify("data.dataset={empty_text}"), r"have empty text"),
    Case("unknown-label", "python", classify("data.dataset={unknown_label}"),
         r"label 'meh' in split 'test' is not in the label set"),
    Case("wrong-type", "python", classify("train.epochs=many"),
         r"config key 'train.epochs' takes a number, got 'many'"),
    Case("unknown-key", "python", classify("trian.epochs=1"), r"unknown config key 'trian'"),
    Case("broken-archive", "python", classify("data.dataset={broken_gz}"), r"broken.csv.gz .*gzip"),
    Case("option-cannot-apply", "python",
         classify("strategy=adapter", "strategy_options={{method: prompt-tuning, merge: true}}"),
         r"strategy_options.merge=true does not apply to prompt_tuning"),
    # The data-fault kinds (/work/shared/data_faults), in small form
    Case("multi-hot-vectors", "python", classify("data.dataset={multi_hot}", "data.label_column=topics"),
         r"column 'topics' holds 0/1 vectors of length 3 \(multi-hot labels\): name the 3 positions"),
    Case("yaml-bool-in-a-number", "python", classify("train.epochs=yes"),
         r"config key 'train.epochs' takes a number, got 'yes'"),
    Case("label-case-error", "python", classify("data.dataset={label_variants}", "data.label_case=error"),
         r"labels differ only in case"),
    Case("truly-empty-label", "python", classify("data.dataset={empty_label}"),
         r"has no label in column 'sentiment'"),
    Case("rare-class", "python", classify("data.dataset={rare_class}"), r"class 'mixed' has only 1 example"),
    Case("header-only", "python", classify("data.dataset={header_only}"),
         r"header_only.csv has a header \(review, sentiment\) but no rows"),
    Case("object-column", "python", classify("data.dataset={object_column}"),
         r"column 'review' of split 'train' in .* holds objects such as"),
    Case("duplicated-header", "python", classify("data.dataset={duplicated_header}"),
         r"column 'review' appears 2 times in the header"),
    Case("misquoted-row", "python", classify("data.dataset={misquoted}"),
         r"line 12 of misquoted.csv has 3 fields where its header has 2"),
    Case("zero-token-texts", "python", classify("data.dataset={zero_tokens}"),
         r"1 text\(s\) of split '\w+' tokenize to no tokens"),
    Case("head-tail-of-a-pair", "python", classify("data.dataset={pairs}", "data.text_columns=[review, summary]",
                                                   "data.truncation=head+tail"),
         r"data.truncation=head\+tail cuts one text, not the pair"),
    Case("max-length-over-positions", "python",
         classify("model=minilm-l6", "data.dataset={long_reviews}", "data.max_length=1024"),
         r"data.max_length=1024 is more than the 512 positions model 'minilm-l6' \(bert\) can read: "
         r"set data.max_length=512 or less"),
    # Model folders that cannot load
    Case("folder-empty", "python", classify("model={empty}"), r"model folder '.*empty' is empty"),
    Case("folder-only-bin", "python", classify("model={only_bin}"),
         r"holds weights \(pytorch_model.bin\) but no config.json"),
    Case("folder-no-tokenizer", "python", classify("model={no_tokenizer}"), r"holds no tokenizer"),
    Case("folder-pickle-bin", "python", classify("model={pickle_bin}"),
         r"are a pickle .* convert them to model.safetensors"),
    Case("folder-damaged", "python", classify("model={damaged}"), r"is damaged .*: copy or download it again"),
    Case("folder-unknown-type", "python", classify("model={unknown_type}"), r"is of type 'nonesuch'"),
    Case("folder-remote-code", "python", classify("model={remote_code}"), REMOTE_CODE + ": .*trust_remote_code=true"),
    Case("weights-that-overflow", "python", classify("model={overflowing}"),
         r"training stopped at optimiser step 1 of 1: the gradient norm is inf.*start from another checkpoint"),
    # The README's other launchers
    Case("missing-file", "accelerate", MISSING_FILE, r"data file '.*nope.csv' not found"),
    Case("wrong-type", "accelerate", classify("train.epochs=many"), r"config key 'train.epochs' takes a number"),
    Case("max-length-over-positions", "accelerate", classify("data.max_length=100"),
         r"data.max_length=100 is more than the 64 positions"),
    Case("folder-remote-code", "accelerate", classify("model={remote_code}"), REMOTE_CODE),
    Case("missing-file", "accelerate-2proc", MISSING_FILE, r"data file '.*nope.csv' not found"),
    Case("weights-that-overflow", "accelerate-2proc", classify("model={overflowing}"),
         r"training stopped at optimiser step 1 of 1: the gradient norm is inf"),
    Case("missing-file", "hf-transfer", MISSING_FILE, r"data file '.*nope.csv' not found"),
    # hf-transfer predict
    Case("not-a-run-folder", "predict", command("{tmp}", "{texts}", "--output", "{out}"),
         r"holds no config.json: name an output folder of `hf-transfer classify`"),
    Case("missing-texts", "predict", command("{classifier}", "{tmp}/nope.txt", "--output", "{out}"),
         r"file of texts .*nope.txt not found"),
    Case("missing-text-column", "predict", command("{classifier}", "{reviews}", "--output", "{out}"),
         r"has no text field 'text'.*pass --text-column NAME"),
    Case("remote-code", "predict", command("{remote_classifier}", "{texts}", "--output", "{out}"),
         REMOTE_CODE + ": read that code, then pass --trust-remote-code"),
    Case("no-trained-head", "predict", command("{mlm}", "{texts}", "--output", "{out}"),
         r"holds a BertForMaskedLM without a trained classification head"),
    Case("adapter-without-record", "predict", command("{bare_adapter}", "{texts}", "--output", "{out}"),
         r"holds a peft adapter but no metrics.json of a classify run"),
    # hf-transfer zeroshot
    Case("max-length-over-positions", "zeroshot", zeroshot("data.max_length=1024"),
         r"data.max_length=1024 is more than the 64 positions"),
    Case("folder-empty", "zeroshot", zeroshot("model={empty}"), r"model folder '.*empty' is empty"),
    Case("truncation-that-cannot-apply", "zeroshot", zeroshot("data.truncation=chunks"),
         r"data.truncation=chunks does not apply to zero-shot"),
    Case("missing-file", "zeroshot", zeroshot("data.dataset={tmp}/nope.csv"), r"data file '.*nope.csv' not found"),
    Case("not-an-nli-model", "zeroshot", zeroshot("method=nli"),
         r"is not an NLI model .* pick an MNLI/XNLI checkpoint"),
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="module")
def inputs(tiny_bert, tmp_path_factory) -> dict:
    """Every input file and folder the cases name, by name."""
    root = tmp_path_factory.mktemp("catalogue")
    rows = sentiment_rows(60)
    found = {"tmp": str(root), "tiny_bert": str(tiny_bert)}

    def add(name: str, path: Path) -> None:
        found[name] = str(path)

    add("reviews", write_csv(root / "reviews.csv", rows))
    add("one_class", write_csv(root / "one_class.csv", [{**row, "sentiment": "pos"} for row in rows]))
    add("empty_text", write_csv(root / "empty_text.csv", [{**row, "review": "" if i == 5 else row["review"]}
                                                           for i, row in enumerate(rows)]))
    split_folder = root / "splits"
    split_folder.mkdir()
    write_csv(split_folder / "train.csv", rows)
    write_csv(split_folder / "test.csv", rows[:6] + [{"review": "so so film", "sentiment": "meh"}])
    add("unknown_label", split_folder)
    marks = "\u0301\u0300"  # combining accents: the uncased BERT normaliser strips them, leaving no token
    add("zero_tokens", write_csv(root / "zero_tokens.csv", rows + [{"review": marks, "sentiment": "pos"}]))
    add("pairs", write_csv(root / "pairs.csv", [{**row, "summary": "a film"} for row in rows]))
    add("broken_gz", root / "broken.csv.gz")
    (root / "broken.csv.gz").write_bytes(b"not gzip data at all")
    topics = [{"review": row["review"], "topics": [1, i % 2, 1 - i % 2]} for i, row in enumerate(rows)]
    add("multi_hot", write_jsonl(root / "topics.jsonl", topics))
    spellings = ["positive", "Positive", "negative", " negative"]
    add("label_variants", write_csv(root / "variants.csv", [{"review": row["review"], "sentiment": spellings[i % 4]}
                                                            for i, row in enumerate(rows)]))
    add("empty_label", write_csv(root / "empty_label.csv", [{**row, "sentiment": "" if i == 7 else row["sentiment"]}
                                                            for i, row in enumerate(rows)]))
    add("rare_class", write_csv(root / "rare.csv", rows + [{"review": "an odd film", "sentiment": "mixed"}]))
    add("header_only", root / "header_only.csv")
    (root / "header_only.csv").write_text("review,sentiment\n")
    add("object_column", write_jsonl(root / "objects.jsonl", [{"review": {"a": row["review"]}, "sentiment":
                                                               row["sentiment"]} for row in rows]))
    add("duplicated_header", root / "duplicated_header.csv")
    (root / "duplicated_header.csv").write_text("review,review,sentiment\n" + "".join(
        f"{row['review']},{row['review']},{row['sentiment']}\n" for row in rows))
    add("misquoted", root / "misquoted.csv")
    (root / "misquoted.csv").write_text("review,sentiment\n" + "".join(
        f"{row['review']},{row['sentiment']}\n" for row in rows[:10]) + "good, fun film,pos\n")
    long = [{"review": " ".join(["a long and winding review of a film"] * 120), "sentiment": s}
            for s in ["pos", "neg"] * 10]
    add("long_reviews", write_csv(root / "long_reviews.csv", long))
    add("texts", root / "texts.txt")
    (root / "texts.txt").write_text("good film\nbad film\n")

    (root / "folders").mkdir()
    folders = broken_folders(tiny_bert, root / "folders")
    for name in ("empty", "only-bin", "no-tokenizer", "pickle-bin", "damaged", "unknown-type", "remote-code"):
        add(name.replace("-", "_"), folders[name][0])
    torch.manual_seed(0)
    classifier = BertForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    save_with_tokenizer(classifier, tiny_bert, root / "classifier")
    add("classifier", root / "classifier")
    add("remote_classifier", remote_code_folder(root / "classifier", root / "remote-classifier"))
    overflowing = BertForSequenceClassification.from_pretrained(tiny_bert, id2label={0: "neg", 1: "pos"})
    with torch.no_grad():  # a gradient norm no float holds: every clipped update would be zero
        overflowing.classifier.weight.copy_(torch.tensor([[1e30], [-1e30]]))
    add("overflowing", save_with_tokenizer(overflowing, tiny_bert, root / "overflowing"))
    save_with_tokenizer(BertForMaskedLM.from_pretrained(tiny_bert), tiny_bert, root / "mlm")
    add("mlm", root / "mlm")
    adapter = get_peft_model(classifier, LoraConfig(task_type=TaskType.SEQ_CLS, target_modules=["query", "value"]))
    save_with_tokenizer(adapter, tiny_bert, root / "bare-adapter")
    add("bare_adapter", root / "bare-adapter")
    return found


def save_with_tokenizer(model, tokenizer_folder: Path, folder: Path) -> Path:
    model.save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tokenizer_folder / name, folder / name)
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(entry: str, args: list[str]) -> list[str]:
    if entry == "python":
        return [sys.executable, str(RECIPE), *args]
    if entry == "accelerate":
        return [str(BIN / "accelerate"), "launch", str(RECIPE), *args]  # as the README writes it
    if entry == "accelerate-2proc":
        return [str(BIN / "accelerate"), "launch", "--config_file", str(ROOT / "recipes/accelerate/cpu-2proc.yaml"),
                "--main_process_port", str(free_port()), str(RECIPE), *args]
    if entry == "hf-transfer":
        return [str(BIN / "hf-transfer"), "classify", *args]
    return [str(BIN / "hf-transfer"), entry, *args]  # predict, zeroshot


def case_id(case: Case) -> str:
    return f"{case.entry}-{case.name}"


def run_case(case: Case, inputs: dict, folder: Path) -> subprocess.CompletedProcess:
    """The case's process, in its own working folder, which holds nothing but what the process leaves."""
    folder.mkdir()
    args = case.args({**inputs, "out": str(folder / "out")})
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "HF_MODULES_CACHE": str(folder.parent /
                                                                                            f"modules-{folder.name}")}
    return subprocess.run(launch(case.entry, args), capture_output=True, text=True, env=env, cwd=folder,
                          stdin=subprocess.DEVNULL, timeout=1200)


@pytest.fixture(scope="module")
def outcomes(request, inputs, tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """{case id: (finished process, its working folder)} for the cases this session runs, two processes at a time:
    each spends seconds importing torch and transformers, and two cores do two such starts at once."""
    selected = [item.callspec.params["case"] for item in request.session.items
                if item.originalname == "test_a_bad_input_is_one_line_and_exit_2"]
    root = tmp_path_factory.mktemp("cases")
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = {case_id(case): (pool.submit(run_case, case, inputs, root / case_id(case)), root / case_id(case))
                for case in selected}
        return {name: (future.result(), folder) for name, (future, folder) in runs.items()}


@pytest.mark.parametrize("case", [pytest.param(case, id=case_id(case)) for case in CASES])
def test_a_bad_input_is_one_line_and_exit_2(case, outcomes):
    done, folder = outcomes[case_id(case)]
    errors = [line for line in done.stderr.splitlines() if line.startswith("hf-transfer: error:")]
    assert done.returncode == 2, done.stderr[-3000:]
    assert len(errors) == 1, done.stderr[-3000:]
    assert re.search(case.message, errors[0].removeprefix("hf-transfer: error: ")), errors[0]
    assert "Traceback" not in done.stderr and "Do you wish to run the custom code" not in done.stdout + done.stderr
    assert "exitcode: 2" not in done.stderr and "closing signal" not in done.stderr, done.stderr[-3000:]
    assert not re.search(r"^\w+(Error|Exception): ", done.stderr, re.M), done.stderr[-3000:]
    leftovers = [path.name for path in folder.iterdir() if path.name.startswith("out")]
    assert not leftovers, leftovers  # OUT, OUT.partial, an output file or its .partial (run_folder's lock may stay)


def test_the_catalogue_covers_every_entry_point_and_kind():
    entries = {case.entry for case in CASES}
    assert entries == {"python", "accelerate", "accelerate-2proc", "hf-transfer", "predict", "zeroshot"}
    assert len({(case.entry, case.name) for case in CASES}) == len(CASES)
