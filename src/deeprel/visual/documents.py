"""What the visualiser draws: one document shape for every kind of record deeprel writes.

Two kinds of JSON lines reach the visualiser: extraction records (``deeprel predict`` and ``deeprel extract``
write ``Extraction.to_dict()``: a text of several sentences) and SpERT-style records (``deeprel evaluate
--predictions``, and every gold file). Each becomes a :class:`ViewDocument`: the text to show, its
sentences as character ranges, and entities carrying both a character span (to draw) and a token span over
all the document's tokens (to match against gold, as the metrics do). Character offsets are Python
code-point indices, as everywhere in deeprel.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Any, Literal

from deeprel.data.extraction import Extraction
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


def extraction_view(extraction: Extraction, doc_id: str) -> ViewDocument:
    """An extraction as drawn. Token spans count over all sentences' tokens, so the document can be matched
    against gold of the same tokens."""
    first_token = list(accumulate((len(s.tokens) for s in extraction.sentences), initial=0))
    entities = tuple(
        ViewEntity(
            e.type,
            e.start_char,
            e.end_char,
            first_token[e.sentence] + e.token_start,
            first_token[e.sentence] + e.token_end,
            e.score,
        )
        for e in extraction.entities
    )
    return ViewDocument(
        doc_id=doc_id,
        text=extraction.text,
        sentences=tuple((s.start_char, s.end_char) for s in extraction.sentences),
        tokens=tuple(token for s in extraction.sentences for token in s.tokens),
        entities=entities,
        relations=tuple(ViewRelation(r.type, r.head, r.tail, r.score) for r in extraction.relation_records()),
    )


def document_view(document: Document) -> ViewDocument:
    """A document (gold or predicted) as drawn."""
    return extraction_view(Extraction.from_document(document), document.id)


def record_view(record: object, where: str, default_id: str = "") -> ViewDocument:
    """Any record deeprel writes, as a :class:`ViewDocument`; ``where`` names it in errors.

    The kind is told by its keys: ``sentences`` (an extraction record: ``deeprel predict`` or ``extract``),
    else ``tokens`` (a SpERT record, as ``deeprel evaluate --predictions`` writes).
    """
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    if "sentences" in record:
        identifier = record.get("id")
        named = where if identifier is None else f"{where} (id {identifier})"
        return extraction_view(
            Extraction.from_dict(record, named), default_id if identifier is None else str(identifier)
        )
    if "tokens" in record:
        return document_view(document_from_dict(record, where, default_id=default_id))
    raise DataError(
        f"{where}: not a prediction record: expected the key 'sentences' (deeprel predict or extract)"
        " or 'tokens' (a SpERT record)"
    )


def read_predictions(path: str | os.PathLike[str]) -> list[ViewDocument]:
    """Every record of a JSON-lines file written by ``deeprel predict``, ``extract`` or ``evaluate
    --predictions``; the first bad line raises :class:`DataError` naming the file and line."""
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
