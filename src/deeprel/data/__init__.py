"""Documents, readers, writers and the BIO / multi-head encodings."""

from deeprel.data.types import DataError, Document, Entity, Relation

__all__ = ["DataError", "Document", "Entity", "Relation"]
