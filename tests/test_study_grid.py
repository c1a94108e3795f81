"""The study's config and grid: CompareConfig's checks, the jobs and their run configs (no training here)."""

import pytest

from hf_transfer.config import ClassifyConfig, CompareConfig, ZeroShotConfig, load_config
from hf_transfer.errors import UserError
from hf_transfer.study.grid import build_jobs, check_sizes, run_folder_name

ARMS = "arms={zs: {kind: zero-shot, method: embedding}, full: {strategy: full}, probe: {strategy: linear-probe}}"


def test_jobs_cover_the_grid_with_their_own_run_configs(tmp_path):
    config = load_config(CompareConfig, None, [ARMS, "sizes=[64, 16, all]", "seeds=[1, 2]", "data.seed=7",
                                               "arms.full.train={learning_rate: 3.0e-5}"])
    jobs = build_jobs(config, train_size=9221, study_dir=tmp_path)
    assert [j.name for j in jobs[:4]] == ["zs", "full-16-seed1", "probe-16-seed1", "full-16-seed2"]
    assert len(jobs) == 1 + 2 * 3 * 2 and len({j.name for j in jobs}) == len(jobs)
    by_name = {j.name: j for j in jobs}
    full = by_name["full-64-seed2"]
    assert full.folder == tmp_path / "runs" / "full-64-seed2" and full.train_examples == 64
    run = full.run_config()
    assert isinstance(run, ClassifyConfig) and run.output_dir == str(full.folder)
    assert (run.data.max_train_samples, run.data.subsample_seed, run.train.seed) == (64, 2, 2)
    assert run.data.seed == 7, "the split seed, hence the test split, never changes"
    assert run.train.learning_rate == 3e-5 and run.strategy == "full"
    assert (run.train.batch_size, run.train.epochs) == (8, 25) and full.schedule_changes, "the small-data rule"
    every = by_name["full-all-seed1"].run_config()
    assert every.data.max_train_samples is None and every.train.epochs == 2
    assert not by_name["full-all-seed1"].schedule_changes
    probe = by_name["probe-16-seed1"].run_config()
    assert probe.train.batch_size == 32 and probe.train.epochs == 2, "the linear probe fits no optimiser steps"
    zs = by_name["zs"]
    assert (zs.size, zs.seed, zs.train_examples) == (0, None, 0) and isinstance(zs.run_config(), ZeroShotConfig)


def test_small_data_rule_can_be_turned_off(tmp_path):
    config = load_config(CompareConfig, None, ["sizes=[16]", "seeds=[1]", "small_data_rule=false"])
    assert all(j.run_config().train.epochs == 2 and not j.schedule_changes for j in build_jobs(config, 100, tmp_path))


def test_local_paths_become_absolute(tmp_path, monkeypatch):
    (tmp_path / "data.csv").write_text("text,label\n")
    monkeypatch.chdir(tmp_path)
    config = load_config(CompareConfig, None, ["data.dataset=data.csv", "sizes=[16]", "seeds=[1]"])
    assert build_jobs(config, 100, tmp_path / "s")[0].config["data"]["dataset"] == str(tmp_path / "data.csv")


def test_quick_keeps_the_smallest_sizes_the_first_seed_and_the_chosen_arms():
    config = load_config(CompareConfig, None, [ARMS, "sizes=[all, 1024, 64, 16]", "quick=true",
                                               "quick_arms=[full, zs]"])
    assert (config.sizes, config.seeds, list(config.arms)) == ([16, 64], [1], ["full", "zs"])


def test_folder_names():
    assert run_folder_name("lora", 16, 3) == "lora-16-seed3" and run_folder_name("zs") == "zs"


@pytest.mark.parametrize("overrides, message", [
    (["arms={}"], "the study has no arms"),
    (["sizes=[]"], "grid is empty (sizes=[])"),
    (["seeds=[]"], "grid is empty (seeds=[])"),
    (["sizes=[16, 16]"], "repeats a value"),
    (["sizes=[many]"], "'sizes' takes an integer"),
    (["arms.x={kind: magic}"], "arms.x.kind='magic'"),
    (["arms.x={strategy_optionz: {r: 8}}"], "unknown config key 'arms.x.strategy_optionz'"),
    (["arms.x={train: {epoch: 3}}"], "unknown config key 'arms.x.train.epoch'"),
    (["arms.x={kind: zero-shot, train: {epochs: 3}}"], "unknown config key 'arms.x.train'"),
    (["arms.x={data: {dataset: other.csv}}"], "arms.x.data.dataset is set by the study"),
    (["arms.x={output_dir: here}"], "arms.x.output_dir is set by the study"),
    (["arms={a/b: {strategy: full}}"], "is not a folder name"),
    (["data.max_train_samples=100"], "data.max_train_samples is set by the study"),
    (["eval_sets=[{name: ood}]"], "eval_sets[0].dataset is required"),
    (["eval_sets=[{name: test, dataset: x.csv}]"], "distinct names"),
    (["eval_sets=[{name: a, dataset: x.csv, labelmap: {}}]"], "unknown config key 'eval_sets[0].labelmap'"),
    (["executor.kind=spark"], "executor.kind takes one of local, ray"),
    (["quick=true", "quick_arms=[nope]"], "quick_arms names 'nope'"),
    (["train.report_to=[tensorbored]"], "train.report_to takes one of"),
])
def test_bad_study_configs_are_one_line(overrides, message):
    with pytest.raises(UserError) as err:
        load_config(CompareConfig, None, overrides)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_sizes_must_fit_the_train_split():
    check_sizes([16, "all", 100], train_size=100, num_labels=2)
    with pytest.raises(UserError, match="size 101 is larger than the train split \\(100 examples"):
        check_sizes([16, 101], train_size=100, num_labels=2)
    with pytest.raises(UserError, match="size 2 is smaller than the number of labels \\(3\\)"):
        check_sizes([2], train_size=100, num_labels=3)


def test_report_to_takes_transformers_integration_names():
    config = load_config(CompareConfig, None, ["train.report_to=[tensorboard, mlflow]"])
    assert config.train.report_to == ["tensorboard", "mlflow"]
    assert load_config(ClassifyConfig, None, ["train.report_to=tensorboard"]).train.report_to == ["tensorboard"]
    assert ClassifyConfig().train.report_to == []


def test_report_to_names_are_transformers_integrations():
    from typing import get_args

    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    from hf_transfer.config import ReportTo

    assert set(get_args(ReportTo)) == set(INTEGRATION_TO_CALLBACK)


def test_the_default_study_config_loads_with_its_grid(tmp_path):
    from pathlib import Path

    path = Path(__file__).parents[1] / "recipes" / "configs" / "compare.yaml"
    config = load_config(CompareConfig, path)
    assert list(config.arms) == ["full", "adapter", "gradual-unfreeze", "frozen", "linear-probe", "scratch",
                                 "zero-shot-embedding", "zero-shot-lm"]
    jobs = build_jobs(config, train_size=9221, study_dir=tmp_path)
    assert len(jobs) == 2 + 6 * 5 * 3
    lm = next(job for job in jobs if job.arm == "zero-shot-lm").run_config()
    assert lm.model == "smollm2-135m" and lm.options["template"] == "Review: {text}\nSentiment:"
    adapter = next(job for job in jobs if job.arm == "adapter").run_config()
    assert adapter.strategy_options["alpha_pattern"] == {"word_embeddings": 0.05}
    from hf_transfer.strategies import get_strategy
    from hf_transfer.zeroshot import get_method

    for job in jobs:  # every arm's options are its strategy's or method's
        run = job.run_config()
        if job.kind == "classify":
            get_strategy(run.strategy, run.strategy_options)
        else:
            get_method(run.method, run.options)
    quick = load_config(CompareConfig, path, ["quick=true"])
    assert (quick.sizes, quick.seeds, list(quick.arms)) == ([16, 64], [1], ["full", "adapter", "zero-shot-embedding"])
