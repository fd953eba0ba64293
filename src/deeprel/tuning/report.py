"""What a study leaves in its directory, regenerated from the storage alone (``deeprel tune --report-only``).

best_config.toml   the base configuration with the best trial's values: ready for ``deeprel train``
trials.csv         one row per trial: number, state, depths, other params, objective, epochs, minutes
trials.md          the same table in Markdown, under the best trial and the counts by state
depths.png         the best dev objective of each depth triple (s, t_e, t_r) as heatmaps
summary.json       best params and value, counts by state, the command
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import optuna
import tomli_w
from optuna.trial import FrozenTrial, TrialState

from deeprel.atomic import write_text_atomically
from deeprel.config import Config, parse_config
from deeprel.tuning.objective import parse_objective
from deeprel.tuning.space import DEPTH_KEYS, SearchSpace
from deeprel.tuning.study import best_config, format_value, study_attributes

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402

OUTPUT_FILES = ("best_config.toml", "trials.csv", "trials.md", "depths.png", "summary.json")
DEPTH_COLUMNS = ("s", "t_e", "t_r")


@dataclass(frozen=True)
class TrialRow:
    number: int
    state: str
    params: dict[str, Any]
    value: float | None
    epochs: int | None
    minutes: float | None
    note: str


def trial_row(trial: FrozenTrial) -> TrialRow:
    minutes = round(trial.duration.total_seconds() / 60, 2) if trial.duration is not None else None
    epochs = trial.user_attrs.get("epochs")
    retried = trial.system_attrs.get("failed_trial")
    if trial.state == TrialState.PRUNED:
        note = f"pruned after epoch {epochs}"
    elif trial.state == TrialState.FAIL:
        note = trial.user_attrs.get("error") or "its worker stopped (no heartbeat)"
    elif retried is not None:
        note = f"retry of trial {retried}"
    elif "fixed_params" in trial.system_attrs:  # enqueued, and deeprel enqueues only the base
        note = "the base configuration (--enqueue-base)"
    else:
        note = ""
    value = trial.value if trial.state in (TrialState.COMPLETE, TrialState.PRUNED) else None
    return TrialRow(trial.number, trial.state.name, dict(trial.params), value, epochs, minutes, note)


def table(rows: list[TrialRow], param_keys: list[str]) -> tuple[list[str], list[list[Any]]]:
    """Header and cells: number, state, the depths as s/t_e/t_r, other params by key, objective, epochs, minutes."""
    header = ["number", "state", *DEPTH_COLUMNS, *param_keys, "objective", "epochs", "minutes", "note"]
    cells = [
        [
            r.number,
            r.state,
            *(r.params.get(k) for k in (*DEPTH_KEYS, *param_keys)),
            r.value,
            r.epochs,
            r.minutes,
            r.note,
        ]
        for r in rows
    ]
    return header, cells


def config_to_toml(config: Config, header: str = "") -> str:
    """The configuration as TOML that `load_config` reads back to the same configuration.

    TOML has no null: unset optional keys are left out, which works because every such key defaults to
    unset; the round trip is checked so that a future key that breaks this fails loudly here.
    """
    text = header + tomli_w.dumps(_without_none(config.to_dict()))
    if parse_config(tomllib.loads(text), source="best_config.toml") != config:
        raise ValueError("the configuration does not survive a TOML round trip")
    return text


def _without_none(tree: dict[str, Any]) -> dict[str, Any]:
    return {k: _without_none(v) if isinstance(v, dict) else v for k, v in tree.items() if v is not None}


def write_reports(study: optuna.Study, base: Config, study_dir: Path, storage: str, command: str) -> dict[str, Any]:
    """Write every output file of the study into ``study_dir`` (each atomically); returns the summary."""
    record = study_attributes(study)
    objective = parse_objective(record["objective"])
    space = SearchSpace.model_validate(record["space"])
    trials = study.get_trials(deepcopy=False)
    rows = [trial_row(t) for t in trials]
    seen = {k for t in trials for k in t.params if k not in DEPTH_KEYS}
    param_keys = [k for k in space.params if k in seen] + sorted(seen - set(space.params))
    header, cells = table(rows, param_keys)
    study_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomically(study_dir / "trials.csv", _csv(header, cells))
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value) if complete else None
    counts = Counter(t.state.name for t in trials)
    summary: dict[str, Any] = {
        "study_name": study.study_name,
        "storage": storage,
        "objective": str(objective),
        "direction": "maximize",
        "best_trial": best.number if best else None,
        "best_value": best.value if best else None,
        "best_params": dict(best.params) if best else None,
        "best_dev_scores": best.user_attrs.get("dev_scores") if best else None,
        "trials": {state.name: counts[state.name] for state in TrialState},
        "by_depths": by_depths(complete),
        "command": command,
    }
    if best is not None:
        write_text_atomically(
            study_dir / "best_config.toml",
            config_to_toml(
                best_config(base, best.params, objective),
                f"# deeprel tune, study {study.study_name!r}: trial {best.number},"
                f" dev {objective} = {best.value:.2f}.\n"
                "# The base configuration with that trial's values. Train it: deeprel train best_config.toml -o RUN\n",
            ),
        )
    write_text_atomically(study_dir / "trials.md", _markdown(summary, header, cells))
    plot_depths(complete, space, str(objective), study_dir / "depths.png")
    write_text_atomically(study_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def by_depths(complete: list[FrozenTrial]) -> list[dict[str, Any]]:
    """For each depth triple (s, t_e, t_r) tried: how many trials finished and the best objective
    (empty when the space does not search the depths)."""
    groups: dict[tuple[int, int, int], list[float]] = {}
    for trial in complete:
        if all(k in trial.params for k in DEPTH_KEYS):
            groups.setdefault(tuple(trial.params[k] for k in DEPTH_KEYS), []).append(trial.value)
    return [
        {"s": s, "t_e": t_e, "t_r": t_r, "trials": len(values), "best": round(max(values), 2)}
        for (s, t_e, t_r), values in sorted(groups.items())
    ]


def _csv(header: list[str], cells: list[list[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([["" if c is None else c for c in row] for row in cells])
    return out.getvalue()


def _markdown(summary: dict[str, Any], header: list[str], cells: list[list[Any]]) -> str:
    counts = ", ".join(f"{n} {state.lower()}" for state, n in summary["trials"].items() if n)
    lines = [
        f"# deeprel tune: study {summary['study_name']}",
        "",
        f"Objective (dev, maximised): `{summary['objective']}`",
    ]
    if summary["best_trial"] is not None:
        params = ", ".join(f"{k}={format_value(v)}" for k, v in summary["best_params"].items())
        lines.append(f"Best: trial {summary['best_trial']}, {summary['best_value']:.2f} ({params})")
    lines += [f"Trials: {counts or 'none'}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in cells:
        lines.append("| " + " | ".join(_cell(header[i], c) for i, c in enumerate(row)) + " |")
    return "\n".join(lines) + "\n"


def _cell(column: str, value: Any) -> str:
    if value is None:
        return ""
    if column in ("objective", "minutes"):
        return f"{value:.{2 if column == 'objective' else 1}f}"
    return format_value(value)


def plot_depths(trials: list[FrozenTrial], space: SearchSpace, objective: str, path: Path) -> None:
    """One heatmap per shared depth s: t_e down, t_r across, each cell the best finished trial's objective.

    Pruned trials are left out (they stopped early, so their scores are not comparable); cells that
    the constraint s + t >= 1 forbids are greyed.
    """
    depths = space.depths
    shared = range(depths.shared[0], depths.shared[1] + 1)
    ner = list(range(depths.ner[0], depths.ner[1] + 1))
    re_ = list(range(depths.re[0], depths.re[1] + 1))
    best: dict[tuple[int, int, int], tuple[float, int]] = {}
    for trial in trials:
        key = tuple(trial.params.get(k) for k in DEPTH_KEYS)
        if None not in key:
            value, count = best.get(key, (float("-inf"), 0))
            best[key] = (max(value, trial.value), count + 1)
    values = [v for v, _ in best.values()]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    figure, axes = plt.subplots(
        1, len(shared), figsize=(1.2 + 0.9 * len(re_) * len(shared), 1.6 + 0.7 * len(ner)), squeeze=False
    )
    colours = plt.get_cmap("viridis")
    image = None
    for axis, s in zip(axes[0], shared):
        grid = [[best.get((s, te, tr), (float("nan"), 0))[0] for tr in re_] for te in ner]
        image = axis.imshow(grid, cmap=colours, vmin=low, vmax=high if high > low else low + 1, aspect="auto")
        for i, te in enumerate(ner):
            for j, tr in enumerate(re_):
                if s + te < 1 or s + tr < 1:
                    axis.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, color="0.85"))
                    axis.text(j, i, "—", ha="center", va="center", color="0.4")
                elif (s, te, tr) in best:
                    value, count = best[s, te, tr]
                    shade = (value - low) / (high - low) if high > low else 0.5
                    axis.text(
                        j,
                        i,
                        f"{value:.1f}\nn={count}",
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white" if shade < 0.6 else "black",
                    )
        axis.set_xticks(range(len(re_)), [str(t) for t in re_])
        axis.set_yticks(range(len(ner)), [str(t) for t in ner])
        axis.set(xlabel="RE-specific depth t_r", title=f"shared depth s = {s}")
    axes[0][0].set_ylabel("NER-specific depth t_e")
    if image is not None:
        figure.colorbar(image, ax=axes[0].tolist(), label=f"best dev {objective}")
    figure.suptitle(
        f"Best dev {objective} per depth triple, over {len(trials)} complete trials (pruned ones left out)"
        " (n: trials; blank: not tried; grey: infeasible)"
    )
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".png")
    os.close(fd)
    try:
        figure.savefig(temporary, dpi=110, bbox_inches="tight")
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    finally:
        plt.close(figure)


def describe(summary: dict[str, Any], study_dir: Path) -> str:
    """A few lines for the terminal: counts by state, the best trial, where the outputs are."""
    counts = ", ".join(f"{n} {state.lower()}" for state, n in summary["trials"].items() if n)
    lines = [f"study {summary['study_name']!r} in {summary['storage']}: {counts or 'no trials'}"]
    if summary["best_trial"] is None:
        lines.append("no finished trial yet")
    else:
        lines.append(f"best trial {summary['best_trial']}: dev {summary['objective']} = {summary['best_value']:.2f}")
        lines.append("  " + " ".join(f"{k}={format_value(v)}" for k, v in summary["best_params"].items()))
    written = ", ".join(name for name in OUTPUT_FILES if (study_dir / name).exists())
    lines.append(f"outputs in {study_dir}: {written}")
    return "\n".join(lines)
