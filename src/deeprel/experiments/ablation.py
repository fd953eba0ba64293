"""`deeprel ablate`: what a tuned configuration loses without its task-specific layers, its shared
layers, or one of its inputs.

Variants of the base (tuned) configuration, with ``s``, ``t_e``, ``t_r`` its shared, NER-specific and
RE-specific depths. NER sees a path of ``s + t_e`` BiRNN layers from the input, RE one of ``s + t_r``:

* ``tuned``: the configuration as given; the reference, always run.
* ``no_task_layers``: ``t_e' = t_r' = 0`` and ``s' = s + max(t_e, t_r)``. Both tasks then share one
  path, so when ``t_e != t_r`` they cannot both keep their depth. We keep the deeper task's path and
  make the other ``|t_e - t_r|`` layers deeper, never shallower, so a loss cannot come from depth
  taken away. (``s + min`` would cut the deeper task's path; ``s + t_e + t_r`` keeps the number of
  layers but deepens both.) The variant records both path depths.
* ``no_shared``: ``s' = 0``, ``t_e' = t_e + s``, ``t_r' = t_r + s``: each path keeps its depth exactly.
* ``no_contextual``, ``no_static``, ``no_chars``, ``no_casing``: one input representation switched
  off, the rest as tuned (meant for CoNLL04; the default variants on ADE are the depth ones).

Depth 0 is valid everywhere (an empty stack is the identity), so every depth variant can be built. A
variant that would be the tuned model itself (``no_shared`` when ``s = 0``, ``no_task_layers`` when
``t_e = t_r = 0``, an input the tuned model does not use), or one that leaves no input at all, is not
run; its entry says why.

CoNLL04 variants train several seeds through :func:`deeprel.experiments.seeds.run_seeds` (the retrain
protocol, scored on test) under ``RUNS/conll04/<variant>/seed-N``; ADE variants run cross-validation
through :func:`deeprel.experiments.crossval.run_crossval` under ``RUNS/ade/<variant>/fold-i``. Both
reuse finished runs and resume interrupted ones. Differences to ``tuned`` are paired: per seed (same
seed) or per fold (same test fold), reported as the mean and sample sd of ``variant - tuned``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from deeprel.config import Config, ConfigError
from deeprel.experiments.crossval import CrossvalPlan, run_crossval
from deeprel.experiments.seeds import run_seeds
from deeprel.reporting.results import F1_METRICS, Spread, add_result, paired_difference, read_results
from deeprel.runtime import Runtime

Dataset = Literal["conll04", "ade"]
Log = Callable[[str], None]

DEPTH_VARIANTS = ("no_task_layers", "no_shared")
INPUT_VARIANTS = {
    "no_contextual": ("embeddings.contextual.enabled", "the contextual encoder"),
    "no_static": ("embeddings.static.enabled", "the static word vectors"),
    "no_chars": ("embeddings.chars.enabled", "the character BiRNN"),
    "no_casing": ("embeddings.casing", "the casing vector"),
}
VARIANTS = ("tuned", *DEPTH_VARIANTS, *INPUT_VARIANTS)
DEFAULT_VARIANTS: dict[str, tuple[str, ...]] = {"conll04": VARIANTS, "ade": ("tuned", *DEPTH_VARIANTS)}


@dataclass(frozen=True)
class Depths:
    """The three BiRNN depths of a model, and the path each task sees from the input."""

    shared: int
    ner: int
    re: int

    @classmethod
    def of(cls, config: Config) -> Depths:
        return cls(config.model.shared_depth, config.model.ner_depth, config.model.re_depth)

    @property
    def ner_path(self) -> int:
        return self.shared + self.ner

    @property
    def re_path(self) -> int:
        return self.shared + self.re

    def overrides(self) -> dict[str, int]:
        return {"model.shared_depth": self.shared, "model.ner_depth": self.ner, "model.re_depth": self.re}

    def to_dict(self) -> dict[str, int]:
        return {
            "shared": self.shared,
            "ner": self.ner,
            "re": self.re,
            "ner_path": self.ner_path,
            "re_path": self.re_path,
        }


def ablated_depths(depths: Depths, variant: str) -> Depths:
    """The depths of a depth variant (see the module docstring for why ``max``)."""
    if variant == "no_task_layers":
        return Depths(depths.shared + max(depths.ner, depths.re), 0, 0)
    if variant == "no_shared":
        return Depths(0, depths.ner + depths.shared, depths.re + depths.shared)
    raise ValueError(f"{variant!r} is not a depth variant ({', '.join(DEPTH_VARIANTS)})")


@dataclass(frozen=True)
class Variant:
    """A configuration to run, or (``config`` None) the reason it is not run."""

    name: str
    config: Config | None
    reason: str | None = None


def build_variant(base: Config, name: str) -> Variant:
    if name == "tuned":
        return Variant(name, base)
    if name in DEPTH_VARIANTS:
        depths = Depths.of(base)
        ablated = ablated_depths(depths, name)
        if ablated == depths:
            removed = "shared layers (s = 0)" if name == "no_shared" else "task-specific layers (t_e = t_r = 0)"
            return Variant(name, None, f"the tuned model has no {removed}, so this variant is the tuned model")
        return Variant(name, base.with_overrides(ablated.overrides()))
    if name in INPUT_VARIANTS:
        key, what = INPUT_VARIANTS[name]
        if not base.value_of(key):
            return Variant(name, None, f"the tuned model does not use {what}, so this variant is the tuned model")
        try:
            return Variant(name, base.with_overrides({key: False}))
        except ConfigError:
            return Variant(name, None, f"{what} is the tuned model's only input; without it there is no input")
    raise ValueError(f"unknown ablation variant {name!r}; known: {', '.join(VARIANTS)}")


def run_ablation(
    config: Config,
    dataset: Dataset,
    runs: str | Path,
    variants: Sequence[str] | None = None,
    seeds: Sequence[int] = (1, 2, 3),
    plan: CrossvalPlan | None = None,
    select_once: bool = False,
    command: str = "",
    runtime: Runtime | None = None,
    progress: bool = False,
    log: Log = print,
) -> dict[str, dict[str, Any]]:
    """Run each variant (``tuned`` always, first) and return one entry per variant name."""
    if dataset not in DEFAULT_VARIANTS:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(DEFAULT_VARIANTS)}")
    if dataset == "conll04" and (config.training.protocol != "retrain" or config.data.test is None):
        raise ValueError("the CoNLL04 ablation uses the retrain protocol and the test set: the config needs both")
    names = ["tuned", *(v for v in (variants or DEFAULT_VARIANTS[dataset]) if v != "tuned")]
    built = [build_variant(config, name) for name in dict.fromkeys(names)]
    runs = Path(runs) / dataset
    entries: dict[str, dict[str, Any]] = {}
    for variant in built:
        if variant.config is None:
            log(f"{variant.name}: not run: {variant.reason}")
            entries[variant.name] = {"status": "not run", "reason": variant.reason, "command": command}
            continue
        log(f"{variant.name}: depths {Depths.of(variant.config).to_dict()}")
        if dataset == "conll04":
            summary = run_seeds(
                variant.config, seeds, runs / variant.name, select_once, runtime=runtime, progress=progress, log=log
            )
            run_ids = summary["seeds"]
        else:
            summary = run_crossval(
                variant.config, runs / variant.name, plan, runtime=runtime, progress=progress, log=log
            )
            run_ids = [fold["fold"] for fold in summary["folds"]]
        entries[variant.name] = _entry(variant.config, summary, dataset, run_ids, command)
    reference = entries["tuned"]
    for entry in entries.values():
        if entry["status"] == "done":
            entry["difference_to_tuned"] = _differences(entry, reference)
    return entries


def _entry(
    config: Config, summary: dict[str, Any], dataset: Dataset, run_ids: list[int], command: str
) -> dict[str, Any]:
    """A finished variant: its depths and inputs, mean ± sd and per-run F1s, cost, and how to rerun it."""
    embeddings = config.embeddings
    return {
        "status": "done",
        "depths": Depths.of(config).to_dict(),
        "inputs": {
            "contextual": embeddings.contextual.enabled,
            "static": embeddings.static.enabled,
            "chars": embeddings.chars.enabled,
            "casing": embeddings.casing,
        },
        ("seeds" if dataset == "conll04" else "folds"): run_ids,
        **{k: v for metric in F1_METRICS for k, v in Spread.read(summary, metric).fields(metric).items()},
        "trainable_parameters": summary["trainable_parameters"],
        "train_minutes_per_run": summary["train_minutes_per_run"],
        "epochs": summary["epochs"],
        "command": command,
    }


def _differences(entry: dict[str, Any], reference: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Paired ``variant - tuned`` per seed or fold, with the mean and sample sd of those differences."""
    ids_key = "seeds" if "seeds" in entry else "folds"
    if entry[ids_key] != reference[ids_key]:
        raise ValueError(f"variant runs {entry[ids_key]} do not pair with tuned runs {reference[ids_key]}")
    return {
        metric: paired_difference(Spread.read(entry, metric).runs, Spread.read(reference, metric).runs)
        for metric in F1_METRICS
    }


def store_ablation(path: Path, dataset: Dataset, entries: dict[str, dict[str, Any]]) -> None:
    """Add the entries under ``dataset`` in the results file, keeping variants run by earlier calls."""
    existing = read_results(path).get(dataset, {})
    add_result(path, dataset, {**existing, **entries})
