"""Read and write documents: SpERT JSON arrays, JSON lines, and Bekoulis et al.'s tab format.

Each record of these formats is one sentence; a reader returns it as a one-sentence
:class:`~deeprel.data.types.Document` whose text is the record's ``text`` (with ``offsets``) when it
has one, else the tokens joined by single spaces. Readers check structure only (JSON syntax, field
types, spans and relation indices in range) and raise :class:`~deeprel.data.types.DataError` naming the
file and the line or document. Odd but
well-formed data (overlapping spans, unknown labels, empty sentences) is left to
:mod:`deeprel.data.validate`. :func:`iter_documents` is the lenient path the validator uses: it
yields a :class:`DocumentError` in place of each broken document and reads on.
"""

from __future__ import annotations

import ast
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, NotRequired, TextIO

from pydantic import StrictFloat, StrictInt, StrictStr, TypeAdapter, ValidationError
from typing_extensions import (
    TypedDict,  # pydantic needs this TypedDict before Python 3.12
)

from deeprel.atomic import write_atomically
from deeprel.data.alignment import AnnotationOptions, Losses
from deeprel.data.tagging import decode
from deeprel.data.types import DataError, Document, DocumentError, Entity, Relation, Sentence, sentences_of

Format = Literal["auto", "spert", "jsonl", "bekoulis", "brat", "doccano", "label-studio", "extraction"]


class _EntityRecord(TypedDict):
    type: StrictStr
    start: StrictInt
    end: StrictInt
    score: NotRequired[StrictFloat | None]


class _RelationRecord(TypedDict):
    type: StrictStr
    head: StrictInt
    tail: StrictInt
    score: NotRequired[StrictFloat | None]


class _DocumentRecord(TypedDict):
    tokens: list[StrictStr]
    entities: NotRequired[list[_EntityRecord]]
    relations: NotRequired[list[_RelationRecord]]
    orig_id: NotRequired[StrictInt | StrictStr | None]
    text: NotRequired[StrictStr | None]
    offsets: NotRequired[list[tuple[StrictInt, StrictInt]] | None]


# pydantic checks the shape and types of a SpERT record; the range checks are ours.
_RECORD = TypeAdapter(_DocumentRecord)


def _describe(error: ValidationError) -> str:
    """pydantic's errors on one line, each as ``field.path: message``."""
    return "; ".join(": ".join(filter(None, [".".join(map(str, e["loc"])), e["msg"]])) for e in error.errors())


def _span_problem(start: int, end: int, length: int) -> str | None:
    if start < 0:
        return "start < 0"
    if end > length:
        return f"end > {length} tokens"
    if start >= end:
        return "start >= end"
    return None


def document_from_dict(d: object, where: str, *, default_id: str = "") -> Document:
    """Build a one-sentence document from a SpERT-style record, checking its structure.

    ``where`` locates the record in error messages (e.g. ``"train.json: document 3"``). The id is
    ``str(orig_id)`` when the record has one, else ``default_id``.
    """
    orig_id = d.get("orig_id") if isinstance(d, dict) else None
    doc_id = default_id if orig_id is None else str(orig_id)
    if not isinstance(d, dict):
        raise DocumentError(where, doc_id, f"expected a JSON object, got {type(d).__name__}")
    try:
        record = _RECORD.validate_python(d)
    except ValidationError as error:
        raise DocumentError(where, doc_id, _describe(error)) from None
    tokens, entities, relations = record["tokens"], record.get("entities", []), record.get("relations", [])
    for i, e in enumerate(entities):
        problem = _span_problem(e["start"], e["end"], len(tokens))
        if problem:
            raise DocumentError(where, doc_id, f"entity {i} ({e['type']} [{e['start']}, {e['end']})): {problem}")
    for i, r in enumerate(relations):
        for role, target in (("head", r["head"]), ("tail", r["tail"])):
            if not 0 <= target < len(entities):
                raise DocumentError(
                    where, doc_id, f"relation {i} ({r['type']}): {role} {target} is not one of {len(entities)} entities"
                )
    offsets, text = record.get("offsets"), record.get("text")
    if offsets is not None and len(offsets) != len(tokens):
        raise DocumentError(where, doc_id, f"{len(offsets)} offsets for {len(tokens)} tokens")
    entities_ = [Entity(e["type"], e["start"], e["end"], e.get("score")) for e in entities]
    relations_ = [Relation(r["type"], r["head"], r["tail"], r.get("score")) for r in relations]
    if text is None or offsets is None:
        return Document.from_tokens(tokens, entities_, relations_, id=doc_id)
    for i, (token, (start, end)) in enumerate(zip(tokens, offsets)):
        if not 0 <= start <= end <= len(text):
            raise DocumentError(where, doc_id, f"token {i}: offsets [{start}, {end}) lie outside 'text'")
        if text[start:end] != token:
            raise DocumentError(where, doc_id, f"token {i} {token!r} is not 'text' at [{start}, {end})")
    sentence = Sentence(
        tuple(tokens), tuple(entities_), tuple(relations_), id=doc_id, offsets=tuple(map(tuple, offsets))
    )
    return Document(doc_id, text, (sentence,))


def sentence_to_dict(sentence: Sentence) -> dict[str, Any]:
    """The SpERT record of a sentence; its ``id`` goes to ``orig_id``, scores when set."""

    def scored(record: dict[str, Any], score: float | None) -> dict[str, Any]:
        return record if score is None else {**record, "score": score}

    d: dict[str, Any] = {
        "tokens": list(sentence.tokens),
        "entities": [scored({"type": e.type, "start": e.start, "end": e.end}, e.score) for e in sentence.entities],
        "relations": [scored({"type": r.type, "head": r.head, "tail": r.tail}, r.score) for r in sentence.relations],
    }
    if sentence.id:
        d["orig_id"] = sentence.id
    return d


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # -sig: tolerate a byte-order mark
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error})") from None


def _attempt(parse: Callable[..., Document], *args: Any, **kwargs: Any) -> Document | DocumentError:
    try:
        return parse(*args, **kwargs)
    except DocumentError as error:
        return error


def _iter_spert(path: Path) -> Iterator[Document | DocumentError]:
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON array of documents, got {type(data).__name__}")
    for i, d in enumerate(data):
        yield _attempt(document_from_dict, d, f"{path}: document {i}", default_id=f"{path.name}:{i}")


def _iter_jsonl(path: Path) -> Iterator[Document | DocumentError]:
    index = 0
    # split("\n"), not splitlines(): JSON strings may hold U+2028 and other characters splitlines breaks on.
    for lineno, line in enumerate(_read_text(path).split("\n"), 1):
        if not line.strip():
            continue
        where, default_id = f"{path}:{lineno}: document {index}", f"{path.name}:{index}"
        try:
            d = json.loads(line)
        except json.JSONDecodeError as error:
            yield DocumentError(where, default_id, f"invalid JSON at column {error.colno}: {error.msg}")
        else:
            yield _attempt(document_from_dict, d, where, default_id=default_id)
        index += 1


def _iter_extractions(path: Path) -> Iterator[Document | DocumentError]:
    """``deeprel predict``/``extract`` output read back as documents (predictions, with their scores)."""
    from deeprel.data.extraction import Extraction

    for lineno, line in enumerate(_read_text(path).split("\n"), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            record = json.loads(line)
            identifier = record.get("id") if isinstance(record, dict) else None
            doc_id = f"{path.name}:{lineno}" if identifier is None else str(identifier)
            yield Extraction.from_dict(record, where).to_document(doc_id)
        except json.JSONDecodeError as error:
            yield DocumentError(where, f"{path.name}:{lineno}", f"invalid JSON at column {error.colno}: {error.msg}")
        except DataError as error:
            yield DocumentError(where, f"{path.name}:{lineno}", str(error).removeprefix(f"{where}: "))


_DOC_LINE = re.compile(r"#doc(?:\s+(\S*))?\s*")
_TAG = re.compile(r"O|[BI]-.+")


def _literal_list(text: str, kind: type) -> list[Any] | None:
    """The Python list literal in a Bekoulis relation column, or None if it is not a list of ``kind``."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None
    ok = isinstance(value, list) and all(type(v) is kind for v in value)
    return value if ok else None


def _bekoulis_document(path: Path, index: int, doc_id: str, rows: list[tuple[int, str]]) -> Document:
    tokens: list[str] = []
    tags: list[str] = []
    triples: list[tuple[int, int, str]] = []
    triple_lines: list[int] = []
    for position, (lineno, line) in enumerate(rows):
        where = f"{path}:{lineno}: document {index}"
        columns = line.split("\t")
        if len(columns) != 5:
            raise DocumentError(where, doc_id, f"expected 5 tab-separated columns, got {len(columns)}")
        number, token, tag, labels_text, targets_text = columns
        if number != str(position):
            raise DocumentError(where, doc_id, f"token number {number!r}, expected {position}")
        if not _TAG.fullmatch(tag):
            raise DocumentError(where, doc_id, f"invalid BIO tag {tag!r}")
        labels, targets = _literal_list(labels_text, str), _literal_list(targets_text, int)
        if labels is None or targets is None or len(labels) != len(targets):
            raise DocumentError(
                where, doc_id, "relation columns must be a list of labels and a list of as many token numbers"
            )
        for label, target in zip(labels, targets, strict=True):
            if label != "N":  # 'N' marks "no relation"
                triples.append((position, target, label))
                triple_lines.append(lineno)
        tokens.append(token)
        tags.append(tag)
    sentence = decode(tokens, tags, triples, doc_id)
    # decode() silently drops relations that do not join entity ends; in a file that is an error.
    ends = {e.last for e in sentence.entities}
    for (head, tail, label), lineno in zip(triples, triple_lines, strict=True):
        if head not in ends or tail not in ends:
            loose = head if head not in ends else tail
            where = f"{path}:{lineno}: document {index}"
            raise DocumentError(where, doc_id, f"relation {label!r}: token {loose} ends no entity")
    return Document.from_tokens(sentence.tokens, sentence.entities, sentence.relations, id=doc_id)


def _iter_bekoulis(path: Path) -> Iterator[Document | DocumentError]:
    blocks: list[tuple[str, list[tuple[int, str]]]] = []
    for lineno, line in enumerate(_read_text(path).split("\n"), 1):
        if header := _DOC_LINE.fullmatch(line):
            blocks.append((header.group(1) or "", []))
        elif not line.strip():
            continue
        elif not blocks:
            raise DataError(f"{path}:{lineno}: token line before the first '#doc' line")
        else:
            blocks[-1][1].append((lineno, line))
    for index, (doc_id, rows) in enumerate(blocks):
        yield _attempt(_bekoulis_document, path, index, doc_id or f"{path.name}:{index}", rows)


class _TypesRecord(TypedDict):
    entities: dict[StrictStr, Any]
    relations: dict[StrictStr, Any]


_TYPES = TypeAdapter(_TypesRecord)


def read_types(path: str | os.PathLike[str]) -> tuple[list[str], list[str]]:
    """Entity and relation type names, in file order, from a SpERT ``*_types.json`` or a BRAT
    ``annotation.conf`` (by its ``.conf`` suffix)."""
    path = Path(path)
    if path.suffix == ".conf":
        from deeprel.data.brat import read_annotation_conf

        return read_annotation_conf(path)
    try:
        record = _TYPES.validate_json(_read_text(path))
    except ValidationError as error:
        raise DataError(f"{path}: not a SpERT types file: {_describe(error)}") from None
    return list(record["entities"]), list(record["relations"])


def detect_format(
    path: str | os.PathLike[str],
) -> Literal["spert", "jsonl", "bekoulis", "brat", "doccano", "label-studio", "extraction"]:
    """A folder is BRAT; a file by suffix (.txt/.tsv: Bekoulis), else by its first record: ``tokens`` SpERT
    (a JSON array) or JSON lines, ``data`` a Label Studio export (an array), ``text`` doccano (JSON lines),
    ``sentences`` the extraction records ``deeprel predict`` and ``extract`` write."""
    path = Path(path)
    if path.is_dir():
        return "brat"
    if path.suffix in (".txt", ".tsv"):
        return "bekoulis"
    with path.open(encoding="utf-8-sig", errors="replace") as f:
        for chunk in iter(lambda: f.read(4096), ""):
            if chunk.strip():
                first = chunk.lstrip()[0]
                if first == "[":
                    return "label-studio" if _first_array_item_has(path, "data") else "spert"
                if first == "{":
                    line = (chunk.lstrip() + f.readline()).split("\n", 1)[0]
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:
                        return "jsonl"  # the reader names the broken line
                    if isinstance(record, dict) and "sentences" in record:
                        return "extraction"
                    doccano = isinstance(record, dict) and "text" in record and "tokens" not in record
                    return "doccano" if doccano else "jsonl"
                break
    if path.suffix == ".jsonl":
        return "jsonl"
    raise DataError(f"{path}: cannot tell the format (not a JSON array or JSON lines); name it explicitly")


def iter_documents(
    path: str | os.PathLike[str],
    fmt: Format = "auto",
    options: AnnotationOptions | None = None,
    losses: Losses | None = None,
) -> Iterator[Document | DocumentError]:
    """Every document of a file (a folder, for BRAT) in order, with a :class:`DocumentError` in place of each
    broken one.

    Errors that spoil the whole file (invalid JSON array, unreadable text) raise :class:`DataError`
    before the first document is yielded. The annotation-tool formats convert character annotations to
    sentences (``options``) and count in ``losses`` what they cannot represent.
    """
    path = Path(path)
    plain = {"spert": _iter_spert, "jsonl": _iter_jsonl, "bekoulis": _iter_bekoulis, "extraction": _iter_extractions}
    tools = ("brat", "doccano", "label-studio")
    if fmt != "auto" and fmt not in (*plain, *tools):
        raise ValueError(f"unknown format {fmt!r}; expected one of auto, {', '.join((*plain, *tools))}")
    used = detect_format(path) if fmt == "auto" else fmt
    if used in plain:
        return plain[used](path)
    options = options or AnnotationOptions()
    losses = losses if losses is not None else Losses()
    # Imported here: they need spaCy, which reading SpERT files does not.
    if used == "brat":
        from deeprel.data.brat import read_brat

        return read_brat(path, options, losses)
    from deeprel.data.annotation_tools import read_doccano, read_label_studio

    if used == "doccano":
        return read_doccano(path, options, losses)
    return read_label_studio(path, options, losses, options.annotation)


def _first_array_item_has(path: Path, key: str) -> bool:
    """Whether the first object of a JSON array file has ``key``; only that object is parsed (the reader parses
    the whole file once after)."""
    text = _read_text(path)
    start = text.index("[") + 1
    while start < len(text) and text[start].isspace():
        start += 1
    try:
        first, _ = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError:
        return False  # an empty array, or broken JSON: the SpERT reader names the problem
    return isinstance(first, dict) and key in first


def read_documents(
    path: str | os.PathLike[str],
    fmt: Format = "auto",
    options: AnnotationOptions | None = None,
    losses: Losses | None = None,
) -> list[Document]:
    """All documents of a file; the first structural problem raises :class:`DataError`."""
    documents = []
    for item in iter_documents(path, fmt, options, losses):
        if isinstance(item, DocumentError):
            raise item
        documents.append(item)
    return documents


def read_sentences(
    path: str | os.PathLike[str],
    fmt: Format = "auto",
    options: AnnotationOptions | None = None,
    losses: Losses | None = None,
) -> list[Sentence]:
    """All sentences of a file's documents, in order (what training and scoring read)."""
    return sentences_of(read_documents(path, fmt, options, losses))


WRITERS = ("spert", "jsonl", "brat", "doccano", "label-studio")


def write_documents(documents: Sequence[Document], path: str | os.PathLike[str], fmt: str) -> None:
    """Documents in one of :data:`WRITERS`: a SpERT array or JSON lines (a record per sentence, the files
    the readers take back), a BRAT folder (``.txt`` + ``.ann`` per document, and ``annotation.conf``), doccano
    JSONL (the relation export) or Label Studio tasks with predictions (scores included when predicted)."""
    if fmt == "spert":
        write_json(documents, path)
    elif fmt == "jsonl":
        write_jsonl(documents, path)
    elif fmt == "brat":
        from deeprel.data.brat import write_brat

        write_brat(documents, path)
    elif fmt == "doccano":
        from deeprel.data.annotation_tools import write_doccano

        write_doccano(documents, path)
    elif fmt == "label-studio":
        from deeprel.data.annotation_tools import write_label_studio

        write_label_studio(documents, path)
    else:
        raise ValueError(f"unknown output format {fmt!r}; expected one of {', '.join(WRITERS)}")


def _dumps(sentence: Sentence) -> str:
    # allow_nan=False: NaN scores would make a file that strict JSON parsers reject.
    return json.dumps(sentence_to_dict(sentence), ensure_ascii=False, allow_nan=False)


def write_json(documents: Iterable[Document], path: str | os.PathLike[str]) -> None:
    """A SpERT JSON array, one record (sentence) per line, written atomically."""

    def write(f: TextIO) -> None:
        f.write("[" + ",\n".join(_dumps(s) for s in sentences_of(documents)) + "]\n")

    write_atomically(path, write)


def write_jsonl(documents: Iterable[Document], path: str | os.PathLike[str]) -> None:
    """One SpERT record (sentence) per line, written atomically."""

    def write(f: TextIO) -> None:
        for sentence in sentences_of(documents):
            f.write(_dumps(sentence) + "\n")

    write_atomically(path, write)
