"""share_loaded_data: a study's runs load and tokenize the data once per process, and each run gets exactly the
rows, columns and data facts a fresh load gives it."""

import logging

from conftest import sentiment_rows, write_csv
from hf_transfer.backbones import load_tokenizer, resolve_model
from hf_transfer.config import DataConfig
from hf_transfer.data import load_task_data, share_loaded_data, tokenize_splits


def loaded(config: DataConfig, tokenizer) -> tuple:
    task = load_task_data(config)
    tokenized = tokenize_splits(task, tokenizer, config.max_length)
    pool = None if task.train_pool is None else task.train_pool.to_dict()
    rows = None if task.train_rows is None else task.train_rows.tolist()
    return ({name: split.to_dict() for name, split in task.splits.items()}, task.data_facts, pool, rows,
            {name: split.to_dict() for name, split in tokenized.items()})


def test_shared_loads_equal_fresh_ones_and_happen_once(tiny_bert, tmp_path, caplog):
    rows = sentiment_rows(120, seed=3)
    (tmp_path / "data").mkdir()
    write_csv(tmp_path / "data" / "train.csv", rows)
    # test texts also in train: the overlap facts count those in the run's subsample
    write_csv(tmp_path / "data" / "test.csv", sentiment_rows(30, seed=4) + rows[:30:3])
    data = tmp_path / "data"
    tokenizer = load_tokenizer(resolve_model(str(tiny_bert)))
    configs = [DataConfig(dataset=str(data), text_columns=["review"], label_column="sentiment", max_length=8,
                          max_train_samples=size, subsample_seed=seed)
               for size in (None, 16, 40) for seed in (1, 2)]
    assert share_loaded_data(False) is False
    fresh = [loaded(config, tokenizer) for config in configs]

    share_loaded_data(True)
    try:
        with caplog.at_level(logging.INFO, logger="hf_transfer"):
            shared = [loaded(config, tokenizer) for config in configs]
    finally:
        share_loaded_data(False)
    for config, one, other in zip(configs, fresh, shared, strict=True):
        assert one == other, (config.max_train_samples, config.subsample_seed)
    assert len({str(one[1]["overlap"]) for one in fresh}) > 1, "the overlap facts are the subsample's"
    assert fresh[2][1]["truncation"]["truncated"]["train"] > 0, "max_length=8 cuts texts: the facts are the run's"
    log = caplog.text
    assert log.count("loading once for this process's runs") == 1 and log.count("reusing the splits") == 5
    assert log.count("once for this process's runs") == 2 and log.count("tokenized splits for") == 5
