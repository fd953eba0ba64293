import itertools

import pytest
import torch

from deeprel.model.crf import LinearChainCRF, bio_transition_mask

BIO_TAGS = ["O", "B-X", "I-X", "B-Y", "I-Y"]


def random_crf(num_tags: int, constrained: bool, seed: int) -> LinearChainCRF:
    torch.manual_seed(seed)
    tags = (["O", "B-X", "I-X", "B-Y"])[:num_tags]
    crf = LinearChainCRF(num_tags, bio_transition_mask(tags) if constrained else None)
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    return crf


def random_batch(num_tags: int, lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    emissions = torch.randn(len(lengths), max(lengths), num_tags)
    mask = torch.arange(max(lengths)).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    return emissions, mask


def allowed_paths(crf: LinearChainCRF, length: int) -> list[tuple[int, ...]]:
    """Every tag sequence, or only those the BIO mask allows, enumerated independently."""
    paths = itertools.product(range(crf.num_tags), repeat=length)
    if not crf.constrained:
        return list(paths)
    start, moves = crf.allowed_start, crf.allowed_transitions
    return [p for p in paths if start[p[0]] and all(moves[a, b] for a, b in zip(p, p[1:], strict=False))]


def path_score(crf: LinearChainCRF, emissions: torch.Tensor, path: tuple[int, ...]) -> torch.Tensor:
    """Score of one path computed directly from the definition."""
    total = crf.start[path[0]] + crf.end[path[-1]]
    for t, tag in enumerate(path):
        total = total + emissions[t, tag]
    for a, b in zip(path, path[1:], strict=False):
        total = total + crf.transitions[a, b]
    return total


CASES = [(k, lengths) for k in (3, 4) for lengths in ([1], [4], [2, 4, 1, 3], [3, 3])]


@pytest.mark.parametrize("constrained", [False, True])
@pytest.mark.parametrize(("num_tags", "lengths"), CASES)
def test_log_partition_and_viterbi_match_brute_force(num_tags: int, lengths: list[int], constrained: bool) -> None:
    crf = random_crf(num_tags, constrained, seed=num_tags * 10 + len(lengths))
    emissions, mask = random_batch(num_tags, lengths)
    log_z = crf.log_partition(emissions, mask)
    best = crf.viterbi(emissions, mask)
    for b, n in enumerate(lengths):
        paths = allowed_paths(crf, n)
        scores = torch.stack([path_score(crf, emissions[b], p) for p in paths])
        torch.testing.assert_close(log_z[b], torch.logsumexp(scores, dim=0))
        assert tuple(best.paths[b]) == paths[int(scores.argmax())]
        torch.testing.assert_close(best.scores[b], scores.max())


@pytest.mark.parametrize("constrained", [False, True])
def test_score_matches_definition_and_ignores_padded_tags(constrained: bool) -> None:
    crf = random_crf(4, constrained, seed=3)
    emissions, mask = random_batch(4, [3, 1, 2])
    tags = torch.tensor([[0, 1, 2], [3, -100, -100], [1, 2, 99]])
    scores = crf.score(emissions, tags, mask)
    for b, path in enumerate([(0, 1, 2), (3,), (1, 2)]):
        torch.testing.assert_close(scores[b], path_score(crf, emissions[b], path))


@pytest.mark.parametrize("constrained", [False, True])
def test_nll_is_a_normalised_distribution(constrained: bool) -> None:
    crf = random_crf(3, constrained, seed=5)
    emissions, mask = random_batch(3, [3, 2])
    for b, n in enumerate([3, 2]):
        probabilities = []
        for path in itertools.product(range(3), repeat=n):
            tags = torch.zeros(1, 3, dtype=torch.long)
            tags[0, :n] = torch.tensor(path)
            nll = crf.neg_log_likelihood(emissions[b : b + 1], tags, mask[b : b + 1], "none")
            assert nll.item() >= -1e-5
            probabilities.append(torch.exp(-nll))
        torch.testing.assert_close(torch.cat(probabilities).sum(), torch.tensor(1.0))


def test_reductions() -> None:
    crf = random_crf(3, False, seed=7)
    emissions, mask = random_batch(3, [3, 2, 1])
    tags = torch.randint(0, 3, (3, 3))
    per_sentence = crf.neg_log_likelihood(emissions, tags, mask, "none")
    assert per_sentence.shape == (3,)
    torch.testing.assert_close(crf.neg_log_likelihood(emissions, tags, mask, "sum"), per_sentence.sum())
    torch.testing.assert_close(crf.neg_log_likelihood(emissions, tags, mask), per_sentence.mean())


def test_bio_mask() -> None:
    allowed = bio_transition_mask(BIO_TAGS)
    o, bx, ix, by, iy = range(5)
    assert allowed.start.tolist() == [True, True, False, True, False]
    assert allowed.transitions[bx, ix] and allowed.transitions[ix, ix]
    assert not allowed.transitions[o, ix]
    assert not allowed.transitions[by, ix] and not allowed.transitions[iy, ix]
    assert allowed.transitions[ix, o] and allowed.transitions[ix, by] and allowed.transitions[o, bx]
    with pytest.raises(ValueError):
        bio_transition_mask(["O", "X"])


def test_constraint_switches_off() -> None:
    crf = LinearChainCRF(len(BIO_TAGS), bio_transition_mask(BIO_TAGS))
    emissions = torch.zeros(1, 2, len(BIO_TAGS))
    emissions[0, :, 2] = 5.0  # I-X is by far the best tag everywhere
    mask = torch.ones(1, 2, dtype=torch.bool)
    assert crf.viterbi(emissions, mask).paths[0][0] != 2  # I-X may not start
    crf.constrained = False
    assert crf.viterbi(emissions, mask).paths[0] == [2, 2]


def test_gradient_flows() -> None:
    crf = random_crf(4, True, seed=11)
    emissions, mask = random_batch(4, [4, 2])
    emissions.requires_grad_(True)
    tags = torch.tensor([[0, 1, 2, 0], [3, 0, 0, 0]])
    crf.neg_log_likelihood(emissions, tags, mask).backward()
    for p in (emissions, crf.transitions, crf.start, crf.end):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    assert torch.all(emissions.grad[1, 2:] == 0)  # padding gets no gradient


def test_training_learns_a_toy_pattern() -> None:
    """Tags alternate 0,1,0,1...; emissions carry no information, so only transitions can learn it."""
    torch.manual_seed(0)
    crf = LinearChainCRF(3)
    lengths = [5, 3, 4, 2]
    emissions, mask = random_batch(3, lengths)
    emissions = torch.zeros_like(emissions)
    tags = (torch.arange(5) % 2).expand(4, 5)
    optimiser = torch.optim.Adam(crf.parameters(), lr=0.1)
    initial = crf.neg_log_likelihood(emissions, tags, mask).item()
    for _ in range(100):
        optimiser.zero_grad()
        loss = crf.neg_log_likelihood(emissions, tags, mask)
        loss.backward()
        optimiser.step()
    assert loss.item() < 0.1 * initial
    assert crf.viterbi(emissions, mask).paths == [[0, 1, 0, 1, 0], [0, 1, 0], [0, 1, 0, 1], [0, 1]]


def test_marginals_match_brute_force() -> None:
    torch.manual_seed(3)
    crf = LinearChainCRF(3)
    emissions = torch.randn(2, 3, 3)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)
    marginals = crf.marginals(emissions, mask)
    for b in range(2):
        n = int(mask[b].sum())
        expected = torch.zeros(n, 3)
        log_z = crf.log_partition(emissions[b : b + 1, :n], mask[b : b + 1, :n])
        for path in itertools.product(range(3), repeat=n):
            tags = torch.tensor([path])
            p = torch.exp(crf.score(emissions[b : b + 1, :n], tags, mask[b : b + 1, :n]) - log_z)
            for t, k in enumerate(path):
                expected[t, k] += p[0]
        torch.testing.assert_close(marginals[b, :n], expected, rtol=1e-4, atol=1e-5)
        assert torch.all(marginals[b, n:] == 0)


@pytest.mark.parametrize("constrained", [True, False])
def test_forward_backward_marginals_equal_the_gradient_of_log_z_and_run_under_inference_mode(constrained: bool) -> None:
    """Marginals are the gradient of log Z with respect to the emissions; forward-backward computes the same
    without autograd, for sentences of every length in one padded batch."""
    torch.manual_seed(5)
    crf = LinearChainCRF(len(BIO_TAGS), bio_transition_mask(BIO_TAGS))
    crf.constrained = constrained
    with torch.no_grad():
        for parameter in crf.parameters():
            parameter.normal_()
    lengths = [7, 1, 4, 6, 2]
    emissions, mask = random_batch(len(BIO_TAGS), lengths)
    emissions = emissions * 3
    leaf = emissions.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(crf.log_partition(leaf, mask).sum(), leaf)
    with torch.inference_mode():
        marginals = crf.marginals(emissions, mask)
    torch.testing.assert_close(marginals, gradient * mask.unsqueeze(2), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(marginals.sum(dim=2), mask.float())
    paths, _ = crf.viterbi_tags(emissions, mask)
    assert [row[:n] for row, n in zip(paths.tolist(), lengths, strict=True)] == crf.viterbi(emissions, mask).paths
    assert torch.all(paths[~mask] == 0)
