"""Depth and hyperparameter search (``deeprel tune``) on Optuna.

space.py      what is searched: the three BiRNN depths (never an infeasible triple) and other keys
objective.py  what is maximised on dev: a metric or a weighted sum of metrics
study.py      the shared, resumable study: storage, heartbeats, pruning, one training per trial
report.py     the files a study leaves: best_config.toml, trials.csv/.md, depths.png, summary.json
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from deeprel.config import Config
from deeprel.tuning.objective import Objective, parse_objective
from deeprel.tuning.report import OUTPUT_FILES, describe, write_reports
from deeprel.tuning.space import SearchSpace, load_space
from deeprel.tuning.study import TuneSettings, check_record, load_study, run_trials

__all__ = [
    "OUTPUT_FILES",
    "Objective",
    "SearchSpace",
    "TuneSettings",
    "describe",
    "load_space",
    "parse_objective",
    "report",
    "tune",
]


def tune(base: Config, settings: TuneSettings, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run, join or resume the study until it has ``settings.trials`` finished trials, rewriting the
    outputs after every trial; returns the summary (summary.json)."""

    def after_trial(study: optuna.Study, trial: FrozenTrial) -> None:
        value = f" {trial.value:.2f}" if trial.value is not None else ""
        log(f"trial {trial.number}: {trial.state.name.lower()}{value}")
        _write(study, base, settings)

    study = run_trials(base, settings, after_trial, log)
    return _write(study, base, settings)


def report(base: Config, settings: TuneSettings) -> dict[str, Any]:
    """Rewrite the outputs from the storage alone, training nothing; returns the summary."""
    study = load_study(settings)
    check_record(study, base, settings, keys=("base_config",))  # best_config.toml is built on this base
    return _write(study, base, settings)


def _write(study: optuna.Study, base: Config, settings: TuneSettings) -> dict[str, Any]:
    return write_reports(study, base, settings.study_dir, settings.storage_for_reports, settings.command)
