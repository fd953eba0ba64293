import pytest
import torch

from deeprel.model.scorers import (
    AdditiveRelationScorer,
    PaperRelationScorer,
    build_scorer,
    relation_loss,
)

KINDS = ["paper", "additive"]


@pytest.mark.parametrize("kind", KINDS)
def test_shapes_and_factory(kind: str) -> None:
    scorer = build_scorer(kind, 8, 6, 3, activation="tanh", dropout=0.5)  # type: ignore[arg-type]
    expected = PaperRelationScorer if kind == "paper" else AdditiveRelationScorer
    assert isinstance(scorer, expected)
    assert scorer(torch.randn(2, 5, 8)).shape == (2, 5, 5, 3)


def test_unknown_kind_and_activation() -> None:
    with pytest.raises(ValueError):
        build_scorer("bilinear", 4, 4, 2)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        build_scorer("paper", 4, 4, 2, activation="swish")  # type: ignore[arg-type]


def test_paper_scorer_matches_explicit_loop() -> None:
    torch.manual_seed(0)
    scorer = PaperRelationScorer(3, 2, 2, dropout=0.0).eval()
    g = torch.randn(1, 3, 3)
    logits = scorer(g)
    head, tail = scorer.pair.head, scorer.pair.tail
    for i in range(3):
        for j in range(3):
            gi, gj = g[0, i], g[0, j]
            distmult = torch.stack([gi @ torch.diag(m) @ gj for m in scorer.distmult])
            pair = torch.relu(head.weight @ gi + head.bias + tail.weight @ gj)
            cosine = (gi @ gj / (gi.norm() * gj.norm())).reshape(1)
            expected = scorer.output(torch.cat([distmult, pair, cosine]))
            torch.testing.assert_close(logits[0, i, j], expected)


def test_additive_scorer_matches_explicit_loop() -> None:
    torch.manual_seed(0)
    scorer = AdditiveRelationScorer(3, 4, 2, activation="tanh", dropout=0.0).eval()
    g = torch.randn(1, 3, 3)
    logits = scorer(g)
    head, tail = scorer.pair.head, scorer.pair.tail
    for i in range(3):
        for j in range(3):
            hidden = torch.tanh(tail.weight @ g[0, j] + head.weight @ g[0, i] + head.bias)
            torch.testing.assert_close(logits[0, i, j], scorer.output(hidden))


@pytest.mark.parametrize("kind", KINDS)
def test_direction_matters(kind: str) -> None:
    torch.manual_seed(0)
    scorer = build_scorer(kind, 8, 6, 3, dropout=0.0)  # type: ignore[arg-type]
    logits = scorer(torch.randn(1, 4, 8))
    assert not torch.allclose(logits, logits.transpose(1, 2))


def test_padded_pairs_do_not_affect_the_loss() -> None:
    torch.manual_seed(0)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)
    logits = torch.randn(2, 4, 4, 3, requires_grad=True)
    targets = (torch.rand(2, 4, 4, 3) > 0.7).float()
    pairs = (mask.unsqueeze(2) & mask.unsqueeze(1)).unsqueeze(3).expand_as(logits)
    loss = relation_loss(logits, targets, mask)
    changed_logits = torch.where(pairs, logits, torch.randn_like(logits) * 100)
    changed_targets = torch.where(pairs, targets, 1 - targets)
    torch.testing.assert_close(relation_loss(changed_logits, changed_targets, mask), loss)
    loss.backward()
    assert logits.grad is not None
    assert torch.all(logits.grad[~pairs] == 0)


def test_loss_normalisation() -> None:
    """Summed over relation types and valid pairs, averaged over the sentences of the batch."""
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.bool)  # 4 + 1 valid pairs
    logits = torch.zeros(2, 3, 3, 2)
    targets = torch.zeros(2, 3, 3, 2)
    expected = torch.log(torch.tensor(2.0)) * 2 * 5 / 2  # each BCE = log 2; 2 types, 5 pairs, 2 sentences
    torch.testing.assert_close(relation_loss(logits, targets, mask), expected)


@pytest.mark.parametrize("kind", KINDS)
def test_scorer_learns_a_toy_target(kind: str) -> None:
    """Relation 0 from every token of class A to every token of class B, never backwards."""
    torch.manual_seed(0)
    classes = torch.randint(0, 2, (8, 5))
    g = torch.nn.functional.one_hot(classes, 2).float() + 0.1 * torch.randn(8, 5, 2)
    mask = torch.ones(8, 5, dtype=torch.bool)
    mask[::2, 3:] = False
    targets = ((classes.unsqueeze(2) == 0) & (classes.unsqueeze(1) == 1)).float()
    targets = torch.stack([targets, torch.zeros_like(targets)], dim=3)
    scorer = build_scorer(kind, 2, 16, 2, dropout=0.0)  # type: ignore[arg-type]
    optimiser = torch.optim.Adam(scorer.parameters(), lr=0.05)
    for _ in range(200):
        optimiser.zero_grad()
        loss = relation_loss(scorer(g), targets, mask)
        loss.backward()
        optimiser.step()
    assert loss.item() < 0.05
    pairs = mask.unsqueeze(2) & mask.unsqueeze(1)
    predicted = torch.sigmoid(scorer(g)) >= 0.5
    assert torch.equal(predicted[pairs], targets.bool()[pairs])
