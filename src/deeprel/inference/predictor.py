"""A trained model ready to predict and be scored: the one predict-and-score path of the library.

The trainer (dev scores each epoch, test at the end), ``deeprel evaluate``, seeds, cross-validation and
the Python API all call :class:`Predictor`; a model directory becomes one with :meth:`Predictor.load`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from deeprel.config import Config
from deeprel.data.types import Document, Sentence
from deeprel.evaluation.metrics import EvaluationResult, evaluate
from deeprel.model.files import load_model
from deeprel.model.inputs import Featurizer, Labels
from deeprel.model.joint import JointModel
from deeprel.runtime import Precision, pick_device, resolve_precision

DEFAULT_BATCH_SIZE = 32


class Predictor:
    """A joint model with its featurizer and configuration (and ``meta.json``, when loaded from disk)."""

    def __init__(
        self, model: JointModel, featurizer: Featurizer, config: Config, meta: dict[str, Any] | None = None
    ) -> None:
        self.model = model
        self.featurizer = featurizer
        self.config = config
        self.meta = dict(meta or {})

    @classmethod
    def load(
        cls, directory: str | Path, device: str | torch.device = "auto", precision: Precision = "fp32"
    ) -> Predictor:
        """A model directory (JSON and safetensors only: nothing is executed), on ``device``, its encoder run at
        ``precision`` (:func:`deeprel.runtime.resolve_precision`). fp32 by default: the trainer, seeds and
        cross-validation score models through here, and their results are fp32's."""
        device = pick_device(device)
        chosen = resolve_precision(precision, device)
        loaded = load_model(directory, device=device)
        predictor = cls(loaded.model, loaded.featurizer, loaded.config, loaded.meta)
        if loaded.model.embedder.contextual is not None:
            loaded.model.embedder.contextual.set_precision(chosen)
        return predictor

    @property
    def precision(self) -> str:
        """The encoder's precision: fp32, bf16 or int8 (fp32 for a model without a contextual encoder)."""
        encoder = self.model.embedder.contextual
        return encoder.precision if encoder is not None else "fp32"

    @property
    def labels(self) -> Labels:
        return self.model.labels

    @property
    def threshold(self) -> float:
        """The relation threshold the model was saved with (a model trained with ``"dev"`` holds the one
        chosen on dev)."""
        if self.model.settings.threshold == "dev":
            raise ValueError("this model's relation threshold is still to be chosen on dev (model.threshold = 'dev')")
        return float(self.model.settings.threshold)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def predict(
        self,
        sentences: Sequence[Sentence],
        *,
        features: Sequence[torch.Tensor] | None = None,
        threshold: float | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: bool = False,
        entity_scores: bool = True,
    ) -> list[Sentence]:
        """The sentences with predicted entities and relations in place of any gold ones.

        Sentences go through the model in batches of similar length (sorted by length, so padding stays
        small). ``features`` are precomputed frozen encoder features, one per sentence, when the caller has
        them. Empty sentences get no predictions. Without ``entity_scores`` entities carry no score and the
        CRF's forward-backward pass is skipped.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        model = self.model
        model.eval()
        device = self.device
        results = [s.with_annotations([], []) for s in sentences]
        order = sorted((i for i, s in enumerate(sentences) if len(s)), key=lambda i: len(sentences[i]))
        chunks = [order[k : k + batch_size] for k in range(0, len(order), batch_size)]
        for chunk in tqdm(chunks, desc="predict", unit="batch", disable=not progress):
            batch = self.featurizer.batch(
                [sentences[i] for i in chunk], features=[features[i] for i in chunk] if features is not None else None
            ).to(device)
            for i, (entities, relations) in zip(chunk, model.predict(batch, threshold, entity_scores), strict=True):
                results[i] = sentences[i].with_annotations(entities, relations)
        return results

    def predict_documents(
        self,
        documents: Sequence[Document],
        *,
        threshold: float | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: bool = False,
        entity_scores: bool = True,
    ) -> list[Document]:
        """The documents with predicted sentences; all their sentences share batches."""
        flat = [sentence for document in documents for sentence in document.sentences]
        predicted = iter(
            self.predict(
                flat, threshold=threshold, batch_size=batch_size, progress=progress, entity_scores=entity_scores
            )
        )
        return [d.with_sentences([next(predicted) for _ in d.sentences]) for d in documents]

    def evaluate(
        self,
        gold: Sequence[Sentence],
        *,
        features: Sequence[torch.Tensor] | None = None,
        threshold: float | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: bool = False,
    ) -> EvaluationResult:
        """Predict on annotated sentences and score the predictions against them, over the model's labels."""
        predicted = self.predict(gold, features=features, threshold=threshold, batch_size=batch_size, progress=progress)
        return self.score(gold, predicted)

    def evaluate_thresholds(
        self,
        gold: Sequence[Sentence],
        thresholds: Sequence[float],
        *,
        features: Sequence[torch.Tensor] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> dict[float, EvaluationResult]:
        """Scores at each relation threshold, from one prediction at the lowest: entities do not depend on the
        threshold, and a relation is kept at ``t`` when its score (4 decimals, as predicted) is at least ``t``."""
        predicted = self.predict(gold, features=features, threshold=min(thresholds), batch_size=batch_size)
        return {
            t: self.score(
                gold, [s.with_annotations(s.entities, [r for r in s.relations if r.score >= t]) for s in predicted]
            )
            for t in thresholds
        }

    def score(self, gold: Sequence[Sentence], predicted: Sequence[Sentence]) -> EvaluationResult:
        """Strict and boundaries scores of predictions (this model's) against gold, over the model's labels."""
        return evaluate(gold, predicted, self.labels.entity_types, self.labels.relation_types)
