"""doccano and Label Studio exports in, predictions out for pre-annotation in the same tools.

Hand-written: both exports are small JSON shapes documented by the tools (doccano's "JSONL (relation)" and
"JSONL" sequence-labelling exports; Label Studio's "JSON" export and its predictions import), and their
converters live in the tools' own servers, not in libraries deeprel could call.

* **doccano** JSONL, one task a line: the relation export (``text``; ``entities`` with ``id``,
  ``start_offset``, ``end_offset``, ``label``; ``relations`` with ``from_id``, ``to_id``, ``type``) or the
  sequence-labelling export (``label: [[start, end, label], ...]``).
* **Label Studio** JSON: a list of tasks, each ``data.text`` and ``annotations`` (or ``predictions``) whose
  ``result`` holds ``labels`` regions (``value.start``/``end``/``text``/``labels``) and ``relation`` items
  (``from_id``, ``to_id``, ``direction`` right/left/bi, optional ``labels``). One annotation per task is
  read: the first that is not cancelled, or the ``annotation``-th; cancelled ones skipped are counted.

Offsets are Python code points. Older exports of both tools counted UTF-16 code units, which shifts every
offset after a character outside the Basic Multilingual Plane (an emoji). When a text holds such a character
and the code-point offsets do not fit (Label Studio: a span's text differs; doccano, which stores no span
text: an offset falls outside the text or inside a word) but the UTF-16 reading fits every span, the
offsets are converted (and counted); a span that fits neither way is an error naming the task.
"""

from __future__ import annotations

import json
import os
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


def _utf16_to_code_points(text: str) -> list[int]:
    """``mapping[u]``: the code-point index of UTF-16 unit offset ``u`` (for every ``u`` up to the text's end)."""
    mapping = []
    for index, character in enumerate(text):
        mapping.extend([index] * (2 if ord(character) > 0xFFFF else 1))
    mapping.append(len(text))
    return mapping


def _fit_offsets(
    text: str, spans: list[tuple[int, int, str | None]], where: str, losses: Losses
) -> list[tuple[int, int]]:
    """The spans' ``(start, end)`` in code points: as given when they fit (and their texts, when given, match),
    else read as UTF-16 units when that fits every span; else a :class:`DataError` naming the first bad one."""

    def problem(pairs: list[tuple[int, int]]) -> str | None:
        found = (span_problem(text, [pair], expected) for pair, (_, _, expected) in zip(pairs, spans))
        return next((p for p in found if p), None)

    def cuts_words(pairs: list[tuple[int, int]]) -> bool:
        """Whether an edge falls inside a word: with no span texts to compare (doccano), the sign of an
        offset shifted by a character outside the BMP."""
        return any(
            0 < edge < len(text) and text[edge - 1].isalnum() and text[edge].isalnum()
            for pair in pairs
            for edge in pair
        )

    given = [(start, end) for start, end, _ in spans]
    first = problem(given)
    astral = any(ord(character) > 0xFFFF for character in text)  # only then can UTF-16 offsets differ
    if first is None and not (astral and all(t is None for *_, t in spans) and cuts_words(given)):
        return given
    mapping = _utf16_to_code_points(text) if astral else []
    if astral and all(0 <= s < e < len(mapping) for s, e in given):
        converted = [(mapping[s], mapping[e]) for s, e in given]
        if problem(converted) is None and not cuts_words(converted):
            losses.add("utf16_offsets_converted", where, len(spans))
            return converted
    if first is None:
        return given  # cut words, but the UTF-16 reading is no better: the spans as given
    raise DataError(f"{where}: {first}")


def _load_jsonl(path: Path) -> Iterator[tuple[int, Any] | DocumentError]:
    try:
        content = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error})") from None
    for number, line in enumerate(content.split("\n"), start=1):
        if line.strip():
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as error:
                yield DocumentError(f"{path}:{number}", f"{path.name}:{number}", f"invalid JSON: {error.msg}")


def read_doccano(
    path: str | os.PathLike[str], options: AnnotationOptions | None = None, losses: Losses | None = None
) -> Iterator[Document | DocumentError]:
    """Every task of a doccano JSONL export as a document (id: the task's ``id``, else ``FILE:LINE``)."""
    path = Path(path)
    options = options or AnnotationOptions()
    losses = losses if losses is not None else Losses()
    tokenizer = Tokenizer()
    for item in _load_jsonl(path):
        if isinstance(item, DocumentError):
            yield item
            continue
        number, task = item
        where = f"{path}:{number}"
        doc_id = str(task.get("id", f"{path.name}:{number}")) if isinstance(task, dict) else f"{path.name}:{number}"
        try:
            yield _doccano_document(task, where, doc_id, options, losses, tokenizer)
        except DataError as error:
            yield DocumentError(where, doc_id, str(error).removeprefix(f"{where}: "))


def _doccano_document(
    task: Any, where: str, doc_id: str, options: AnnotationOptions, losses: Losses, tokenizer: Tokenizer
) -> Document:
    if not isinstance(task, dict) or not isinstance(task.get("text"), str):
        raise DataError(f"{where}: a doccano task needs a string 'text'")
    text = task["text"]
    raw: list[tuple[str, str, int, int]] = []  # id, label, start, end
    if "entities" in task:
        for i, e in enumerate(task["entities"]):
            if not isinstance(e, dict) or not {"start_offset", "end_offset", "label"} <= e.keys():
                raise DataError(f"{where}: entity {i} needs start_offset, end_offset and label")
            raw.append((str(e.get("id", i)), str(e["label"]), e["start_offset"], e["end_offset"]))
    for i, span in enumerate(task.get("label", []) if isinstance(task.get("label"), list) else []):
        if not (isinstance(span, list) and len(span) == 3):
            raise DataError(f"{where}: label {i} is not [start, end, label]")
        raw.append((f"label-{i}", str(span[2]), span[0], span[1]))
    if any(not (isinstance(s, int) and isinstance(e, int)) for _, _, s, e in raw):
        raise DataError(f"{where}: entity offsets must be whole numbers")
    ids = [identifier for identifier, *_ in raw]
    if len(set(ids)) != len(ids):
        raise DataError(f"{where}: an entity id is used twice")
    fitted = _fit_offsets(text, [(s, e, None) for _, _, s, e in raw], where, losses)
    entities = [CharEntity(i, label, s, e) for (i, label, _, _), (s, e) in zip(raw, fitted)]
    relations = []
    for i, r in enumerate(task.get("relations", [])):
        if not isinstance(r, dict) or not {"from_id", "to_id", "type"} <= r.keys():
            raise DataError(f"{where}: relation {i} needs from_id, to_id and type")
        head, tail = str(r["from_id"]), str(r["to_id"])
        for target in (head, tail):
            if target not in ids:
                raise DataError(f"{where}: relation {i} names entity {target}, which the task does not have")
        relations.append(CharRelation(str(r["type"]), head, tail, str(r.get("id", i))))
    metadata = {k: v for k, v in task.items() if k not in ("text", "entities", "relations", "label", "id")}
    return align(
        text,
        entities,
        relations,
        id=doc_id,
        tokenizer=tokenizer,
        options=options,
        metadata=metadata,
        losses=losses,
    )


def write_doccano(documents: Sequence[Document], path: str | os.PathLike[str]) -> None:
    """The relation export's JSONL: ``id``, ``text``, ``entities`` and ``relations`` (with ``score`` when
    predicted), which doccano imports for the next round of annotation."""
    lines = []
    for number, document in enumerate(documents, start=1):
        entities, relations = char_annotations(document)
        ids = {e.id: k for k, e in enumerate(entities, start=1)}
        record = {
            "id": document.id or number,
            "text": document.text,
            "entities": [
                {"id": ids[e.id], "label": e.type, "start_offset": e.start, "end_offset": e.end}
                | ({} if e.score is None else {"score": e.score})
                for e in entities
            ],
            "relations": [
                {"id": k, "from_id": ids[r.head], "to_id": ids[r.tail], "type": r.type}
                | ({} if r.score is None else {"score": r.score})
                for k, r in enumerate(relations, start=1)
            ],
        }
        lines.append(json.dumps(record, ensure_ascii=False))
    write_text_atomically(path, "".join(line + "\n" for line in lines))


def read_label_studio(
    path: str | os.PathLike[str],
    options: AnnotationOptions | None = None,
    losses: Losses | None = None,
    annotation: int | None = None,
) -> Iterator[Document | DocumentError]:
    """Every task of a Label Studio JSON export as a document (id: the task's ``id``)."""
    path = Path(path)
    options = options or AnnotationOptions()
    losses = losses if losses is not None else Losses()
    try:
        tasks = json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: not a Label Studio JSON export: {error}") from None
    if not isinstance(tasks, list):
        raise DataError(f"{path}: a Label Studio export is a JSON array of tasks")
    tokenizer = Tokenizer()
    for index, task in enumerate(tasks):
        where = f"{path}: task {index}"
        doc_id = str(task.get("id", index)) if isinstance(task, dict) else str(index)
        try:
            yield _label_studio_document(task, where, doc_id, options, losses, tokenizer, annotation)
        except DataError as error:
            yield DocumentError(where, doc_id, str(error).removeprefix(f"{where}: "))


def _label_studio_document(
    task: Any,
    where: str,
    doc_id: str,
    options: AnnotationOptions,
    losses: Losses,
    tokenizer: Tokenizer,
    annotation: int | None,
) -> Document:
    if not isinstance(task, dict) or not isinstance(task.get("data"), dict) or "text" not in task["data"]:
        raise DataError(f"{where}: a Label Studio task needs data.text")
    text = task["data"]["text"]
    if not isinstance(text, str):
        raise DataError(f"{where}: data.text must be a string")
    chosen = _chosen_annotation(task, where, losses, annotation)
    regions = [r for r in chosen if isinstance(r, dict) and r.get("type") == "labels"]
    links = [r for r in chosen if isinstance(r, dict) and r.get("type") == "relation"]
    for kind in {r.get("type") for r in chosen if isinstance(r, dict)} - {"labels", "relation"}:
        losses.add(f"label_studio_{kind}_results_ignored", where)
    spans = []
    for i, region in enumerate(regions):
        value = region.get("value", {})
        if not {"start", "end", "labels"} <= value.keys() or not value["labels"]:
            raise DataError(f"{where}: region {i} needs value.start, value.end and value.labels")
        if len(value["labels"]) > 1:
            losses.add("label_studio_extra_labels_ignored", f"{where}: region {region.get('id', i)}")
        spans.append(
            (str(region.get("id", i)), str(value["labels"][0]), value["start"], value["end"], value.get("text"))
        )
    fitted = _fit_offsets(text, [(s, e, t) for _, _, s, e, t in spans], where, losses)
    entities = [CharEntity(i, label, s, e) for (i, label, _, _, _), (s, e) in zip(spans, fitted)]
    known = {e.id for e in entities}
    relations = []
    for i, link in enumerate(links):
        head, tail = str(link.get("from_id")), str(link.get("to_id"))
        for target in (head, tail):
            if target not in known:
                raise DataError(f"{where}: relation {i} names region {target}, which the annotation does not have")
        labels = link.get("labels") or []
        if not labels:
            losses.add("label_studio_relation_without_label", f"{where}: relation {i}")
            continue
        direction = link.get("direction", "right")
        pairs = {"right": [(head, tail)], "left": [(tail, head)], "bi": [(head, tail), (tail, head)]}.get(direction)
        if pairs is None:
            raise DataError(f"{where}: relation {i} has direction {direction!r} (expected right, left or bi)")
        relations.extend(CharRelation(str(labels[0]), h, t, f"{i}") for h, t in pairs)
    return align(
        text,
        entities,
        relations,
        id=doc_id,
        tokenizer=tokenizer,
        options=options,
        metadata={"data": task["data"]},
        losses=losses,
    )


def _chosen_annotation(task: dict[str, Any], where: str, losses: Losses, annotation: int | None) -> list[Any]:
    """The result list of the annotation to read: the ``annotation``-th, else the first not cancelled (the
    predictions when the task has no annotation)."""
    annotations = task.get("annotations") or task.get("completions") or []
    if annotation is not None:
        if not 0 <= annotation < len(annotations):
            raise DataError(f"{where}: has {len(annotations)} annotations, so there is no annotation {annotation}")
        return annotations[annotation].get("result", [])
    for item in annotations:
        if item.get("was_cancelled"):
            losses.add("label_studio_cancelled_annotations_skipped", where)
            continue
        return item.get("result", [])
    if annotations:
        return []
    predictions = task.get("predictions") or []
    return predictions[0].get("result", []) if predictions else []


def write_label_studio(
    documents: Sequence[Document], path: str | os.PathLike[str], model_version: str = "deeprel"
) -> None:
    """Label Studio tasks with ``predictions`` (``model_version``, a ``score`` per result and the task's mean),
    for pre-annotation: import the file into a project whose labelling config names ``label`` (Labels) and
    ``text``."""
    tasks = []
    for number, document in enumerate(documents, start=1):
        entities, relations = char_annotations(document)
        result: list[dict[str, Any]] = [
            {
                "id": e.id,
                "from_name": "label",
                "to_name": "text",
                "type": "labels",
                "value": {"start": e.start, "end": e.end, "text": document.text[e.start : e.end], "labels": [e.type]},
            }
            | ({} if e.score is None else {"score": e.score})
            for e in entities
        ]
        result += [
            {"from_id": r.head, "to_id": r.tail, "type": "relation", "direction": "right", "labels": [r.type]}
            | ({} if r.score is None else {"score": r.score})
            for r in relations
        ]
        scores = [item["score"] for item in result if "score" in item]
        prediction = {"model_version": model_version, "result": result}
        if scores:
            prediction["score"] = round(sum(scores) / len(scores), 6)
        tasks.append(
            {"data": {"text": document.text, "deeprel_id": document.id or str(number)}, "predictions": [prediction]}
        )
    write_text_atomically(path, json.dumps(tasks, ensure_ascii=False, indent=1) + "\n")
