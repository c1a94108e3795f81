"""train.report_to: TensorBoard event files (written offline by tensorboardX) inside a classify run's folder and
inside every run folder of a study; a tracker whose library is missing is one line before any work."""

import importlib.util
import struct
from pathlib import Path

import pytest

from conftest import sentiment_rows, write_csv
from hf_transfer.classify import run_classify
from hf_transfer.config import ClassifyConfig, CompareConfig, load_config
from hf_transfer.errors import UserError
from hf_transfer.study import run_study
from hf_transfer.training import TENSORBOARD_DIR

pytestmark = pytest.mark.usefixtures("single_torch_thread")
COMMON = ["data.text_columns=review", "data.label_column=sentiment", "data.max_length=64", "train.learning_rate=5e-3",
          "train.batch_size=16", "train.precision=fp32", "train.threads=1", "train.logging_steps=2",
          "train.freeze_word_embeddings=false", "train.report_to=[tensorboard]"]


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} of every TensorBoard event file under `folder`.

    An event file is a TFRecord stream (length u64, its CRC u32, the serialized Event, the data's CRC u32)."""
    from tensorboardX.proto.event_pb2 import Event

    found: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(folder.rglob("events.out.tfevents.*")):
        data, at = path.read_bytes(), 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at:at + 8])
            event = Event.FromString(data[at + 12:at + 12 + length])
            at += 12 + length + 4
            for value in event.summary.value:
                found.setdefault(value.tag, []).append((event.step, value.simple_value))
    return found


@pytest.fixture(scope="module")
def reviews(tmp_path_factory) -> Path:
    return write_csv(tmp_path_factory.mktemp("tracking") / "reviews.csv", sentiment_rows(80))


def test_tensorboard_event_files_land_in_the_run_folder(tiny_bert, reviews, tmp_path):
    pytest.importorskip("tensorboardX")
    out = tmp_path / "out"
    result = run_classify(load_config(ClassifyConfig, None, [f"model={tiny_bert}", f"data.dataset={reviews}",
                                                             "train.epochs=2", f"output_dir={out}", *COMMON]))
    logged = scalars(out / TENSORBOARD_DIR)
    losses = [(entry["step"], entry["loss"]) for entry in result.training["log_history"] if "loss" in entry]
    assert losses and [step for step, _ in logged["train/loss"]] == [step for step, _ in losses]
    assert [value for _, value in logged["train/loss"]] == pytest.approx([loss for _, loss in losses], rel=1e-5)
    assert not out.with_name("out.partial").exists()


def test_a_study_writes_event_files_in_every_run_folder(tiny_bert, reviews, tmp_path):
    pytest.importorskip("tensorboardX")
    out = tmp_path / "study"
    run_study(load_config(CompareConfig, None, [
        f"model={tiny_bert}", f"data.dataset={reviews}", *COMMON, "train.epochs=2", "small_data_rule=false",
        "arms={full: {strategy: full}, frozen: {strategy: frozen}}", "sizes=[16]", "seeds=[1]",
        f"output_dir={out}"]))
    for run in ("full-16-seed1", "frozen-16-seed1"):
        assert scalars(out / "runs" / run / TENSORBOARD_DIR)["train/loss"], run


@pytest.mark.parametrize("tracker, package", [("wandb", "wandb"), ("comet_ml", "comet-ml")])
def test_a_tracker_without_its_library_is_one_line_before_any_work(tiny_bert, reviews, tmp_path, tracker, package):
    if importlib.util.find_spec(tracker) is not None:
        pytest.skip(f"{tracker} is installed here")
    out = tmp_path / "out"
    config = load_config(ClassifyConfig, None, [f"model={tiny_bert}", f"data.dataset={reviews}", f"output_dir={out}",
                                                *COMMON, f"train.report_to=[{tracker}]"])
    with pytest.raises(UserError) as err:
        run_classify(config)
    assert f"train.report_to={tracker} needs {package}" in str(err.value) and "\n" not in str(err.value)
    assert not out.exists() and not out.with_name("out.partial").exists()
    with pytest.raises(UserError, match=f"arm full: train.report_to={tracker} needs"):
        run_study(load_config(CompareConfig, None, [
            f"model={tiny_bert}", f"data.dataset={reviews}", *COMMON, f"train.report_to=[{tracker}]",
            "arms={full: {strategy: full}}", "sizes=[16]", "seeds=[1]", f"output_dir={tmp_path / 'study'}"]))
    assert not (tmp_path / "study").exists()


def test_a_teacher_runs_two_stages_log_to_their_own_tensorboard_folders(tiny_bert, tmp_path, monkeypatch):
    pytest.importorskip("tensorboardX")
    from test_fewshot import teacher_config, write_splits

    monkeypatch.setenv("HF_TRANSFER_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    result = run_classify(teacher_config(tiny_bert, write_splits(tmp_path / "data"), out,
                                         "data.max_length=64", "train.report_to=[tensorboard]",
                                         "train.logging_steps=1"))
    for stage in ("distil", "gold"):  # each stage's steps count from 1 (metrics.json's log runs on across stages)
        logged = scalars(out / TENSORBOARD_DIR / stage)["train/loss"]
        losses = [entry["loss"] for entry in result.training["log_history"]
                  if entry.get("stage") == stage and "loss" in entry]
        assert losses and [step for step, _ in logged] == list(range(1, len(losses) + 1)), stage
        assert [value for _, value in logged] == pytest.approx(losses, rel=1e-5), stage
