"""Predictions against gold, item by item: which entities and relations are right (tp), spurious (fp), missed (fn).

Matching is strict, as in :mod:`deeprel.evaluation.metrics`: an entity is right when its token span and type
equal a gold entity's; a relation when its type, its direction and both arguments (span and type) equal a gold
relation's. Items are sets per document, so the summed counts equal the strict micro counts of ``deeprel
evaluate`` on the same documents.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace

from deeprel.data.types import DataError
from deeprel.evaluation.metrics import PRF
from deeprel.visual.documents import Status, ViewDocument, ViewEntity


@dataclass(frozen=True)
class Counts:
    """Right, spurious and missed items."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    def to_dict(self) -> dict[str, int]:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn}

    def scores(self) -> dict[str, float]:
        """Precision, recall and F1 in percent, as :class:`~deeprel.evaluation.metrics.PRF` computes them."""
        prf = PRF.from_counts(correct=self.tp, predicted=self.tp + self.fp, support=self.tp + self.fn)
        return {"precision": round(prf.precision, 2), "recall": round(prf.recall, 2), "f1": round(prf.f1, 2)}


@dataclass(frozen=True)
class Comparison:
    """One document both ways: ``gold`` marked tp/fn, ``predicted`` marked tp/fp, with the counts."""

    gold: ViewDocument
    predicted: ViewDocument
    entities: Counts
    relations: Counts

    @property
    def has_errors(self) -> bool:
        return bool(self.entities.fp or self.entities.fn or self.relations.fp or self.relations.fn)


def _entity_key(entity: ViewEntity) -> tuple[int, int, str]:
    return entity.token_start, entity.token_end, entity.type


def _relation_keys(document: ViewDocument) -> list[tuple[Hashable, Hashable, str]]:
    entities = [_entity_key(e) for e in document.entities]
    return [(entities[r.head], entities[r.tail], r.type) for r in document.relations]


def _marked(document: ViewDocument, other: ViewDocument, miss: Status) -> ViewDocument:
    """``document`` with each item marked tp when ``other`` (the other side) has it too, else ``miss``."""
    entities_there = {_entity_key(e) for e in other.entities}
    relations_there = set(_relation_keys(other))
    return replace(
        document,
        entities=tuple(
            replace(e, status="tp" if _entity_key(e) in entities_there else miss) for e in document.entities
        ),
        relations=tuple(
            replace(r, status="tp" if key in relations_there else miss)
            for r, key in zip(document.relations, _relation_keys(document), strict=True)
        ),
    )


def _counts(gold: set[Hashable], predicted: set[Hashable]) -> Counts:
    return Counts(len(gold & predicted), len(predicted - gold), len(gold - predicted))


def compare(gold: ViewDocument, predicted: ViewDocument) -> Comparison:
    """Mark both sides of one document; their tokens must be the same (spans are matched on tokens)."""
    if gold.tokens != predicted.tokens:
        raise DataError(f"document {predicted.doc_id}: {_token_difference(gold.tokens, predicted.tokens)}")
    return Comparison(
        gold=_marked(gold, predicted, "fn"),
        predicted=_marked(predicted, gold, "fp"),
        entities=_counts({_entity_key(e) for e in gold.entities}, {_entity_key(e) for e in predicted.entities}),
        relations=_counts(set(_relation_keys(gold)), set(_relation_keys(predicted))),
    )


def _token_difference(gold: tuple[str, ...], predicted: tuple[str, ...]) -> str:
    for i, (g, p) in enumerate(zip(gold, predicted)):
        if g != p:
            return f"predicted token {i} is {p!r}, the gold token {g!r} (predictions must keep the gold tokenisation)"
    return f"{len(predicted)} predicted tokens, {len(gold)} gold tokens"


def pair_documents(
    predicted: Sequence[ViewDocument], gold: Sequence[ViewDocument]
) -> list[tuple[ViewDocument, ViewDocument]]:
    """``(gold, predicted)`` for each prediction: by doc id when the ids on both sides are unique and every
    predicted id is in gold (a prediction file may cover part of the gold file), else by position."""
    gold_by_id = {g.doc_id: g for g in gold}
    ids = [p.doc_id for p in predicted]
    if len(gold_by_id) == len(gold) and len(set(ids)) == len(ids) and all(i in gold_by_id for i in ids):
        return [(gold_by_id[p.doc_id], p) for p in predicted]
    if len(predicted) != len(gold):
        missing = next((i for i in ids if i not in gold_by_id), None)
        why = f"doc id {missing!r} is not in gold" if missing is not None else "doc ids are not unique"
        raise DataError(
            f"cannot match predictions to gold: {why}, and there are {len(predicted)} predicted "
            f"but {len(gold)} gold documents to match by position"
        )
    return list(zip(gold, predicted, strict=True))
