"""Plain domain types: documents, entity spans and relations. No torch here."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Entity:
    """A typed token span; ``end`` is exclusive. ``score`` is set on predictions only."""

    type: str
    start: int
    end: int
    score: float | None = field(default=None, compare=False)

    @property
    def last(self) -> int:
        """Index of the span's last token (the token that takes part in relations)."""
        return self.end - 1

    def overlaps(self, other: Entity) -> bool:
        return self.start < other.end and other.start < self.end


@dataclass(frozen=True)
class Relation:
    """A directed typed relation; ``head`` and ``tail`` index into ``Document.entities``."""

    type: str
    head: int
    tail: int
    score: float | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Document:
    """One sentence: tokens, entities and relations.

    ``text`` and ``offsets`` (character ``(start, end)`` of each token in ``text``) are set
    when the document came from raw text, so predictions can point into the original string.
    """

    tokens: tuple[str, ...]
    entities: tuple[Entity, ...] = ()
    relations: tuple[Relation, ...] = ()
    doc_id: str = ""
    text: str | None = None
    offsets: tuple[tuple[int, int], ...] | None = None

    def __len__(self) -> int:
        return len(self.tokens)

    def span_text(self, entity: Entity) -> str:
        if self.text is not None and self.offsets is not None:
            return self.text[self.offsets[entity.start][0] : self.offsets[entity.last][1]]
        return " ".join(self.tokens[entity.start : entity.end])


class DataError(ValueError):
    """Bad input data; the message names the file and the line or document."""
