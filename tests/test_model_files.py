"""Model directories: safetensors + JSON, loaded without executing anything, with clear errors."""

import json
import shutil

import pytest
import torch

from deeprel.config import resolve_data_path
from deeprel.data.readers import read_sentences
from deeprel.inference.predictor import Predictor
from deeprel.model.files import REQUIRED_FILES, ModelLoadError, load_model, save_model


@pytest.fixture()
def model_copy(trained_run, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(trained_run / "model", target)
    return target


def test_no_pickle_in_a_model_directory(trained_run) -> None:
    names = sorted(p.name for p in (trained_run / "model").iterdir())
    assert names == ["config.json", "labels.json", "meta.json", "model.safetensors", "vocab.json"]
    config = json.loads((trained_run / "model" / "config.json").read_text())
    assert config["model"]["hidden_size"] == 32  # the full configuration travels with the weights


def test_save_load_round_trip_predicts_the_same(trained_run, tiny_config, tmp_path) -> None:
    sentences = read_sentences(resolve_data_path(tiny_config.data.train))[:10]
    first = load_model(trained_run / "model")
    save_model(first.model, first.featurizer, first.config, tmp_path / "again", first.meta)
    second = load_model(tmp_path / "again")
    assert second.config == first.config
    for a, b in zip(
        Predictor(first.model, first.featurizer, first.config).predict(sentences),
        Predictor(second.model, second.featurizer, second.config).predict(sentences),
        strict=True,
    ):
        assert a.entities == b.entities and a.relations == b.relations
    for (name, x), (_, y) in zip(first.model.state_dict().items(), second.model.state_dict().items(), strict=True):
        assert torch.equal(x, y), name


def test_saving_over_a_model_replaces_it_whole(trained_run, model_copy) -> None:
    loaded = load_model(model_copy)
    save_model(loaded.model, loaded.featurizer, loaded.config, model_copy, {"note": "second save"})
    assert json.loads((model_copy / "meta.json").read_text()) == {"note": "second save"}
    assert not [p for p in model_copy.parent.iterdir() if p.name.startswith(".")], "no staging folders left behind"


@pytest.mark.parametrize("missing", REQUIRED_FILES)
def test_incomplete_directory_names_what_is_missing(model_copy, missing) -> None:
    (model_copy / missing).unlink()
    with pytest.raises(ModelLoadError, match=f"missing {missing}"):
        load_model(model_copy)


def test_corrupt_weights(model_copy) -> None:
    (model_copy / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(ModelLoadError, match="corrupt weights file"):
        load_model(model_copy)


def test_weights_that_do_not_match_the_config(model_copy) -> None:
    config = json.loads((model_copy / "config.json").read_text())
    config["model"]["re_depth"] = 2
    (model_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="do not match config.json"):
        load_model(model_copy)


def test_bad_config_json(model_copy) -> None:
    (model_copy / "config.json").write_text('{"model": {"hidden": 3}}')
    with pytest.raises(ModelLoadError, match="model.hidden"):
        load_model(model_copy)
    (model_copy / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="unreadable"):
        load_model(model_copy)


def test_not_a_directory(tmp_path) -> None:
    with pytest.raises(ModelLoadError, match="no such model directory"):
        load_model(tmp_path / "absent")


def test_a_model_saved_with_run_settings_in_its_config_still_loads(model_copy) -> None:
    # Models saved before device, threads and the cache became run settings hold them in config.json.
    path = model_copy / "config.json"
    tree = json.loads(path.read_text())
    tree["training"] |= {"device": "auto", "num_threads": 2}
    tree["embeddings"]["contextual"]["cache_dir"] = None
    path.write_text(json.dumps(tree))
    loaded = load_model(model_copy)
    assert "device" not in loaded.config.to_dict()["training"]
