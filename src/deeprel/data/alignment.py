"""From character annotations to sentences of tokens: the one place annotation-tool readers go through.

Annotation tools (BRAT, doccano, Label Studio) store entities as character spans of a raw text and relations
between them, across the whole document. The model needs sentences of tokens. :func:`align` splits the text
into sentences and tokens with the same spaCy pipeline deeprel uses for raw text
(:class:`deeprel.data.text.Tokenizer`), then

* forces a token boundary at every entity boundary that falls inside a token (``boundaries="split"``, the
  default), or widens the entity to the tokens it touches (``"snap"``), which is counted;
* joins two sentences when the split would cut an entity in two (counted);
* keeps a relation when both its entities land in one sentence; a relation across sentences is counted and
  left out (deeprel relates entities within a sentence), or, with ``join_related=True``, the sentences
  between its entities are joined (counted).

Nothing is dropped silently: every annotation that cannot be represented is counted in :class:`Losses`
by kind, with the first few places, for ``deeprel validate`` and training to report. Overlapping and
nested entities are kept: the training data's overlap policy decides about them later, as for every format.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from deeprel.data.text import Tokenizer
from deeprel.data.types import Document, Entity, Relation, Sentence

Boundaries = Literal["split", "snap"]
SentenceSplit = Literal["spacy", "lines"]  # spaCy's sentencizer, or one sentence per line of the text
EXAMPLES_KEPT = 5  # places remembered per kind of loss


@dataclass(frozen=True)
class AnnotationOptions:
    """How the annotation-tool readers treat what deeprel cannot represent as it is (the ``data.*`` keys of
    the same names): BRAT's discontinuous spans and events, entity edges inside tokens, relations whose
    entities a sentence split separates."""

    discontinuous: Literal["skip", "cover", "error"] = "skip"
    events: Literal["count", "relations"] = "count"
    boundaries: Boundaries = "split"
    join_related: bool = False
    sentences: SentenceSplit = "spacy"
    annotation: int | None = None  # Label Studio: which annotation of a task (default: the first not cancelled)

    @classmethod
    def of(cls, data: Any) -> AnnotationOptions:
        """From a configuration's data section."""
        return cls(
            data.discontinuous,
            data.events,
            data.token_boundaries,
            data.join_related_sentences,
            data.sentence_split,
            data.annotation,
        )


@dataclass(frozen=True)
class CharEntity:
    """An entity as annotation tools store it: characters ``[start, end)`` of the text."""

    id: str
    type: str
    start: int
    end: int
    score: float | None = None  # set on predictions


@dataclass(frozen=True)
class CharRelation:
    """A directed relation between two entities, named by their ids."""

    type: str
    head: str
    tail: str
    id: str = ""
    score: float | None = None


@dataclass
class Losses:
    """What a conversion could not represent or had to change, counted by kind, with example places."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, kind: str, where: str, count: int = 1) -> None:
        self.counts[kind] += count
        kept = self.examples.setdefault(kind, [])
        if len(kept) < EXAMPLES_KEPT:
            kept.append(where)

    def __bool__(self) -> bool:
        return bool(self.counts)

    def to_dict(self) -> dict[str, Any]:
        return {
            kind: {"count": self.counts[kind], "examples": self.examples.get(kind, [])} for kind in sorted(self.counts)
        }

    def format(self) -> str:
        """One line per kind: ``kind: N (e.g. first place)``."""
        return "\n".join(
            f"{kind}: {self.counts[kind]}" + (f" (e.g. {self.examples[kind][0]})" if self.examples.get(kind) else "")
            for kind in sorted(self.counts)
        )


def span_problem(text: str, fragments: Sequence[tuple[int, int]], expected: str | None) -> str | None:
    """What is wrong with a span of ``text`` as an annotation tool gives it: a fragment outside the text, or
    its text (fragments joined by a space, as BRAT writes them) not the ``expected`` one; None when fine."""
    for start, end in fragments:
        if not 0 <= start < end <= len(text):
            return f"offsets [{start}, {end}) are outside the text ({len(text)} characters)"
    found = " ".join(text[start:end] for start, end in fragments)
    if expected is not None and found != expected:
        return f"the text at [{fragments[0][0]}, {fragments[-1][1]}) is {found!r}, the annotation says {expected!r}"
    return None


def align(
    text: str,
    entities: Sequence[CharEntity],
    relations: Sequence[CharRelation] = (),
    *,
    id: str = "",
    tokenizer: Tokenizer | None = None,
    options: AnnotationOptions | None = None,
    metadata: Mapping[str, Any] | None = None,
    losses: Losses | None = None,
) -> Document:
    """The text as a document of sentences holding the entities and relations (see the module doc).

    Entities must lie inside the text (readers check that, naming the file); ``losses`` collects what could
    not be represented."""
    tokenizer = tokenizer or Tokenizer()
    options = options or AnnotationOptions()
    losses = losses if losses is not None else Losses()
    tokens, sentence_of = _tokens(text, entities, tokenizer, options.boundaries, options.sentences)
    starts = [start for start, _ in tokens]
    spans: dict[str, tuple[int, int]] = {}  # entity id -> token range [first, last + 1)
    for entity in entities:
        first = bisect.bisect_right(starts, entity.start) - 1
        if first < 0 or tokens[first][1] <= entity.start:
            first += 1  # the entity starts in whitespace before a token
        last = bisect.bisect_left(starts, entity.end) - 1
        if first > last or first >= len(tokens):
            losses.add("entity_without_tokens", f"{id}: {entity.id} {text[entity.start : entity.end]!r}")
            continue
        if (tokens[first][0], tokens[last][1]) != (entity.start, entity.end):
            losses.add("entity_snapped_to_tokens", f"{id}: {entity.id} {text[entity.start : entity.end]!r}")
        spans[entity.id] = (first, last + 1)
    # Sentences as runs of token indices; a union of neighbouring sentences wherever a span crosses them.
    groups = list(range(max(sentence_of, default=-1) + 1))

    def join(first_token: int, last_token: int) -> bool:
        a, b = groups[sentence_of[first_token]], groups[sentence_of[last_token]]
        if a == b:
            return False
        for i, g in enumerate(groups):
            if a <= g <= b:
                groups[i] = a
        return True

    for entity_id, (first, end) in spans.items():
        if join(first, end - 1):
            losses.add("sentences_joined_for_an_entity", f"{id}: {entity_id}")
    by_id = {e.id: e for e in entities}
    kept_relations = []
    for relation in relations:
        if relation.head not in spans or relation.tail not in spans:
            losses.add("relation_without_entity", f"{id}: {relation.id or relation.type}")
            continue
        head, tail = spans[relation.head], spans[relation.tail]
        if groups[sentence_of[head[0]]] != groups[sentence_of[tail[0]]]:
            if not options.join_related:
                losses.add("relation_across_sentences", f"{id}: {relation.id or relation.type}")
                continue
            join(min(head[0], tail[0]), max(head[1], tail[1]) - 1)
            losses.add("sentences_joined_for_a_relation", f"{id}: {relation.id or relation.type}")
        kept_relations.append(relation)
    return _document(id, text, tokens, [groups[s] for s in sentence_of], spans, by_id, kept_relations, metadata)


def _tokens(
    text: str, entities: Sequence[CharEntity], tokenizer: Tokenizer, boundaries: Boundaries, split: SentenceSplit
) -> tuple[list[tuple[int, int]], list[int]]:
    """Token character ranges in text order and the sentence each belongs to; with ``split``, tokens are cut
    at every entity boundary inside them."""
    runs = [sentence.offsets or () for sentence in tokenizer.document(text).sentences]
    if split == "lines":  # every line its own sentence, whatever the sentencizer thinks
        newlines = [i for i, character in enumerate(text) if character == "\n"]
        flat = [offset for run in runs for offset in run]
        runs = _runs(flat, [bisect.bisect_left(newlines, start) for start, _ in flat])
    cuts = sorted({e.start for e in entities} | {e.end for e in entities}) if boundaries == "split" else []
    tokens: list[tuple[int, int]] = []
    sentence_of: list[int] = []
    for number, run in enumerate(runs):
        for start, end in run:
            inside = cuts[bisect.bisect_right(cuts, start) : bisect.bisect_left(cuts, end)]
            for piece_start, piece_end in zip([start, *inside], [*inside, end]):
                # A cut may leave whitespace at a piece's edge (an entity that starts or ends with a space).
                while piece_start < piece_end and text[piece_start].isspace():
                    piece_start += 1
                while piece_end > piece_start and text[piece_end - 1].isspace():
                    piece_end -= 1
                if piece_start < piece_end:
                    tokens.append((piece_start, piece_end))
                    sentence_of.append(number)
    return tokens, sentence_of


def _runs(offsets: list[tuple[int, int]], keys: list[int]) -> list[list[tuple[int, int]]]:
    """``offsets`` cut into runs of equal consecutive ``keys``."""
    runs: list[list[tuple[int, int]]] = []
    for index, offset in enumerate(offsets):
        if index == 0 or keys[index] != keys[index - 1]:
            runs.append([])
        runs[-1].append(offset)
    return runs


def _document(
    id: str,
    text: str,
    tokens: list[tuple[int, int]],
    group_of_token: list[int],
    spans: dict[str, tuple[int, int]],
    by_id: Mapping[str, CharEntity],
    relations: Iterable[CharRelation],
    metadata: Mapping[str, Any] | None,
) -> Document:
    """Sentences from the token groups, each with its entities (in the order given) and relations."""
    firsts: dict[int, int] = {}  # groups are runs of consecutive tokens, in text order
    ends: dict[int, int] = {}
    for index, group in enumerate(group_of_token):
        firsts.setdefault(group, index)
        ends[group] = index + 1
    order = list(firsts)
    single = len(order) == 1
    sentences = []
    relations = list(relations)
    for number, group in enumerate(order):
        first, end = firsts[group], ends[group]
        mine = [entity_id for entity_id, (start, _) in spans.items() if first <= start < end]
        index = {entity_id: i for i, entity_id in enumerate(mine)}
        sentences.append(
            Sentence(
                tokens=tuple(text[a:b] for a, b in tokens[first:end]),
                entities=tuple(Entity(by_id[e].type, spans[e][0] - first, spans[e][1] - first) for e in mine),
                relations=tuple(Relation(r.type, index[r.head], index[r.tail]) for r in relations if r.head in index),
                id=id if single else f"{id}#{number}",
                offsets=tuple(tokens[first:end]),
            )
        )
    return Document(id, text, tuple(sentences), MappingProxyType(dict(metadata or {})))


def char_annotations(document: Document) -> tuple[list[CharEntity], list[CharRelation]]:
    """A document's entities and relations as character annotations (the writers' input), ids ``T1``, ``T2``
    ... in order of the sentences; every sentence needs its offsets."""
    entities: list[CharEntity] = []
    relations: list[CharRelation] = []
    for number, sentence in enumerate(document.sentences):
        if sentence.offsets is None:
            raise ValueError(f"document {document.id}: sentence {number} has no character offsets")
        ids = []
        for entity in sentence.entities:
            ids.append(f"T{len(entities) + 1}")
            start, end = sentence.offsets[entity.start][0], sentence.offsets[entity.last][1]
            entities.append(CharEntity(ids[-1], entity.type, start, end, entity.score))
        base = len(relations)
        relations.extend(
            CharRelation(r.type, ids[r.head], ids[r.tail], f"R{base + 1 + k}", r.score)
            for k, r in enumerate(sentence.relations)
        )
    return entities, relations
