"""Precision, recall and F1 for entities and relations, following SpERT's evaluator.

Conventions (chosen so the numbers are comparable with the literature):

* **strict** mode: a predicted entity is correct iff its ``(start, end, type)`` matches a gold
  entity of the same sentence; a predicted relation is correct iff its type, its direction and
  both arguments' ``(start, end, entity type)`` match a gold relation.
* **boundaries** mode: entity types are ignored. Entities match on ``(start, end)``; relations
  match on the relation type, the direction and the arguments' ``(start, end)``.
* Gold and predicted items are *sets* per sentence, so a duplicated prediction counts once.
  Sentences are aligned by position and counts are pooled over all sentences.
* All precision, recall and F1 values are **percentages** (0-100); a division by zero gives 0.
* **micro**: P/R/F1 from counts pooled over the types considered.
* **macro**: the unweighted mean over types of the per-type P, R and F1, as SpERT does (through
  sklearn); macro F1 is therefore the mean of the per-type F1s, *not* the harmonic mean of
  macro P and macro R. A type with no gold and no predicted item is left out of the mean (it
  still appears in ``per_type`` with zeros). SpERT, which passes every type of its schema to
  sklearn, would average a 0 in for it instead; with the default type set (the types that occur)
  the two agree, since every type considered then occurs somewhere.
* Types considered: the union of gold and predicted types, or exactly ``entity_types`` /
  ``relation_types`` when given; an item of another type is then an error, not silently dropped.
* NER in boundaries mode has no types: ``per_type`` is empty and ``macro`` equals ``micro``.
  RE in boundaries mode is still reported per relation type.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

from deeprel.data.types import Sentence

Mode = Literal["strict", "boundaries"]
Task = Literal["ner", "re"]
Average = Literal["micro", "macro"]
Value = Literal["p", "r", "f1"]
MODES: tuple[Mode, ...] = ("strict", "boundaries")
TASKS: tuple[Task, ...] = ("ner", "re")
AVERAGES: tuple[Average, ...] = ("micro", "macro")
VALUES: tuple[Value, ...] = ("p", "r", "f1")


def metric_name(task: Task, average: Average, value: Value, mode: Mode = "strict") -> str:
    """The one spelling of a score's name: ``re_micro_f1`` (strict), ``ner_boundaries_macro_p``."""
    return f"{task if mode == 'strict' else f'{task}_boundaries'}_{average}_{value}"


# Every score a run logs and early stopping or a tuner can use, in a fixed order.
METRIC_NAMES: tuple[str, ...] = tuple(
    metric_name(task, average, value, mode)
    for task in TASKS
    for mode in MODES
    for average in AVERAGES
    for value in VALUES
)

# What a gold or predicted item is matched on; element 0 is the type it is counted under.
_Key = tuple[str, Hashable, Hashable]
# The single pseudo-type under which entities are counted in boundaries mode.
_SPAN = "<span>"


@dataclass(frozen=True)
class PRF:
    """Precision, recall and F1 in percent, with the counts behind them.

    ``support`` is the number of gold items, ``predicted`` the number of predicted items and
    ``correct`` the number of predicted items that match a gold item.
    """

    precision: float
    recall: float
    f1: float
    support: int
    predicted: int
    correct: int

    @classmethod
    def from_counts(cls, correct: int, predicted: int, support: int) -> PRF:
        precision = correct / predicted if predicted else 0.0
        recall = correct / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return cls(100 * precision, 100 * recall, 100 * f1, support, predicted, correct)

    def value(self, value: Value) -> float:
        """``p``, ``r`` or ``f1``, as metric names spell them."""
        return {"p": self.precision, "r": self.recall, "f1": self.f1}[value]

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class Scores:
    """Scores of one task in one mode; ``per_type`` keeps the order of the types considered."""

    micro: PRF
    macro: PRF
    per_type: dict[str, PRF] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "micro": self.micro.to_dict(),
            "macro": self.macro.to_dict(),
            "per_type": {name: prf.to_dict() for name, prf in self.per_type.items()},
        }


@dataclass(frozen=True)
class ModeScores:
    """NER and RE scores under one matching mode."""

    ner: Scores
    re: Scores

    def task(self, task: Task) -> Scores:
        return self.ner if task == "ner" else self.re


@dataclass(frozen=True)
class EvaluationResult:
    """Scores for every mode and task, e.g. ``result.strict.re.macro.f1``."""

    strict: ModeScores
    boundaries: ModeScores

    def scores(self, mode: Mode, task: Task) -> Scores:
        return (self.strict if mode == "strict" else self.boundaries).task(task)

    def to_dict(self) -> dict[str, dict[str, dict[str, object]]]:
        """Nested ``{mode: {task: {"micro", "macro", "per_type"}}}``, JSON-able, in a fixed order."""
        return {mode: {task: self.scores(mode, task).to_dict() for task in TASKS} for mode in MODES}

    def flat(self) -> dict[str, float]:
        """Flat ``{task}[_boundaries]_{micro|macro}_{p|r|f1}`` keys, for logs and early stopping.

        Strict keys carry no mode (``"re_micro_f1"``); boundaries keys do
        (``"ner_boundaries_micro_f1"``).
        """
        flat: dict[str, float] = {}
        for mode in MODES:
            for task in TASKS:
                scores = self.scores(mode, task)
                for average, prf in (("micro", scores.micro), ("macro", scores.macro)):
                    for value in VALUES:
                        flat[metric_name(task, average, value, mode)] = prf.value(value)
        return flat

    def format_table(self) -> str:
        """Fixed-width tables (P, R, F1 in percent, support) for each task and mode."""
        return "\n\n".join(
            _format_scores(_TITLES[mode, task], self.scores(mode, task)) for mode in MODES for task in TASKS
        )


_TITLES: dict[tuple[Mode, Task], str] = {
    ("strict", "ner"): "NER, strict: entity boundaries and type must match",
    ("strict", "re"): ("RE, strict: relation type, direction, argument boundaries and entity types must match"),
    ("boundaries", "ner"): ("NER, boundaries: entity boundaries must match (types ignored, so macro = micro)"),
    ("boundaries", "re"): ("RE, boundaries: relation type, direction and argument boundaries must match"),
}
_MICRO_LABEL = "micro (pooled counts)"
_MACRO_LABEL = "macro (mean over types)"


def _format_scores(title: str, scores: Scores) -> str:
    averages = [(_MICRO_LABEL, scores.micro), (_MACRO_LABEL, scores.macro)]
    width = max(len(name) for name in [*scores.per_type, _MICRO_LABEL, _MACRO_LABEL])
    header = f"{'type':<{width}}  {'P':>6}  {'R':>6}  {'F1':>6}  {'support':>7}"
    rule = "-" * len(header)

    def row(name: str, prf: PRF) -> str:
        return f"{name:<{width}}  {prf.precision:6.2f}  {prf.recall:6.2f}  {prf.f1:6.2f}  {prf.support:7d}"

    lines = [title, header, rule]
    if scores.per_type:
        lines += [row(name, prf) for name, prf in scores.per_type.items()] + [rule]
    lines += [row(name, prf) for name, prf in averages]
    return "\n".join(lines)


def evaluate(
    gold: Sequence[Sentence],
    predicted: Sequence[Sentence],
    entity_types: Sequence[str] | None = None,
    relation_types: Sequence[str] | None = None,
) -> EvaluationResult:
    """Score ``predicted`` against ``gold``, sentences aligned by position (see the module doc).

    Raises ``ValueError`` when the sequences differ in length, when the sentences at some index
    have different tokens, when a relation points at a missing entity, or when an item's type is
    not in the given ``entity_types`` / ``relation_types``.
    """
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sentences but {len(predicted)} predicted sentences")
    for index, (gold_doc, pred_doc) in enumerate(zip(gold, predicted)):
        if gold_doc.tokens != pred_doc.tokens:
            raise ValueError(
                f"gold and predicted sentences at index {index} have different tokens "
                f"(gold id {gold_doc.id!r}, predicted id {pred_doc.id!r})"
            )
    results: dict[Mode, ModeScores] = {}
    for mode in MODES:
        ner = _count(gold, predicted, "ner", mode)
        re = _count(gold, predicted, "re", mode)
        if mode == "strict":
            ner_scores = _typed_scores(ner, entity_types, "entity")
        else:
            ner_scores = _untyped_scores(ner)
        results[mode] = ModeScores(ner=ner_scores, re=_typed_scores(re, relation_types, "relation"))
    return EvaluationResult(strict=results["strict"], boundaries=results["boundaries"])


@dataclass
class _Counts:
    """Per-type counts pooled over sentences."""

    gold: Counter[str] = field(default_factory=Counter)
    predicted: Counter[str] = field(default_factory=Counter)
    correct: Counter[str] = field(default_factory=Counter)


def _count(gold: Sequence[Sentence], predicted: Sequence[Sentence], task: Task, mode: Mode) -> _Counts:
    counts = _Counts()
    for index, (gold_doc, pred_doc) in enumerate(zip(gold, predicted)):
        gold_keys = _keys(gold_doc, task, mode, f"gold sentence at index {index}")
        pred_keys = _keys(pred_doc, task, mode, f"predicted sentence at index {index}")
        counts.gold.update(key[0] for key in gold_keys)
        counts.predicted.update(key[0] for key in pred_keys)
        counts.correct.update(key[0] for key in pred_keys & gold_keys)
    return counts


def _keys(doc: Sentence, task: Task, mode: Mode, where: str) -> set[_Key]:
    strict = mode == "strict"
    if task == "ner":
        return {(e.type if strict else _SPAN, e.start, e.end) for e in doc.entities}
    keys: set[_Key] = set()
    for relation in doc.relations:
        for argument in (relation.head, relation.tail):
            if not 0 <= argument < len(doc.entities):
                raise ValueError(
                    f"{where}: relation {relation.type!r} points at entity {argument}, "
                    f"but the sentence has {len(doc.entities)} entities"
                )
        head, tail = doc.entities[relation.head], doc.entities[relation.tail]
        if strict:
            head_key, tail_key = (head.start, head.end, head.type), (tail.start, tail.end, tail.type)
            keys.add((relation.type, head_key, tail_key))
        else:
            keys.add((relation.type, (head.start, head.end), (tail.start, tail.end)))
    return keys


def _typed_scores(counts: _Counts, types: Sequence[str] | None, kind: str) -> Scores:
    seen = counts.gold.keys() | counts.predicted.keys()
    if types is None:
        considered = sorted(seen)
    else:
        considered = list(dict.fromkeys(types))
        unknown = seen - set(considered)
        if unknown:
            raise ValueError(f"{kind} types {sorted(unknown)} are not in the given {kind}_types {considered}")
    per_type = {
        name: PRF.from_counts(counts.correct[name], counts.predicted[name], counts.gold[name]) for name in considered
    }
    micro = PRF.from_counts(
        sum(prf.correct for prf in per_type.values()),
        sum(prf.predicted for prf in per_type.values()),
        sum(prf.support for prf in per_type.values()),
    )
    return Scores(micro=micro, macro=_macro(list(per_type.values())), per_type=per_type)


def _macro(per_type: list[PRF]) -> PRF:
    # Types with neither gold nor predicted items carry no evidence either way: leave them out.
    active = [prf for prf in per_type if prf.support or prf.predicted]
    if not active:
        return PRF.from_counts(0, 0, 0)
    n = len(active)
    return PRF(
        precision=sum(prf.precision for prf in active) / n,
        recall=sum(prf.recall for prf in active) / n,
        f1=sum(prf.f1 for prf in active) / n,
        support=sum(prf.support for prf in active),
        predicted=sum(prf.predicted for prf in active),
        correct=sum(prf.correct for prf in active),
    )


def _untyped_scores(counts: _Counts) -> Scores:
    micro = PRF.from_counts(counts.correct.total(), counts.predicted.total(), counts.gold.total())
    return Scores(micro=micro, macro=micro)
