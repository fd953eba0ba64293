import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from deeprel.config import Config, ConfigError, load_config, parse_override


def test_shipped_configs_load_with_the_papers_defaults() -> None:
    config = load_config("configs/conll04.toml")
    model = config.model
    assert (model.cell, model.hidden_size, model.shared_depth, model.ner_depth, model.re_depth) == ("gru", 256, 1, 1, 2)
    assert (model.rnn_dropout, model.re_dropout, model.label_embedding_size, model.threshold) == (0.35, 0.5, 25, 0.9)
    assert config.training.lambda_re == 5.0
    assert config.embeddings.chars.hidden_size == 32
    assert load_config("configs/conll04_finetuned.toml").embeddings.contextual.mode == "finetuned"
    assert load_config("configs/tiny.toml").data.max_train_documents == 300


def test_searched_config_is_the_searchs_best_trial_with_the_papers_epoch_budget() -> None:
    best = json.loads(Path("docs/results/tuning.json").read_text(encoding="utf-8"))["conll04"]["best_params"]
    config = load_config("configs/conll04_searched.toml")
    for key, value in best.items():
        section, name = key.split(".")
        assert getattr(getattr(config, section), name) == pytest.approx(value), key
    paper = load_config("configs/conll04.toml").training
    assert (config.training.max_epochs, config.training.patience) == (paper.max_epochs, paper.patience) == (30, 6)


def test_unknown_key_is_named(tmp_path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[model]\nshared_dept = 2\n")
    with pytest.raises(ConfigError, match=r"bad.toml.*model\.shared_dept"):
        load_config(path)


def test_bad_value_is_named(tmp_path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[model]\ncell = "transformer"\n[training]\nlearning_rate = -1\n')
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert "model.cell" in str(error.value) and "training.learning_rate" in str(error.value)


def test_invalid_toml_names_the_file(tmp_path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[model\n")
    with pytest.raises(ConfigError, match="broken.toml: not valid TOML"):
        load_config(path)


def test_missing_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.toml")


def test_every_input_part_off_is_refused() -> None:
    tree = {
        "embeddings": {
            "contextual": {"enabled": False},
            "static": {"enabled": False},
            "chars": {"enabled": False},
            "casing": False,
        }
    }
    with pytest.raises(ValueError, match="at least one input representation"):
        Config.model_validate(tree)


def test_retrain_protocol_needs_train_dev() -> None:
    with pytest.raises(ConfigError, match="train_dev"):
        Config().with_overrides({"training.protocol": "retrain"})


@pytest.mark.parametrize("fraction", [0, 1, 1.5])
def test_dev_fraction_is_a_share_and_excludes_a_dev_file(fraction: float) -> None:
    with pytest.raises(ConfigError, match="data.dev_fraction"):
        Config().with_overrides({"data.dev_fraction": fraction})
    with pytest.raises(ConfigError, match="data.dev and data.dev_fraction both give a dev set"):
        Config().with_overrides({"data.dev": "dev.json", "data.dev_fraction": 0.1})


def test_unknown_early_stopping_metric() -> None:
    with pytest.raises(ConfigError, match="early_stopping_metric"):
        Config().with_overrides({"training.early_stopping_metric": "accuracy"})


def test_overrides() -> None:
    config = Config().with_overrides(dict([parse_override("model.shared_depth=3"), parse_override("model.cell=lstm")]))
    assert config.model.shared_depth == 3 and config.model.cell == "lstm"
    with pytest.raises(ConfigError, match="unknown configuration key 'model.depth'"):
        Config().with_overrides({"model.depth": 1})
    with pytest.raises(ConfigError, match="not of the form"):
        parse_override("model.depth")


def test_config_is_frozen() -> None:
    with pytest.raises(ValidationError, match="frozen"):
        Config().model.hidden_size = 3  # type: ignore[misc]


def test_run_settings_are_not_configuration_but_old_trees_holding_them_still_load() -> None:
    from deeprel.config import parse_config, split_run_settings

    assert (
        "device" not in Config().to_dict()["training"]
        and "cache_dir" not in Config().to_dict()["embeddings"]["contextual"]
    )
    old = {
        "training": {"device": "cuda", "num_threads": 2, "seed": 3},
        "embeddings": {"contextual": {"cache_dir": None}},
    }
    tree, run = split_run_settings(old)
    assert run == {"device": "cuda", "num_threads": 2}  # a None (the old default) is no setting
    assert tree == {"training": {"seed": 3}, "embeddings": {"contextual": {}}}
    assert old["training"]["device"] == "cuda", "the given tree is not changed"
    assert parse_config(old, "old.json").training.seed == 3
    with pytest.raises(ConfigError, match="unknown configuration key 'training.device'"):
        Config().with_overrides({"training.device": "cpu"})


def test_cli_honours_run_settings_given_the_old_way(tmp_path, capsys) -> None:
    from deeprel.cli import configured

    path = tmp_path / "old.toml"
    path.write_text('[training]\nnum_threads = 3\ndevice = "cpu"\n')
    config, runtime = configured(path, ("embeddings.contextual.cache_dir=/tmp/x", "model.hidden_size=8"))
    assert (runtime.device, runtime.num_threads, str(runtime.cache_dir)) == ("cpu", 3, "/tmp/x")
    assert config.model.hidden_size == 8
    _, runtime = configured(path, (), device="auto", num_threads=1)  # the options win
    assert (runtime.device, runtime.num_threads) == ("auto", 1)
    assert "training.device, training.num_threads" in capsys.readouterr().err
    for bad, message in (("training.num_threads=abc", "expected a whole number"), ("training.device=3", "a string")):
        with pytest.raises(ConfigError, match=rf"old.toml: {bad.split('=')[0]} = .*{message}"):
            configured(path, (bad,))
    _, runtime = configured(tmp_path / "old.toml", ("embeddings.contextual.cache_dir=null",))
    assert runtime.cache_dir is None  # null, the old default, is no setting
