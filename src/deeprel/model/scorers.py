"""Relation scorers (multi-head selection) and the relation loss.

Every scorer maps token representations g [B, T, D] to logits [B, T, T, R], where
``[b, i, j, r]`` scores relation ``r`` from the entity ending at token ``i`` (head) to the
entity ending at token ``j`` (tail). Pair features are built by broadcasting per-token
projections, never by materialising a [B, T, T, 2D] concatenation.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Activation = Literal["relu", "tanh", "gelu"]
ScorerKind = Literal["paper", "additive"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


def make_activation(name: Activation) -> nn.Module:
    if name not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {name!r}")
    return _ACTIVATIONS[name]()


class PairFeedForward(nn.Module):
    """act(W_h g_i + W_t g_j + b) for every ordered pair: [B, T, D] -> [B, T, T, H].

    Equal to a linear layer on the concatenation [g_i; g_j], computed in two halves.
    """

    def __init__(self, input_size: int, hidden_size: int, activation: Activation) -> None:
        super().__init__()
        self.head = nn.Linear(input_size, hidden_size)  # carries the shared bias b
        self.tail = nn.Linear(input_size, hidden_size, bias=False)
        self.activation = make_activation(activation)

    def forward(self, g: Tensor) -> Tensor:
        return self.activation(self.head(g).unsqueeze(2) + self.tail(g).unsqueeze(1))


class PaperRelationScorer(nn.Module):
    """Crone 2020's scorer: [DistMult (R) ; pair feed-forward (H) ; cosine (1)] -> Linear -> R.

    DistMult g_i^T diag(m_r) g_j and the cosine are symmetric in (i, j); the direction of a
    relation is learned only through the feed-forward part, whose head and tail weights differ.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_relations: int,
        activation: Activation = "relu",
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        # One diagonal relation matrix m_r per type; small random init so the types differ.
        self.distmult = nn.Parameter(torch.empty(num_relations, input_size).normal_(std=0.1))
        self.pair = PairFeedForward(input_size, hidden_size, activation)
        self.output = nn.Linear(num_relations + hidden_size + 1, num_relations)

    def forward(self, g: Tensor) -> Tensor:
        g = self.dropout(g)
        distmult = torch.einsum("bid,rd,bjd->bijr", g, self.distmult, g)  # [B, T, T, R]
        unit = F.normalize(g, dim=-1)
        cosine = (unit @ unit.transpose(1, 2)).unsqueeze(3)  # [B, T, T, 1]
        features = torch.cat([distmult, self.pair(g), cosine], dim=3)
        return self.output(features)


class AdditiveRelationScorer(nn.Module):
    """Bekoulis et al. 2018: v_r . f(U g_j + W g_i + b) -> R logits.

    The output layer has a bias (not in their formula): it lets the model learn the heavy prior
    against relations quickly, since almost every token pair has none.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_relations: int,
        activation: Activation = "relu",
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.pair = PairFeedForward(input_size, hidden_size, activation)
        self.output = nn.Linear(hidden_size, num_relations)

    def forward(self, g: Tensor) -> Tensor:
        return self.output(self.pair(self.dropout(g)))


def build_scorer(
    kind: ScorerKind,
    input_size: int,
    hidden_size: int,
    num_relations: int,
    activation: Activation = "relu",
    dropout: float = 0.5,
) -> PaperRelationScorer | AdditiveRelationScorer:
    if kind == "paper":
        return PaperRelationScorer(input_size, hidden_size, num_relations, activation, dropout)
    if kind == "additive":
        return AdditiveRelationScorer(input_size, hidden_size, num_relations, activation, dropout)
    raise ValueError(f"unknown scorer kind {kind!r}")


def relation_loss(logits: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """Binary cross-entropy with logits over all valid token pairs and relation types.

    ``logits`` and ``targets`` (0/1 floats) are [B, T, T, R]; ``mask`` [B, T] marks real tokens.
    Normalisation: summed over relation types and over the (i, j) pairs where both tokens are real,
    then averaged over the sentences of the batch, the same per-sentence scale as the CRF's
    negative log-likelihood, so that lambda_RE weighs two comparable quantities. Padded pairs
    contribute nothing, whatever their logits.
    """
    pairs = mask.unsqueeze(2) & mask.unsqueeze(1)  # [B, T, T]
    total = F.binary_cross_entropy_with_logits(logits[pairs], targets[pairs], reduction="sum")
    return total / max(1, logits.shape[0])
