"""The Python API: load a model directory, call it on text, get typed results.

    >>> import deeprel
    >>> extractor = deeprel.load("runs/demo/model")
    >>> result = extractor("John Smith lives in Boston. He works for Acme Corp.")
    >>> [(e.type, e.text, e.start_char, e.end_char) for e in result.entities]
    >>> [(r.type, r.head.text, r.tail.text, r.score) for r in result.relations]

One string is one document; it may hold many sentences (split by spaCy's rule-based sentencizer).
Relations are predicted within a sentence, as the model was trained. Character offsets are Python
``str`` indices into the string given, so ``text[e.start_char:e.end_char] == e.text`` always holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

from deeprel.data.types import DataError, Document
from deeprel.inference.text import Tokenizer, from_tokens


@dataclass(frozen=True)
class Sentence:
    """A sentence of a document: its tokens and where each sits in the document's text."""

    start_char: int
    end_char: int
    tokens: tuple[str, ...]
    token_offsets: tuple[tuple[int, int], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "start_char": self.start_char,
            "end_char": self.end_char,
            "tokens": list(self.tokens),
            "token_offsets": [list(o) for o in self.token_offsets],
        }


@dataclass(frozen=True)
class ExtractedEntity:
    """A typed mention. ``token_start``/``token_end`` (exclusive) index the tokens of ``sentence``."""

    type: str
    text: str
    start_char: int
    end_char: int
    sentence: int
    token_start: int
    token_end: int
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "text": self.text,
            "start_char": self.start_char,
            "end_char": self.end_char,
            "sentence": self.sentence,
            "token_start": self.token_start,
            "token_end": self.token_end,
            "score": round(self.score, 6),
        }


@dataclass(frozen=True)
class ExtractedRelation:
    """A directed typed relation from ``head`` to ``tail`` (both in the same sentence)."""

    type: str
    head: ExtractedEntity
    tail: ExtractedEntity
    score: float


@dataclass(frozen=True)
class Extraction:
    """Everything found in one document."""

    text: str
    sentences: tuple[Sentence, ...]
    entities: tuple[ExtractedEntity, ...]
    relations: tuple[ExtractedRelation, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; a relation names its head and tail by their index in ``entities``."""
        index = {id(entity): i for i, entity in enumerate(self.entities)}
        return {
            "text": self.text,
            "sentences": [s.to_dict() for s in self.sentences],
            "entities": [e.to_dict() for e in self.entities],
            "relations": [
                {"type": r.type, "head": index[id(r.head)], "tail": index[id(r.tail)], "score": round(r.score, 6)}
                for r in self.relations
            ],
        }


class Extractor:
    """A loaded model, ready to extract. Build it with :func:`load` (or ``Extractor.load``)."""

    def __init__(self, loaded: Any, batch_size: int = 32, threshold: float | None = None) -> None:
        from deeprel.inference.predictor import predict_documents

        self._loaded = loaded
        self._predict = predict_documents
        self.batch_size = batch_size
        self.threshold = threshold
        self._tokenizer = Tokenizer()

    @classmethod
    def load(
        cls,
        path: str | Path,
        device: str = "auto",
        batch_size: int = 32,
        threshold: float | None = None,
        num_threads: int | None = None,
    ) -> Extractor:
        """Load a model directory (JSON + safetensors only). ``device``: "auto" (CUDA when present), "cpu",
        "cuda" or "cuda:N". ``threshold`` overrides the model's relation threshold."""
        import torch

        from deeprel.model.files import load_model
        from deeprel.training.seeding import pick_device

        if num_threads is not None:
            torch.set_num_threads(num_threads)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        return cls(load_model(path, device=pick_device(device)), batch_size=batch_size, threshold=threshold)

    @property
    def entity_types(self) -> tuple[str, ...]:
        return tuple(self._loaded.model.labels.entity_types)

    @property
    def relation_types(self) -> tuple[str, ...]:
        return tuple(self._loaded.model.labels.relation_types)

    @property
    def relation_threshold(self) -> float:
        """The threshold relations are predicted at: the one given to ``load``, else the model's own."""
        return self.threshold if self.threshold is not None else float(self._loaded.model.config.model.threshold)

    @property
    def device(self) -> str:
        return str(next(self._loaded.model.parameters()).device)

    @property
    def meta(self) -> dict[str, Any]:
        """What ``meta.json`` says: deeprel version, parameter counts, how the model was trained."""
        return dict(self._loaded.meta)

    @overload
    def __call__(self, texts: str) -> Extraction: ...

    @overload
    def __call__(self, texts: Sequence[str]) -> list[Extraction]: ...

    def __call__(self, texts: str | Sequence[str]) -> Extraction | list[Extraction]:
        """Extract from one string (one ``Extraction``) or a list of strings (a list, in order)."""
        if isinstance(texts, str):
            return self.extract([texts])[0]
        return self.extract(texts)

    def extract(self, texts: Iterable[str]) -> list[Extraction]:
        """One ``Extraction`` per string; all their sentences go through the model in shared batches."""
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"text {i}: expected a str, got {type(text).__name__}")
        return self._run(texts, [self._tokenizer.split(text, doc_id_prefix=str(i)) for i, text in enumerate(texts)])

    def extract_tokens(self, sentences: Iterable[Sequence[str]]) -> list[Extraction]:
        """Pre-tokenised sentences, one ``Extraction`` each; its text is the tokens joined by single spaces."""
        documents = []
        for i, tokens in enumerate(sentences):
            if isinstance(tokens, str) or not all(isinstance(t, str) for t in tokens):
                raise TypeError(f"sentence {i}: expected a list of str tokens")
            try:
                documents.append(from_tokens(list(tokens), doc_id=str(i)))
            except DataError as error:
                raise ValueError(str(error)) from None
        return self._run([d.text for d in documents], [[d] for d in documents])

    def predict_documents(self, documents: Sequence[Document]) -> list[Document]:
        """The lower-level call: sentence ``Document``s in, the same with predicted annotations out."""
        return self._predict(
            self._loaded.model,
            self._loaded.featurizer,
            documents,
            batch_size=self.batch_size,
            threshold=self.threshold,
        )

    def _run(self, texts: list[str], per_text: list[list[Document]]) -> list[Extraction]:
        flat = [sentence for sentences in per_text for sentence in sentences]
        predicted = iter(self.predict_documents(flat))
        return [_extraction(text, [next(predicted) for _ in sentences]) for text, sentences in zip(texts, per_text)]


def _extraction(text: str, sentences: list[Document]) -> Extraction:
    """Gather a document's sentences, with offsets into ``text``, into one ``Extraction``."""
    parts: list[Sentence] = []
    entities: list[ExtractedEntity] = []
    relations: list[ExtractedRelation] = []
    for number, sentence in enumerate(sentences):
        offsets = sentence.offsets
        parts.append(Sentence(offsets[0][0], offsets[-1][1], sentence.tokens, offsets))
        mine = [
            ExtractedEntity(
                type=e.type,
                text=text[offsets[e.start][0] : offsets[e.last][1]],
                start_char=offsets[e.start][0],
                end_char=offsets[e.last][1],
                sentence=number,
                token_start=e.start,
                token_end=e.end,
                score=float(e.score) if e.score is not None else 1.0,
            )
            for e in sentence.entities
        ]
        relations.extend(
            ExtractedRelation(r.type, mine[r.head], mine[r.tail], float(r.score) if r.score is not None else 1.0)
            for r in sentence.relations
        )
        entities.extend(mine)
    return Extraction(text, tuple(parts), tuple(entities), tuple(relations))


load = Extractor.load  # deeprel.load(path, ...): load a trained model directory for extraction
