"""BIO and multi-head encodings of sentences, and making entities non-overlapping so they fit BIO.

Pure Python: the model turns these tags and triples into tensors, this module only defines them.

The multi-head encoding (Bekoulis et al. 2018) puts each relation on the last token of its head
entity, pointing at the last token of its tail entity, as ``(head_last, tail_last, type)``.
A sentence round-trips through :func:`encode` / :func:`decode` exactly when its entities do not
overlap (which also gives every entity its own last token) and no relation is repeated.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from deeprel.data.types import DataError, Entity, Relation, Sentence

OverlapPolicy = Literal["keep_longest", "keep_first", "drop", "error"]

Triple = tuple[int, int, str]


@dataclass(frozen=True)
class OverlapStats:
    """What :func:`resolve_overlaps` removed; add them up over a corpus with ``+``."""

    documents_affected: int = 0
    entities_removed: int = 0
    relations_removed: int = 0

    def __add__(self, other: OverlapStats) -> OverlapStats:
        return OverlapStats(
            self.documents_affected + other.documents_affected,
            self.entities_removed + other.entities_removed,
            self.relations_removed + other.relations_removed,
        )


def overlapping_pairs(entities: Sequence[Entity]) -> list[tuple[int, int]]:
    """Index pairs ``(i, j)``, ``i < j``, of entities sharing at least one token (nested and equal spans too)."""
    # Quadratic, but a sentence holds a handful of entities.
    return [(i, j) for i, a in enumerate(entities) for j in range(i + 1, len(entities)) if a.overlaps(entities[j])]


def _span(e: Entity) -> str:
    return f"{e.type} [{e.start}, {e.end})"


def resolve_overlaps(doc: Sentence, policy: OverlapPolicy) -> tuple[Sentence, OverlapStats]:
    """Remove entities until none overlap, dropping the relations that touched a removed one.

    ``keep_longest`` keeps spans greedily by length (ties: earlier start), ``keep_first`` by start
    (ties: longer span), ``drop`` removes every entity involved in an overlap and ``error`` raises.
    Kept entities stay in their original order and relation indices are remapped.
    """
    entities = doc.entities
    pairs = overlapping_pairs(entities)
    if not pairs:
        return doc, OverlapStats()
    if policy == "error":
        a, b = pairs[0]
        raise DataError(f"sentence {doc.id!r}: entities {_span(entities[a])} and {_span(entities[b])} overlap")
    if policy in ("keep_longest", "keep_first"):

        def preference(i: int) -> tuple[int, int]:
            e = entities[i]
            return (e.start - e.end, e.start) if policy == "keep_longest" else (e.start, -e.end)

        # Greedy: keep each span, best first, that fits beside those kept; sorted() is stable, so
        # full ties go to the earlier entity in the document.
        kept: list[int] = []
        for i in sorted(range(len(entities)), key=preference):
            if not any(entities[i].overlaps(entities[k]) for k in kept):
                kept.append(i)
        keep = set(kept)
    elif policy == "drop":
        keep = set(range(len(entities))) - {i for pair in pairs for i in pair}
    else:
        raise ValueError(f"unknown overlap policy {policy!r}")
    new_index = {old: new for new, old in enumerate(i for i in range(len(entities)) if i in keep)}
    relations = tuple(
        replace(r, head=new_index[r.head], tail=new_index[r.tail])
        for r in doc.relations
        if r.head in new_index and r.tail in new_index
    )
    resolved = replace(doc, entities=tuple(e for i, e in enumerate(entities) if i in keep), relations=relations)
    stats = OverlapStats(1, len(entities) - len(keep), len(doc.relations) - len(relations))
    return resolved, stats


def resolve_all(docs: Iterable[Sentence], policy: OverlapPolicy) -> tuple[list[Sentence], OverlapStats]:
    """:func:`resolve_overlaps` over a corpus, with the summed statistics."""
    resolved: list[Sentence] = []
    total = OverlapStats()
    for doc in docs:
        new, stats = resolve_overlaps(doc, policy)
        resolved.append(new)
        total += stats
    return resolved, total


def tag_inventory(entity_types: Iterable[str]) -> list[str]:
    """All BIO tags for these types in a fixed order: ``O``, then ``B-``/``I-`` per sorted type."""
    return ["O"] + [f"{prefix}-{t}" for t in sorted(set(entity_types)) for prefix in ("B", "I")]


def bio_tags(doc: Sentence) -> list[str]:
    """One BIO tag per token; the entities must not overlap."""
    pairs = overlapping_pairs(doc.entities)
    if pairs:
        a, b = (_span(doc.entities[i]) for i in pairs[0])
        raise DataError(f"sentence {doc.id!r}: entities {a} and {b} overlap, so they cannot be BIO-tagged")
    tags = ["O"] * len(doc.tokens)
    for e in doc.entities:
        tags[e.start] = f"B-{e.type}"
        tags[e.start + 1 : e.end] = [f"I-{e.type}"] * (e.end - e.start - 1)
    return tags


def spans_from_bio(tags: Sequence[str]) -> list[Entity]:
    """Decode BIO tags into entities, in order.

    Ill-formed sequences are read the CoNLL way: an ``I-X`` after ``O`` or after a tag of another
    type starts a new entity, so a model's slightly wrong output still yields usable spans. Written
    by hand: it is a few lines, where seqeval would be a new dependency and spaCy wants its own Doc.
    """
    entities: list[Entity] = []
    start, kind = 0, None
    for i, tag in enumerate([*tags, "O"]):  # the sentinel closes a span that runs to the end
        prefix, _, label = tag.partition("-")
        if prefix == "I" and label == kind:
            continue
        if kind is not None:
            entities.append(Entity(kind, start, i))
        start, kind = i, (label if prefix in ("B", "I") and label else None)
    return entities


def relation_targets(doc: Sentence) -> list[Triple]:
    """The sentence's relations as unique, sorted ``(head last token, tail last token, type)`` triples."""
    return sorted({(doc.entities[r.head].last, doc.entities[r.tail].last, r.type) for r in doc.relations})


def relations_from_heads(entities: Sequence[Entity], triples: Iterable[Triple]) -> list[Relation]:
    """Map triples back to relations between the entities ending at those tokens.

    Triples that point at a token that is no entity's last token are dropped, as a model may predict
    them.
    """
    by_last = {e.last: i for i, e in enumerate(entities)}
    return [
        Relation(kind, by_last[head], by_last[tail])
        for head, tail, kind in triples
        if head in by_last and tail in by_last
    ]


def _position(e: Entity) -> tuple[int, int, str]:
    return e.start, e.end, e.type


def canonical(doc: Sentence) -> Sentence:
    """The same sentence with entities sorted by (start, end, type) and relations by (head, tail, type)."""
    order = sorted(range(len(doc.entities)), key=lambda i: _position(doc.entities[i]))
    new_index = {old: new for new, old in enumerate(order)}
    relations = sorted(
        (replace(r, head=new_index[r.head], tail=new_index[r.tail]) for r in doc.relations),
        key=lambda r: (r.head, r.tail, r.type),
    )
    return replace(doc, entities=tuple(doc.entities[i] for i in order), relations=tuple(relations))


def encode(doc: Sentence) -> tuple[tuple[str, ...], list[str], list[Triple], str]:
    """``(tokens, BIO tags, multi-head triples, doc_id)``, the model's targets for a sentence.

    ``decode(*encode(doc)) == canonical(doc)`` for every representable sentence (see the module
    docstring); ``text``, ``offsets`` and scores are not part of the encoding.
    """
    return doc.tokens, bio_tags(doc), relation_targets(doc), doc.id


def decode(tokens: Sequence[str], tags: Sequence[str], triples: Iterable[Triple], doc_id: str = "") -> Sentence:
    """The canonical sentence (see :func:`canonical`) described by BIO tags and multi-head triples."""
    entities = spans_from_bio(tags)
    relations = sorted(relations_from_heads(entities, triples), key=lambda r: (r.head, r.tail, r.type))
    return Sentence(tuple(tokens), tuple(entities), tuple(relations), id=doc_id)
