from pathlib import Path

import pytest

from hf_transfer.config import ClassifyConfig, load_config
from hf_transfer.errors import UserError
from hf_transfer.strategies import get_strategy


def test_yaml_then_overrides_in_order(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model: some/model\ntrain:\n  epochs: 3\n  learning_rate: 2.0e-5\ndata:\n  dataset: x.csv\n")
    config = load_config(ClassifyConfig, path, ["train.epochs=1", "train.learning_rate=1e-4", "data.text_columns=review",
                                                "strategy_options.r=8", "train.group_by_length=false"])
    assert config.model == "some/model"
    assert config.train.epochs == 1.0
    assert config.train.learning_rate == pytest.approx(1e-4)  # YAML reads 1e-4 as a string; the field is a float
    assert config.data.text_columns == ["review"]
    assert config.data.dataset == "x.csv"
    assert config.strategy_options == {"r": 8}
    assert config.train.group_by_length is False


CONFIGS = Path(__file__).parents[1] / "recipes" / "configs"


def test_defaults_match_the_recipe_config():
    assert load_config(ClassifyConfig, CONFIGS / "classify.yaml") == ClassifyConfig()


@pytest.mark.parametrize("recipe", sorted(CONFIGS.glob("classify*.yaml")), ids=lambda path: path.stem)
def test_every_shipped_classify_config_loads_and_its_strategy_takes_its_options(recipe):
    config = load_config(ClassifyConfig, recipe)
    assert get_strategy(config.strategy, config.strategy_options).name == config.strategy


@pytest.mark.parametrize(
    "override, message",
    [
        ("epochs=3", "unknown config key 'epochs'"),
        ("train.epoch=3", "unknown config key 'train.epoch'"),
        ("train.epochs=many", "'train.epochs' takes a number"),
        ("train.batch_size=1.5", "'train.batch_size' takes an integer"),
        ("train.group_by_length=maybe", "takes true or false"),
        ("data=3", "is a section"),
        ("no-equals-sign", "not of the form key=value"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(UserError, match=message):
        load_config(ClassifyConfig, None, [override])


def test_bad_config_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_config(ClassifyConfig, tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(ClassifyConfig, broken)
