"""Training: data, vocabularies, the epoch loop with early stopping, and the train+dev retrain protocol.

A run directory holds
    config.json            the configuration the run was started with
    log.jsonl              one line per epoch and phase (losses, dev scores, seconds)
    learning_curve.png     losses and dev F1 per epoch
    select/                protocol "retrain": the best-on-dev model of the selection phase
    model/                 the final model (a model directory, see deeprel.model.files)
    checkpoint-<phase>/    the last finished epoch, for --resume (removed when the phase ends)
    metrics.json           dev and test scores of the final model
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from deeprel import __version__
from deeprel.atomic import write_text_atomically
from deeprel.config import Config, load_config, resolve_data_path
from deeprel.data.readers import read_documents
from deeprel.data.tagging import OverlapStats, resolve_all
from deeprel.data.types import Document
from deeprel.embeddings.chars import CharVocabulary
from deeprel.embeddings.contextual import FeatureCache, default_cache_dir
from deeprel.embeddings.static import candidate_keys, load_vectors
from deeprel.evaluation.metrics import EvaluationResult, evaluate
from deeprel.inference.predictor import predict_documents
from deeprel.model.files import (
    ENCODER_PREFIX,
    build_model,
    load_model,
    save_model,
    static_embedding,
)
from deeprel.model.inputs import Featurizer, Labels
from deeprel.model.joint import JointModel
from deeprel.training.checkpoint import load_checkpoint, save_checkpoint
from deeprel.training.curves import plot_learning_curve
from deeprel.training.seeding import pick_device, set_seed

Log = Callable[[str], None]
EpochCallback = Callable[[dict[str, Any]], None]


@dataclass
class Split:
    name: str
    path: Path
    documents: list[Document]
    overlaps: OverlapStats


@dataclass
class Datasets:
    splits: dict[str, Split] = field(default_factory=dict)

    def get(self, name: str) -> list[Document] | None:
        return self.splits[name].documents if name in self.splits else None


def split_dev(documents: Sequence[Document], fraction: float, seed: int) -> tuple[list[Document], list[Document]]:
    """``(rest, dev)``: a seeded ``fraction`` of the documents (at least one) as dev; both keep file order."""
    size = max(1, round(fraction * len(documents)))
    if size >= len(documents):
        raise ValueError(f"cannot hold out {size} of {len(documents)} documents as dev")
    chosen = set(random.Random(seed).sample(range(len(documents)), size))
    return (
        [d for i, d in enumerate(documents) if i not in chosen],
        [d for i, d in enumerate(documents) if i in chosen],
    )


def load_datasets(config: Config, log: Log = print) -> Datasets:
    """Read every configured split and make its entities BIO-representable, reporting what that removed.

    With ``data.dev_fraction`` the dev split is a seeded share of train's documents (after
    ``max_train_documents``), and train keeps the rest."""
    data = config.data
    datasets = Datasets()
    for name in ("train", "dev", "test", "train_dev"):
        path = getattr(data, name)  # data.dev is None whenever data.dev_fraction is set
        if path is None:
            continue
        resolved = resolve_data_path(path)
        documents = read_documents(resolved, fmt=data.format)
        if name != "test" and (empty := sum(1 for d in documents if not d.tokens)):
            log(f"{name}: skipping {empty} empty documents")
            documents = [d for d in documents if d.tokens]
        limit = data.max_train_documents if name in ("train", "train_dev") else data.max_eval_documents
        documents = documents[:limit] if limit else documents
        parts = [(name, documents)]
        if name == "train" and data.dev_fraction is not None:
            try:
                rest, held_out = split_dev(documents, data.dev_fraction, data.dev_seed)
            except ValueError as error:
                raise ValueError(f"{resolved}: data.dev_fraction: {error}") from None
            log(f"dev: {len(held_out)} of {len(documents)} train documents held out (data.dev_fraction)")
            parts = [("train", rest), ("dev", held_out)]
        for part, documents in parts:
            if part != "test":
                # Training targets must be BIO-representable; test gold stays complete (honest evaluation).
                documents, stats = resolve_all(documents, data.overlap_policy)
            else:
                stats = OverlapStats()
            if stats.entities_removed:
                log(
                    f"{part}: overlap policy {data.overlap_policy!r} removed {stats.entities_removed} entities"
                    f" and {stats.relations_removed} relations in {stats.documents_affected} documents"
                )
            datasets.splits[part] = Split(part, resolved, documents, stats)
    if "train" not in datasets.splits:
        raise ValueError("the configuration names no training data (data.train)")
    return datasets


def build_labels(config: Config, datasets: Datasets) -> Labels:
    if config.data.types:
        types = json.loads(resolve_data_path(config.data.types).read_text(encoding="utf-8"))
        return Labels(tuple(sorted(types["entities"])), tuple(sorted(types["relations"])))
    documents = [d for name in ("train", "train_dev") for d in (datasets.get(name) or [])]
    return Labels.from_documents(documents)


def model_parts(config: Config, datasets: Datasets, labels: Labels, log: Log) -> tuple[Any, CharVocabulary | None]:
    """The static embedding (vectors of the data's words plus the file's most frequent ones) and chars."""
    training = [d for name in ("train", "train_dev") for d in (datasets.get(name) or [])]
    chars = CharVocabulary.build(t for d in training for t in d.tokens) if config.embeddings.chars.enabled else None
    static = None
    if config.embeddings.static.enabled:
        settings = config.embeddings.static
        words = {
            key
            for split in datasets.splits.values()
            for d in split.documents
            for t in d.tokens
            for key in candidate_keys(t, settings.lowercase)
        }
        started = time.perf_counter()
        names, matrix = load_vectors(resolve_data_path(settings.path), words, settings.lowercase, settings.max_words)
        seconds = time.perf_counter() - started
        log(f"static vectors: {len(names)} words of {matrix.shape[1]} dimensions in {seconds:.1f}s")
        static = (names, matrix)
    return static, chars


class Trainer:
    """Trains one configuration into a run directory; `run()` follows the configured protocol.

    ``on_epoch`` receives each epoch's log row (losses, ``dev_*`` scores) once the epoch is checkpointed;
    an exception it raises stops training (a tuner pruning a hopeless run) and propagates to the caller.
    """

    def __init__(
        self,
        config: Config,
        output: str | Path,
        progress: bool = True,
        log: Log = print,
        on_epoch: EpochCallback | None = None,
    ) -> None:
        self.config = config
        self.output = Path(output)
        self.progress = progress
        self.log = log
        self.on_epoch = on_epoch
        self.device = pick_device(config.training.device)
        if config.training.num_threads:
            torch.set_num_threads(config.training.num_threads)

    def run(self, resume: bool = False) -> dict[str, Any]:
        self._prepare_output(resume)
        datasets = load_datasets(self.config, self.log)
        labels = build_labels(self.config, datasets)
        static, chars = model_parts(self.config, datasets, labels, self.log)
        parts = (labels, static, chars)
        training = self.config.training
        dev = datasets.get("dev")
        if training.protocol == "retrain":
            if training.retrain_epochs is None:
                selection = self._fit("select", datasets.get("train"), dev, training.max_epochs, parts, resume)
                epochs = selection["best_epoch"]
                self.log(f"retraining on train+dev for the {epochs} epochs chosen on dev")
            else:
                selection, epochs = None, training.retrain_epochs
                self.log(f"retraining on train+dev for {epochs} epochs (training.retrain_epochs)")
            final = self._fit("final", datasets.get("train_dev"), None, epochs, parts, resume)
            final["selection"] = selection
        else:
            final = self._fit("final", datasets.get("train"), dev, training.max_epochs, parts, resume)
        metrics: dict[str, Any] = {"training": final}
        test = datasets.get("test")
        if test is not None:
            loaded = load_model(self.output / "model", device=self.device)
            result = evaluate_model(loaded.model, loaded.featurizer, test)
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
            if _result_settings(load_config(config_path)) != _result_settings(self.config):
                raise ValueError(f"{config_path}: the configuration differs from the one the run was started with")
        self.output.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(config_path, self.config.to_dict())

    def _features(self, model: JointModel, documents: Sequence[Document] | None) -> list[torch.Tensor] | None:
        encoder = model.embedder.contextual
        if documents is None or encoder is None or encoder.finetuned:
            return None
        cache = FeatureCache(encoder, default_cache_dir(self.config.embeddings.contextual))
        return cache.features([d.tokens for d in documents], progress=self.progress)

    def _fit(
        self,
        phase: str,
        train: list[Document],
        dev: list[Document] | None,
        max_epochs: int,
        parts: tuple,
        resume: bool,
    ) -> dict[str, Any]:
        """Train one model; with ``dev``, keep the best epoch and stop early, else train ``max_epochs``."""
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
        trainable = model.trainable_parameters()
        self.log(f"phase {phase!r}: {trainable:,} trainable parameters")
        optimizer = self._optimizer(model)
        train_features = self._features(model, train)
        dev_features = self._features(model, dev)
        steps_per_epoch = math.ceil(len(train) / training.batch_size)
        total_steps = steps_per_epoch * max_epochs
        checkpoint = self.output / f"checkpoint-{phase}"
        state: dict[str, Any] = {"epoch": 0, "step": 0, "best_epoch": 0, "best_score": [-1.0, -1.0], "log": []}
        if resume and checkpoint.exists():
            state = load_checkpoint(checkpoint, model, optimizer, generator)
            self.log(f"resumed phase {phase!r} after epoch {state['epoch']}")
        while state["epoch"] < max_epochs:
            epoch = state["epoch"] + 1
            started = time.perf_counter()
            losses = self._train_epoch(
                model, featurizer, optimizer, train, train_features, generator, state, total_steps, epoch
            )
            row: dict[str, Any] = {
                "phase": phase,
                "epoch": epoch,
                **losses,
                "seconds": round(time.perf_counter() - started, 2),
            }
            if dev is not None:
                scores = evaluate_model(model, featurizer, dev, dev_features).flat()
                row.update({f"dev_{k}": v for k, v in scores.items()})
                # Ties on the chosen metric (RE F1 is often 0 in the first epochs) go to the better NER+RE mean.
                score = [scores[training.early_stopping_metric], (scores["ner_micro_f1"] + scores["re_micro_f1"]) / 2]
                if score > state["best_score"]:
                    state["best_score"], state["best_epoch"] = score, epoch
                    save_model(model, featurizer, model_dir, self._meta(model, phase, epoch, score[0], len(train)))
                self.log(
                    f"epoch {epoch}: loss {losses['loss']:.3f}, dev NER {scores['ner_micro_f1']:.2f}"
                    f" RE {scores['re_micro_f1']:.2f} (micro F1), best epoch {state['best_epoch']}"
                )
            else:
                state["best_epoch"] = epoch
                self.log(f"epoch {epoch}: loss {losses['loss']:.3f}")
            state["epoch"] = epoch
            state["log"].append(row)
            self._write_log(state["log"], phase)
            save_checkpoint(checkpoint, model, optimizer, generator, state)
            if self.on_epoch is not None:
                self.on_epoch(dict(row))
            if dev is not None and epoch - state["best_epoch"] >= training.patience:
                self.log(f"no dev improvement for {training.patience} epochs: stopping")
                break
        if dev is None:
            save_model(model, featurizer, model_dir, self._meta(model, phase, state["epoch"], None, len(train)))
        summary = {
            "phase": phase,
            "best_epoch": state["best_epoch"],
            "best_dev_score": state["best_score"][0] if dev is not None else None,
            "epochs_run": state["epoch"],
            "trainable_parameters": trainable,
            "train_seconds": round(sum(r["seconds"] for r in state["log"]), 2),
            "train_documents": len(train),
        }
        _write_json_atomic(state_path, summary)
        shutil.rmtree(checkpoint, ignore_errors=True)
        return summary

    def _optimizer(self, model: JointModel) -> torch.optim.Optimizer:
        training = self.config.training
        encoder_params = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith(ENCODER_PREFIX)]
        other_params = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith(ENCODER_PREFIX)]
        groups = [{"params": other_params, "lr": training.learning_rate, "name": "model"}]
        if encoder_params:
            lr = self.config.embeddings.contextual.learning_rate
            groups.append({"params": encoder_params, "lr": lr, "base_lr": lr, "name": "encoder"})
        return torch.optim.Adam(groups)

    def _train_epoch(
        self, model, featurizer, optimizer, train, features, generator, state, total_steps, epoch
    ) -> dict[str, float]:
        training = self.config.training
        model.train()
        order = torch.randperm(len(train), generator=generator).tolist()
        batches = [order[k : k + training.batch_size] for k in range(0, len(order), training.batch_size)]
        sums = {"loss": 0.0, "ner_loss": 0.0, "re_loss": 0.0}
        bar = tqdm(batches, desc=f"epoch {epoch}", unit="batch", disable=not self.progress, leave=False)
        for indices in bar:
            batch = featurizer.batch(
                [train[i] for i in indices],
                features=[features[i] for i in indices] if features is not None else None,
                targets=True,
            ).to(self.device)
            for group in optimizer.param_groups:
                if group["name"] == "encoder":
                    warmup = self.config.embeddings.contextual.warmup_fraction
                    group["lr"] = group["base_lr"] * warmup_then_decay(state["step"], total_steps, warmup)
            optimizer.zero_grad()
            loss, parts = model.loss(batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), training.clip_norm)
            optimizer.step()
            state["step"] += 1
            sums["loss"] += loss.item()
            sums["ner_loss"] += parts["ner_loss"]
            sums["re_loss"] += parts["re_loss"]
            bar.set_postfix(loss=f"{loss.item():.3f}")
        return {k: round(v / max(1, len(batches)), 4) for k, v in sums.items()}

    def _meta(
        self, model: JointModel, phase: str, epoch: int, dev_score: float | None, documents: int
    ) -> dict[str, Any]:
        return {
            "deeprel_version": __version__,
            "phase": phase,
            "epoch": epoch,
            "dev_score": dev_score,
            "early_stopping_metric": self.config.training.early_stopping_metric,
            "train_documents": documents,
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


def evaluate_model(
    model: JointModel,
    featurizer: Featurizer,
    documents: Sequence[Document],
    features: Sequence[torch.Tensor] | None = None,
    threshold: float | None = None,
) -> EvaluationResult:
    """Predict on annotated documents and score the predictions against them, over the model's labels."""
    predicted = predict_documents(model, featurizer, documents, batch_size=32, features=features, threshold=threshold)
    labels = model.labels
    return evaluate(documents, predicted, labels.entity_types, labels.relation_types)


def _result_settings(config: Config) -> dict[str, Any]:
    """What a resumed run must share with its start: everything but where and on how many threads it runs."""
    tree = config.to_dict()
    del tree["training"]["device"], tree["training"]["num_threads"]
    return tree


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
    resume: bool = False,
    progress: bool = True,
    log: Log = print,
    on_epoch: EpochCallback | None = None,
) -> dict[str, Any]:
    """Train ``config`` into the run directory ``output``; returns the metrics written to metrics.json.

    ``on_epoch`` is called with each epoch's log row (see `Trainer`).
    """
    return Trainer(config, output, progress=progress, log=log, on_epoch=on_epoch).run(resume=resume)
