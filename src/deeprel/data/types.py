"""Plain domain types, in two levels: a :class:`Document` (a text, its id and metadata) holds
:class:`Sentence` s (tokens with character offsets into that text, entities, relations). Readers return
documents; training, metrics and batching work on sentences. No torch here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import accumulate
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class Entity:
    """A typed token span of a sentence; ``end`` is exclusive. ``score`` is set on predictions only."""

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
    """A directed typed relation; ``head`` and ``tail`` index into ``Sentence.entities``."""

    type: str
    head: int
    tail: int
    score: float | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Sentence:
    """One sentence: tokens, entities and relations, the unit the model is trained and scored on.

    ``offsets`` are the character ``(start, end)`` of each token in its document's text (None only for
    sentences built by hand without a text). ``id`` names the sentence in messages: the record's id for a
    one-sentence document read from a file or built from tokens, ``<document id>#n`` for sentence ``n`` of
    raw text split by :class:`deeprel.data.text.Tokenizer`.
    """

    tokens: tuple[str, ...]
    entities: tuple[Entity, ...] = ()
    relations: tuple[Relation, ...] = ()
    id: str = ""
    offsets: tuple[tuple[int, int], ...] | None = None

    def __len__(self) -> int:
        return len(self.tokens)

    def with_annotations(self, entities: Sequence[Entity], relations: Sequence[Relation]) -> Sentence:
        """The same sentence (tokens, offsets, id) with other entities and relations, e.g. predicted ones."""
        return replace(self, entities=tuple(entities), relations=tuple(relations))


@dataclass(frozen=True)
class Document:
    """A text and its sentences; every sentence's ``offsets`` index ``text``.

    ``metadata`` holds what the model does not use but a reader or a writer may want to keep (the source
    file, an annotation tool's attributes and notes).
    """

    id: str
    text: str
    sentences: tuple[Sentence, ...]
    metadata: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), compare=False)

    def span_text(self, sentence: Sentence, entity: Entity) -> str:
        """The characters of ``text`` an entity of one of this document's sentences covers."""
        if sentence.offsets is None:
            return " ".join(sentence.tokens[entity.start : entity.end])
        return self.text[sentence.offsets[entity.start][0] : sentence.offsets[entity.last][1]]

    def with_sentences(self, sentences: Sequence[Sentence]) -> Document:
        """The same document with its sentences replaced one for one (e.g. by predicted ones)."""
        if len(sentences) != len(self.sentences):
            raise ValueError(f"document {self.id}: {len(sentences)} sentences for {len(self.sentences)}")
        return replace(self, sentences=tuple(sentences))

    @classmethod
    def from_tokens(
        cls,
        tokens: Sequence[str],
        entities: Sequence[Entity] = (),
        relations: Sequence[Relation] = (),
        id: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> Document:
        """A one-sentence document of pre-tokenised input: the text is the tokens joined by single spaces."""
        starts = list(accumulate((len(token) + 1 for token in tokens[:-1]), initial=0)) if tokens else []
        offsets = tuple((start, start + len(token)) for start, token in zip(starts, tokens))
        sentence = Sentence(tuple(tokens), tuple(entities), tuple(relations), id=id, offsets=offsets)
        return cls(id, " ".join(tokens), (sentence,), MappingProxyType(dict(metadata or {})))


def sentences_of(documents: Iterable[Document]) -> list[Sentence]:
    """All sentences of the documents, in order."""
    return [sentence for document in documents for sentence in document.sentences]


class DataError(ValueError):
    """Bad input data; the message names the file and the line or document."""


class DocumentError(DataError):
    """A :class:`DataError` confined to one document, so a lenient reader can skip it and go on."""

    def __init__(self, where: str, doc_id: str, reason: str) -> None:
        super().__init__(f"{where} (doc_id {doc_id}): {reason}")
        self.doc_id = doc_id
