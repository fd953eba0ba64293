"""The encoder's precision: bf16 and int8 against fp32 on the CoNLL04 test sentences, and how it is chosen.

The tolerance the fast path is held to: the same entities (spans and types) on at least 99% of the
sentences, and where the entities agree, entity and relation scores within 0.02 of fp32's.
"""

from pathlib import Path

import pytest
import torch

from deeprel.data.readers import read_sentences
from deeprel.data.types import Sentence
from deeprel.inference.predictor import Predictor
from deeprel.runtime import resolve_precision

SAME_ENTITIES = 0.99
SCORE_TOLERANCE = 0.02


@pytest.fixture(scope="module")
def test_sentences(data_dir: Path) -> list[Sentence]:
    return read_sentences(data_dir / "datasets" / "conll04" / "conll04_test.json")


@pytest.fixture(scope="module")
def fp32_predictions(trained_run: Path, test_sentences: list[Sentence]) -> list[Sentence]:
    predictor = Predictor.load(trained_run / "model", device="cpu", precision="fp32")
    assert predictor.precision == "fp32"
    return predictor.predict(test_sentences, threshold=0.05)


def agreement(reference: list[Sentence], other: list[Sentence]) -> tuple[float, float]:
    """The share of sentences with the same entities, and the largest score difference where they agree."""
    same, largest = 0, 0.0
    for a, b in zip(reference, other, strict=True):
        if [(e.type, e.start, e.end) for e in a.entities] != [(e.type, e.start, e.end) for e in b.entities]:
            continue
        same += 1
        largest = max([largest, *(abs(x.score - y.score) for x, y in zip(a.entities, b.entities, strict=True))])
        relations_a = {(r.type, r.head, r.tail): r.score for r in a.relations}
        relations_b = {(r.type, r.head, r.tail): r.score for r in b.relations}
        for key in relations_a.keys() & relations_b.keys():
            largest = max(largest, abs(relations_a[key] - relations_b[key]))
    return same / len(reference), largest


def test_bf16_gives_fp32s_entities_and_scores_within_the_tolerance(
    trained_run: Path, test_sentences: list[Sentence], fp32_predictions: list[Sentence]
) -> None:
    predictor = Predictor.load(trained_run / "model", device="cpu", precision="bf16")
    assert predictor.precision == "bf16"
    predicted = predictor.predict(test_sentences, threshold=0.05)
    same, largest = agreement(fp32_predictions, predicted)
    assert same >= SAME_ENTITIES, f"entities identical on {same:.1%} of the sentences"
    assert largest <= SCORE_TOLERANCE
    assert sum(len(s.entities) for s in predicted) > len(test_sentences)  # a model that predicts things


def test_int8_quantises_the_encoders_linear_layers_and_stays_close(
    trained_run: Path, test_sentences: list[Sentence], fp32_predictions: list[Sentence]
) -> None:
    predictor = Predictor.load(trained_run / "model", device="cpu", precision="int8")
    encoder = predictor.model.embedder.contextual
    assert predictor.precision == "int8"
    quantised = [m for m in encoder.encoder.modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
    assert quantised and not any(type(m) is torch.nn.Linear for m in encoder.encoder.modules())
    same, _ = agreement(fp32_predictions, predictor.predict(test_sentences, threshold=0.05))
    # int8 moves the encoder's outputs far more than bf16 (0.73 of this tiny model's sentences kept their
    # entities when this was written): it is a choice, not the default.
    assert same >= 0.6
    with pytest.raises(ValueError, match="cannot go back"):
        encoder.set_precision("fp32")


def test_auto_is_bf16_only_where_the_cpu_has_it_and_int8_only_on_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    for bf16, amx, expected in [(True, False, "bf16"), (False, True, "bf16"), (False, False, "fp32")]:
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda bf16=bf16: bf16)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda amx=amx: amx)
        assert resolve_precision("auto", cpu) == expected
    assert resolve_precision("auto", torch.device("cuda")) == "fp32"
    assert resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(ValueError, match="int8 runs on the CPU only"):
        resolve_precision("int8", torch.device("cuda"))
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, int8, got 'fp16'"):
        resolve_precision("fp16", cpu)
