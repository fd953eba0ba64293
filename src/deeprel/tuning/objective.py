"""The tuning objective: one dev score, or a weighted sum of dev scores, to maximise.

Written as ``re_micro_f1`` or ``0.5*ner_micro_f1 + 0.5*re_micro_f1``; every name is one of
`deeprel.evaluation.metrics.METRIC_NAMES`. A grammar this small needs no parser library.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from deeprel.evaluation.metrics import METRIC_NAMES

_TERM = re.compile(r"^(?:(?P<weight>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)\s*\*\s*)?(?P<name>\w+)$")


@dataclass(frozen=True)
class Objective:
    """A positive-weighted sum of dev metrics; ``terms`` are (weight, metric name) pairs."""

    terms: tuple[tuple[float, str], ...]

    def __str__(self) -> str:
        return "+".join(name if weight == 1 else f"{weight:g}*{name}" for weight, name in self.terms)

    @property
    def metric(self) -> str | None:
        """The metric name when the objective is a single unweighted metric, else None."""
        if len(self.terms) == 1 and self.terms[0][0] == 1:
            return self.terms[0][1]
        return None

    def score(self, scores: Mapping[str, float]) -> float:
        """The objective's value for a mapping of metric name to score."""
        return sum(weight * scores[name] for weight, name in self.terms)


def parse_objective(text: str) -> Objective:
    """Read ``name`` or ``w1*name1 + w2*name2 ...``; a bad term or unknown name is a ValueError that names it."""
    terms: list[tuple[float, str]] = []
    for raw in text.split("+"):
        match = _TERM.match(raw.strip())
        if match is None:
            raise ValueError(
                f"objective {text!r}: cannot read the term {raw.strip()!r}; write a metric name or a sum of"
                " weighted ones, e.g. 0.5*ner_micro_f1+0.5*re_micro_f1"
            )
        name = match["name"]
        if name not in METRIC_NAMES:
            raise ValueError(f"objective {text!r}: unknown metric {name!r}; known: {', '.join(METRIC_NAMES)}")
        if name in (known for _, known in terms):
            raise ValueError(f"objective {text!r}: names {name!r} twice")
        weight = float(match["weight"]) if match["weight"] else 1.0
        if weight <= 0:
            raise ValueError(f"objective {text!r}: the weight of {name!r} must be positive")
        terms.append((weight, name))
    return Objective(tuple(terms))
