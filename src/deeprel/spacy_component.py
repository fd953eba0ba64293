"""deeprel as a spaCy pipeline component, registered as ``"deeprel"`` (entry point ``spacy_factories``).

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.add_pipe("deeprel", config={"model": "runs/conll04/model"})  # a model directory or package name
    doc = nlp("Jim Smith works for IBM in Armonk.")
    doc.spans["deeprel"], doc.ents, doc._.relations, doc._.rel

The component reads the Doc's own tokens and sentences (whitespace tokens are left out, as deeprel's own
tokenizer does) and runs the same predictor as ``deeprel.load``: one entity or relation here is one in
:class:`deeprel.api.Extractor`'s output, at the same character offsets and with the same scores.
What it writes, all plain ints, strings and floats (so ``DocBin(store_user_data=True)`` keeps them):

- ``doc.spans[span_group]``: every entity, label = type, ``span._.score`` = the tagger's confidence;
- ``doc.ents``: the entities that do not overlap entities already there (with ``overwrite_ents``, the
  existing entities that overlap a deeprel one are dropped instead, as spaCy's entity ruler does);
- ``doc._.rel``: ``{(head.start, tail.start): {label: score}}``, the layout of spaCy's relation tutorial
  (only the relations predicted, i.e. scored at or above the threshold);
- ``doc._.relations``: the same relations as :class:`SpanRelation` records with head and tail Spans.

The model is loaded when the first Doc arrives (or at ``nlp.initialize()``), not when the component is
made: ``spacy.load`` of a saved pipeline makes the component from its config first and then reads the
model saved inside the pipeline folder, so the path it was first given is never needed again.
"""

import json
import re
import shutil
import tempfile
import weakref
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import srsly
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from spacy.language import Language
from spacy.pipeline import Pipe
from spacy.tokens import Doc, Span, Token
from spacy.util import minibatch

from deeprel.api import Extractor
from deeprel.data.extraction import Extraction
from deeprel.data.types import Document, Sentence
from deeprel.model.files import ModelLoadError, copy_model_directory, model_directory
from deeprel.model.inputs import Labels
from deeprel.runtime import PRECISIONS

FACTORY = "deeprel"
MODEL_FOLDER = "model"  # the model directory inside the component's folder of a saved pipeline
RELATIONS_KEY = ("deeprel", "relations")  # where the relation records are kept, in doc.user_data
DOCS_PER_BATCH = 128  # nlp.pipe's docs per round, when no batch_size is given (spaCy's own default is 1000)


class ComponentSettings(BaseModel):
    """The component's config (``nlp.add_pipe("deeprel", config={...})`` or ``[components.deeprel]``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(min_length=1, description="a model directory, or the name of an installed model package")
    span_group: str = Field("deeprel", min_length=1, description="the doc.spans key the entities go to")
    overwrite_ents: bool = Field(False, description="drop existing doc.ents that overlap a deeprel entity")
    threshold: float | None = Field(None, ge=0.0, le=1.0, description="relation threshold; None: the model's")
    batch_size: int = Field(32, ge=1, description="sentences per forward pass")
    device: str = Field("auto", description='"auto" (CUDA when present), "cpu", "cuda" or "cuda:N"')
    precision: str = Field("auto", description=f"the encoder's: {', '.join(PRECISIONS)}")
    entity_scores: bool = Field(True, description="score each entity (span._.score); False skips that pass")

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
            raise ValueError(f'must be "auto", "cpu", "cuda" or "cuda:N", got {device!r}')
        return device

    @field_validator("precision")
    @classmethod
    def _known_precision(cls, precision: str) -> str:
        if precision not in PRECISIONS:
            raise ValueError(f"must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        return precision


DEFAULT_CONFIG = {name: field.default for name, field in ComponentSettings.model_fields.items() if name != "model"}


@dataclass(frozen=True)
class SpanRelation:
    """A relation between two entity Spans of one sentence, from ``head`` to ``tail``."""

    head: Span
    tail: Span
    label: str
    score: float | None


def _relations(doc: Doc) -> list[SpanRelation]:
    """``doc._.relations``: built from the plain records the component stored in ``doc.user_data``."""
    return [
        SpanRelation(
            head=Span(doc, head[0], head[1], label=head[2]),
            tail=Span(doc, tail[0], tail[1], label=tail[2]),
            label=label,
            score=score,
        )
        for head, tail, label, score in doc.user_data.get(RELATIONS_KEY, ())
    ]


def _register_extensions() -> None:
    if not Doc.has_extension("relations"):
        Doc.set_extension("relations", getter=_relations)
    if not Doc.has_extension("rel"):
        Doc.set_extension("rel", default=None)  # set to a fresh dict on each Doc: never a shared default
    if not Span.has_extension("score"):
        Span.set_extension("score", default=None)


class DeeprelComponent(Pipe):
    """Joint entity and relation extraction on the Doc's tokens; see the module doc for what it writes."""

    def __init__(self, name: str, settings: ComponentSettings) -> None:
        _register_extensions()
        self.name = name
        self.settings = settings
        self._extractor: Extractor | None = None
        self._source: Path | None = None  # the model directory the extractor was loaded from

    @property
    def extractor(self) -> Extractor:
        """The loaded model (loaded on first use from ``settings.model``, or from the saved pipeline)."""
        if self._extractor is None:
            self._load(self.settings.model)
        assert self._extractor is not None
        return self._extractor

    def _load(self, reference: str | Path) -> None:
        try:
            source = model_directory(reference)
            self._extractor = Extractor.load(
                source,
                device=self.settings.device,
                batch_size=self.settings.batch_size,
                threshold=self.settings.threshold,
                precision=self.settings.precision,  # type: ignore[arg-type]  # checked by ComponentSettings
                entity_scores=self.settings.entity_scores,
            )
        except ModelLoadError as error:
            raise ModelLoadError(f"spaCy component {self.name!r} ({FACTORY}): {error}") from None
        self._source = source

    @property
    def labels(self) -> tuple[str, ...]:
        """The entity types. Read from labels.json when the model is not loaded yet: spaCy asks for them while
        it reads a saved pipeline, before the model inside it is read."""
        if self._extractor is not None:
            return self._extractor.entity_types
        try:
            labels = json.loads((model_directory(self.settings.model) / "labels.json").read_text(encoding="utf-8"))
            return tuple(Labels.from_dict(labels).entity_types)
        except (ModelLoadError, OSError, ValueError, KeyError, TypeError):
            return ()

    def initialize(self, get_examples: Any = None, *, nlp: Language | None = None) -> None:
        """Load the model now: ``nlp.initialize()`` reports a bad model reference before any Doc is seen."""
        self.extractor  # noqa: B018  # loading is the point

    def __call__(self, doc: Doc) -> Doc:
        return next(self.pipe([doc], batch_size=1))

    def pipe(self, stream: Iterable[Doc], *, batch_size: int = DOCS_PER_BATCH) -> Iterator[Doc]:
        """The Docs annotated, in order; ``batch_size`` Docs at a time share the model's batches."""
        error_handler = self.get_error_handler()
        for docs in minibatch(stream, size=batch_size):
            try:
                yield from self._annotate(docs)
            except ModelLoadError:
                raise
            except Exception as error:
                error_handler(self.name, self, docs, error)

    def _annotate(self, docs: Sequence[Doc]) -> list[Doc]:
        words = [_sentence_words(doc) for doc in docs]
        documents = [
            Document(
                str(i),
                doc.text,
                tuple(
                    Sentence(
                        tokens=tuple(t.text for t in sentence),
                        id=f"{i}#{n}",
                        offsets=tuple((t.idx, t.idx + len(t.text)) for t in sentence),
                    )
                    for n, sentence in enumerate(sentences)
                ),
            )
            for i, (doc, sentences) in enumerate(zip(docs, words))
        ]
        for doc, sentences, extraction in zip(docs, words, self.extractor.extract_documents(documents), strict=True):
            self._set_annotations(doc, sentences, extraction)
        return list(docs)

    def _set_annotations(self, doc: Doc, sentences: list[list[Token]], extraction: Extraction) -> None:
        spans = {}
        for entity in extraction.entities:
            tokens = sentences[entity.sentence]
            span = Span(doc, tokens[entity.token_start].i, tokens[entity.token_end - 1].i + 1, label=entity.type)
            span._.score = entity.score
            spans[entity] = span
        doc.spans[self.settings.span_group] = list(spans.values())
        doc.ents = _merged_ents(doc.ents, list(spans.values()), self.settings.overwrite_ents)
        rel: dict[tuple[int, int], dict[str, float | None]] = {}
        records = []
        for relation in extraction.relations:
            head, tail = spans[relation.head], spans[relation.tail]
            rel.setdefault((head.start, tail.start), {})[relation.type] = relation.score
            records.append(
                (
                    (head.start, head.end, head.label_),
                    (tail.start, tail.end, tail.label_),
                    relation.type,
                    relation.score,
                )
            )
        doc._.rel = rel
        doc.user_data[RELATIONS_KEY] = records

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> None:
        """Save the model (its JSON and safetensors files, and a local encoder) into the component's folder."""
        target = Path(path) / MODEL_FOLDER
        self.extractor  # noqa: B018  # the directory it came from is known once loaded
        assert self._source is not None
        if target.exists() and target.resolve() == self._source.resolve():
            return  # saved where it was read from
        copy_model_directory(self._source, target)  # makes the component's folder too

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> "DeeprelComponent":
        """Load the model saved by :meth:`to_disk`."""
        self._load(Path(path) / MODEL_FOLDER)
        return self

    def to_bytes(self, *, exclude: Iterable[str] = ()) -> bytes:
        """The files :meth:`to_disk` writes, in one msgpack mapping of relative path to content."""
        with tempfile.TemporaryDirectory() as folder:
            self.to_disk(folder)
            root = Path(folder) / MODEL_FOLDER
            files = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
        return srsly.msgpack_dumps({"files": files})

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = ()) -> "DeeprelComponent":
        """Load what :meth:`to_bytes` wrote, through a temporary model directory kept while the component lives."""
        files = srsly.msgpack_loads(bytes_data).get("files")
        if not isinstance(files, dict):
            raise ModelLoadError(f"spaCy component {self.name!r} ({FACTORY}): the bytes hold no model files")
        folder = Path(tempfile.mkdtemp(prefix="deeprel-spacy-"))
        weakref.finalize(self, shutil.rmtree, folder, True)
        for name, data in files.items():
            relative = Path(name)
            if relative.is_absolute() or ".." in relative.parts:
                raise ModelLoadError(f"spaCy component {self.name!r} ({FACTORY}): unsafe file name {name!r}")
            path = folder / MODEL_FOLDER / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        self._load(folder / MODEL_FOLDER)
        return self


def _sentence_words(doc: Doc) -> list[list[Token]]:
    """Each sentence's tokens that are not whitespace (sentences of whitespace only are left out)."""
    if len(doc) == 0:
        return []
    if not doc.has_annotation("SENT_START"):
        preview = doc.text[:40] + ("..." if len(doc.text) > 40 else "")
        raise ValueError(
            f"{FACTORY}: the Doc {preview!r} has no sentence boundaries, and relations are found within a"
            " sentence: add a component that sets them before this one, e.g."
            f" nlp.add_pipe('sentencizer', before='{FACTORY}') (or a parser or senter)"
        )
    return [words for sentence in doc.sents if (words := [t for t in sentence if not t.is_space])]


def _merged_ents(existing: Sequence[Span], found: Sequence[Span], overwrite: bool) -> list[Span]:
    """doc.ents with the entities found: overlaps are settled for the existing ones, or with ``overwrite``
    for the found ones (deeprel's own entities never overlap each other)."""

    def overlaps(span: Span, others: Sequence[Span]) -> bool:
        return any(span.start < other.end and other.start < span.end for other in others)

    if overwrite:
        kept = [span for span in existing if not overlaps(span, found)] + list(found)
    else:
        kept = list(existing) + [span for span in found if not overlaps(span, existing)]
    return sorted(kept, key=lambda span: span.start)


@Language.factory(FACTORY, default_config=DEFAULT_CONFIG)
def make_deeprel(
    nlp: Language,
    name: str,
    model: str,
    span_group: str,
    overwrite_ents: bool,
    threshold: float | None,
    batch_size: int,
    device: str,
    precision: str,
    entity_scores: bool,
) -> DeeprelComponent:
    """The ``"deeprel"`` factory: see :class:`ComponentSettings` for the config."""
    try:
        settings = ComponentSettings(
            model=model,
            span_group=span_group,
            overwrite_ents=overwrite_ents,
            threshold=threshold,
            batch_size=batch_size,
            device=device,
            precision=precision,
            entity_scores=entity_scores,
        )
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise ValueError(f"spaCy component {name!r} ({FACTORY}): invalid config: {problems}") from None
    return DeeprelComponent(name, settings)
