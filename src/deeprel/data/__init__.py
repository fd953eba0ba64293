"""Documents and sentences, readers, writers, the extraction schema and the BIO / multi-head encodings."""

from deeprel.data.readers import DocumentError, read_documents, read_sentences, write_json, write_jsonl
from deeprel.data.types import DataError, Document, Entity, Relation, Sentence, sentences_of

__all__ = [
    "DataError",
    "Document",
    "DocumentError",
    "Entity",
    "Relation",
    "Sentence",
    "read_documents",
    "read_sentences",
    "sentences_of",
    "write_json",
    "write_jsonl",
]
