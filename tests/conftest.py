import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared data folder (holding ``datasets/``); tests that need it skip when it is absent."""
    path = Path(os.environ.get("DEEPREL_DATA_DIR", Path(__file__).resolve().parents[1].parent / "shared"))
    if not (path / "datasets").is_dir():
        pytest.skip(f"shared data not found at {path} (set DEEPREL_DATA_DIR)")
    return path


@pytest.fixture(scope="session")
def tiny_config(data_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """A very small CoNLL04 configuration: 60 training sentences, small layers, a frozen MiniLM."""
    from deeprel.config import load_config

    os.environ["DEEPREL_DATA_DIR"] = str(data_dir)
    # The frozen features' cache is a run setting (deeprel.runtime), read from the environment by default.
    os.environ["DEEPREL_CACHE_DIR"] = str(tmp_path_factory.mktemp("features"))
    return load_config(Path(__file__).resolve().parents[1] / "configs" / "tiny.toml").with_overrides(
        {
            "data.max_train_documents": 60,
            "data.max_eval_documents": 30,
            "data.dev": "datasets/conll04/conll04_train.json",  # dev = the training slice: we test learning
            "data.test": None,
            "embeddings.static.max_words": 2000,
            "model.hidden_size": 32,
            "model.ner_hidden_size": 32,
            "model.re_hidden_size": 16,
            "training.learning_rate": 0.005,
            "training.max_epochs": 14,
            "training.patience": 14,
        }
    )


@pytest.fixture(scope="session")
def trained_run(tiny_config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny model trained once for the whole session; tests read it and never change it."""
    from deeprel.runtime import Runtime
    from deeprel.training.trainer import train

    run = tmp_path_factory.mktemp("run") / "tiny"
    train(tiny_config, run, runtime=Runtime(num_threads=2), progress=False, log=lambda _: None)
    return run
