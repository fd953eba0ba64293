"""Check data files before training, in the spirit of ``spacy debug data``.

The readers reject what cannot be a document at all; this module reads leniently (a broken document
becomes a problem, and reading goes on) and adds the semantic checks: overlapping or duplicate
spans, duplicate or self relations, empty sentences or tokens, and labels missing from a types file.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from deeprel.data.alignment import AnnotationOptions, Losses
from deeprel.data.readers import (
    DocumentError,
    Format,
    detect_format,
    iter_documents,
    read_types,
)
from deeprel.data.tagging import overlapping_pairs
from deeprel.data.types import DataError, Document, Entity, Sentence, sentences_of

Severity = Literal["error", "warning"]
ProblemKind = Literal[
    "file_error",
    "invalid_document",
    "unknown_entity_type",
    "unknown_relation_type",
    "overlapping_entities",
    "duplicate_span",
    "duplicate_relation",
    "self_relation",
    "empty_sentence",
    "empty_token",
]

# Errors make the data unusable as it is; warnings are things a model or an overlap policy can cope with.
SEVERITY: dict[ProblemKind, Severity] = {
    "file_error": "error",
    "invalid_document": "error",
    "unknown_entity_type": "error",
    "unknown_relation_type": "error",
    "overlapping_entities": "warning",
    "duplicate_span": "warning",
    "duplicate_relation": "warning",
    "self_relation": "warning",
    "empty_sentence": "warning",
    "empty_token": "warning",
}


@dataclass(frozen=True)
class Problem:
    """One finding. ``message`` is complete on its own: it names the file and the document."""

    file: str
    doc_index: int | None
    doc_id: str | None
    kind: ProblemKind
    message: str

    @property
    def severity(self) -> Severity:
        return SEVERITY[self.kind]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "severity": self.severity}


@dataclass(frozen=True)
class FileReport:
    """Counts, label inventories and problems of one file. Counts cover the documents that could be read."""

    path: str
    format: str | None
    failed: bool
    documents: int = 0
    tokens: int = 0
    entities: int = 0
    relations: int = 0
    entity_labels: dict[str, int] = field(default_factory=dict)
    relation_labels: dict[str, int] = field(default_factory=dict)
    problems: tuple[Problem, ...] = ()
    sentences: int = 0
    # Annotation-tool formats: what cannot be trained as it is, by kind (see deeprel.data.alignment).
    not_representable: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "problems": [p.to_dict() for p in self.problems]}


@dataclass(frozen=True)
class ValidationReport:
    files: tuple[FileReport, ...]

    @property
    def problems(self) -> list[Problem]:
        return [p for f in self.files for p in f.problems]

    def count(self, severity: Severity) -> int:
        return sum(p.severity == severity for p in self.problems)

    @property
    def ok(self) -> bool:
        """True when no file failed and no problem is an error (warnings are allowed)."""
        return self.count("error") == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "errors": self.count("error"),
            "warnings": self.count("warning"),
            "files": [f.to_dict() for f in self.files],
        }

    def format(self, verbose: bool = False, limit: int = 5) -> str:
        """A readable summary; unless ``verbose``, at most ``limit`` problems of each kind per file."""
        lines: list[str] = []
        for f in self.files:
            lines.append(f"{f.path} ({f.format or 'unknown format'}){': FAILED' if f.failed else ''}")
            if not f.failed:
                sentences = f"{f.sentences:,} sentences, " if f.sentences != f.documents else ""
                counts = f"{f.documents:,} documents, {sentences}{f.tokens:,} tokens, {f.entities:,} entities"
                lines.append(f"  {counts}, {f.relations:,} relations")
                for kind, found in f.not_representable.items():
                    example = f" (e.g. {found['examples'][0]})" if found["examples"] else ""
                    lines.append(f"  not representable as it is: {kind} {found['count']:,}{example}")
                lines.append(f"  entity labels: {_inventory(f.entity_labels)}")
                lines.append(f"  relation labels: {_inventory(f.relation_labels)}")
            by_kind: dict[ProblemKind, list[Problem]] = {}
            for p in f.problems:
                by_kind.setdefault(p.kind, []).append(p)
            for kind, problems in by_kind.items():
                lines.append(f"  {SEVERITY[kind]} {kind} ({len(problems):,})")
                shown = problems if verbose else problems[:limit]
                lines.extend(f"    {p.message}" for p in shown)
                if len(shown) < len(problems):
                    lines.append(f"    ... and {len(problems) - len(shown):,} more")
        verdict = "OK" if self.ok else "NOT OK"
        errors, warnings = self.count("error"), self.count("warning")
        lines.append(f"{verdict}: {len(self.files)} file(s), {errors:,} error(s), {warnings:,} warning(s)")
        return "\n".join(lines)


def _inventory(labels: dict[str, int]) -> str:
    return ", ".join(f"{label} {n:,}" for label, n in labels.items()) or "none"


def _sentence_problems(
    document: Document, doc: Sentence, entity_types: set[str] | None, relation_types: set[str] | None
) -> Iterator[tuple[ProblemKind, str]]:
    """The semantic checks of one well-formed sentence of ``document``, as ``(kind, what is wrong)``."""

    def describe(index: int, entity: Entity) -> str:
        return f"{index} ({entity.type} [{entity.start}, {entity.end}) {document.span_text(doc, entity)!r})"

    if not doc.tokens:
        yield "empty_sentence", "the sentence has no tokens"
    for i, token in enumerate(doc.tokens):
        if not token.strip():
            yield "empty_token", f"token {i} is {token!r}"
    entities = doc.entities
    for i, j in overlapping_pairs(entities):
        a, b = entities[i], entities[j]
        if (a.start, a.end) == (b.start, b.end):
            yield "duplicate_span", f"entities {describe(i, a)} and {describe(j, b)} cover the same span"
        else:
            nested = (a.start <= b.start and b.end <= a.end) or (b.start <= a.start and a.end <= b.end)
            verb = "are nested" if nested else "overlap"
            yield "overlapping_entities", f"entities {describe(i, a)} and {describe(j, b)} {verb}"
    for (head, tail, kind), n in Counter((r.head, r.tail, r.type) for r in doc.relations).items():
        if n > 1:
            yield "duplicate_relation", f"relation {kind} {head} -> {tail} appears {n} times"
    for i, r in enumerate(doc.relations):
        if r.head == r.tail:
            yield (
                "self_relation",
                f"relation {i} ({r.type}) links entity {describe(r.head, entities[r.head])} to itself",
            )
    if entity_types is not None:
        for i, e in enumerate(entities):
            if e.type not in entity_types:
                yield "unknown_entity_type", f"entity {describe(i, e)} has a type missing from the types file"
    if relation_types is not None:
        for i, r in enumerate(doc.relations):
            if r.type not in relation_types:
                yield "unknown_relation_type", f"relation {i} ({r.type}) has a type missing from the types file"


def validate_file(
    path: str | os.PathLike[str],
    entity_types: set[str] | None = None,
    relation_types: set[str] | None = None,
    fmt: Format = "auto",
    options: AnnotationOptions | None = None,
) -> FileReport:
    """Read one file (or BRAT folder) leniently and check every document; label checks run when types are
    given. The annotation-tool formats also report what they cannot represent (``not_representable``)."""
    name = str(path)
    try:
        used = detect_format(path) if fmt == "auto" else fmt
    except (DataError, OSError) as error:
        return _failed(name, None, error)
    problems: list[Problem] = []
    documents: list[Document] = []
    losses = Losses()
    try:
        for index, item in enumerate(iter_documents(path, used, options, losses)):
            if isinstance(item, DocumentError):
                problems.append(Problem(name, index, item.doc_id, "invalid_document", str(item)))
                continue
            documents.append(item)
            for number, sentence in enumerate(item.sentences):
                at = f"document {index}" + (f", sentence {number}" if len(item.sentences) > 1 else "")
                where = f"{path}: {at} (doc_id {item.id})"
                for kind, reason in _sentence_problems(item, sentence, entity_types, relation_types):
                    problems.append(Problem(name, index, item.id, kind, f"{where}: {reason}"))
    except (DataError, OSError) as error:
        return _failed(name, used, error)
    return FileReport(
        name,
        used,
        False,
        documents=len(documents),
        tokens=sum(len(s.tokens) for s in sentences_of(documents)),
        entities=sum(len(s.entities) for s in sentences_of(documents)),
        relations=sum(len(s.relations) for s in sentences_of(documents)),
        entity_labels=dict(Counter(e.type for s in sentences_of(documents) for e in s.entities).most_common()),
        relation_labels=dict(Counter(r.type for s in sentences_of(documents) for r in s.relations).most_common()),
        problems=tuple(problems),
        sentences=len(sentences_of(documents)),
        not_representable=losses.to_dict(),
    )


def _failed(name: str, fmt: str | None, error: DataError | OSError) -> FileReport:
    # DataError messages already name the file; an OSError's may not.
    message = str(error) if isinstance(error, DataError) else f"{name}: {error.strerror or error}"
    return FileReport(name, fmt, True, problems=(Problem(name, None, None, "file_error", message),))


def validate_files(
    paths: Iterable[str | os.PathLike[str]],
    types_path: str | os.PathLike[str] | None = None,
    fmt: Format = "auto",
    options: AnnotationOptions | None = None,
) -> ValidationReport:
    """Validate data files, checking labels against a SpERT ``*_types.json`` when one is given.

    A broken types file raises :class:`DataError`: it is the caller's input, not the data's.
    """
    entity_types = relation_types = None
    if types_path is not None:
        entities, relations = read_types(Path(types_path))
        entity_types, relation_types = set(entities), set(relations)
    return ValidationReport(tuple(validate_file(p, entity_types, relation_types, fmt, options) for p in paths))
