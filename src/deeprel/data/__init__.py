"""Documents and sentences, readers, writers, the extraction schema and the BIO / multi-head encodings.

The names below load on first use (PEP 562), so that importing a light submodule such as
``deeprel.data.types`` or ``deeprel.data.lines`` does not import the readers and spaCy with them: Ray's
read tasks import those and nothing heavier.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "DataError": "types",
    "Document": "types",
    "Entity": "types",
    "Relation": "types",
    "Sentence": "types",
    "sentences_of": "types",
    "DocumentError": "readers",
    "read_documents": "readers",
    "read_sentences": "readers",
    "write_json": "readers",
    "write_jsonl": "readers",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'deeprel.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"deeprel.data.{_WHERE[name]}"), name)
