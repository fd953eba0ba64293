"""The extraction schema, defined once: what deeprel found in one document.

The Python API returns these objects; ``deeprel predict``, ``deeprel extract`` and ``POST /extract`` write
``Extraction.to_dict()`` (the HTTP service documents it in OpenAPI from these models), and the visualiser
reads it back with :meth:`Extraction.from_dict`, which checks every index and offset. Character offsets are
Python ``str`` indices into ``text``, so ``text[e.start_char:e.end_char] == e.text``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer, model_validator

from deeprel.data.types import DataError, Document, Entity, Relation, Sentence

SCORE_DIGITS = 6  # scores are rounded to this many decimals when written


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ExtractedSentence(_Record):
    """A sentence of the document: its tokens and where each sits in the text."""

    start_char: int = Field(description="offset of the sentence's first character in the text")
    end_char: int = Field(description="offset just past the sentence's last character")
    tokens: tuple[str, ...]
    token_offsets: tuple[tuple[int, int], ...] = Field(description="[start_char, end_char) of each token in the text")


class ExtractedEntity(_Record):
    """A typed mention. ``token_start``/``token_end`` (exclusive) index the tokens of ``sentence``."""

    type: str
    text: str = Field(description="the mention, equal to text[start_char:end_char]")
    start_char: int
    end_char: int
    sentence: int = Field(description="index into sentences")
    token_start: int = Field(description="first token, indexing the sentence's tokens")
    token_end: int = Field(description="one past the last token")
    score: float | None = Field(
        description="the tagger's confidence: the smallest CRF marginal of the span's tags (null for gold)"
    )

    @field_serializer("score")
    def _rounded(self, score: float | None) -> float | None:
        return None if score is None else round(score, SCORE_DIGITS)


class RelationRecord(_Record):
    """A relation as written: head and tail by their index in ``entities``."""

    type: str
    head: int = Field(description="index into entities")
    tail: int = Field(description="index into entities")
    score: float | None = Field(description="sigmoid score of the relation type for this ordered pair (null for gold)")


class ExtractedRelation(_Record):
    """A directed typed relation from ``head`` to ``tail`` (both in the same sentence)."""

    type: str
    head: ExtractedEntity
    tail: ExtractedEntity
    score: float | None


class Extraction(_Record):
    """Everything found in one document."""

    text: str
    sentences: tuple[ExtractedSentence, ...]
    entities: tuple[ExtractedEntity, ...]
    relations: tuple[ExtractedRelation, ...]

    @model_validator(mode="before")
    @classmethod
    def _entities_by_index(cls, data: Any) -> Any:
        """A written record names a relation's entities by index: look them up (after checking the index)."""
        if not isinstance(data, dict) or not isinstance(data.get("relations"), list):
            return data
        entities = data.get("entities")
        count = len(entities) if isinstance(entities, list) else 0
        relations = []
        for i, relation in enumerate(data["relations"]):
            if isinstance(relation, dict) and {"head", "tail"} <= relation.keys():
                relation = dict(relation)
                for role in ("head", "tail"):
                    target = relation[role]
                    if type(target) is int:
                        if not 0 <= target < count:
                            raise ValueError(f"relation {i}: {role} {target} is not one of {count} entities")
                        relation[role] = entities[target]
            relations.append(relation)
        return {**data, "relations": relations}

    @model_validator(mode="after")
    def _offsets_fit(self) -> Extraction:
        for i, s in enumerate(self.sentences):
            if not 0 <= s.start_char <= s.end_char <= len(self.text):
                raise ValueError(f"sentence {i} [{s.start_char}, {s.end_char}) is not in the text")
            if len(s.token_offsets) != len(s.tokens):
                raise ValueError(f"sentence {i}: {len(s.token_offsets)} token offsets for {len(s.tokens)} tokens")
            for k, (token, (start, end)) in enumerate(zip(s.tokens, s.token_offsets)):
                if self.text[start:end] != token:
                    raise ValueError(f"sentence {i}: token {k} {token!r} is not the text at [{start}, {end})")
        for i, e in enumerate(self.entities):
            problem = _entity_problem(e, self.sentences)
            if problem is None and self.text[e.start_char : e.end_char] != e.text:
                problem = f"its text {e.text!r} is not the text at [{e.start_char}, {e.end_char})"
            if problem:
                raise ValueError(f"entity {i} ({e.type}): {problem}")
        known = set(self.entities)
        for i, r in enumerate(self.relations):
            if r.head not in known or r.tail not in known:
                raise ValueError(f"relation {i} ({r.type}): its head and tail must be among the entities")
            if r.head.sentence != r.tail.sentence:
                raise ValueError(f"relation {i} ({r.type}): its head and tail are in different sentences")
        return self

    @field_serializer("relations")
    def _relations_by_index(self, relations: tuple[ExtractedRelation, ...]) -> list[RelationRecord]:
        return [
            r.model_copy(update={"score": None if r.score is None else round(r.score, SCORE_DIGITS)})
            for r in self.relation_records()
        ]

    def relation_records(self) -> list[RelationRecord]:
        """The relations with head and tail as indices into ``entities`` (the first of equal entities)."""
        index: dict[ExtractedEntity, int] = {}
        for i, entity in enumerate(self.entities):
            index.setdefault(entity, i)
        return [
            RelationRecord(type=r.type, head=index[r.head], tail=index[r.tail], score=r.score) for r in self.relations
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; a relation names its head and tail by their index in ``entities``."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, record: object, where: str) -> Extraction:
        """Read a written record back (extra keys such as ``line`` and ``id`` are ignored); errors name
        ``where``."""
        if not isinstance(record, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
        known = {key: record[key] for key in cls.model_fields if key in record}
        try:
            return cls.model_validate(known)
        except ValidationError as error:
            problems = "; ".join(
                ": ".join(filter(None, [".".join(map(str, e["loc"])), e["msg"].removeprefix("Value error, ")]))
                for e in error.errors()
            )
            raise DataError(f"{where}: not an extraction record: {problems}") from None

    def to_document(self, id: str = "") -> Document:
        """Back to a document: its sentences with token offsets, the entities by token span, scores kept."""
        sentences = []
        records = self.relation_records()
        index = {entity: i for i, entity in reversed(list(enumerate(self.entities)))}
        for number, s in enumerate(self.sentences):
            mine = [e for e in self.entities if e.sentence == number]
            position = {index[e]: k for k, e in enumerate(mine)}
            sentences.append(
                Sentence(
                    tokens=s.tokens,
                    entities=tuple(Entity(e.type, e.token_start, e.token_end, e.score) for e in mine),
                    relations=tuple(
                        Relation(r.type, position[r.head], position[r.tail], r.score)
                        for r in records
                        if r.head in position
                    ),
                    id=id if len(self.sentences) == 1 else f"{id}#{number}",
                    offsets=s.token_offsets,
                )
            )
        return Document(id, self.text, tuple(sentences))

    @classmethod
    def from_document(cls, document: Document) -> Extraction:
        """A document's sentences and their annotations (predicted or gold), with offsets into its text."""
        text = document.text
        parts: list[ExtractedSentence] = []
        entities: list[ExtractedEntity] = []
        relations: list[ExtractedRelation] = []
        for number, sentence in enumerate(document.sentences):
            offsets = sentence.offsets
            if offsets is None:
                raise ValueError(f"document {document.id}: sentence {number} has no character offsets")
            start, end = (offsets[0][0], offsets[-1][1]) if offsets else (0, 0)
            parts.append(
                ExtractedSentence(start_char=start, end_char=end, tokens=sentence.tokens, token_offsets=offsets)
            )
            mine = [
                ExtractedEntity(
                    type=e.type,
                    text=text[offsets[e.start][0] : offsets[e.last][1]],
                    start_char=offsets[e.start][0],
                    end_char=offsets[e.last][1],
                    sentence=number,
                    token_start=e.start,
                    token_end=e.end,
                    score=None if e.score is None else float(e.score),
                )
                for e in sentence.entities
            ]
            relations.extend(
                ExtractedRelation(
                    type=r.type, head=mine[r.head], tail=mine[r.tail], score=None if r.score is None else float(r.score)
                )
                for r in sentence.relations
            )
            entities.extend(mine)
        return cls(text=text, sentences=tuple(parts), entities=tuple(entities), relations=tuple(relations))


def extraction_record(line: int, id: str | int | None, extraction: Extraction) -> dict[str, Any]:
    """One output line of ``deeprel predict`` and ``deeprel extract``: the input line (from 1), the
    document's id (null when the input gives none) and the extraction."""
    return {"line": line, "id": id, **extraction.to_dict()}


def _entity_problem(entity: ExtractedEntity, sentences: tuple[ExtractedSentence, ...]) -> str | None:
    if not 0 <= entity.sentence < len(sentences):
        return f"sentence {entity.sentence} is not one of {len(sentences)} sentences"
    sentence = sentences[entity.sentence]
    if not sentence.start_char <= entity.start_char < entity.end_char <= sentence.end_char:
        return f"characters [{entity.start_char}, {entity.end_char}) are not inside its sentence"
    if not 0 <= entity.token_start < entity.token_end <= len(sentence.tokens):
        return f"tokens [{entity.token_start}, {entity.token_end}) are not inside its sentence"
    return None
