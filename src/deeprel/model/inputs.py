"""From sentences to the tensors the joint model reads: label inventories, batches, targets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch

from deeprel.data.tagging import bio_tags, relation_targets, tag_inventory
from deeprel.data.types import Sentence
from deeprel.embeddings.casing import casing_class
from deeprel.embeddings.chars import CharVocabulary, pad_char_ids
from deeprel.embeddings.static import WordVocabulary


@dataclass(frozen=True)
class Labels:
    """The entity and relation types a model knows, and the BIO tags derived from them."""

    entity_types: tuple[str, ...]
    relation_types: tuple[str, ...]

    @property
    def tags(self) -> list[str]:
        return tag_inventory(self.entity_types)

    def to_dict(self) -> dict[str, list[str]]:
        return {"entity_types": list(self.entity_types), "relation_types": list(self.relation_types), "tags": self.tags}

    @classmethod
    def from_dict(cls, data: dict) -> Labels:
        return cls(tuple(data["entity_types"]), tuple(data["relation_types"]))

    @classmethod
    def from_sentences(cls, sentences: Sequence[Sentence]) -> Labels:
        entity_types = sorted({e.type for d in sentences for e in d.entities})
        relation_types = sorted({r.type for d in sentences for r in d.relations})
        return cls(tuple(entity_types), tuple(relation_types))


@dataclass
class Batch:
    """A padded batch. Optional parts are None when the model does not use them (or has no targets)."""

    tokens: list[tuple[str, ...]]
    mask: torch.Tensor  # [B, T] bool
    word_ids: torch.Tensor | None = None  # [B, T]
    char_ids: torch.Tensor | None = None  # [B, T, C]
    casing_ids: torch.Tensor | None = None  # [B, T]
    contextual: torch.Tensor | None = None  # [B, layers, T, D], frozen mode only
    tags: torch.Tensor | None = None  # [B, T]
    relations: torch.Tensor | None = None  # [B, T, T, R]

    def to(self, device: torch.device) -> Batch:
        moved = {
            f.name: (value.to(device) if isinstance(value, torch.Tensor) else value)
            for f in fields(self)
            for value in [getattr(self, f.name)]
        }
        return Batch(**moved)


class Featurizer:
    """Turns sentences (and, in the frozen mode, their cached encoder features) into batches."""

    def __init__(
        self,
        labels: Labels,
        words: WordVocabulary | None,
        chars: CharVocabulary | None,
        casing: bool,
    ) -> None:
        self.labels = labels
        self.words = words
        self.chars = chars
        self.casing = casing
        self.tag_index = {tag: i for i, tag in enumerate(labels.tags)}
        self.relation_index = {r: i for i, r in enumerate(labels.relation_types)}

    def batch(
        self,
        sentences: Sequence[Sentence],
        features: Sequence[torch.Tensor] | None = None,
        targets: bool = False,
    ) -> Batch:
        if any(len(d) == 0 for d in sentences):
            raise ValueError("empty sentences cannot be batched")
        size = len(sentences)
        length = max(len(d) for d in sentences)
        mask = torch.zeros(size, length, dtype=torch.bool)
        for b, doc in enumerate(sentences):
            mask[b, : len(doc)] = True
        batch = Batch(tokens=[d.tokens for d in sentences], mask=mask)
        if self.words is not None:
            batch.word_ids = self._pad([self.words.encode(d.tokens) for d in sentences], length)
        if self.chars is not None:
            batch.char_ids = pad_char_ids([self.chars.encode(d.tokens) for d in sentences])
        if self.casing:
            batch.casing_ids = self._pad([[casing_class(t) for t in d.tokens] for d in sentences], length)
        if features is not None:
            first = features[0]
            contextual = first.new_zeros(size, first.shape[0], length, first.shape[-1])
            for b, feature in enumerate(features):
                contextual[b, :, : feature.shape[1]] = feature
            batch.contextual = contextual
        if targets:
            batch.tags = self._pad([[self.tag_index[t] for t in bio_tags(d)] for d in sentences], length)
            relations = torch.zeros(size, length, length, len(self.labels.relation_types))
            for b, doc in enumerate(sentences):
                for head, tail, kind in relation_targets(doc):
                    relations[b, head, tail, self.relation_index[kind]] = 1.0
            batch.relations = relations
        return batch

    @staticmethod
    def _pad(rows: list[list[int]], length: int) -> torch.Tensor:
        padded = torch.zeros(len(rows), length, dtype=torch.long)
        for b, row in enumerate(rows):
            padded[b, : len(row)] = torch.tensor(row, dtype=torch.long)
        return padded
