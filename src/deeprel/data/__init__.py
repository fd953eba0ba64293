"""Documents, readers, writers and the BIO / multi-head encodings."""

from deeprel.data.readers import DocumentError, read_documents, write_json, write_jsonl
from deeprel.data.types import DataError, Document, Entity, Relation

__all__ = [
    "DataError",
    "Document",
    "DocumentError",
    "Entity",
    "Relation",
    "read_documents",
    "write_json",
    "write_jsonl",
]
