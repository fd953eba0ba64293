"""Result files: JSON objects in docs/results/ that map a name to one measured summary.

Every summary carries the ``command`` that produced it, so `deeprel report` can print it beside the
numbers and anyone can rerun it. A score measured over several runs (seeds, folds) is stored as three
flat keys, ``<metric>_mean``, ``<metric>_sd`` and ``<metric>_runs``: :class:`Spread` is the one place that
spells them.
"""

from __future__ import annotations

import json
import shlex
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deeprel.atomic import write_text_atomically
from deeprel.evaluation.metrics import AVERAGES, TASKS, VALUES, metric_name

# The strict test scores a summary over runs holds, in the order result files store them.
SUMMARY_METRICS: tuple[str, ...] = tuple(
    metric_name(task, average, value) for task in TASKS for average in AVERAGES for value in VALUES
)
# The F1 subset: what per-fold records, ablations and paired differences report.
F1_METRICS: tuple[str, ...] = tuple(metric_name(task, average, "f1") for task in TASKS for average in AVERAGES)


def spread(values: Sequence[float]) -> float | None:
    """Sample standard deviation, rounded to 2 places; None for a single run, which has no spread."""
    return round(statistics.stdev(values), 2) if len(values) > 1 else None


@dataclass(frozen=True)
class Spread:
    """One score over several runs: mean, sample sd (None for one run), and the runs, in percent."""

    mean: float
    sd: float | None
    runs: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        """Rounded to 2 places, as every result file stores them."""
        return cls(round(statistics.mean(values), 2), spread(values), tuple(round(v, 2) for v in values))

    def as_dict(self) -> dict[str, Any]:
        """The nested form (``{"mean", "sd", "runs"}``), as paired differences are stored."""
        return {"mean": self.mean, "sd": self.sd, "runs": list(self.runs)}

    def fields(self, metric: str) -> dict[str, Any]:
        """The stored form: ``{metric}_mean``, ``{metric}_sd``, ``{metric}_runs``."""
        return {f"{metric}_mean": self.mean, f"{metric}_sd": self.sd, f"{metric}_runs": list(self.runs)}

    @classmethod
    def read(cls, summary: Mapping[str, Any], metric: str) -> Spread:
        return cls(summary[f"{metric}_mean"], summary[f"{metric}_sd"], tuple(summary[f"{metric}_runs"]))

    @classmethod
    def find(cls, summary: Mapping[str, Any], metric: str) -> Spread | None:
        """The spread of ``metric`` in a stored summary, None when it holds none (a single run's value)."""
        if f"{metric}_mean" not in summary:
            return None
        return cls(summary[f"{metric}_mean"], summary.get(f"{metric}_sd"), tuple(summary.get(f"{metric}_runs", ())))

    @staticmethod
    def metrics_in(summary: Mapping[str, Any]) -> list[str]:
        """The metrics a stored summary holds spreads of, in its order."""
        return [key.removesuffix("_runs") for key in summary if key.endswith("_runs")]


def strict_scores(test: Mapping[str, Any]) -> dict[str, float]:
    """The strict scores of an ``EvaluationResult.to_dict()``, by metric name (``re_micro_f1``, ...)."""
    strict = test["strict"]
    names = {"p": "precision", "r": "recall", "f1": "f1"}
    return {
        metric_name(task, average, value): strict[task][average][names[value]]
        for task in TASKS
        for average in AVERAGES
        for value in VALUES
    }


def summarise_scores(tests: Sequence[Mapping[str, Any]], metrics: Sequence[str] = SUMMARY_METRICS) -> dict[str, Any]:
    """The stored spreads of strict test scores over runs, one ``EvaluationResult.to_dict()`` per run."""
    per_run = [strict_scores(test) for test in tests]
    fields: dict[str, Any] = {}
    for metric in metrics:
        fields |= Spread.of([scores[metric] for scores in per_run]).fields(metric)
    return fields


def paired_difference(values: Sequence[float], reference: Sequence[float]) -> dict[str, Any]:
    """``values - reference`` pair by pair (the same seed or fold), with the mean and sample sd of those."""
    return Spread.of([round(v - r, 2) for v, r in zip(values, reference, strict=True)]).as_dict()


def command_line(argv: list[str] | None = None) -> str:
    """The `deeprel ...` command being run, quoted so it can be pasted into a shell."""
    argv = sys.argv if argv is None else argv
    return " ".join(["deeprel", *(shlex.quote(a) for a in argv[1:])])


def read_results(path: Path) -> dict[str, Any]:
    """The summaries in ``path`` ({} when it does not exist yet); a malformed file is an error naming it."""
    if not path.exists():
        return {}
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a readable results file: {error}") from None
    if not isinstance(results, dict):
        raise ValueError(f"{path}: a results file must hold a JSON object (name -> summary)")
    return results


def add_result(path: Path, name: str, summary: dict[str, Any]) -> None:
    """Store ``summary`` under ``name`` in ``path``, keeping the other names; written atomically."""
    results = read_results(path)
    results[name] = summary
    write_text_atomically(path, json.dumps(results, indent=2, ensure_ascii=False) + "\n")


def evaluation_summary(result: Any, meta: dict[str, Any], data: Path, threshold: float, command: str) -> dict[str, Any]:
    """One `deeprel evaluate` run as a result-file entry: flat strict and boundaries scores in percent
    (two decimals), the relation threshold, the epoch and parameter count the model was saved with."""
    return {
        "data": data.name,
        "threshold": threshold,
        "epoch": meta.get("epoch"),
        "trainable_parameters": meta.get("trainable_parameters"),
        **{key: round(value, 2) for key, value in result.flat().items()},
        "command": command,
    }
