"""BRAT standoff: a folder of ``NAME.txt`` + ``NAME.ann`` pairs, read into documents and written back.

Hand-written because the format is a short line-based spec (https://brat.nlplab.org/standoff.html) and the
PyPI parsers for it are unmaintained and check neither offsets nor the spans' texts.

Reading. ``T`` lines are entities (character offsets, end exclusive; a discontinuous span ``0 5;16 23`` is
skipped, covered by its whole extent, or an error, by policy); ``R`` lines are relations, their first
argument the head and the second the tail, whatever the role names; ``E`` events are counted, or turned into
relations from the trigger to each argument (typed by the role); ``A``/``M`` attributes, ``N``
normalisations, ``*`` equivalences and ``#`` notes are kept as the document's metadata, not trained, and
counted. Every span's reference text must equal the text at its offsets. BRAT reads a text with universal
newlines, so ``\\r\\n`` counts as one character: the document's text is the ``.txt`` with ``\\r\\n`` (and a lone
``\\r``) read as ``\\n``, and the writers copy the original ``.txt`` byte for byte.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from deeprel.atomic import write_text_atomically
from deeprel.data.alignment import (
    AnnotationOptions,
    CharEntity,
    CharRelation,
    Losses,
    align,
    char_annotations,
    span_problem,
)
from deeprel.data.text import Tokenizer
from deeprel.data.types import DataError, Document, DocumentError

_FRAGMENTS = re.compile(r"\d+ \d+(?:;\d+ \d+)*")


def read_brat(
    path: str | os.PathLike[str],
    options: AnnotationOptions | None = None,
    losses: Losses | None = None,
    tokenizer: Tokenizer | None = None,
) -> Iterator[Document | DocumentError]:
    """Every ``.ann`` under ``path`` (recursively, sorted), with its ``.txt``, as a document whose id is the
    file's path relative to ``path`` without the suffix; a ``.txt`` alone is a document nobody annotated yet.
    A broken file is a :class:`DocumentError` naming the file and line in its place (the lenient path the
    validator reads on), a folder without such files a :class:`DataError`. What cannot be represented goes
    to ``losses``."""
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root}: a BRAT corpus is a folder of .txt and .ann files")
    options = options or AnnotationOptions()
    losses = losses if losses is not None else Losses()
    tokenizer = tokenizer or Tokenizer()
    files = [p for pattern in ("*.ann", "*.txt") for p in root.rglob(pattern) if p.is_file()]
    stems = sorted({p.with_suffix("") for p in files})
    if not stems:
        raise DataError(f"{root}: no .txt or .ann files")
    for stem in stems:
        ann, txt = stem.with_suffix(".ann"), stem.with_suffix(".txt")
        doc_id = stem.relative_to(root).as_posix()
        try:
            if not txt.is_file():
                raise DataError(f"{ann}: no {txt.name} beside it")
            text = read_brat_text(txt)
            # A text without its .ann is a document nobody has annotated yet (to pre-annotate, say).
            entities, relations, metadata = parse_ann(ann, text, options, losses) if ann.is_file() else ([], [], {})
        except DataError as error:
            where, _, reason = str(error).partition(": ")
            yield DocumentError(where, doc_id, reason)
            continue
        yield align(
            text,
            entities,
            relations,
            id=doc_id,
            tokenizer=tokenizer,
            options=options,
            metadata={"source": str(txt), **metadata},
            losses=losses,
        )


def read_brat_text(path: Path) -> str:
    """The text as BRAT indexes it: UTF-8, universal newlines."""
    try:
        with path.open(encoding="utf-8", newline=None) as handle:
            return handle.read()
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error})") from None


def parse_ann(
    path: Path, text: str, options: AnnotationOptions, losses: Losses
) -> tuple[list[CharEntity], list[CharRelation], dict[str, Any]]:
    """The entities, relations and metadata of one ``.ann`` file over its ``text``."""
    spans: dict[str, tuple[str, list[tuple[int, int]]]] = {}
    relations: list[CharRelation] = []
    events: list[tuple[str, str, str, list[tuple[str, str]], int]] = []  # id, type, trigger, args, line
    metadata: dict[str, list[dict[str, Any]]] = {}
    seen: dict[str, int] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        line = raw.removesuffix("\r")
        if not line.strip():
            continue
        where = f"{path}:{number}"
        identifier, _, rest = line.partition("\t")
        kind = identifier[:1]
        if identifier != "*":
            if identifier in seen:
                raise DataError(f"{where}: the id {identifier} is used twice (first on line {seen[identifier]})")
            seen[identifier] = number
        if kind == "T":
            spans[identifier] = _text_bound(where, identifier, rest, text)
        elif kind == "R":
            fields = rest.split("\t")[0].split()
            arguments = [a.partition(":")[2] for a in fields[1:3]]
            if len(fields) < 3 or not all(arguments):
                raise DataError(f"{where}: a relation needs a type and two arguments ROLE:ID, got {rest!r}")
            relations.append(CharRelation(fields[0], arguments[0], arguments[1], id=identifier))
        elif kind == "E":
            fields = rest.split("\t")[0].split()
            if not fields or ":" not in fields[0]:
                raise DataError(f"{where}: an event needs TYPE:TRIGGER, got {rest!r}")
            event_type, _, trigger = fields[0].partition(":")
            arguments = [
                (role.rstrip("0123456789"), target) for role, _, target in (f.partition(":") for f in fields[1:])
            ]
            events.append((identifier, event_type, trigger, arguments, number))
        elif kind in ("A", "M", "N", "*", "#"):  # not `in "AMN*#"`: an empty id would match it
            name = {"A": "attributes", "M": "attributes", "N": "normalizations", "*": "equivalences", "#": "notes"}[
                kind
            ]
            fields = rest.split("\t")
            metadata.setdefault(name, []).append({"id": identifier, "value": fields[0], "text": "\t".join(fields[1:])})
            losses.add(f"brat_{name}_kept_as_metadata", where)
        else:
            raise DataError(f"{where}: unknown annotation line kind {identifier!r} (expected T, R, E, A, M, N, * or #)")
    triggers = {trigger for _, _, trigger, _, _ in events}
    entities = []
    for identifier, (entity_type, fragments) in spans.items():
        if identifier in triggers and options.events == "count":
            losses.add("brat_event_triggers", f"{path}: {identifier}")
            continue
        if len(fragments) > 1:
            if options.discontinuous == "error":
                raise DataError(f"{path}:{seen[identifier]}: {identifier} is a discontinuous span")
            losses.add(
                f"discontinuous_span_{'skipped' if options.discontinuous == 'skip' else 'covered'}",
                f"{path}:{seen[identifier]}",
            )
            if options.discontinuous == "skip":
                continue
        entities.append(CharEntity(identifier, entity_type, fragments[0][0], fragments[-1][1]))
    annotated = set(spans) | {e[0] for e in events}  # what an event or relation may name
    for identifier, _, trigger, arguments, number in events:
        for target in [trigger, *(t for _, t in arguments)]:
            if target not in annotated:
                raise DataError(f"{path}:{number}: {identifier} names {target}, which is no annotation of the file")
        if options.events == "count":
            losses.add("brat_events", f"{path}:{number}")
        else:
            relations.extend(CharRelation(role, trigger, target, id=identifier) for role, target in arguments)
    for relation in relations:
        for target in (relation.head, relation.tail):
            if target not in annotated:
                raise DataError(
                    f"{path}:{seen.get(relation.id, '?')}: {relation.id} names {target}, which is no entity of the file"
                )
    # A relation of a skipped span (a trigger, a discontinuous one) is counted by align, with every reader's.
    return entities, relations, metadata


def _text_bound(where: str, identifier: str, rest: str, text: str) -> tuple[str, list[tuple[int, int]]]:
    """``Type start end[;start end]*`` and the reference text: the type and the fragments, checked."""
    annotation, tab, reference = rest.partition("\t")
    entity_type, _, offsets = annotation.partition(" ")
    if not entity_type or not _FRAGMENTS.fullmatch(offsets):
        raise DataError(f"{where}: {identifier}: expected 'TYPE START END[;START END]', got {annotation!r}")
    fragments = [(int(a), int(b)) for a, b in (part.split(" ") for part in offsets.split(";"))]
    problem = span_problem(text, fragments, reference if tab else None)
    if problem:
        raise DataError(f"{where}: {identifier}: {problem}")
    return entity_type, fragments


def read_annotation_conf(path: str | os.PathLike[str]) -> tuple[list[str], list[str]]:
    """Entity and relation types from a BRAT ``annotation.conf``: the ``[entities]`` and ``[relations]``
    sections (``!`` types, which cannot be annotated, and macros are left out)."""
    path = Path(path)
    try:
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read the annotation configuration: {error}") from None
    section = None
    types: dict[str, list[str]] = {"entities": [], "relations": []}
    for raw in content.split("\n"):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            continue
        if section in types and not line.startswith(("!", "<")) and "=" not in line.split()[0]:
            name = line.split()[0]
            if name not in types[section]:
                types[section].append(name)
    return types["entities"], types["relations"]


def write_brat(
    documents: Sequence[Document],
    folder: str | os.PathLike[str],
    entity_types: Sequence[str] = (),
    relation_types: Sequence[str] = (),
) -> None:
    """``ID.txt`` (a copy of the source text file when a document came from one, else its text) and
    ``ID.ann`` with ``T`` and ``R`` lines per document, and an ``annotation.conf`` naming the types."""
    folder = Path(folder)
    seen_entities = list(entity_types)
    seen_relations = list(relation_types)
    for document in documents:
        entities, relations = char_annotations(document)
        name = _file_name(document.id)
        target = folder / f"{name}.txt"
        target.parent.mkdir(parents=True, exist_ok=True)
        source = document.metadata.get("source")
        if source and Path(source).is_file() and read_brat_text(Path(source)) == document.text:
            shutil.copyfile(source, target)
        else:
            write_text_atomically(target, document.text)
        lines = [f"{e.id}\t{e.type} {e.start} {e.end}\t{document.text[e.start : e.end]}" for e in entities]
        lines += [f"{r.id}\t{r.type} Arg1:{r.head} Arg2:{r.tail}\t" for r in relations]
        write_text_atomically(folder / f"{name}.ann", "".join(line + "\n" for line in lines))
        seen_entities += [e.type for e in entities if e.type not in seen_entities]
        seen_relations += [r.type for r in relations if r.type not in seen_relations]
    conf = ["[entities]", *dict.fromkeys(seen_entities), "", "[relations]"]
    conf += [f"{r}\tArg1:<ENTITY>, Arg2:<ENTITY>" for r in dict.fromkeys(seen_relations)]
    conf += ["", "[events]", "", "[attributes]", ""]
    write_text_atomically(folder / "annotation.conf", "\n".join(conf))


def _file_name(doc_id: str) -> str:
    """A document id as a relative file name: path separators kept, anything odd replaced."""
    name = re.sub(r"[^\w./-]", "_", doc_id).strip("./") or "document"
    return name.replace("..", "_")
