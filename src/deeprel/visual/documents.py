"""What the visualiser draws: one document shape for every kind of record deeprel writes.

Three kinds of JSON lines reach the visualiser: ``deeprel predict`` records (one sentence, entities with token
and character spans), SpERT-style documents (``deeprel evaluate --predictions``, and every gold file) and
``deeprel extract`` records (an ``Extraction`` dict: a text of several sentences). Each becomes a
:class:`ViewDocument`: the text to show, its sentences as character ranges, and entities carrying both a
character span (to draw) and a token span over all the document's tokens (to match against gold, as the
metrics do). Character offsets are Python code-point indices, as everywhere in deeprel.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, replace
from itertools import accumulate
from pathlib import Path
from typing import Any, Literal, NotRequired

from pydantic import StrictFloat, StrictInt, StrictStr, TypeAdapter, ValidationError
from typing_extensions import TypedDict  # pydantic needs this TypedDict before Python 3.12

from deeprel.data.readers import Format, document_from_dict, read_documents
from deeprel.data.types import DataError, Document

Status = Literal["tp", "fp", "fn"]


@dataclass(frozen=True)
class ViewEntity:
    """A mention: characters ``[start_char, end_char)`` of the text, tokens ``[token_start, token_end)``."""

    type: str
    start_char: int
    end_char: int
    token_start: int
    token_end: int
    score: float | None = None
    status: Status | None = None

    def to_dict(self) -> dict[str, Any]:
        return _without_none(
            {
                "type": self.type,
                "start_char": self.start_char,
                "end_char": self.end_char,
                "score": _rounded(self.score),
                "status": self.status,
            }
        )


@dataclass(frozen=True)
class ViewRelation:
    """A directed relation; ``head`` and ``tail`` index the document's entities."""

    type: str
    head: int
    tail: int
    score: float | None = None
    status: Status | None = None

    def to_dict(self) -> dict[str, Any]:
        return _without_none(
            {
                "type": self.type,
                "head": self.head,
                "tail": self.tail,
                "score": _rounded(self.score),
                "status": self.status,
            }
        )


@dataclass(frozen=True)
class ViewDocument:
    """A document as drawn: ``sentences`` are character ranges of ``text``; ``tokens`` are all its tokens."""

    doc_id: str
    text: str
    sentences: tuple[tuple[int, int], ...]
    tokens: tuple[str, ...]
    entities: tuple[ViewEntity, ...] = ()
    relations: tuple[ViewRelation, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The ``Extraction.to_dict()`` shape the JavaScript view draws, less what drawing does not need
        (tokens, entity texts), so that a file of thousands of sentences stays small."""
        return {
            "text": self.text,
            "sentences": [{"start_char": start, "end_char": end} for start, end in self.sentences],
            "entities": [e.to_dict() for e in self.entities],
            "relations": [r.to_dict() for r in self.relations],
        }


def _rounded(score: float | None) -> float | None:
    return None if score is None else round(score, 4)


def _without_none(record: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in record.items() if value is not None}


def document_view(document: Document) -> ViewDocument:
    """A sentence ``Document`` (gold or predicted) as drawn.

    The text is cut to the sentence's own characters: a raw-text line of several sentences is stored whole in
    every sentence's record. Without text and offsets the tokens are joined by single spaces.
    """
    if not document.tokens:
        return ViewDocument(document.doc_id, "", (), ())
    if document.text is not None and document.offsets is not None:
        text, offsets = document.text, document.offsets
    else:
        text = " ".join(document.tokens)
        starts = accumulate((len(token) + 1 for token in document.tokens[:-1]), initial=0)
        offsets = tuple((start, start + len(token)) for start, token in zip(starts, document.tokens))
    first, last = offsets[0][0], offsets[-1][1]
    entities = tuple(
        ViewEntity(e.type, offsets[e.start][0] - first, offsets[e.last][1] - first, e.start, e.end, e.score)
        for e in document.entities
    )
    relations = tuple(ViewRelation(r.type, r.head, r.tail, r.score) for r in document.relations)
    return ViewDocument(document.doc_id, text[first:last], ((0, last - first),), document.tokens, entities, relations)


def record_view(record: object, where: str, default_id: str = "") -> ViewDocument:
    """Any prediction record deeprel writes, as a :class:`ViewDocument`; ``where`` names it in errors.

    The kind is told by its keys: ``sentences`` (``deeprel extract``), ``doc_id`` (``deeprel predict``),
    else ``tokens`` (a SpERT document, as ``deeprel evaluate --predictions`` writes).
    """
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    if "sentences" in record:
        return _extraction_view(record, where, default_id)
    if "doc_id" in record:
        return _prediction_view(record, where, default_id)
    if "tokens" in record:
        return document_view(document_from_dict(record, where, default_id=default_id))
    raise DataError(
        f"{where}: not a prediction record: expected the key 'sentences' (deeprel extract), "
        "'doc_id' (deeprel predict) or 'tokens' (a SpERT document)"
    )


def _prediction_view(record: dict[str, Any], where: str, default_id: str) -> ViewDocument:
    """A ``deeprel predict`` record: a SpERT record plus ``doc_id``, the ``text`` its entities' ``char_start`` /
    ``char_end`` index, and no token offsets, which are found again by locating the tokens in the text."""
    document = document_from_dict({**record, "orig_id": record["doc_id"]}, where, default_id=default_id)
    if document.text is None or not document.tokens:
        return document_view(document)
    anchors = [
        (e["start"], e["end"], e.get("char_start"), e.get("char_end"))
        for e in record.get("entities", [])
        if "char_start" in e or "char_end" in e
    ]
    offsets = _token_offsets(document.tokens, document.text, anchors)
    if offsets is None:
        raise DataError(f"{where} (doc_id {document.doc_id}): the tokens do not occur in order in 'text'")
    return document_view(replace(document, offsets=offsets))


def _token_offsets(
    tokens: tuple[str, ...], text: str, anchors: list[tuple[int, int, Any, Any]]
) -> tuple[tuple[int, int], ...] | None:
    """Where ``tokens`` sit in ``text``: the first place where they follow each other with only whitespace
    between and every anchor ``(token start, token end, char start, char end)`` lands on its characters (a
    line of several sentences can hold the same words twice)."""
    # The lookahead finds overlapping candidates too; its groups still capture each token's span.
    pattern = re.compile("(?=" + r"\s*".join(f"({re.escape(token)})" for token in tokens) + ")")
    for match in pattern.finditer(text):
        offsets = tuple(match.span(i) for i in range(1, len(tokens) + 1))
        if all(
            offsets[start][0] == char_start and offsets[end - 1][1] == char_end
            for start, end, char_start, char_end in anchors
        ):
            return offsets
    return None


class _SentenceRecord(TypedDict):
    start_char: StrictInt
    end_char: StrictInt
    tokens: list[StrictStr]


class _ExtractedEntityRecord(TypedDict):
    type: StrictStr
    start_char: StrictInt
    end_char: StrictInt
    sentence: StrictInt
    token_start: StrictInt
    token_end: StrictInt
    score: NotRequired[StrictFloat | StrictInt | None]


class _ExtractedRelationRecord(TypedDict):
    type: StrictStr
    head: StrictInt
    tail: StrictInt
    score: NotRequired[StrictFloat | StrictInt | None]


class _ExtractionRecord(TypedDict):
    text: StrictStr
    sentences: list[_SentenceRecord]
    entities: list[_ExtractedEntityRecord]
    relations: list[_ExtractedRelationRecord]
    id: NotRequired[StrictInt | StrictStr | None]


# pydantic checks the shape and types of an Extraction dict; the range checks are ours.
_EXTRACTION = TypeAdapter(_ExtractionRecord)


def _extraction_view(record: dict[str, Any], where: str, default_id: str) -> ViewDocument:
    """A ``deeprel extract`` record (``Extraction.to_dict()`` plus ``line`` and ``id``). Token spans count
    over all sentences' tokens, so the document can be matched against gold tokens of one sentence."""
    try:
        extraction = _EXTRACTION.validate_python(record)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise DataError(f"{where}: not an extraction record: {problems}") from None
    doc_id = default_id if extraction.get("id") is None else str(extraction["id"])
    text, sentences = extraction["text"], extraction["sentences"]
    length = len(text)
    for i, s in enumerate(sentences):
        if not 0 <= s["start_char"] <= s["end_char"] <= length:
            raise DataError(
                f"{where} (id {doc_id}): sentence {i} [{s['start_char']}, {s['end_char']}) is not in the text"
            )
    first_token = list(accumulate((len(s["tokens"]) for s in sentences), initial=0))
    entities = []
    for i, e in enumerate(extraction["entities"]):
        problem = _extracted_entity_problem(e, sentences)
        if problem:
            raise DataError(f"{where} (id {doc_id}): entity {i} ({e['type']}): {problem}")
        offset = first_token[e["sentence"]]
        entities.append(
            ViewEntity(
                e["type"],
                e["start_char"],
                e["end_char"],
                offset + e["token_start"],
                offset + e["token_end"],
                e.get("score"),
            )
        )
    for i, r in enumerate(extraction["relations"]):
        for role in ("head", "tail"):
            if not 0 <= r[role] < len(entities):
                problem = f"{role} {r[role]} is not one of {len(entities)} entities"
                raise DataError(f"{where} (id {doc_id}): relation {i} ({r['type']}): {problem}")
    return ViewDocument(
        doc_id=doc_id,
        text=text,
        sentences=tuple((s["start_char"], s["end_char"]) for s in sentences),
        tokens=tuple(token for s in sentences for token in s["tokens"]),
        entities=tuple(entities),
        relations=tuple(ViewRelation(r["type"], r["head"], r["tail"], r.get("score")) for r in extraction["relations"]),
    )


def _extracted_entity_problem(entity: _ExtractedEntityRecord, sentences: list[_SentenceRecord]) -> str | None:
    if not 0 <= entity["sentence"] < len(sentences):
        return f"sentence {entity['sentence']} is not one of {len(sentences)} sentences"
    sentence = sentences[entity["sentence"]]
    if not sentence["start_char"] <= entity["start_char"] < entity["end_char"] <= sentence["end_char"]:
        return f"characters [{entity['start_char']}, {entity['end_char']}) are not inside its sentence"
    if not 0 <= entity["token_start"] < entity["token_end"] <= len(sentence["tokens"]):
        return f"tokens [{entity['token_start']}, {entity['token_end']}) are not inside its sentence"
    return None


def read_predictions(path: str | os.PathLike[str]) -> list[ViewDocument]:
    """Every record of a JSON-lines file written by ``deeprel predict``, ``evaluate --predictions`` or
    ``extract``; the first bad line raises :class:`DataError` naming the file and line."""
    path = Path(path)
    try:
        content = path.read_text(encoding="utf-8-sig")  # -sig: tolerate a byte-order mark
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error})") from None
    views: list[ViewDocument] = []
    # split("\n"), not splitlines(): JSON strings may hold U+2028 and other characters splitlines breaks on.
    for lineno, line in enumerate(content.split("\n"), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{where}: invalid JSON at column {error.colno}: {error.msg}") from None
        views.append(record_view(record, where, default_id=f"{path.name}:{len(views)}"))
    return views


def read_gold(path: str | os.PathLike[str], fmt: Format = "auto") -> list[ViewDocument]:
    """The documents of an annotated file in any format the readers know (SpERT JSON, JSON lines, Bekoulis)."""
    return [document_view(document) for document in read_documents(path, fmt)]
