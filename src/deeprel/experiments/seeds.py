"""One configuration trained with several seeds: mean and standard deviation of the test scores.

With ``select_once`` the first seed picks the number of epochs on dev (protocol "retrain") and the
other seeds retrain on train+dev for that many epochs, skipping their own selection phase: the
literature's "choose the epochs on dev, retrain on train+dev" done once per configuration, at about
half the cost of selecting per seed.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from deeprel.config import Config
from deeprel.inference.predictor import Predictor
from deeprel.reporting.results import summarise_scores
from deeprel.runtime import Runtime
from deeprel.training.trainer import load_datasets, train


def run_seeds(
    config: Config,
    seeds: Sequence[int],
    runs: Path,
    select_once: bool = False,
    threshold: float | None = None,
    runtime: Runtime | None = None,
    progress: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train (or resume, or reuse) one run per seed under ``runs/seed-N`` and summarise their test scores.

    With ``threshold`` each run's test set is scored again at that relation threshold (one chosen on
    dev, say) instead of the configured one.
    """
    runtime = runtime or Runtime()
    per_seed = []
    epochs = None
    test = load_datasets(config, log=lambda _: None).get("test") if threshold is not None else None
    for index, seed in enumerate(seeds):
        changes: dict[str, Any] = {"training.seed": seed}
        if select_once and index > 0 and config.training.protocol == "retrain":
            changes["training.retrain_epochs"] = epochs
        run = runs / f"seed-{seed}"
        metrics_path = run / "metrics.json"
        if metrics_path.exists():
            log(f"seed {seed}: finished already ({metrics_path})")
            metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
        else:
            log(f"seed {seed}: training into {run}")
            metrics = train(
                config.with_overrides(changes), run, runtime=runtime, resume=run.exists(), progress=progress, log=log
            )
        if index == 0 and config.training.protocol == "retrain":
            selection = metrics["training"].get("selection")
            epochs = selection["best_epoch"] if selection else metrics["training"]["epochs_run"]
        if threshold is not None:
            rescored = Predictor.load(run / "model", device=runtime.torch_device()).evaluate(test, threshold=threshold)
            metrics = {**metrics, "test": rescored.to_dict()}
        per_seed.append((seed, metrics))
    summary = summarise(per_seed)
    summary["threshold"] = config.model.threshold if threshold is None else threshold
    return summary


def summarise(per_run: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    """Mean and sample standard deviation over runs of strict test P/R/F1 (percentages), with the cost."""
    summary: dict[str, Any] = {"seeds": [seed for seed, _ in per_run]}
    summary |= summarise_scores([m["test"] for _, m in per_run])
    training = [m["training"] for _, m in per_run]
    summary["trainable_parameters"] = training[0]["trainable_parameters"]
    seconds = [t["train_seconds"] + ((t.get("selection") or {}).get("train_seconds") or 0) for t in training]
    summary["train_minutes_per_run"] = round(statistics.mean(seconds) / 60, 1)
    summary["epochs"] = [t["epochs_run"] for t in training]
    return summary
