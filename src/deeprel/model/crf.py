"""Linear-chain CRF for BIO tagging, written by hand for this project (no external CRF code)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn

Reduction = Literal["mean", "sum", "none"]

# Score given to forbidden moves: far below any reachable score, yet finite, so logsumexp and
# its gradient never see -inf - -inf.
FORBIDDEN_SCORE = -1e4


class TransitionMask(NamedTuple):
    """Which tags may start a sequence ([K] bool) and which moves ``from -> to`` are allowed ([K, K])."""

    start: Tensor
    transitions: Tensor


def bio_transition_mask(tags: Sequence[str]) -> TransitionMask:
    """BIO constraints for tags named ``"O"``, ``"B-X"``, ``"I-X"``: ``I-X`` only follows
    ``B-X`` or ``I-X`` and never starts a sequence. Everything else is allowed."""
    for tag in tags:
        if tag != "O" and not tag.startswith(("B-", "I-")):
            raise ValueError(f"not a BIO tag: {tag!r}")
    k = len(tags)
    start = torch.ones(k, dtype=torch.bool)
    transitions = torch.ones(k, k, dtype=torch.bool)
    for j, tag in enumerate(tags):
        if tag.startswith("I-"):
            start[j] = False
            entity_type = tag[2:]
            for i, prev in enumerate(tags):
                transitions[i, j] = prev in (f"B-{entity_type}", f"I-{entity_type}")
    return TransitionMask(start, transitions)


class Viterbi(NamedTuple):
    paths: list[list[int]]  # best tag sequence per sentence, each of the sentence's length
    scores: Tensor  # [B] unnormalised score of each best path


class LinearChainCRF(nn.Module):
    """Linear-chain CRF with learned transition, start and end scores.

    ``transitions[i, j]`` scores moving from tag ``i`` to tag ``j``. With a ``TransitionMask``,
    forbidden moves get ``FORBIDDEN_SCORE`` in the partition function, in gold-path scores and in
    Viterbi alike, so the model is a proper distribution over allowed paths only. Set
    ``constrained = False`` to switch the mask off (e.g. for an ablation).

    All methods take ``emissions`` [B, T, K] and ``mask`` [B, T] bool, left-aligned with every
    sentence at least one token long; tags at padded positions are ignored.
    """

    allowed_start: Tensor
    allowed_transitions: Tensor

    def __init__(self, num_tags: int, allowed: TransitionMask | None = None) -> None:
        super().__init__()
        self.num_tags = num_tags
        self.transitions = nn.Parameter(torch.zeros(num_tags, num_tags))
        self.start = nn.Parameter(torch.zeros(num_tags))
        self.end = nn.Parameter(torch.zeros(num_tags))
        if allowed is None:
            allowed = TransitionMask(
                torch.ones(num_tags, dtype=torch.bool),
                torch.ones(num_tags, num_tags, dtype=torch.bool),
            )
        if allowed.start.shape != (num_tags,) or allowed.transitions.shape != (num_tags, num_tags):
            raise ValueError("transition mask does not match num_tags")
        # Buffers, so the mask travels with the module and its checkpoints.
        self.register_buffer("allowed_start", allowed.start.clone())
        self.register_buffer("allowed_transitions", allowed.transitions.clone())
        self.constrained = True

    def _scores(self) -> tuple[Tensor, Tensor]:
        """Start [K] and transition [K, K] scores with the constraint applied (if on)."""
        if not self.constrained:
            return self.start, self.transitions
        return (
            self.start.masked_fill(~self.allowed_start, FORBIDDEN_SCORE),
            self.transitions.masked_fill(~self.allowed_transitions, FORBIDDEN_SCORE),
        )

    def log_partition(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """log Z per sentence, [B], by the forward algorithm."""
        alpha = self._forward(emissions, mask)[-1]
        return torch.logsumexp(alpha + self.end, dim=1)

    def _forward(self, emissions: Tensor, mask: Tensor) -> list[Tensor]:
        """alpha_t [B, K] for every step t: log-sum of the scores of all paths ending in each tag at t.
        At padded steps alpha stays as it was, so the last one is every sentence's own last alpha."""
        start, transitions = self._scores()
        alphas = [start + emissions[:, 0]]  # [B, K]
        for t in range(1, emissions.size(1)):
            # [B, K_prev, 1] + [K_prev, K] + [B, 1, K] -> sum out the previous tag
            step = torch.logsumexp(alphas[-1].unsqueeze(2) + transitions + emissions[:, t].unsqueeze(1), dim=1)
            alphas.append(torch.where(mask[:, t].unsqueeze(1), step, alphas[-1]))
        return alphas

    def score(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """Unnormalised score of the given tag sequences, [B]."""
        start, transitions = self._scores()
        tags = tags.masked_fill(~mask, 0)  # any valid index; padded terms are zeroed below
        maskf = mask.to(emissions.dtype)
        emitted = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # [B, T]
        moves = transitions[tags[:, :-1], tags[:, 1:]]  # [B, T-1]
        last = tags.gather(1, (mask.sum(dim=1, keepdim=True) - 1)).squeeze(1)  # [B]
        return start[tags[:, 0]] + (emitted * maskf).sum(dim=1) + (moves * maskf[:, 1:]).sum(dim=1) + self.end[last]

    def neg_log_likelihood(
        self, emissions: Tensor, tags: Tensor, mask: Tensor, reduction: Reduction = "mean"
    ) -> Tensor:
        """-log p(tags | emissions): per sentence, then averaged or summed over the batch."""
        nll = self.log_partition(emissions, mask) - self.score(emissions, tags, mask)
        if reduction == "mean":
            return nll.mean()
        if reduction == "sum":
            return nll.sum()
        if reduction == "none":
            return nll
        raise ValueError(f"unknown reduction {reduction!r}")

    @torch.no_grad()
    def viterbi(self, emissions: Tensor, mask: Tensor) -> Viterbi:
        """Best tag sequence per sentence and its score."""
        tags, scores = self.viterbi_tags(emissions, mask)
        lengths = mask.sum(dim=1).tolist()
        return Viterbi([path[:n] for path, n in zip(tags.tolist(), lengths, strict=True)], scores)

    @torch.no_grad()
    def viterbi_tags(self, emissions: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """The best paths as one tensor [B, T] (tag 0 at padded steps) and their scores [B]."""
        start, transitions = self._scores()
        batch, length, k = emissions.shape
        delta = start + emissions[:, 0]  # [B, K]
        # At padded steps every tag points back to itself, so backtracking walks through
        # the padding unchanged and reaches each sentence's real last tag.
        identity = torch.arange(k, device=emissions.device).expand(batch, k)
        backpointers = []
        for t in range(1, length):
            best, argbest = (delta.unsqueeze(2) + transitions).max(dim=1)  # over previous tag
            step_mask = mask[:, t].unsqueeze(1)
            delta = torch.where(step_mask, best + emissions[:, t], delta)
            backpointers.append(torch.where(step_mask, argbest, identity))
        scores, tag = (delta + self.end).max(dim=1)
        reversed_path = [tag]
        for pointers in reversed(backpointers):
            tag = pointers.gather(1, tag.unsqueeze(1)).squeeze(1)
            reversed_path.append(tag)
        return torch.stack(reversed_path[::-1], dim=1) * mask, scores

    @torch.no_grad()
    def marginals(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """P(tag_t = k | sentence), [B, T, K] (zero at padded steps), by the forward-backward algorithm:
        exp(alpha_t + beta_t - log Z), with no autograd graph, so it also runs under ``inference_mode``. In
        float64: alpha + beta - log Z subtracts numbers in the hundreds for a confident tagger, and float32
        would leave errors near 1e-3 in the probabilities."""
        dtype = emissions.dtype
        emissions = emissions.double()
        _, transitions = self._scores()
        transitions = transitions.double()
        alphas = self._forward(emissions, mask)
        log_z = torch.logsumexp(alphas[-1] + self.end, dim=1)  # [B]
        # beta_t [B, K]: log-sum of the scores of all continuations after tag k at t, the end score included.
        # For a sentence of n tokens beta_t = end for every t >= n - 1 (steps t + 1 that are padding).
        beta = self.end.expand_as(alphas[-1])
        betas = [beta]
        for t in range(emissions.size(1) - 2, -1, -1):
            # [K, K_next] + [B, 1, K_next] -> sum out the next tag
            step = torch.logsumexp(transitions + (emissions[:, t + 1] + beta).unsqueeze(1), dim=2)
            beta = torch.where(mask[:, t + 1].unsqueeze(1), step, beta)
            betas.append(beta)
        log_marginals = torch.stack(alphas, dim=1) + torch.stack(betas[::-1], dim=1) - log_z[:, None, None]
        return (log_marginals.exp() * mask.unsqueeze(2)).to(dtype)
