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
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from deeprel.data.extraction import ExtractedEntity, ExtractedRelation, ExtractedSentence, Extraction
from deeprel.data.text import Tokenizer, from_tokens
from deeprel.data.types import DataError, Document
from deeprel.runtime import DEFAULT_PRECISION, Precision

if TYPE_CHECKING:
    from deeprel.inference.predictor import Predictor

__all__ = ["ExtractedEntity", "ExtractedRelation", "ExtractedSentence", "Extraction", "Extractor", "load"]


class Extractor:
    """A loaded model, ready to extract. Build it with :func:`load` (or ``Extractor.load``)."""

    def __init__(
        self,
        predictor: Predictor,
        batch_size: int = 32,
        threshold: float | None = None,
        entity_scores: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.predictor = predictor
        self.batch_size = batch_size
        self.threshold = threshold
        self.entity_scores = entity_scores
        self._tokenizer = Tokenizer()

    @classmethod
    def load(
        cls,
        path: str | Path,
        device: str = "auto",
        batch_size: int = 32,
        threshold: float | None = None,
        num_threads: int | None = None,
        precision: Precision = DEFAULT_PRECISION,
        entity_scores: bool = True,
    ) -> Extractor:
        """Load a model directory (JSON + safetensors only). ``device``: "auto" (CUDA when present), "cpu",
        "cuda" or "cuda:N". ``threshold`` overrides the model's relation threshold. ``precision``: the
        encoder's, "fp32", "bf16", "int8" (CPU only) or "auto" (bf16 where the CPU does it natively, else
        fp32). ``entity_scores=False`` leaves entities without a score and skips the pass that computes it."""
        from deeprel.inference.predictor import Predictor
        from deeprel.runtime import Runtime

        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        device = Runtime(device=device, num_threads=num_threads).apply()
        predictor = Predictor.load(path, device=device, precision=precision)
        return cls(predictor, batch_size=batch_size, threshold=threshold, entity_scores=entity_scores)

    @property
    def entity_types(self) -> tuple[str, ...]:
        return tuple(self.predictor.labels.entity_types)

    @property
    def relation_types(self) -> tuple[str, ...]:
        return tuple(self.predictor.labels.relation_types)

    @property
    def relation_threshold(self) -> float:
        """The threshold relations are predicted at: the one given to ``load``, else the model's own."""
        return self.threshold if self.threshold is not None else self.predictor.threshold

    @property
    def device(self) -> str:
        return str(self.predictor.device)

    @property
    def precision(self) -> str:
        """The precision the encoder runs at: fp32, bf16 or int8."""
        return self.predictor.precision

    @property
    def meta(self) -> dict[str, Any]:
        """What ``meta.json`` says: deeprel version, parameter counts, how the model was trained."""
        return dict(self.predictor.meta)

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
        if isinstance(texts, str):  # iterating it would extract from each character
            raise TypeError("extract takes a list of texts; for one text, call the model: model(text)")
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"text {i}: expected a str, got {type(text).__name__}")
        return self.extract_documents([self._tokenizer.document(text, id=str(i)) for i, text in enumerate(texts)])

    def extract_tokens(self, sentences: Iterable[Sequence[str]]) -> list[Extraction]:
        """Pre-tokenised sentences, one ``Extraction`` each; its text is the tokens joined by single spaces."""
        documents = []
        for i, tokens in enumerate(sentences):
            if isinstance(tokens, str) or not all(isinstance(t, str) for t in tokens):
                raise TypeError(f"sentence {i}: expected a list of str tokens")
            try:
                documents.append(from_tokens(list(tokens), id=str(i)))
            except DataError as error:
                raise ValueError(str(error)) from None
        return self.extract_documents(documents)

    def extract_documents(self, documents: Sequence[Document]) -> list[Extraction]:
        """Documents already split into sentences (any reader's, or :class:`~deeprel.data.text.Tokenizer`'s),
        one ``Extraction`` each; every sentence needs character offsets into its document's text."""
        predicted = self.predictor.predict_documents(
            documents, threshold=self.threshold, batch_size=self.batch_size, entity_scores=self.entity_scores
        )
        return [Extraction.from_document(document) for document in predicted]


load = Extractor.load  # deeprel.load(path, ...): load a trained model directory for extraction
