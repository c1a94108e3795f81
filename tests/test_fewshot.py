"""Few labelled examples with a zero-shot teacher (hf_transfer.teacher, hf_transfer.distill) and the loss behind it
(hf_transfer.losses): the training data the student gets, the calibration, the cache, and what never reads test."""

import json
import math
import random

import numpy as np
import pytest
import torch

from conftest import sentiment_rows, write_csv
from hf_transfer.classify import run_classify
from hf_transfer.config import ClassifyConfig, load_config
from hf_transfer.data import load_task_data
from hf_transfer.distill import InputNoise, TailAverage, distillation_data
from hf_transfer.errors import UserError
from hf_transfer.losses import TargetCrossEntropy, class_weights
from hf_transfer.strategies import get_strategy
from hf_transfer.strategies.linear_probe import C_GRID, soft_target_probe
from hf_transfer.teacher import Teacher, apply_calibration, log_probs, platt_calibration, prepare_teacher
from test_classify import StopAt


@pytest.fixture(autouse=True)
def single_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_with_no_gold_examples_the_training_data_is_exactly_the_teachers_output():
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet([1, 1, 1], size=12).astype(np.float32)
    unlabelled = rng.dirichlet([1, 1, 1], size=3).astype(np.float32)
    texts = [f"text {i}" for i in range(12)]
    data = distillation_data(probabilities, np.array([], dtype=int), np.array([], dtype=int), texts, unlabelled,
                             ["more 0", "more 1", "more 2"], "platt")
    assert data.texts == texts + ["more 0", "more 1", "more 2"]
    assert np.array_equal(data.targets, np.concatenate([probabilities, unlabelled]))
    assert data.gold == 0 and data.calibration == {"method": "none", "a": 1.0, "b": [0.0, 0.0, 0.0]}


def test_gold_examples_keep_their_labels_once_and_the_rest_get_the_calibrated_teacher():
    rng = np.random.default_rng(1)
    probabilities = rng.dirichlet([1, 1], size=10)
    gold_rows, gold_labels = np.array([2, 7]), np.array([1, 0])
    data = distillation_data(probabilities, gold_rows, gold_labels, [f"t{i}" for i in range(10)],
                             np.zeros((0, 2)), [], "platt")
    pool = [i for i in range(10) if i not in (2, 7)]
    assert data.texts == [f"t{i}" for i in pool] + ["t2", "t7"]
    assert np.array_equal(data.targets[-2:], [[0, 1], [1, 0]])
    a, b = data.calibration["a"], np.array(data.calibration["b"])
    assert np.allclose(data.targets[:-2], apply_calibration(log_probs(probabilities[pool]), a, b), atol=1e-6)
    assert (data.from_train, data.gold) == (8, 2)


def test_platt_calibration_recovers_a_known_scale_and_offset():
    rng = np.random.default_rng(2)
    teacher = rng.dirichlet([1, 1], size=4000)
    true = apply_calibration(log_probs(teacher), 2.0, np.array([0.4, -0.4]))
    labels = (rng.random(4000) < true[:, 1]).astype(int)
    a, b = platt_calibration(log_probs(teacher), labels, l2=0.0)
    assert a == pytest.approx(2.0, abs=0.2) and b == pytest.approx([0.4, -0.4], abs=0.1)
    assert platt_calibration(log_probs(teacher[:0]), labels[:0]) == (1.0, pytest.approx([0.0, 0.0]))


def test_soft_target_loss_is_cross_entropy_for_one_hot_and_kl_plus_entropy_for_soft_targets():
    logits = torch.randn(5, 3)
    labels = torch.tensor([0, 2, 1, 1, 0])
    loss = TargetCrossEntropy()
    assert loss({"logits": logits}, labels) == pytest.approx(float(torch.nn.functional.cross_entropy(logits, labels)))
    targets = torch.softmax(torch.randn(5, 3), -1)
    kl = torch.nn.functional.kl_div(torch.log_softmax(logits, -1), targets, reduction="batchmean")
    entropy = -(targets * targets.log()).sum(-1).mean()
    assert loss({"logits": logits}, targets) == pytest.approx(float(kl + entropy), rel=1e-5)
    # Trainer's item count for float labels is every entry: the loss divides by examples all the same
    assert loss({"logits": logits}, targets, num_items_in_batch=15) == pytest.approx(float(kl + entropy), rel=1e-5)
    weights = torch.tensor([1.0, 2.0, 0.5])
    weighted = TargetCrossEntropy(weights)({"logits": logits}, labels)
    expected = torch.nn.functional.cross_entropy(logits, labels, weight=weights, reduction="sum") / 5
    assert weighted == pytest.approx(float(expected))


def test_class_weights_balanced_and_per_label():
    assert class_weights("balanced", ["a", "b"], [0, 0, 0, 1], False).tolist() == pytest.approx([4 / 6, 2.0])
    assert class_weights({"b": 3}, ["a", "b"], [0, 1], False).tolist() == [1.0, 3.0]
    assert class_weights(None, ["a", "b"], [0, 1], False) is None
    with pytest.raises(UserError, match="label 'c'"):
        class_weights({"c": 2}, ["a", "b"], [0, 1], False)
    with pytest.raises(UserError, match="multi-label"):
        class_weights("balanced", ["a", "b"], [[1, 0]], True)


# -- whole runs on a tiny BERT with an embedding teacher ------------------------------------------------------------


def write_splits(folder, poison_test: bool = False):
    """train / validation / test files; the poisoned test split has other texts, all labelled "pos"."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = sentiment_rows(160, seed=3)
    write_csv(folder / "train.csv", rows[:100])
    write_csv(folder / "validation.csv", rows[100:130])
    test = rows[130:]
    if poison_test:
        rng = random.Random(9)
        test = [{"review": " ".join(rng.sample(row["review"].split() * 2, 4)) + " poison",
                 "sentiment": "pos"} for row in test]
    write_csv(folder / "test.csv", test)
    return folder


def teacher_config(model, data, output_dir, *extra):
    return load_config(ClassifyConfig, None, [
        f"model={model}", f"data.dataset={data}", "data.text_columns=review", "data.label_column=sentiment",
        "data.max_train_samples=12", "data.max_length=64", "train.precision=fp32", "train.threads=1", "train.seed=3",
        "teacher.method=embedding", "teacher.distill_epochs=2", "teacher.distill_batch_size=16",
        "teacher.gold_steps=6", "baselines=[majority]", f"output_dir={output_dir}", *extra,
    ])


@pytest.fixture(scope="module")
def two_teacher_runs(tiny_bert, tmp_path_factory):
    """The same run twice, the second on a poisoned test split, sharing one teacher cache; `computed` lists what the
    teacher computed in each run."""
    folder = tmp_path_factory.mktemp("fewshot")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("HF_TRANSFER_CACHE", str(folder / "cache"))
    computed = []
    compute = Teacher._compute
    monkeypatch.setattr(Teacher, "_compute", lambda self, member, texts, max_length, what: (
        computed[-1].append(what), compute(self, member, texts, max_length, what))[1])
    results = []
    for i, poison in enumerate((False, True)):
        computed.append([])
        data = write_splits(folder / f"data{i}", poison_test=poison)
        results.append(run_classify(teacher_config(tiny_bert, data, folder / f"out{i}")))
    monkeypatch.undo()
    return results, computed, folder


def test_a_teacher_run_distils_then_fine_tunes_on_the_gold_examples_and_records_both(two_teacher_runs):
    (first, _), _, folder = two_teacher_runs
    stages = first.training["stages"]
    assert [stage["name"] for stage in stages] == ["distil", "gold"]
    assert stages[0]["examples"] == 100 and stages[1]["examples"] == 12
    assert stages[1]["optimizer_steps"] == 15  # max(ceil(10 x 12 / batch 8, the rule's floor), gold_steps 6)
    assert stages[0]["learning_rate"] == 1e-4 and stages[1]["learning_rate"] == pytest.approx(2e-5)
    teacher = first.training["teacher"]
    assert teacher["texts"] == {"train_without_labels": 88, "unlabelled": 0, "gold": 12}
    assert teacher["calibration"]["method"] == "platt"
    baseline = first.baselines["teacher zero-shot embedding"]
    assert set(baseline["metrics"]) == {"validation", "test"} and set(baseline["calibrated_accuracy"]) == {
        "validation", "test"}
    # the run ends with the better of the distilled model and the gold fine-tune's best, on validation
    best = max(stage["best_validation_accuracy"] for stage in stages)
    assert first.metrics["validation"]["accuracy"] == pytest.approx(best)
    assert stages[0]["input_noise"] == 0.1  # the default
    card = (folder / "out0" / "README.md").read_text()
    assert "## Teacher" in card and "88 train texts whose labels" in card and "Teacher, calibrated" in card
    assert "a random 10% of its tokens deleted" in card


def test_the_teachers_labels_are_cached_and_a_second_run_does_not_recompute_them(two_teacher_runs):
    (first, second), computed, _ = two_teacher_runs
    assert sorted(computed[0]) == ["test", "train", "validation"]
    assert computed[1] == ["test"]  # only the (poisoned) test texts are new
    assert second.training["teacher"]["labelled"]["train"] == {"texts": 100, "cached": True}


def test_calibration_and_training_never_read_the_test_split(two_teacher_runs):
    (first, second), _, _ = two_teacher_runs
    assert second.training["teacher"]["calibration"] == first.training["teacher"]["calibration"]
    assert second.training["stages"] == first.training["stages"]
    assert second.metrics["validation"] == first.metrics["validation"]
    # the poisoned test split was read, for the record only
    assert second.metrics["test"]["confusion_matrix"] != first.metrics["test"]["confusion_matrix"]
    teacher = "teacher zero-shot embedding"
    assert second.baselines[teacher]["metrics"]["test"] != first.baselines[teacher]["metrics"]["test"]
    assert second.baselines[teacher]["metrics"]["validation"] == first.baselines[teacher]["metrics"]["validation"]


def test_a_teacher_needs_texts_without_labels_and_a_single_label_task(tiny_bert, tmp_path):
    data = write_splits(tmp_path / "data")
    with pytest.raises(UserError, match="every train text is labelled"):
        run_classify(teacher_config(tiny_bert, data, tmp_path / "out", "data.max_train_samples=null"))
    with pytest.raises(UserError, match="learns soft targets"):
        run_classify(teacher_config(tiny_bert, data, tmp_path / "out", "strategy=setfit"))
    with pytest.raises(UserError, match="teacher.method"):
        teacher_config(tiny_bert, data, tmp_path / "out", "teacher.method=null", "teacher.unlabelled=x.txt")


def test_input_noise_deletes_tokens_of_the_text_afresh_each_read_and_keeps_specials_targets_and_alignment(
        tiny_bert):
    from datasets import Dataset
    from transformers import AutoTokenizer, DataCollatorWithPadding

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    words = sorted(w for w in tokenizer.get_vocab() if w.isalpha() and w not in tokenizer.all_special_tokens)
    texts = [" ".join(words[i % len(words)] for i in range(n)) for n in (40, 25, 1)]
    encoded = tokenizer(texts, ["a pair of words"] * 3)
    rows = {**encoded, "labels": [[0.3, 0.7], [1.0, 0.0], [0.5, 0.5]], "num_tokens": [len(i) for i in
                                                                                     encoded["input_ids"]]}
    noise = InputNoise(0.3, seed=1, special_ids=tokenizer.all_special_ids)
    # as Trainer reads a train set: unused columns removed (the transform stays), rows collated
    dataset = Dataset.from_dict(rows).with_transform(noise).remove_columns(["num_tokens"])
    first, second = [dataset[i] for i in range(3)], [dataset[i] for i in range(3)]
    specials = set(tokenizer.all_special_ids)
    for row, clean in zip(first, encoded["input_ids"]):
        assert len(row["input_ids"]) == len(row["attention_mask"]) == len(row["token_type_ids"])
        assert [t for t in row["input_ids"] if t in specials] == [t for t in clean if t in specials]
        assert any(t not in specials for t in row["input_ids"])  # the one-word row keeps its word
    assert len(first[0]["input_ids"]) < len(encoded["input_ids"][0])  # 30% of ~50 tokens: some went
    assert first[0]["input_ids"] != second[0]["input_ids"]  # drawn afresh on each read
    assert [row["labels"] for row in first] == rows["labels"]
    clean = iter(zip(encoded["input_ids"][0], encoded["token_type_ids"][0]))
    # deletion keeps the order, and each token its segment id: the row is a subsequence of the clean one
    assert all(pair in clean for pair in zip(first[0]["input_ids"], first[0]["token_type_ids"]))
    batch = DataCollatorWithPadding(tokenizer)(first)
    assert batch["input_ids"].shape[0] == 3 and batch["labels"].shape == (3, 2)
    again = Dataset.from_dict(rows).with_transform(InputNoise(0.3, seed=1, special_ids=tokenizer.all_special_ids))
    assert again[0]["input_ids"] == first[0]["input_ids"]  # seeded: a run repeats
    assert again[0]["num_tokens"] == rows["num_tokens"][0]  # a column that is not per token stays as it was


def test_input_noise_outside_zero_to_one_or_on_the_linear_probe_is_refused(tiny_bert, tmp_path):
    with pytest.raises(UserError, match="teacher.input_noise"):
        teacher_config(tiny_bert, tmp_path, tmp_path / "out", "teacher.input_noise=1.5")
    with pytest.raises(UserError, match="strategy=linear-probe reads each text's features once"):
        run_classify(teacher_config(tiny_bert, write_splits(tmp_path / "data"), tmp_path / "probe",
                                    "teacher.input_noise=0.2", "strategy=linear-probe"))
    assert not list(tmp_path.glob("probe*"))  # no output, not even a .partial folder


def test_the_tail_average_is_the_mean_of_the_weights_evaluated_from_its_start_and_survives_a_resume(tmp_path):
    from transformers import TrainerControl, TrainerState, TrainingArguments

    args, control = TrainingArguments(output_dir=str(tmp_path), report_to="none"), TrainerControl()
    model = torch.nn.Linear(3, 2)

    def evaluate(average, step):
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.fill_(step)
        average.on_evaluate(args, TrainerState(global_step=step), control, model=model)

    average = TailAverage(model, start=4, resume_from=None)
    evaluate(average, 2)
    (tmp_path / "checkpoint-2").mkdir()
    average.on_save(args, TrainerState(global_step=2), control)
    assert not any((tmp_path / "checkpoint-2").iterdir())  # before the tail: nothing to keep
    for step in (4, 6):
        evaluate(average, step)
    (tmp_path / "checkpoint-6").mkdir()
    average.on_save(args, TrainerState(global_step=6), control)
    resumed = TailAverage(torch.nn.Linear(3, 2), start=4, resume_from=tmp_path / "checkpoint-6")
    for each in (average, resumed):
        evaluate(each, 8)
    for each in (average, resumed):
        target = torch.nn.Linear(3, 2)
        assert each.load_into(target) == 3
        assert all(torch.equal(p, torch.full_like(p, 6.0)) for p in target.parameters())  # mean of 4, 6, 8
    with pytest.raises(RuntimeError, match="no evaluation at or after step 10"):
        TailAverage(model, start=10, resume_from=None).load_into(model)


def test_a_distillation_can_end_with_the_mean_of_its_last_evaluations(tiny_bert, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TRANSFER_CACHE", str(tmp_path / "cache"))
    result = run_classify(teacher_config(tiny_bert, write_splits(tmp_path / "data"), tmp_path / "out",
                                         "teacher.average_from=0.5", "teacher.gold_steps=0"))
    (stage,) = result.training["stages"]
    start = math.ceil(0.5 * stage["optimizer_steps"])  # 14 steps: evaluations at 8, 10, 12, 14 are averaged
    evaluated = [entry["step"] for entry in result.training["log_history"] if "eval_accuracy" in entry]
    assert stage["averaged_evaluations"] == sum(step >= start for step in evaluated) == 4
    assert result.metrics["validation"]["accuracy"] == pytest.approx(stage["average_validation_accuracy"])
    card = (tmp_path / "out" / "README.md").read_text()
    assert "ending with the mean of its weights at its last 4 evaluations" in card
    with pytest.raises(UserError, match="teacher.average_from"):
        teacher_config(tiny_bert, tmp_path, tmp_path / "out", "teacher.average_from=1")
    with pytest.raises(UserError, match="strategy=linear-probe trains by no optimiser steps"):
        run_classify(teacher_config(tiny_bert, tmp_path / "data", tmp_path / "probe", "teacher.average_from=0.5",
                                    "strategy=linear-probe"))
    assert not list(tmp_path.glob("probe*"))  # no output, not even a .partial folder


def test_a_resumed_teacher_runs_rates_count_the_steps_this_session_trained(tiny_bert, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TRANSFER_CACHE", str(tmp_path / "cache"))
    config = teacher_config(tiny_bert, write_splits(tmp_path / "data"), tmp_path / "out")
    with pytest.raises(RuntimeError, match="stopped"):
        run_classify(config, callbacks=(StopAt(5),))  # in the distil stage, after a checkpoint
    result = run_classify(config)
    resumed = result.training["resumed_from_step"]
    distil, gold = result.training["stages"]
    assert 0 < resumed < distil["optimizer_steps"]
    trained = ((distil["optimizer_steps"] - resumed) * distil["batch_size"]
               + gold["optimizer_steps"] * gold["batch_size"])
    assert result.compute["train_examples_per_s"] * result.compute["train_time_s"] == pytest.approx(trained)


def test_a_soft_target_probe_on_one_hot_targets_is_scikit_learns_own_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(60, 5)), rng.integers(0, 3, size=60)
    for weights in (None, {0: 2.0, 1: 1.0, 2: 0.5}):
        soft = soft_target_probe(x, np.eye(3)[y], 0.3, 1000, True, weights)
        hard = LogisticRegression(C=0.3, max_iter=1000, class_weight=weights).fit(x, y)
        assert np.allclose(soft.coef_, hard.coef_, atol=1e-4) and np.allclose(soft.intercept_, hard.intercept_,
                                                                              atol=1e-4)
    # a text whose target is split 70 / 30 weighs as 0.7 of a copy labelled one way and 0.3 the other
    targets = np.tile([[0.7, 0.3]], (40, 1))
    probe = soft_target_probe(rng.normal(size=(40, 2)) * 1e-3, targets, 100.0, 1000, True)
    assert np.allclose(probe.predict_proba(np.zeros((1, 2))), [[0.7, 0.3]], atol=1e-3)


def test_a_linear_probe_learns_from_the_teacher_in_one_regression_with_c_chosen_on_the_gold_examples(
        tiny_bert, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TRANSFER_CACHE", str(tmp_path / "cache"))
    data = write_splits(tmp_path / "data")
    result = run_classify(teacher_config(tiny_bert, data, tmp_path / "out", "strategy=linear-probe"))
    (stage,) = result.training["stages"]
    assert stage["name"] == "probe" and stage["examples"] == 100 and stage["optimizer_steps"] == 0
    assert stage["C"] in C_GRID and 0.0 <= stage["gold_accuracy"] <= 1.0
    # the saved output layer is the fitted probe: the run's evaluation reads the accuracy the fit logged
    assert result.metrics["validation"]["accuracy"] == pytest.approx(stage["validation_accuracy"])
    assert result.training["teacher"]["texts"] == {"train_without_labels": 88, "unlabelled": 0, "gold": 12}
    card = (tmp_path / "out" / "README.md").read_text()
    assert "soft targets of a logistic regression on the frozen features" in card and "| Stage |" not in card


def test_an_ensemble_teacher_is_the_normalised_product_of_its_members_each_cached_alone(tiny_bert, tmp_path,
                                                                                         monkeypatch):
    monkeypatch.setenv("HF_TRANSFER_CACHE", str(tmp_path / "cache"))
    data = write_splits(tmp_path / "data")
    first = {"label_descriptions": {"pos": "good fun", "neg": "bad boring"}}
    second = {"label_descriptions": {"pos": "a great film", "neg": "an awful film"}}
    ensemble = teacher_config(tiny_bert, data, tmp_path / "out", f"teacher.options={json.dumps(first)}",
                              f"teacher.ensemble=[{{options: {json.dumps(second)}}}]")
    task = load_task_data(ensemble.data)
    texts = list(task.texts("validation"))
    full = get_strategy("full")
    alone = [prepare_teacher(teacher_config(tiny_bert, data, tmp_path / "out", f"teacher.options={json.dumps(o)}"
                                            ).teacher, ensemble.model, task, str(data), full) for o in (first, second)]
    probabilities = [teacher.probabilities(texts, 64, "validation") for teacher in alone]
    teacher = prepare_teacher(ensemble.teacher, ensemble.model, task, str(data), full)
    assert [member.method.name for member in teacher.members] == ["embedding", "embedding"]
    product = probabilities[0] * probabilities[1]
    assert np.allclose(teacher.probabilities(texts, 64, "validation"), product / product.sum(1, keepdims=True),
                       atol=1e-6)
    assert teacher.labelled["validation"] == {"texts": len(texts), "cached": True}  # both members' from the cache
    assert len(list((tmp_path / "cache" / "teacher").glob("*.npy"))) == 2


def test_an_ensemble_teachers_members_are_in_the_record_and_the_card(tiny_bert, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TRANSFER_CACHE", str(tmp_path / "cache"))
    data = write_splits(tmp_path / "data")
    second = {"label_descriptions": {"pos": "a great film", "neg": "an awful film"}}
    result = run_classify(teacher_config(tiny_bert, data, tmp_path / "out", "teacher.gold_steps=0",
                                         "teacher.distill_epochs=1",
                                         f"teacher.ensemble=[{{options: {json.dumps(second)}}}]"))
    (member,) = result.training["teacher"]["ensemble"]
    assert member["method"] == "embedding" and member["options"]["label_descriptions"] == second["label_descriptions"]
    card = (tmp_path / "out" / "README.md").read_text()
    assert "(and 1 more: embedding with" in card and "their probabilities multiplied" in card


@pytest.mark.parametrize("entry", ["[{template: x}]", "[plain]", "[{options: 3}]"])
def test_an_ensemble_entry_that_is_not_method_model_options_is_refused(entry):
    with pytest.raises(UserError, match="teacher.ensemble"):
        load_config(ClassifyConfig, None, ["teacher.method=lm", f"teacher.ensemble={entry}"])


def test_unlabelled_texts_join_the_teachers_pool(tiny_bert, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TRANSFER_CACHE", str(tmp_path / "cache"))
    data = write_splits(tmp_path / "data")
    extra = tmp_path / "more.txt"
    extra.write_text("\n".join(row["review"] for row in sentiment_rows(20, seed=11)) + "\n")
    result = run_classify(teacher_config(tiny_bert, data, tmp_path / "out", f"teacher.unlabelled={extra}",
                                         "teacher.gold_steps=0", "teacher.distill_epochs=1"))
    assert result.training["teacher"]["texts"]["unlabelled"] == 20
    assert [stage["name"] for stage in result.training["stages"]] == ["distil"]
    assert result.training["stages"][0]["examples"] == 120


# -- label descriptions chosen on validation ------------------------------------------------------------------------

CANDIDATES = ["candidates=[{label_descriptions: {pos: bad awful boring, neg: good great fun}}, "
              "{label_descriptions: {pos: good great fun, neg: bad awful boring}}]"]


def test_description_selection_reads_validation_and_never_test(tiny_bert, tmp_path):
    from hf_transfer.zeroshot import ZeroShotConfig, run_zeroshot

    runs = []
    for i, poison in enumerate((False, True)):
        data = write_splits(tmp_path / f"data{i}", poison_test=poison)
        runs.append(run_zeroshot(load_config(ZeroShotConfig, None, [
            f"model={tiny_bert}", f"data.dataset={data}", "data.text_columns=review", "data.label_column=sentiment",
            "data.max_length=64", "threads=1", f"output_dir={tmp_path / f'zs{i}'}", *CANDIDATES])))
    selection = runs[0].strategy["selection"]
    assert selection["split"] == "validation" and len(selection["candidates"]) == 2
    scores = [c["validation_accuracy"] for c in selection["candidates"]]
    assert selection["chosen"] == selection["candidates"][scores.index(max(scores))]["options"]
    assert runs[0].metrics["validation"]["accuracy"] == pytest.approx(max(scores))
    # a poisoned test split changes the test score and nothing that was chosen
    assert runs[1].strategy["selection"] == selection
    assert runs[1].metrics["test"]["confusion_matrix"] != runs[0].metrics["test"]["confusion_matrix"]


# -- class weights and a run that predicts one label ----------------------------------------------------------------


def test_class_weights_reach_the_loss_and_a_one_label_run_says_so_in_log_and_card(tiny_bert, tmp_path, caplog):
    data = write_splits(tmp_path / "data")
    config = load_config(ClassifyConfig, None, [
        f"model={tiny_bert}", f"data.dataset={data}", "data.text_columns=review", "data.label_column=sentiment",
        "data.max_length=64", "train.precision=fp32", "train.threads=1", "train.max_steps=8",
        "train.learning_rate=1e-2", "train.class_weight={neg: 0.001}", "baselines=[majority]",
        f"output_dir={tmp_path / 'out'}"])
    with caplog.at_level("WARNING", logger="hf_transfer"):
        result = run_classify(config)
    # neg barely counts in the loss: the model learns to say pos for everything
    assert result.metrics["test"]["confusion_matrix"][0][0] == 0 and result.metrics["test"]["confusion_matrix"][1][1] > 0
    assert "the model predicts 'pos' for every test example" in caplog.text
    assert "**The model predicts `pos` for every test example**" in (tmp_path / "out" / "README.md").read_text()


def test_the_linear_probe_weights_its_log_loss_by_train_class_weight(tiny_bert, tmp_path):
    data = write_splits(tmp_path / "data")
    predicted_pos = []
    for weight in ("{pos: 1.0}", "{neg: 0.001}"):
        config = load_config(ClassifyConfig, None, [
            f"model={tiny_bert}", f"data.dataset={data}", "data.text_columns=review", "data.label_column=sentiment",
            "data.max_length=64", "train.precision=fp32", "train.threads=1", "strategy=linear-probe",
            "strategy_options={C: 1.0}", f"train.class_weight={weight}", "baselines=[majority]",
            f"output_dir={tmp_path / 'out'}", "overwrite_output_dir=true"])
        matrix = run_classify(config).metrics["test"]["confusion_matrix"]
        predicted_pos.append(matrix[0][1] + matrix[1][1])
    assert predicted_pos[1] > predicted_pos[0]  # neg barely counts: the probe says pos more often


def test_dataset_assets_fill_in_their_label_descriptions_and_the_users_own_win():
    from hf_transfer.zeroshot.descriptions import with_dataset_descriptions

    filled = with_dataset_descriptions("embedding", {"threshold": 0.5}, "rotten-tomatoes")
    assert filled == {"threshold": 0.5, "label_descriptions": {"fresh": "An excellent, enjoyable film.",
                                                               "rotten": "A boring, disappointing film."}}
    own = {"label_descriptions": {"fresh": "good", "rotten": "bad"}}
    assert with_dataset_descriptions("embedding", own, "rotten-tomatoes") == own
    assert with_dataset_descriptions("embedding", {}, "rotten-tomatoes", ["fresh"])["label_descriptions"] == {
        "fresh": "An excellent, enjoyable film."}
    assert with_dataset_descriptions("lm", {}, "rotten-tomatoes") == {}  # the LM method takes verbalizers instead
    assert with_dataset_descriptions("embedding", {}, "some/file.csv") == {}
