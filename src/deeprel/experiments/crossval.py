"""K-fold cross-validation (ADE): one training run per fold, each scored on its own test fold.

Fold *i* is a training file and a test file named by two patterns with a ``{fold}`` placeholder
(by default SpERT's ``datasets/ade/ade_split_{fold}_train.json`` / ``..._test.json``). The config's
own ``data.train/dev/test/train_dev`` and ``data.dev_fraction`` are replaced fold by fold.

**Choosing the number of epochs.** ADE has no dev set. SpERT trains every fold for a fixed number of
epochs (20 in its paper) and tests the last one; PAPER.md does not say how Crone chose them. By
default we hold out a seeded ``dev_fraction`` (10%) of each fold's training part as dev and follow the
configured ``training.protocol``:

* ``retrain`` (configs/ade.toml, as on CoNLL04): early stopping on that dev part picks the epoch, then
  a fresh model trains on the whole training part for that many epochs and is tested;
* ``dev``: the best-on-dev model, trained on the rest of the training part, is tested (half the cost,
  10% less training data).

With ``dev_fraction = 0``, or with ``training.retrain_epochs`` set, no dev part is held out and every
fold trains a fixed number of epochs on its whole training part (``training.max_epochs`` for protocol
``dev``, ``training.retrain_epochs`` for ``retrain``): SpERT's protocol.

**Overlapping entities.** BIO tags cannot hold overlapping spans. Training data goes through the
configured ``data.overlap_policy`` (as in every training run) and each fold records what that removed.
The test fold is scored against its *full* gold annotations, so a gold entity no BIO tagger can produce
counts as missed (honest). Each fold also scores the same predictions against gold with the same
overlap removal (the convention of Bekoulis et al. and Crone, who drop those entities) and records
how many test entities and relations that removes; ``score_without_overlaps`` adds those scores to
the summary.

**Runs.** ``RUNS/crossval.json`` holds the settings a rerun must share. ``RUNS/fold-i/`` is a trainer
run directory (its ``config.json`` names the fold's files and dev share, so the fold can be retrained
alone with ``deeprel train``) plus ``result.json``, written atomically when the fold is finished; a rerun
reuses finished folds and resumes an interrupted one from its checkpoint. The trainer is given the
fold's sentences directly: nothing is written besides the run.

**Merging.** A summary records the configuration its folds share (``config``, without the data files
folds replace) and its ``protocol``; :func:`merge_fold_summaries` joins two summaries of different folds
only when both agree.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from deeprel.atomic import write_text_atomically
from deeprel.config import Config, resolve_data_path, split_run_settings
from deeprel.data.readers import read_sentences
from deeprel.data.tagging import OverlapStats, resolve_all
from deeprel.data.types import Sentence
from deeprel.experiments.seeds import summarise
from deeprel.inference.predictor import Predictor
from deeprel.reporting.results import F1_METRICS, Spread, spread, strict_scores
from deeprel.runtime import Runtime
from deeprel.training.trainer import Datasets, Split, prepare_splits, split_dev, train

Log = Callable[[str], None]

ADE_TRAIN_PATTERN = "datasets/ade/ade_split_{fold}_train.json"
ADE_TEST_PATTERN = "datasets/ade/ade_split_{fold}_test.json"
PLACEHOLDER = "{fold}"


def parse_folds(text: str) -> tuple[int, ...]:
    """``"0-9"``, ``"0,2,5"`` or ``"0-2,7"`` as fold numbers, in the order given."""
    folds: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if match is None:
            raise ValueError(f"folds {text!r}: {part!r} is neither a number nor a range like 0-9")
        first, last = int(match.group(1)), int(match.group(2) or match.group(1))
        if last < first:
            raise ValueError(f"folds {text!r}: the range {part.strip()!r} runs backwards")
        folds.extend(range(first, last + 1))
    if len(set(folds)) != len(folds):
        raise ValueError(f"folds {text!r}: a fold is named twice")
    return tuple(folds)


@dataclass(frozen=True)
class CrossvalPlan:
    """Which folds to run, where their files are, and how much of each training part is dev."""

    folds: tuple[int, ...] = tuple(range(10))
    train_pattern: str = ADE_TRAIN_PATTERN
    test_pattern: str = ADE_TEST_PATTERN
    dev_fraction: float = 0.1
    dev_seed: int = 1

    def __post_init__(self) -> None:
        if not self.folds or len(set(self.folds)) != len(self.folds) or min(self.folds) < 0:
            raise ValueError(f"folds must be distinct numbers >= 0, got {list(self.folds)}")
        for pattern in (self.train_pattern, self.test_pattern):
            if PLACEHOLDER not in pattern:
                raise ValueError(f"fold file pattern {pattern!r} has no {PLACEHOLDER} placeholder")
        if not 0 <= self.dev_fraction < 1:
            raise ValueError(f"dev fraction must be in [0, 1), got {self.dev_fraction}")

    def files(self, fold: int) -> tuple[str, str]:
        """The fold's training and test file, as the patterns name them (relative to the data directory)."""
        return self.train_pattern.replace(PLACEHOLDER, str(fold)), self.test_pattern.replace(PLACEHOLDER, str(fold))

    def settings(self) -> dict[str, Any]:
        """What every fold of one runs directory must share (the folds themselves may differ per call)."""
        return {
            "train_pattern": self.train_pattern,
            "test_pattern": self.test_pattern,
            "dev_fraction": self.dev_fraction,
            "dev_seed": self.dev_seed,
        }


def holds_out_dev(config: Config, plan: CrossvalPlan) -> bool:
    """Whether the epochs are chosen on a held-out part (else every fold trains a fixed number of them)."""
    if plan.dev_fraction == 0:
        if config.training.protocol == "retrain" and config.training.retrain_epochs is None:
            raise ValueError(
                "protocol 'retrain' picks the epochs on dev: give a dev fraction above 0 or set training.retrain_epochs"
            )
        return False
    return not (config.training.protocol == "retrain" and config.training.retrain_epochs is not None)


def epoch_rule(config: Config, plan: CrossvalPlan) -> str:
    """How the number of epochs is chosen, in words, for the result file."""
    training = config.training
    if not holds_out_dev(config, plan):
        epochs = training.retrain_epochs if training.protocol == "retrain" else training.max_epochs
        return f"a fixed {epochs} epochs on the fold's whole training part (no dev set)"
    held_out = (
        f"early stopping on {training.early_stopping_metric} (patience {training.patience},"
        f" at most {training.max_epochs} epochs) on a held-out {plan.dev_fraction:.0%} of the fold's training part"
        f" (seed {plan.dev_seed})"
    )
    if training.protocol == "retrain":
        return held_out + " picks the epoch; a fresh model then trains that many epochs on the whole training part"
    return held_out + "; the best-on-dev model, trained on the rest, is tested"


def crossval_protocol(config: Config, plan: CrossvalPlan, score_without_overlaps: bool) -> dict[str, Any]:
    """How every fold is trained and scored, in words and settings: what a summary's folds must share."""
    protocol = {
        "training_protocol": config.training.protocol,
        "epochs": epoch_rule(config, plan),
        **plan.settings(),
        "training_seed": config.training.seed,
        "evaluation": "strict, against the full gold test fold (entities BIO cannot represent count as missed)",
    }
    if score_without_overlaps:
        protocol["evaluation_without_overlaps"] = (
            f"strict, against gold with the overlap policy {config.data.overlap_policy!r} applied"
        )
    return protocol


def run_crossval(
    config: Config,
    runs: str | Path,
    plan: CrossvalPlan | None = None,
    score_without_overlaps: bool = False,
    runtime: Runtime | None = None,
    progress: bool = False,
    log: Log = print,
) -> dict[str, Any]:
    """Train and test every fold of ``plan`` under ``runs/fold-i`` (reusing finished ones); the summary."""
    plan = plan or CrossvalPlan()
    runtime = runtime or Runtime()
    runs = Path(runs)
    holds_out_dev(config, plan)  # an impossible protocol fails before any fold starts
    _check_settings(runs, config, plan)
    results = [run_fold(config, plan, fold, runs / f"fold-{fold}", runtime, progress, log) for fold in plan.folds]
    return {
        "protocol": crossval_protocol(config, plan, score_without_overlaps),
        "config": comparable_config(config),
        **summarise_folds(results, score_without_overlaps),
    }


def run_fold(
    config: Config, plan: CrossvalPlan, fold: int, directory: Path, runtime: Runtime, progress: bool, log: Log
) -> dict:
    """One fold: train (or resume), predict the test fold, score it with and without overlapping gold."""
    result_path = directory / "result.json"
    if result_path.exists():
        log(f"fold {fold}: finished already ({result_path})")
        return json.loads(result_path.read_text(encoding="utf-8"))
    train_file, test_file = plan.files(fold)
    training_part, test = _read_fold(config, fold, train_file, test_file)
    test_without_overlaps, test_overlaps = resolve_all(test, config.data.overlap_policy)
    log(
        f"fold {fold}: the overlap policy removes {_counts(training_part.overlaps)} from training;"
        f" the test fold holds {_counts(test_overlaps)} that BIO cannot represent"
    )
    fold_config, datasets = fold_data(config, plan, train_file, training_part)
    log(f"fold {fold}: training into {directory}")
    metrics = train(fold_config, directory, data=datasets, runtime=runtime, resume=True, progress=progress, log=log)
    predictor = Predictor.load(directory / "model", device=runtime.torch_device())
    predicted = predictor.predict(test)
    full = predictor.score(test, predicted)
    reduced = predictor.score(test_without_overlaps, predicted)
    result = {
        "fold": fold,
        "train_file": train_file,
        "test_file": test_file,
        "training_part_documents": len(training_part.sentences),
        "dev_documents": len(datasets.get("dev") or []),
        "test_documents": len(test),
        "overlaps": {
            "policy": config.data.overlap_policy,
            "train_removed": asdict(training_part.overlaps),
            "test_unrepresentable": asdict(test_overlaps),
        },
        "training": metrics["training"],
        "test": full.to_dict(),
        "test_without_overlaps": reduced.to_dict(),
    }
    write_text_atomically(result_path, json.dumps(result, indent=2) + "\n")
    log(
        f"fold {fold}: test NER {full.strict.ner.macro.f1:.2f} RE {full.strict.re.macro.f1:.2f} (strict macro F1),"
        f" NER {full.strict.ner.micro.f1:.2f} RE {full.strict.re.micro.f1:.2f} (micro)"
    )
    return result


def _read_fold(config: Config, fold: int, train_file: str, test_file: str) -> tuple[Split, list[Sentence]]:
    """The training part after the overlap policy, and the full test gold, prepared as the trainer prepares
    its splits (empty sentences, size limits)."""
    paths = [resolve_data_path(name) for name in (train_file, test_file)]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"fold {fold}: {path} does not exist")
    splits = [
        prepare_splits(name, str(path), read_sentences(path, fmt=config.data.format), config.data, log=lambda _: None)[
            0
        ]
        for name, path in zip(("train", "test"), paths)
    ]
    return splits[0], splits[1].sentences


def fold_data(config: Config, plan: CrossvalPlan, train_file: str, training_part: Split) -> tuple[Config, Datasets]:
    """The fold's training configuration (its data section names the fold's file and dev share) and the
    splits it trains on: the training part, or its rest and a held-out dev part; for the retrain protocol
    the whole part again as train+dev."""
    held_out = holds_out_dev(config, plan)
    retrain = config.training.protocol == "retrain"
    fold_config = config.with_overrides(
        {
            "data.train": train_file,
            "data.dev": None,
            "data.test": None,  # the fold is scored by run_fold, against both gold versions
            "data.train_dev": train_file if retrain else None,
            "data.dev_fraction": plan.dev_fraction if held_out else None,
            "data.dev_seed": plan.dev_seed,
        }
    )
    datasets = Datasets()
    if held_out:
        rest, dev = split_dev(training_part.sentences, plan.dev_fraction, plan.dev_seed)
        datasets.add(Split("train", training_part.source, rest))
        datasets.add(Split("dev", training_part.source, dev))
    else:
        datasets.add(training_part)
    if retrain:
        datasets.add(Split("train_dev", training_part.source, training_part.sentences, training_part.overlaps))
    return fold_config, datasets


def summarise_folds(results: Sequence[dict[str, Any]], score_without_overlaps: bool = False) -> dict[str, Any]:
    """Mean and sample sd over folds of the strict test scores (percent), per-fold numbers, overlap counts."""
    scores = summarise([(r["fold"], r) for r in results])
    del scores["seeds"]  # the per-fold records below name the folds
    counts = [r["training"]["trainable_parameters"] for r in results]
    summary: dict[str, Any] = {
        **scores,
        # trainable_parameters (from summarise) is the first fold's; folds differ by a few character embeddings.
        "trainable_parameters_range": [min(counts), max(counts)],
        "folds": [_fold_record(r, score_without_overlaps) for r in results],
        "overlaps": {
            "policy": results[0]["overlaps"]["policy"],
            "train_removed_total": _total(r["overlaps"]["train_removed"] for r in results),
            "test_unrepresentable_total": _total(r["overlaps"]["test_unrepresentable"] for r in results),
        },
    }
    if score_without_overlaps:
        reduced = summarise([(r["fold"], {**r, "test": r["test_without_overlaps"]}) for r in results])
        summary["without_overlaps"] = {
            k: v
            for metric in Spread.metrics_in(reduced)
            for k, v in Spread.read(reduced, metric).fields(metric).items()
        }
    return summary


def format_folds(folds: Iterable[int]) -> str:
    """Fold numbers the way ``--folds`` takes them: ``0-9``, ``0-2,7``."""
    ordered = sorted(folds)
    parts: list[str] = []
    start = previous = ordered[0]
    for fold in [*ordered[1:], None]:
        if fold is not None and fold == previous + 1:
            previous = fold
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if fold is not None:
            start = previous = fold
    return ",".join(parts)


def merge_fold_summaries(stored: dict[str, Any], new: dict[str, Any], command: str) -> dict[str, Any]:
    """One summary over the folds of ``stored`` and those of ``new``: two runs of the same configuration and
    protocol over different folds (on two machines, or in two sessions whose run directories were not kept).

    The two must agree on ``config`` and ``protocol`` (see :func:`check_mergeable`), and no fold may be in
    both. The model size is not compared: a fold's character vocabulary, and so its parameter count, comes
    from its own training part. Means and sds are recomputed from the per-fold values; minutes per fold are
    weighted by folds; the parameter count is the lowest fold's, as one call over the folds in order would
    record. ``command`` is the one that reruns every fold in one call (finished folds are reused);
    ``merged_commands`` lists the calls that produced the numbers.
    """
    check_mergeable(stored, new, [f["fold"] for f in new["folds"]])
    if ("without_overlaps" in stored) != ("without_overlaps" in new):
        raise ValueError("cannot merge folds: only one of the two was scored --score-without-overlaps")

    # Rows stored before the range was recorded hold only their first fold's count.
    counts = [n for s in (stored, new) for n in s.get("trainable_parameters_range", [s["trainable_parameters"]])]
    order = sorted([*stored["folds"], *new["folds"]], key=lambda f: f["fold"])
    folds = [f["fold"] for f in order]
    numbers = [[f["fold"] for f in s["folds"]] for s in (stored, new)]
    merged: dict[str, Any] = {
        "protocol": new["protocol"],
        "config": new["config"],
        **_merged_scores([(stored, numbers[0]), (new, numbers[1])], folds),
        "trainable_parameters": min((stored, new), key=lambda s: min(f["fold"] for f in s["folds"]))[
            "trainable_parameters"
        ],
        "trainable_parameters_range": [min(counts), max(counts)],
        "train_minutes_per_run": round(
            (stored["train_minutes_per_run"] * len(stored["folds"]) + new["train_minutes_per_run"] * len(new["folds"]))
            / len(folds),
            1,
        ),
        "epochs": [f["epochs_run"] for f in order],
        "folds": order,
        "overlaps": {
            "policy": new["overlaps"]["policy"],
            **{
                key: _total([stored["overlaps"][key], new["overlaps"][key]])
                for key in ("train_removed_total", "test_unrepresentable_total")
            },
        },
    }
    if "without_overlaps" in new:
        parts = [(stored["without_overlaps"], numbers[0]), (new["without_overlaps"], numbers[1])]
        merged["without_overlaps"] = _merged_scores(parts, folds)
    merged["command"] = command
    merged["merged_commands"] = [*stored.get("merged_commands", [stored["command"]]), new["command"]]
    return merged


def check_mergeable(stored: dict[str, Any], new: dict[str, Any], folds: Iterable[int]) -> None:
    """Refuse, before any fold trains, a merge with folds of another configuration or protocol, or of a fold
    stored already. ``new`` needs only ``config`` and ``protocol`` (a summary, or what one will record)."""
    if "config" not in stored:
        raise ValueError("cannot merge folds: the stored entry does not record its configuration ('config')")
    # Through the configuration model, so keys added (with their defaults) since an entry was stored match.
    stored_config, new_config = (_flatten(_normalized(s["config"])) for s in (stored, new))
    if stored_config != new_config:
        keys = sorted(k for k in {**stored_config, **new_config} if stored_config.get(k) != new_config.get(k))
        raise ValueError(f"cannot merge folds: the stored and the new runs differ in configuration ({', '.join(keys)})")
    if stored["protocol"] != new["protocol"]:
        keys = sorted(
            k for k in {**stored["protocol"], **new["protocol"]} if stored["protocol"].get(k) != new["protocol"].get(k)
        )
        raise ValueError(f"cannot merge folds: the stored and the new runs differ in protocol ({', '.join(keys)})")
    shared = sorted({f["fold"] for f in stored["folds"]} & set(folds))
    if shared:
        raise ValueError(f"cannot merge folds: fold(s) {format_folds(shared)} are stored already")


def _merged_scores(parts: list[tuple[dict[str, Any], list[int]]], folds: list[int]) -> dict[str, Any]:
    """The spreads (in the order of ``folds``) of every score held per fold by each part, a pair (scores, the
    folds its runs follow)."""
    merged: dict[str, Any] = {}
    for metric in Spread.metrics_in(parts[0][0]):
        by_fold = {
            fold: value for scores, numbers in parts for fold, value in zip(numbers, Spread.read(scores, metric).runs)
        }
        values = [by_fold[fold] for fold in folds]
        merged |= Spread(round(statistics.mean(values), 2), spread(values), tuple(values)).fields(metric)
    return merged


def _fold_record(result: dict[str, Any], score_without_overlaps: bool) -> dict[str, Any]:
    training = result["training"]
    record = {
        "fold": result["fold"],
        **_f1s(result["test"]),
        "epochs_run": training["epochs_run"],
        "trainable_parameters": training["trainable_parameters"],
        "tested_epoch": training["best_epoch"],  # the best dev epoch, or the last of a fixed-length run
        "test_documents": result["test_documents"],
        "train_overlaps_removed": result["overlaps"]["train_removed"],
        "test_overlaps_unrepresentable": result["overlaps"]["test_unrepresentable"],
    }
    if score_without_overlaps:
        record["without_overlaps"] = _f1s(result["test_without_overlaps"])
    return record


def _f1s(test: dict[str, Any]) -> dict[str, float]:
    scores = strict_scores(test)
    return {metric: round(scores[metric], 2) for metric in F1_METRICS}


def _total(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    total = OverlapStats()
    for c in counts:
        total += OverlapStats(**c)
    return asdict(total)


def _counts(stats: OverlapStats) -> str:
    return f"{stats.entities_removed} entities and {stats.relations_removed} relations"


def comparable_config(config: Config) -> dict[str, Any]:
    """The configuration every fold shares: all of it but the data files and dev share that folds replace."""
    tree = config.to_dict()
    for key in ("train", "dev", "test", "train_dev", "dev_fraction", "dev_seed"):
        del tree["data"][key]
    return tree


def _normalized(tree: dict[str, Any]) -> dict[str, Any]:
    """A stored fold configuration over the defaults (keys added since it was stored take their default
    values), old run settings dropped."""

    def merged(defaults: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
        out = dict(defaults)
        for key, value in stored.items():
            both_sections = isinstance(value, dict) and isinstance(defaults.get(key), dict)
            out[key] = merged(defaults[key], value) if both_sections else value
        return out

    return merged(comparable_config(Config()), split_run_settings(tree)[0])


def _check_settings(runs: Path, config: Config, plan: CrossvalPlan) -> None:
    """Record the settings on the first call; later calls on the same runs must use the same ones."""
    settings = {"config": comparable_config(config), **plan.settings()}
    path = runs / "crossval.json"
    if not path.exists():
        write_text_atomically(path, json.dumps(settings, indent=2) + "\n")
        return
    started = json.loads(path.read_text(encoding="utf-8"))
    started["config"] = _normalized(started["config"])  # keys added since it was written take their defaults
    current = json.loads(json.dumps(settings))  # the same JSON types as the stored copy
    differing = sorted(set(_flatten(started).items()) ^ set(_flatten(current).items()))
    if differing:
        keys = ", ".join(dict.fromkeys(key for key, _ in differing))
        raise ValueError(f"{path}: {runs} was started with other settings ({keys}); use a new runs directory")


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = json.dumps(value)
    return flat
