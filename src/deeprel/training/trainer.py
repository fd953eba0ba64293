"""Training: data, vocabularies, the epoch loop with early stopping, and the train+dev retrain protocol.

A run directory holds
    config.json            the configuration the run was started with
    log.jsonl              one line per epoch and phase (losses, dev scores, seconds, learning rates at its end)
    learning_curve.png     losses and dev F1 per epoch (with the optional ``plots`` extra)
    select/                protocol "retrain": the best-on-dev model of the selection phase
    model/                 the final model (a model directory, see deeprel.model.files)
    checkpoint-<phase>/    the last finished epoch, for --resume (removed when the phase ends)
    metrics.json           dev and test scores of the final model

:func:`train` reads the data files the configuration names, or takes the sentences directly
(:class:`Datasets`), as cross-validation does. :func:`train_epochs` is the epoch loop alone: it yields
each epoch's losses and dev scores, and the caller (:class:`Trainer`) decides what to save, log and
when to stop.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from deeprel import __version__
from deeprel.atomic import write_text_atomically
from deeprel.config import Config, DataConfig, TrainingConfig, load_config, resolve_data_path
from deeprel.data.alignment import AnnotationOptions, Losses
from deeprel.data.readers import read_sentences, read_types
from deeprel.data.tagging import OverlapStats, resolve_all
from deeprel.data.types import Sentence
from deeprel.embeddings.chars import CharVocabulary
from deeprel.embeddings.contextual import FeatureCache
from deeprel.embeddings.static import candidate_keys, load_vectors
from deeprel.evaluation.metrics import metric_name
from deeprel.inference.predictor import Predictor
from deeprel.model.files import ENCODER_PREFIX, build_model, save_model, static_embedding
from deeprel.model.inputs import Labels
from deeprel.model.joint import JointModel
from deeprel.runtime import Runtime
from deeprel.training.checkpoint import load_checkpoint, save_checkpoint
from deeprel.training.curves import plot_learning_curve
from deeprel.training.seeding import set_seed

Log = Callable[[str], None]
EpochCallback = Callable[[dict[str, Any]], None]
SPLITS = ("train", "dev", "test", "train_dev")
# model.threshold = "dev": the relation thresholds each epoch is scored at, the best one kept with the model.
DEV_THRESHOLDS = tuple(round(0.05 * k, 2) for k in range(1, 20))


@dataclass
class Split:
    """One split's sentences, where they came from, and what the overlap policy removed from them."""

    name: str
    source: str
    sentences: list[Sentence]
    overlaps: OverlapStats = field(default_factory=OverlapStats)


@dataclass
class Datasets:
    """The splits a run trains and scores on (``train``, ``dev``, ``test``, ``train_dev``), by name."""

    splits: dict[str, Split] = field(default_factory=dict)

    def get(self, name: str) -> list[Sentence] | None:
        return self.splits[name].sentences if name in self.splits else None

    def add(self, split: Split) -> None:
        if split.name not in SPLITS:
            raise ValueError(f"unknown split {split.name!r}; expected one of {', '.join(SPLITS)}")
        self.splits[split.name] = split


def split_dev(sentences: Sequence[Sentence], fraction: float, seed: int) -> tuple[list[Sentence], list[Sentence]]:
    """``(rest, dev)``: a seeded ``fraction`` of the sentences (at least one) as dev; both keep file order."""
    size = max(1, round(fraction * len(sentences)))
    if size >= len(sentences):
        raise ValueError(f"cannot hold out {size} of {len(sentences)} sentences as dev")
    chosen = set(random.Random(seed).sample(range(len(sentences)), size))
    return (
        [d for i, d in enumerate(sentences) if i not in chosen],
        [d for i, d in enumerate(sentences) if i in chosen],
    )


def prepare_splits(
    name: str,
    source: str,
    sentences: Sequence[Sentence],
    data: DataConfig,
    hold_out: tuple[float, int] | None = None,
    log: Log = print,
) -> list[Split]:
    """The sentences of one split as training reads them: empty ones skipped (except in test), cut to the
    configured maximum, ``hold_out = (fraction, seed)`` of train split off as dev, and the entities of
    everything but test made BIO-representable by the overlap policy, which says what it removed."""
    sentences = list(sentences)
    if name != "test" and (empty := sum(1 for s in sentences if not s.tokens)):
        log(f"{name}: skipping {empty} empty sentences")
        sentences = [s for s in sentences if s.tokens]
    limit = data.max_train_documents if name in ("train", "train_dev") else data.max_eval_documents
    sentences = sentences[:limit] if limit else sentences
    parts = [(name, sentences)]
    if name == "train" and hold_out is not None:
        try:
            rest, held_out = split_dev(sentences, *hold_out)
        except ValueError as error:
            raise ValueError(f"{source}: data.dev_fraction: {error}") from None
        log(f"dev: {len(held_out)} of {len(sentences)} train sentences held out (data.dev_fraction)")
        parts = [("train", rest), ("dev", held_out)]
    splits = []
    for part, chosen in parts:
        stats = OverlapStats()
        if part != "test":
            # Training targets must be BIO-representable; test gold stays complete (honest evaluation).
            chosen, stats = resolve_all(chosen, data.overlap_policy)
        if stats.entities_removed:
            log(
                f"{part}: overlap policy {data.overlap_policy!r} removed {stats.entities_removed} entities"
                f" and {stats.relations_removed} relations in {stats.documents_affected} sentences"
            )
        splits.append(Split(part, source, chosen, stats))
    return splits


def load_datasets(config: Config, log: Log = print) -> Datasets:
    """Read every split the configuration names and prepare it (:func:`prepare_splits`).

    With ``data.dev_fraction`` the dev split is a seeded share of train's sentences (after
    ``max_train_documents``), and train keeps the rest."""
    data = config.data
    hold_out = (data.dev_fraction, data.dev_seed) if data.dev_fraction is not None else None
    datasets = Datasets()
    for name in SPLITS:
        path = getattr(data, name)  # data.dev is None whenever data.dev_fraction is set
        if path is None:
            continue
        resolved = resolve_data_path(path)
        losses = Losses()
        sentences = read_sentences(resolved, fmt=data.format, options=AnnotationOptions.of(data), losses=losses)
        if losses:
            log(f"{name}: what {resolved} holds that cannot be trained as it is:\n{losses.format()}")
        for split in prepare_splits(name, str(resolved), sentences, data, hold_out, log):
            datasets.add(split)
    if "train" not in datasets.splits:
        raise ValueError("the configuration names no training data (data.train)")
    return datasets


def build_labels(config: Config, datasets: Datasets) -> Labels:
    """The types file's labels when the configuration names one, else those of the training sentences."""
    if config.data.types:
        entity_types, relation_types = read_types(resolve_data_path(config.data.types))
        return Labels(tuple(sorted(entity_types)), tuple(sorted(relation_types)))
    sentences = [d for name in ("train", "train_dev") for d in (datasets.get(name) or [])]
    return Labels.from_sentences(sentences)


def model_parts(config: Config, datasets: Datasets, log: Log) -> tuple[Any, CharVocabulary | None]:
    """The static embedding (vectors of the data's words plus the file's most frequent ones) and chars."""
    training = [d for name in ("train", "train_dev") for d in (datasets.get(name) or [])]
    chars = CharVocabulary.build(t for d in training for t in d.tokens) if config.embeddings.chars.enabled else None
    static = None
    if config.embeddings.static.enabled:
        settings = config.embeddings.static
        words = {
            key
            for split in datasets.splits.values()
            for d in split.sentences
            for t in d.tokens
            for key in candidate_keys(t, settings.lowercase)
        }
        started = time.perf_counter()
        names, matrix = load_vectors(resolve_data_path(settings.path), words, settings.lowercase, settings.max_words)
        seconds = time.perf_counter() - started
        log(f"static vectors: {len(names)} words of {matrix.shape[1]} dimensions in {seconds:.1f}s")
        static = (names, matrix)
    return static, chars


@dataclass
class LoopState:
    """What the epoch loop carries from epoch to epoch; saved in every checkpoint for an exact resume."""

    epoch: int = 0
    step: int = 0
    best_epoch: int = 0
    best_score: list[float] = field(default_factory=lambda: [-1.0, -1.0])
    log: list[dict[str, Any]] = field(default_factory=list)
    best_threshold: float | None = None  # model.threshold = "dev": the best epoch's threshold
    best_threshold_scores: dict[str, float] | None = None  # its dev early-stopping score at each threshold

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EpochResult:
    """One finished epoch: mean losses, wall seconds, and the dev scores when there is a dev set."""

    epoch: int
    losses: dict[str, float]
    seconds: float
    dev_scores: dict[str, float] | None
    dev_threshold: float | None = None  # model.threshold = "dev": the threshold dev_scores are at
    dev_threshold_scores: dict[str, float] | None = None  # the early-stopping score at each threshold


@dataclass
class Optimisation:
    """The optimiser and its learning-rate schedule (a torch ``LambdaLR``: constant for the model's
    own layers; warm-up then linear decay for a fine-tuned encoder)."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR

    @classmethod
    def build(cls, model: JointModel, config: Config, total_steps: int) -> Optimisation:
        training = config.training
        encoder_params = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith(ENCODER_PREFIX)]
        other_params = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith(ENCODER_PREFIX)]
        groups = [{"params": other_params, "lr": training.learning_rate, "name": "model"}]
        factors: list[Callable[[int], float]] = [lambda step: 1.0]
        if encoder_params:
            contextual = config.embeddings.contextual
            groups.append({"params": encoder_params, "lr": contextual.learning_rate, "name": "encoder"})
            warmup = contextual.warmup_fraction
            factors.append(lambda step: warmup_then_decay(step, total_steps, warmup))
        optimizer = torch.optim.Adam(groups)
        return cls(optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factors))

    def step(self) -> None:
        self.optimizer.step()
        self.scheduler.step()

    def learning_rates(self) -> dict[str, float]:
        """Each parameter group's learning rate for the next step, keyed ``lr_<group>`` (lr_model, lr_encoder)."""
        return {f"lr_{group['name']}": group["lr"] for group in self.optimizer.param_groups}


def train_epochs(
    predictor: Predictor,
    optimisation: Optimisation,
    train: Sequence[Sentence],
    features: Sequence[torch.Tensor] | None,
    dev: Sequence[Sentence] | None,
    dev_features: Sequence[torch.Tensor] | None,
    generator: torch.Generator,
    state: LoopState,
    max_epochs: int,
    training: TrainingConfig,
    progress: bool = False,
) -> Iterator[EpochResult]:
    """The epoch loop: one shuffled pass over ``train`` per epoch, then the dev scores; yields each epoch.

    It only trains: the caller saves, logs, checkpoints and stops (by no longer asking for epochs).
    ``state.epoch`` and ``state.step`` count what is done, so a loop started from a checkpoint's state goes on
    where the interrupted one stopped."""
    model, featurizer = predictor.model, predictor.featurizer
    device = predictor.device
    while state.epoch < max_epochs:
        epoch = state.epoch + 1
        started = time.perf_counter()
        model.train()
        batches = epoch_batches(train, training, generator)
        sums = {"loss": 0.0, "ner_loss": 0.0, "re_loss": 0.0}
        bar = tqdm(batches, desc=f"epoch {epoch}", unit="batch", disable=not progress, leave=False)
        for indices in bar:
            batch = featurizer.batch(
                [train[i] for i in indices],
                features=[features[i] for i in indices] if features is not None else None,
                targets=True,
            ).to(device)
            optimisation.optimizer.zero_grad()
            loss, parts = model.loss(batch, training.lambda_re)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), training.clip_norm)
            optimisation.step()
            state.step += 1
            sums["loss"] += loss.item()
            sums["ner_loss"] += parts["ner_loss"]
            sums["re_loss"] += parts["re_loss"]
            bar.set_postfix(loss=f"{loss.item():.3f}")
        losses = {k: round(v / max(1, len(batches)), 4) for k, v in sums.items()}
        seconds = round(time.perf_counter() - started, 2)
        state.epoch = epoch
        if dev is None:
            yield EpochResult(epoch, losses, seconds, None)
        elif predictor.config.model.threshold == "dev":
            by_threshold = {
                t: r.flat()
                for t, r in predictor.evaluate_thresholds(dev, DEV_THRESHOLDS, features=dev_features).items()
            }
            # The best early-stopping score, ties to the better NER+RE mean, then to the higher threshold.
            best = max(by_threshold, key=lambda t: (*selection_score(by_threshold[t], training), t))
            at_each = {str(t): by_threshold[t][training.early_stopping_metric] for t in by_threshold}
            yield EpochResult(epoch, losses, seconds, by_threshold[best], best, at_each)
        else:
            yield EpochResult(epoch, losses, seconds, predictor.evaluate(dev, features=dev_features).flat())


def epoch_batches(train: Sequence[Sentence], training: TrainingConfig, generator: torch.Generator) -> list[list[int]]:
    """One epoch's batches, as indices into ``train``, in ``training.batch_order``: a random permutation cut into
    ``batch_size`` slices (one draw from ``generator``), Hugging Face's length-grouped order (the same one draw),
    or its batches shuffled but for the first, the longest (a second draw)."""
    size = training.batch_size
    if training.batch_order == "random":
        order = torch.randperm(len(train), generator=generator).tolist()
    else:
        # Imported here: the module costs about a second of imports that random batches do not need.
        from transformers.trainer_pt_utils import get_length_grouped_indices

        order = get_length_grouped_indices([len(s.tokens) for s in train], size, generator=generator)
    batches = [order[k : k + size] for k in range(0, len(order), size)]
    if training.batch_order == "grouped_shuffled":
        # Hugging Face's order runs each mega-batch from long to short sentences; its library has no
        # shuffled variant (the legacy examples' SortishSampler does this), so the permutation is ours.
        rest = torch.randperm(len(batches) - 1, generator=generator).tolist()
        batches = [batches[0]] + [batches[1 + i] for i in rest]
    return batches


def selection_score(scores: dict[str, float], training: TrainingConfig) -> list[float]:
    """What early stopping maximises: the chosen metric, ties (RE F1 is often 0 in the first epochs) going to
    the better NER+RE micro F1 mean."""
    strict_mean = (scores[metric_name("ner", "micro", "f1")] + scores[metric_name("re", "micro", "f1")]) / 2
    return [scores[training.early_stopping_metric], strict_mean]


class Trainer:
    """Trains one configuration into a run directory; `run()` follows the configured protocol.

    ``on_epoch`` receives each epoch's log row (losses, ``dev_*`` scores, ``lr_*`` at the epoch's end) once
    the epoch is checkpointed; an exception it raises stops training (a tuner pruning a hopeless run) and
    propagates to the caller.
    """

    def __init__(
        self,
        config: Config,
        output: str | Path,
        runtime: Runtime | None = None,
        progress: bool = True,
        log: Log = print,
        on_epoch: EpochCallback | None = None,
    ) -> None:
        self.config = config
        self.output = Path(output)
        self.runtime = runtime or Runtime()
        self.progress = progress
        self.log = log
        self.on_epoch = on_epoch
        self.device = self.runtime.apply()

    def run(self, data: Datasets | None = None, resume: bool = False) -> dict[str, Any]:
        """Train on ``data`` (default: the files the configuration names) and test on its test split."""
        self._prepare_output(resume)
        datasets = data if data is not None else load_datasets(self.config, self.log)
        if "train" not in datasets.splits:
            raise ValueError("no training data: the datasets hold no 'train' split")
        if self.config.training.protocol == "retrain" and "train_dev" not in datasets.splits:
            raise ValueError("training.protocol = 'retrain' needs a 'train_dev' split")
        labels = build_labels(self.config, datasets)
        static, chars = model_parts(self.config, datasets, self.log)
        parts = (labels, static, chars)
        training = self.config.training
        dev = datasets.get("dev")
        by_dev = self.config.model.threshold == "dev"
        if by_dev and dev is None:
            raise ValueError(
                "model.threshold = 'dev' chooses the relation threshold on dev: give a dev set or a number"
            )
        if training.protocol == "retrain":
            if training.retrain_epochs is None:
                selection = self._fit("select", datasets.get("train"), dev, training.max_epochs, parts, resume)
                epochs = selection["best_epoch"]
                self.log(f"retraining on train+dev for the {epochs} epochs chosen on dev")
            else:
                if by_dev:
                    raise ValueError("model.threshold = 'dev' needs the selection phase: unset training.retrain_epochs")
                selection, epochs = None, training.retrain_epochs
                self.log(f"retraining on train+dev for {epochs} epochs (training.retrain_epochs)")
            schedule = epochs
            if self.config.stretches_retrain_schedule():
                schedule = training.max_epochs
                self.log(f"the encoder's learning-rate schedule spans max_epochs ({schedule}), stopping after {epochs}")
            threshold = selection["threshold"] if by_dev else None  # the selection model's, under retrain
            final = self._fit("final", datasets.get("train_dev"), None, epochs, parts, resume, threshold, schedule)
            final["selection"] = selection
        else:
            final = self._fit("final", datasets.get("train"), dev, training.max_epochs, parts, resume)
        metrics: dict[str, Any] = {"training": final}
        test = datasets.get("test")
        if test is not None:
            result = Predictor.load(self.output / "model", device=self.device).evaluate(test)
            metrics["test"] = result.to_dict()
            self.log("test set:\n" + result.format_table())
        _write_json_atomic(self.output / "metrics.json", metrics)
        return metrics

    def _prepare_output(self, resume: bool) -> None:
        config_path = self.output / "config.json"
        if config_path.exists():
            if not resume:
                raise FileExistsError(
                    f"{self.output} holds a run already: pass --resume to continue it, or choose a new directory"
                )
            if load_config(config_path) != self.config:
                raise ValueError(f"{config_path}: the configuration differs from the one the run was started with")
        self.output.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(config_path, self.config.to_dict())

    def _features(self, model: JointModel, sentences: Sequence[Sentence] | None) -> list[torch.Tensor] | None:
        encoder = model.embedder.contextual
        if sentences is None or encoder is None or encoder.finetuned:
            return None
        cache = FeatureCache(encoder, self.runtime.feature_cache_dir())
        return cache.features([d.tokens for d in sentences], progress=self.progress)

    def _fit(
        self,
        phase: str,
        train: list[Sentence],
        dev: list[Sentence] | None,
        max_epochs: int,
        parts: tuple,
        resume: bool,
        threshold: float | None = None,
        schedule_epochs: int | None = None,
    ) -> dict[str, Any]:
        """Train one model; with ``dev``, keep the best epoch and stop early, else train ``max_epochs``
        (saved with ``threshold`` when the relation threshold is chosen on dev). A fine-tuned encoder's
        learning-rate schedule spans ``schedule_epochs`` epochs (default ``max_epochs``)."""
        state_path = self.output / f"{phase}.json"
        model_dir = self.output / ("select" if phase == "select" else "model")
        if resume and state_path.exists():
            self.log(f"phase {phase!r} finished already; skipping")
            return json.loads(state_path.read_text(encoding="utf-8"))
        config, training = self.config, self.config.training
        generator = set_seed(training.seed)
        labels, static, chars = parts
        model, featurizer = build_model(config, labels, chars, static_embedding(config, *static) if static else None)
        model.to(self.device)
        predictor = Predictor(model, featurizer, config)
        trainable = model.trainable_parameters()
        self.log(f"phase {phase!r}: {trainable:,} trainable parameters")
        steps_per_epoch = math.ceil(len(train) / training.batch_size)
        optimisation = Optimisation.build(model, config, steps_per_epoch * (schedule_epochs or max_epochs))
        train_features = self._features(model, train)
        dev_features = self._features(model, dev)
        checkpoint = self.output / f"checkpoint-{phase}"
        state = LoopState()
        if resume and checkpoint.exists():
            state = LoopState(
                **load_checkpoint(checkpoint, model, optimisation.optimizer, optimisation.scheduler, generator)
            )
            self.log(f"resumed phase {phase!r} after epoch {state.epoch}")
        loop = train_epochs(
            predictor,
            optimisation,
            train,
            train_features,
            dev,
            dev_features,
            generator,
            state,
            max_epochs,
            training,
            self.progress,
        )
        for result in loop:
            epoch, losses = result.epoch, result.losses
            row: dict[str, Any] = {
                "phase": phase,
                "epoch": epoch,
                **losses,
                "seconds": result.seconds,
                **optimisation.learning_rates(),
            }
            if result.dev_scores is not None:
                scores = result.dev_scores
                row.update({f"dev_{k}": v for k, v in scores.items()})
                if result.dev_threshold is not None:
                    row["dev_threshold"] = result.dev_threshold
                score = selection_score(scores, training)
                if score > state.best_score:
                    state.best_score, state.best_epoch = score, epoch
                    state.best_threshold, state.best_threshold_scores = (
                        result.dev_threshold,
                        result.dev_threshold_scores,
                    )
                    saved = _with_threshold(config, result.dev_threshold)
                    save_model(model, featurizer, saved, model_dir, self._meta(model, phase, epoch, score[0], train))
                self.log(
                    f"epoch {epoch}: loss {losses['loss']:.3f}, dev NER {scores['ner_micro_f1']:.2f}"
                    f" RE {scores['re_micro_f1']:.2f} (micro F1), best epoch {state.best_epoch}"
                )
            else:
                state.best_epoch = epoch
                self.log(f"epoch {epoch}: loss {losses['loss']:.3f}")
            state.log.append(row)
            self._write_log(state.log, phase)
            save_checkpoint(
                checkpoint, model, optimisation.optimizer, optimisation.scheduler, generator, state.to_dict()
            )
            if self.on_epoch is not None:
                self.on_epoch(dict(row))
            if dev is not None and epoch - state.best_epoch >= training.patience:
                self.log(f"no dev improvement for {training.patience} epochs: stopping")
                break
        if dev is None:
            saved = _with_threshold(config, threshold)
            save_model(model, featurizer, saved, model_dir, self._meta(model, phase, state.epoch, None, train))
        elif state.best_threshold is not None:
            shown = ", ".join(f"{t}: {v:.2f}" for t, v in (state.best_threshold_scores or {}).items())
            self.log(
                f"relation threshold chosen on dev: {state.best_threshold}"
                f" (dev {training.early_stopping_metric} of epoch {state.best_epoch} at each threshold: {shown})"
            )
        summary = {
            "phase": phase,
            "best_epoch": state.best_epoch,
            "best_dev_score": state.best_score[0] if dev is not None else None,
            "epochs_run": state.epoch,
            "trainable_parameters": trainable,
            "train_seconds": round(sum(r["seconds"] for r in state.log), 2),
            "train_documents": len(train),
        }
        if config.model.threshold == "dev":
            summary["threshold"] = state.best_threshold if dev is not None else threshold
            summary["dev_scores_by_threshold"] = state.best_threshold_scores
        _write_json_atomic(state_path, summary)
        shutil.rmtree(checkpoint, ignore_errors=True)
        return summary

    def _meta(
        self, model: JointModel, phase: str, epoch: int, dev_score: float | None, train: Sequence[Sentence]
    ) -> dict[str, Any]:
        return {
            "deeprel_version": __version__,
            "phase": phase,
            "epoch": epoch,
            "dev_score": dev_score,
            "early_stopping_metric": self.config.training.early_stopping_metric,
            "train_documents": len(train),
            "trainable_parameters": model.trainable_parameters(),
            "all_parameters": sum(p.numel() for p in model.parameters()),
        }

    def _write_log(self, rows: list[dict[str, Any]], phase: str) -> None:
        previous = []
        path = self.output / "log.jsonl"
        if path.exists():
            previous = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        rows_all = [r for r in previous if r["phase"] != phase] + rows
        write_text_atomically(path, "".join(json.dumps(r) + "\n" for r in rows_all))
        plot_learning_curve(rows_all, self.output / "learning_curve.png")


def _with_threshold(config: Config, threshold: float | None) -> Config:
    """The configuration a model is saved with: a threshold chosen on dev replaces ``"dev"``."""
    return config if threshold is None else config.with_overrides({"model.threshold": threshold})


def _write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomically(path, json.dumps(data, indent=2) + "\n")


def warmup_then_decay(step: int, total: int, warmup_fraction: float) -> float:
    """The fine-tuned encoder's learning-rate factor at ``step`` of ``total``: linear warm-up over the
    first ``warmup_fraction`` of the steps, then linear decay to zero at the last step."""
    warmup = int(total * warmup_fraction)
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def train(
    config: Config,
    output: str | Path,
    data: Datasets | None = None,
    runtime: Runtime | None = None,
    resume: bool = False,
    progress: bool = True,
    log: Log = print,
    on_epoch: EpochCallback | None = None,
) -> dict[str, Any]:
    """Train ``config`` into the run directory ``output``; returns the metrics written to metrics.json.

    ``data`` gives the sentences directly (default: the files ``config.data`` names); ``runtime`` says
    where to run; ``on_epoch`` is called with each epoch's log row (see `Trainer`).
    """
    trainer = Trainer(config, output, runtime=runtime, progress=progress, log=log, on_epoch=on_epoch)
    return trainer.run(data=data, resume=resume)
