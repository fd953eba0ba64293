"""Running a trained model over documents, in batches of similar length."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from deeprel.data.readers import read_documents
from deeprel.data.types import Document
from deeprel.inference.text import Tokenizer, from_tokens
from deeprel.model.inputs import Featurizer
from deeprel.model.joint import JointModel, with_predictions


def predict_documents(
    model: JointModel,
    featurizer: Featurizer,
    documents: Sequence[Document],
    batch_size: int = 32,
    features: Sequence[torch.Tensor] | None = None,
    threshold: float | None = None,
    progress: bool = False,
) -> list[Document]:
    """The documents with predicted entities and relations (gold annotations are replaced).

    ``features`` are precomputed frozen encoder features, one per document, when the caller has them.
    Empty documents come back with no predictions.
    """
    model.eval()
    device = next(model.parameters()).device
    results = [with_predictions(d, [], []) for d in documents]
    order = sorted((i for i, d in enumerate(documents) if len(d)), key=lambda i: len(documents[i]))
    chunks = [order[k : k + batch_size] for k in range(0, len(order), batch_size)]
    for chunk in tqdm(chunks, desc="predict", unit="batch", disable=not progress):
        batch = featurizer.batch(
            [documents[i] for i in chunk], features=[features[i] for i in chunk] if features is not None else None
        ).to(device)
        for i, (entities, relations) in zip(chunk, model.predict(batch, threshold=threshold), strict=True):
            results[i] = with_predictions(documents[i], entities, relations)
    return results


def read_prediction_input(source: Path | None, text: str | None, input_format: str) -> list[Document]:
    """Documents to predict on: a string, a raw-text file (one document per line) or annotated data."""
    tokenizer = Tokenizer()
    if text is not None:
        return tokenizer.split(text, doc_id_prefix="text")
    if input_format == "text" or (
        input_format == "auto" and source.suffix in {".txt", ""} and not _looks_tabular(source)
    ):
        lines = (sys.stdin.read() if str(source) == "-" else source.read_text(encoding="utf-8")).splitlines()
        return [d for n, line in enumerate(lines, start=1) for d in tokenizer.split(line, doc_id_prefix=f"line{n}")]
    documents = read_documents(source, fmt=input_format)
    return [d if d.offsets is not None else from_tokens(d.tokens, d.doc_id) if d.tokens else d for d in documents]


def _looks_tabular(path: Path) -> bool:
    """Bekoulis files are .txt too; they start with a `#doc` line."""
    with path.open(encoding="utf-8") as handle:
        return handle.readline().startswith("#doc")


def prediction_record(document: Document) -> dict[str, Any]:
    """One JSON line: the text, tokens, entities with token and character spans, relations between them."""
    entities = []
    for entity in document.entities:
        item: dict[str, Any] = {
            "type": entity.type,
            "start": entity.start,
            "end": entity.end,
            "text": document.span_text(entity),
        }
        if document.offsets is not None:
            item["char_start"] = document.offsets[entity.start][0]
            item["char_end"] = document.offsets[entity.last][1]
        item["score"] = entity.score
        entities.append(item)
    return {
        "doc_id": document.doc_id,
        "text": document.text,  # what char_start / char_end index into
        "tokens": list(document.tokens),
        "entities": entities,
        "relations": [{"type": r.type, "head": r.head, "tail": r.tail, "score": r.score} for r in document.relations],
    }
