"""The joint model alone, on synthetic sentences: no shared data, no encoder, no word vectors.

Chars and casing are the only inputs, so these tests run anywhere in a few seconds.
"""

import itertools

import pytest
import torch

from deeprel.config import Config
from deeprel.data.types import Entity, Relation, Sentence
from deeprel.embeddings.chars import CharVocabulary
from deeprel.model.files import build_model
from deeprel.model.inputs import Labels
from deeprel.training.seeding import set_seed

LABELS = Labels(("Org", "Peop"), ("Work_For",))
PEOPLE = [("John", "Smith"), ("Mary",), ("Ann", "Lee"), ("Bob",)]
COMPANIES = [("Acme",), ("Globex", "Corp"), ("Initech",)]


def _sentence(person: tuple[str, ...], company: tuple[str, ...]) -> Sentence:
    """ "<person> works for <company> ." with Peop -> Org as Work_For."""
    tokens = (*person, "works", "for", *company, ".")
    org_start = len(person) + 2
    entities = (Entity("Peop", 0, len(person)), Entity("Org", org_start, org_start + len(company)))
    return Sentence(tokens, entities, (Relation("Work_For", 0, 1),))


SENTENCES = [_sentence(p, c) for p, c in itertools.product(PEOPLE, COMPANIES)]


def _model(seed: int = 1, **model: object):
    config = Config().with_overrides(
        {
            "embeddings.contextual.enabled": False,
            "embeddings.static.enabled": False,
            "model.hidden_size": 16,
            "model.ner_hidden_size": 16,
            "model.re_hidden_size": 8,
            "model.rnn_dropout": 0.0,
            "model.re_dropout": 0.0,
            **{f"model.{key}": value for key, value in model.items()},
        }
    )
    set_seed(seed)
    chars = CharVocabulary.build(token for s in SENTENCES for token in s.tokens)
    return build_model(config, LABELS, chars, None)


def _tags(sentence: Sentence) -> list[int]:
    tags = ["O"] * len(sentence)
    for e in sentence.entities:
        tags[e.start : e.end] = [f"B-{e.type}"] + [f"I-{e.type}"] * (e.end - e.start - 1)
    return [LABELS.tags.index(t) for t in tags]


def test_the_loss_falls_when_the_model_trains() -> None:
    model, featurizer = _model()
    batch = featurizer.batch(SENTENCES, targets=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model.train()
    losses = []
    for _ in range(40):
        optimizer.zero_grad()
        loss, parts = model.loss(batch, lambda_re=5.0)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        assert loss.item() == pytest.approx(parts["ner_loss"] + 5.0 * parts["re_loss"], rel=1e-5)
    assert losses[-1] < losses[0] / 4
    predicted = model.predict(featurizer.batch(SENTENCES), threshold=0.5)
    found = sum(entities == list(s.entities) for s, (entities, _) in zip(SENTENCES, predicted))
    assert found >= len(SENTENCES) - 1  # the tagger has learnt the synthetic pattern


def test_training_feeds_gold_tags_to_the_relation_layers_and_inference_feeds_viterbis(monkeypatch) -> None:
    model, featurizer = _model()
    seen: list[torch.Tensor] = []
    model.label_embedding.register_forward_hook(lambda module, args, output: seen.append(args[0].clone()))
    batch = featurizer.batch(SENTENCES, targets=True)

    def no_viterbi(*_):
        raise AssertionError("training must not decode")

    with monkeypatch.context() as patched:
        patched.setattr(model, "decode_tags", no_viterbi)
        model.loss(batch, lambda_re=1.0)
    assert torch.equal(seen[-1], batch.tags)  # the gold BIO tags, not the model's own
    model.eval()
    scores = model.scores(featurizer.batch(SENTENCES))
    viterbi = model.decode_tags(scores.emissions, batch.mask)
    assert torch.equal(seen[-1], viterbi) and torch.equal(scores.label_ids, viterbi)
    assert not torch.equal(viterbi, batch.tags), "an untrained tagger differs from gold here"


def test_relations_attach_at_each_entitys_last_token(monkeypatch) -> None:
    model, featurizer = _model()
    sentence = _sentence(("John", "Smith"), ("Globex", "Corp"))  # Peop [0, 2), Org [4, 6)
    batch = featurizer.batch([sentence])
    gold_tags = torch.tensor([_tags(sentence)])
    monkeypatch.setattr(model, "decode_tags", lambda emissions, mask: gold_tags)

    def logits_at(head: int, tail: int):
        def forward(features: torch.Tensor) -> torch.Tensor:
            logits = torch.full((1, len(sentence), len(sentence), 1), -10.0)
            logits[0, head, tail, 0] = 10.0
            return logits

        return forward

    cases = {(1, 5): [Relation("Work_For", 0, 1)], (5, 1): [Relation("Work_For", 1, 0)], (0, 4): [], (1, 2): []}
    for (head, tail), expected in cases.items():
        monkeypatch.setattr(model.scorer, "forward", logits_at(head, tail))
        [(entities, relations)] = model.predict(batch, threshold=0.5)
        assert entities == list(sentence.entities)
        assert relations == expected, (head, tail)  # only last token -> last token counts


def test_a_higher_threshold_never_adds_relations(monkeypatch) -> None:
    model, featurizer = _model(seed=3)
    model.eval()
    batch = featurizer.batch(SENTENCES)
    gold_tags = torch.zeros(batch.mask.shape, dtype=torch.long)
    for b, sentence in enumerate(SENTENCES):
        gold_tags[b, : len(sentence)] = torch.tensor(_tags(sentence))
    monkeypatch.setattr(model, "decode_tags", lambda emissions, mask: gold_tags)  # two entities in each
    counts, previous = [], None
    for threshold in (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 0.9):
        found = [{(r.type, r.head, r.tail) for r in relations} for _, relations in model.predict(batch, threshold)]
        if previous is not None:
            assert all(now <= before for now, before in zip(found, previous)), threshold
        previous = found
        counts.append(sum(map(len, found)))
    # Scores start near the 1% prior, so the low thresholds keep every ordered pair and the high ones none.
    assert counts[0] == 2 * len(SENTENCES) and counts[-1] == 0


def _loop_decoding(
    probabilities: torch.Tensor, entities: list[Entity], kinds: tuple[str, ...], threshold: float
) -> list[Relation]:
    """The decoder as it was before it was vectorised: a Python loop over pairs x types."""
    relations = []
    for h, head in enumerate(entities):
        for t, tail in enumerate(entities):
            if h == t:
                continue
            pair = probabilities[head.last, tail.last]
            for r, kind in enumerate(kinds):
                if pair[r] >= threshold:
                    relations.append(Relation(kind, h, t, score=round(float(pair[r]), 4)))
    return relations


@pytest.mark.parametrize("seed", range(5))
def test_vectorised_relation_decoding_equals_the_loop_exactly(seed: int) -> None:
    model, _ = _model()
    model.labels = Labels(("Org", "Peop"), ("Kill", "Live_In", "Work_For"))  # three types, read by name only
    generator = torch.Generator().manual_seed(seed)
    length = 30
    probabilities = torch.rand(length, length, 3, generator=generator)
    probabilities[probabilities > 0.7] = 0.7  # ties at the threshold: >= keeps them in both
    starts = sorted(torch.randperm(length, generator=generator)[: 2 + seed * 3].tolist())
    entities = [Entity("Peop", s, s + 1) for s in starts]
    for threshold in (0.0, 0.05, 0.5, 0.7, 0.9):
        vectorised = model._relations(probabilities, entities, threshold)
        expected = _loop_decoding(probabilities, entities, model.labels.relation_types, threshold)
        assert [(r.type, r.head, r.tail, r.score) for r in vectorised] == [
            (r.type, r.head, r.tail, r.score) for r in expected
        ]
    assert model._relations(probabilities, entities[:1], 0.0) == []


def test_predict_equals_the_loop_decoder_with_autograd_marginals() -> None:
    """predict (inference mode, forward-backward marginals, vectorised relations) against the old way:
    the same entities and relations, entity scores within 1e-4 of the gradient-of-log-Z marginals."""
    model, featurizer = _model(seed=2)
    batch = featurizer.batch(SENTENCES, targets=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(15):  # far enough for the tagger to find entities, not for it to be sure of them
        optimizer.zero_grad()
        model.loss(batch, lambda_re=5.0)[0].backward()
        optimizer.step()
    model.eval()
    predicted = model.predict(batch, threshold=0.001)
    lean = model.predict(batch, threshold=0.001, entity_scores=False)
    with torch.no_grad():
        scores = model.scores(batch)
    emissions = scores.emissions.clone().requires_grad_(True)
    (marginals,) = torch.autograd.grad(model.crf.log_partition(emissions, batch.mask).sum(), emissions)
    probabilities = torch.sigmoid(scores.relation_logits)
    for b, (entities, relations) in enumerate(predicted):
        assert [(e.type, e.start, e.end) for e in entities] == [(e.type, e.start, e.end) for e in lean[b][0]]
        assert all(e.score is None for e in lean[b][0]) and lean[b][1] == relations
        for e in entities:
            tags = scores.label_ids[b, e.start : e.end, None]
            assert e.score == pytest.approx(float(marginals[b, e.start : e.end].gather(1, tags).min()), abs=1e-4)
        expected = _loop_decoding(probabilities[b], entities, model.labels.relation_types, 0.001)
        assert len(entities) >= 2
        assert [(r.type, r.head, r.tail, r.score) for r in relations] == [
            (r.type, r.head, r.tail, r.score) for r in expected
        ]
    assert sum(len(relations) for _, relations in predicted) > len(SENTENCES)
