"""``deeprel render``: predictions, optionally against gold, as one self-contained HTML page.

The page inlines ``static/deeprel-view.js`` and ``deeprel-view.css`` (the view the HTTP service serves) and
embeds the documents as JSON, so it opens from disk with nothing fetched. Everything that is decided (record
kinds, matching, tp/fp/fn) is decided here in Python; the page only draws it, a page of documents at a time.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

from deeprel.atomic import write_text_atomically
from deeprel.data.extraction import Extraction
from deeprel.data.readers import Format
from deeprel.data.types import DataError, Document
from deeprel.visual.compare import Comparison, Counts, compare, pair_documents
from deeprel.visual.documents import (
    ViewDocument,
    document_view,
    extraction_view,
    read_gold,
    read_predictions,
    record_view,
)

STATIC = Path(__file__).resolve().parent / "static"

_PAGE = Template(
    """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>
$css</style>
</head>
<body class="deeprel-page">
<div id="report"></div>
<script type="application/json" id="deeprel-data">$data</script>
<script>
$js</script>
<script>
DeeprelView.renderReport(document.getElementById("report"),
  JSON.parse(document.getElementById("deeprel-data").textContent));
</script>
</body>
</html>
"""
)


@dataclass(frozen=True)
class Report:
    """What a rendered page holds: the first documents of ``total``, each alone or compared with gold."""

    title: str
    total: int
    documents: tuple[ViewDocument | Comparison, ...]

    @property
    def comparisons(self) -> list[Comparison]:
        return [d for d in self.documents if isinstance(d, Comparison)]

    def summary(self) -> dict[str, Any] | None:
        """Summed counts (and micro P/R/F1) over the documents shown; None without gold."""
        comparisons = self.comparisons
        if not comparisons:
            return None
        entities = sum((c.entities for c in comparisons), Counts())
        relations = sum((c.relations for c in comparisons), Counts())
        return {
            "entities": {**entities.to_dict(), **entities.scores()},
            "relations": {**relations.to_dict(), **relations.scores()},
            "documents_with_errors": sum(c.has_errors for c in comparisons),
        }

    def describe(self) -> str:
        """One line for the terminal."""
        line = f"{len(self.documents)} of {self.total} documents"
        summary = self.summary()
        if summary is not None:
            for kind in ("entities", "relations"):
                c = summary[kind]
                line += f"; {kind}: tp {c['tp']}, fp {c['fp']}, fn {c['fn']} (F1 {c['f1']:.1f})"
        return line

    def to_dict(self) -> dict[str, Any]:
        views = [d for item in self.documents for d in _sides(item)]
        return {
            "title": self.title,
            "total": self.total,
            "entityTypes": sorted({e.type for d in views for e in d.entities}),
            "relationTypes": sorted({r.type for d in views for r in d.relations}),
            "summary": self.summary(),
            "documents": [_document_record(item) for item in self.documents],
        }


def _sides(item: ViewDocument | Comparison) -> tuple[ViewDocument, ...]:
    return (item.gold, item.predicted) if isinstance(item, Comparison) else (item,)


def _document_record(item: ViewDocument | Comparison) -> dict[str, Any]:
    if isinstance(item, ViewDocument):
        return {"id": item.doc_id, "predicted": item.to_dict()}
    return {
        "id": item.predicted.doc_id,
        "predicted": item.predicted.to_dict(),
        "gold": item.gold.to_dict(),
        "counts": {"entities": item.entities.to_dict(), "relations": item.relations.to_dict()},
        "errors": item.has_errors,
    }


def _as_view(item: ViewDocument | Document | Extraction | Mapping[str, Any], index: int) -> ViewDocument:
    if isinstance(item, ViewDocument):
        return item
    if isinstance(item, Document):
        return document_view(item)
    if isinstance(item, Extraction):
        return extraction_view(item, str(index))
    return record_view(dict(item), f"record {index}", default_id=str(index))


def build_report(
    predicted: Sequence[ViewDocument | Document | Extraction | Mapping[str, Any]],
    gold: Sequence[ViewDocument | Document | Extraction | Mapping[str, Any]] | None = None,
    title: str = "deeprel predictions",
    limit: int | None = None,
) -> Report:
    """Normalise, match with gold (see :func:`~deeprel.visual.compare.pair_documents`), keep the first ``limit``
    documents and compare them."""
    views = [_as_view(item, i) for i, item in enumerate(predicted)]
    shown = slice(0, limit)
    if gold is None:
        return Report(title, len(views), tuple(views[shown]))
    pairs = pair_documents(views, [_as_view(item, i) for i, item in enumerate(gold)])
    return Report(title, len(views), tuple(compare(g, p) for g, p in pairs[shown]))


def report_html(report: Report) -> str:
    """The page: view code inlined, data as JSON in which every ``<`` is escaped, so no text ends the script."""
    data = json.dumps(report.to_dict(), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return _PAGE.substitute(
        title=html.escape(report.title),
        css=(STATIC / "deeprel-view.css").read_text(encoding="utf-8"),
        js=(STATIC / "deeprel-view.js").read_text(encoding="utf-8"),
        data=data.replace("<", "\\u003c"),
    )


def render_html(
    predicted: Sequence[ViewDocument | Document | Extraction | Mapping[str, Any]],
    gold: Sequence[ViewDocument | Document | Extraction | Mapping[str, Any]] | None = None,
    title: str = "deeprel predictions",
    limit: int | None = None,
) -> str:
    """A self-contained HTML page drawing ``predicted`` (prediction records of any kind, ``Extraction.to_dict()``
    results, documents), side by side with ``gold`` and marked tp/fp/fn when given."""
    return report_html(build_report(predicted, gold, title=title, limit=limit))


def render_file(
    predictions: str | os.PathLike[str],
    output: str | os.PathLike[str],
    gold: str | os.PathLike[str] | None = None,
    gold_format: Format = "auto",
    limit: int | None = None,
    title: str | None = None,
) -> Report:
    """Read a predictions file (and a gold file), write the page atomically, return what it shows."""
    predictions = Path(predictions)
    if title is None:
        title = f"deeprel: {predictions.name}" + (f" vs {Path(gold).name}" if gold is not None else "")
    views = read_predictions(predictions)
    gold_views = read_gold(gold, gold_format) if gold is not None else None
    try:
        report = build_report(views, gold_views, title=title, limit=limit)
    except DataError as error:  # a matching problem: the message names documents, not files
        raise DataError(f"{predictions} vs {gold}: {error}") from None
    write_text_atomically(output, report_html(report))
    return report
