"""The joint model of Crone 2020: embed, shared BiRNNs, NER-specific and RE-specific BiRNNs, scores."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from deeprel.config import EmbeddingsConfig, ModelConfig
from deeprel.data.tagging import spans_from_bio
from deeprel.data.types import Entity, Relation
from deeprel.embeddings.casing import CASING_CLASSES, CasingEmbedding
from deeprel.embeddings.chars import CharBiRNN
from deeprel.embeddings.contextual import ContextualEncoder
from deeprel.embeddings.static import StaticEmbedding
from deeprel.model.birnn import BiRNNStack
from deeprel.model.crf import LinearChainCRF, bio_transition_mask
from deeprel.model.inputs import Batch, Labels
from deeprel.model.scorers import build_scorer, make_activation, relation_loss

RELATION_PRIOR = 0.01


class TokenEmbedder(nn.Module):
    """The concatenation of the enabled token representations (contextual, static, chars, casing)."""

    def __init__(
        self,
        embeddings: EmbeddingsConfig,
        cell: str,
        encoder: ContextualEncoder | None,
        static: StaticEmbedding | None,
        char_vocab_size: int,
    ) -> None:
        super().__init__()
        self.contextual = encoder
        self.static = static
        self.chars = (
            CharBiRNN(char_vocab_size, embeddings.chars.embedding_size, embeddings.chars.hidden_size, cell)
            if embeddings.chars.enabled
            else None
        )
        self.casing = CasingEmbedding() if embeddings.casing else None
        self.output_size = (
            (encoder.output_size if encoder is not None else 0)
            + (static.output_size if static is not None else 0)
            + (2 * embeddings.chars.hidden_size if self.chars is not None else 0)
            + (len(CASING_CLASSES) if self.casing is not None else 0)
        )

    def forward(self, batch: Batch) -> torch.Tensor:
        parts = []
        if self.contextual is not None:
            features = batch.contextual
            if features is None:  # fine-tuned mode, or prediction without a cache
                computed = self.contextual(batch.tokens)
                if not self.contextual.finetuned:
                    computed = [f.half().float() for f in computed]  # exactly what the frozen cache stores
                features = batch.mask.new_zeros(
                    (len(computed), computed[0].shape[0], batch.mask.shape[1], computed[0].shape[-1]), dtype=torch.float
                )
                for b, feature in enumerate(computed):
                    features[b, :, : feature.shape[1]] = feature
            parts.append(self.contextual.combine(features))
        if self.static is not None:
            parts.append(self.static(batch.word_ids))
        if self.chars is not None:
            parts.append(self.chars(batch.char_ids))
        if self.casing is not None:
            parts.append(self.casing(batch.casing_ids))
        return torch.cat(parts, dim=-1)


@dataclass
class Scores:
    """What one forward pass produces: tag emissions and relation logits."""

    emissions: torch.Tensor  # [B, T, tags]
    label_ids: torch.Tensor  # [B, T], the tags the relation layers saw
    relation_logits: torch.Tensor  # [B, T, T, relations]


class JointModel(nn.Module):
    """Built from the configuration's model section and a token embedder; the loss weight is training's."""

    def __init__(self, settings: ModelConfig, labels: Labels, embedder: TokenEmbedder) -> None:
        super().__init__()
        m = settings
        self.settings = settings
        self.labels = labels
        self.embedder = embedder
        self.shared = BiRNNStack(self.embedder.output_size, m.hidden_size, m.shared_depth, m.cell, m.rnn_dropout)
        self.ner_stack = BiRNNStack(self.shared.output_size, m.hidden_size, m.ner_depth, m.cell, m.rnn_dropout)
        self.ner_head = nn.Sequential(
            nn.Linear(self.ner_stack.output_size, m.ner_hidden_size),  # FF_e1
            make_activation(m.ner_activation),
            nn.Linear(m.ner_hidden_size, len(labels.tags)),  # FF_e2: one score per BIO tag
        )
        self.crf = LinearChainCRF(len(labels.tags), bio_transition_mask(labels.tags) if m.bio_constraints else None)
        self.re_stack = BiRNNStack(self.shared.output_size, m.hidden_size, m.re_depth, m.cell, m.rnn_dropout)
        self.label_embedding = nn.Embedding(len(labels.tags), m.label_embedding_size)
        self.scorer = build_scorer(
            m.scorer,
            input_size=self.re_stack.output_size + m.label_embedding_size,
            hidden_size=m.re_hidden_size,
            num_relations=len(labels.relation_types),
            activation=m.re_activation,
            dropout=m.re_dropout,
        )
        # Almost no token pair holds a relation: starting every score at 1% rather than 50% keeps
        # the first updates from being spent on that one fact.
        nn.init.constant_(self.scorer.output.bias, math.log(RELATION_PRIOR / (1 - RELATION_PRIOR)))

    def scores(self, batch: Batch, label_ids: torch.Tensor | None = None) -> Scores:
        """Emissions and relation logits; relations see ``label_ids`` (gold in training) or Viterbi's tags."""
        x = self.embedder(batch)
        shared = self.shared(x, batch.mask)
        emissions = self.ner_head(self.ner_stack(shared, batch.mask))
        if label_ids is None:
            label_ids = self.decode_tags(emissions, batch.mask)
        relation_input = torch.cat([self.re_stack(shared, batch.mask), self.label_embedding(label_ids)], dim=-1)
        return Scores(emissions, label_ids, self.scorer(relation_input))

    def decode_tags(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Viterbi's tags [B, T] (0, the "O" tag's index, at padded positions)."""
        return self.crf.viterbi_tags(emissions, mask)[0]

    def loss(self, batch: Batch, lambda_re: float) -> tuple[torch.Tensor, dict[str, float]]:
        """L = L_NER (CRF negative log-likelihood) + lambda_RE * L_RE (masked binary cross-entropy)."""
        scores = self.scores(batch, label_ids=batch.tags)
        ner = self.crf.neg_log_likelihood(scores.emissions, batch.tags, batch.mask, reduction="mean")
        re = relation_loss(scores.relation_logits, batch.relations, batch.mask)
        total = ner + lambda_re * re
        return total, {"ner_loss": ner.item(), "re_loss": re.item()}

    @torch.inference_mode()
    def predict(
        self, batch: Batch, threshold: float | None = None, entity_scores: bool = True
    ) -> list[tuple[list[Entity], list[Relation]]]:
        """Entities from Viterbi's BIO tags; a relation between two predicted entities' last tokens
        for every type whose sigmoid score reaches the threshold, in (head, tail, type) order.

        ``entity_scores``: each entity's score is the smallest CRF marginal probability of its decoded tags
        (one forward-backward pass over the batch); without, entities have no score and that pass is skipped.
        """
        threshold = self.settings.threshold if threshold is None else threshold
        if threshold == "dev":
            raise ValueError("the relation threshold is chosen on dev after training: pass one to predict")
        scores = self.scores(batch)
        label_ids = scores.label_ids
        # The probability of each decoded tag, [B, T]: one gather, then plain Python numbers per span.
        tag_probabilities = (
            self.crf.marginals(scores.emissions, batch.mask).gather(2, label_ids.unsqueeze(2)).squeeze(2).tolist()
            if entity_scores
            else None
        )
        probabilities = torch.sigmoid(scores.relation_logits).cpu()  # read sentence by sentence below
        tags = self.labels.tags
        tag_rows = label_ids.tolist()
        results = []
        for b, tokens in enumerate(batch.tokens):
            spans = spans_from_bio([tags[i] for i in tag_rows[b][: len(tokens)]])
            entities = [
                Entity(
                    e.type,
                    e.start,
                    e.end,
                    score=None if tag_probabilities is None else round(min(tag_probabilities[b][e.start : e.end]), 4),
                )
                for e in spans
            ]
            results.append((entities, self._relations(probabilities[b], entities, threshold)))
        return results

    def _relations(self, probabilities: torch.Tensor, entities: list[Entity], threshold: float) -> list[Relation]:
        """The relations among a sentence's entities: ``probabilities`` [T, T, R] read at every ordered pair of
        the entities' last tokens at once; ``nonzero`` lists the hits in (head, tail, type) order."""
        if len(entities) < 2:
            return []
        last = torch.tensor([e.last for e in entities])
        pairs = probabilities[last][:, last]  # [E, E, R]
        hits = (pairs >= threshold) & ~torch.eye(len(entities), dtype=torch.bool).unsqueeze(2)
        found = hits.nonzero().tolist()
        values = pairs[hits].tolist()
        kinds = self.labels.relation_types
        return [Relation(kinds[r], h, t, score=round(v, 4)) for (h, t, r), v in zip(found, values, strict=True)]

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

