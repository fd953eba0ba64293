"""Running a depth and hyperparameter search as an Optuna study that several workers share and that survives kills.

Each trial trains one configuration with the dev protocol into ``STUDY_DIR/trials/<number>/`` and is
scored on dev. Everything about the study lives in its storage (SQLite in the study directory by
default, or any SQLAlchemy URL): workers on one or several machines join the same study, and a rerun
after a kill only does what is left. Running trials send heartbeats; one that stops (its worker was
killed) is marked failed after a grace period and queued again with the same parameters.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import optuna
import sqlalchemy
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import FrozenTrial, TrialState

from deeprel.config import Config, ConfigError, parse_config
from deeprel.runtime import Runtime
from deeprel.training.trainer import Datasets, load_datasets, train
from deeprel.tuning.objective import Objective, parse_objective
from deeprel.tuning.space import DEPTH_KEYS, SearchSpace

Log = Callable[[str], None]

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
WORKER = f"{socket.gethostname()}:{os.getpid()}"
# A killed trial is queued again this often at most, so a configuration that kills its worker
# (running out of memory, say) cannot hold the study up for ever.
MAX_RETRIES = 2
_ATTR = "deeprel"  # the study's user attribute holding what every worker must agree on


@dataclass(frozen=True)
class TuneSettings:
    study_dir: Path
    storage: str | None = None
    study_name: str | None = None
    trials: int = 20
    timeout: float | None = None
    objective: Objective = field(default_factory=lambda: parse_objective("re_micro_f1"))
    space: SearchSpace = field(default_factory=SearchSpace)
    space_source: str = "the default search space"
    pruner: Literal["median", "none"] = "median"
    warmup_epochs: int = 5
    startup_trials: int = 5
    seed: int = 1
    heartbeat: int = 30
    enqueue_base: bool = False
    progress: bool = False
    command: str = ""
    runtime: Runtime = field(default_factory=Runtime)  # where each trial trains

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{(self.study_dir / 'study.db').resolve()}"

    @property
    def storage_for_reports(self) -> str:
        """The storage as reports save it: the default SQLite file under the study directory as the command
        named it (not this machine's absolute path), any other URL without its password."""
        if self.storage is None:
            return f"sqlite:///{self.study_dir / 'study.db'}"
        return storage_label(self.storage)

    @property
    def name(self) -> str:
        return self.study_name or self.study_dir.resolve().name


def storage_label(url: str) -> str:
    """The storage URL as it may be printed and saved: without a password."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return repr(url)  # not a URL at all, so it holds no password to hide


_TABLE_RACE = (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError, sqlalchemy.exc.OperationalError)


def open_storage(url: str, heartbeat: int | None = None, attempts: int = 5) -> RDBStorage:
    """An RDB storage, with heartbeats and the retry of killed trials when ``heartbeat`` is given.

    Workers that start together on a fresh database race to create Optuna's tables; the loser sees a
    duplicate-table error and simply tries again once the tables exist.
    """
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    heartbeat_kwargs: dict[str, Any] = {}
    for attempt in range(1, attempts + 1):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)
                if heartbeat is not None:
                    heartbeat_kwargs = {
                        "heartbeat_interval": heartbeat,
                        # Three missed beats: a busy worker (a long evaluation, a locked SQLite file) is not dead.
                        "grace_period": 3 * heartbeat,
                        "heartbeat_stale_trial_callback": RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES),
                    }
                return RDBStorage(url, engine_kwargs=engine_kwargs, **heartbeat_kwargs)
        except _TABLE_RACE as error:
            # SQLite reports the lost race as an OperationalError ("table ... already exists").
            if isinstance(error, sqlalchemy.exc.OperationalError) and "already exists" not in str(error):
                raise ValueError(f"cannot open the study storage {storage_label(url)}: {error}") from None
            if attempt == attempts:
                raise ValueError(f"cannot set up the study storage {storage_label(url)}: {error}") from None
            time.sleep(0.5 * attempt)
        except (sqlalchemy.exc.ArgumentError, ImportError) as error:
            raise ValueError(f"cannot open the study storage {storage_label(url)}: {error}") from None
    raise AssertionError("unreachable")


def study_record(base: Config, settings: TuneSettings) -> dict[str, Any]:
    """What every worker of a study must share: the base configuration, objective, space."""
    config = base.to_dict()
    space = settings.space.model_dump(mode="json")
    return {"base_config": config, "objective": str(settings.objective), "space": space}


def load_study(settings: TuneSettings) -> optuna.Study:
    """An existing study, for reports; a missing one is a ValueError naming the storage."""
    url = settings.storage_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise ValueError(f"no study storage at {url.removeprefix('sqlite:///')}")
    storage = open_storage(url)
    try:
        return optuna.load_study(study_name=settings.name, storage=storage)
    except KeyError:
        raise ValueError(f"no study named {settings.name!r} in {storage_label(settings.storage_url)}") from None


def study_attributes(study: optuna.Study) -> dict[str, Any]:
    """The record `study_record` saved in the study; a study made by other means is a ValueError."""
    record = study.user_attrs.get(_ATTR)
    if record is None:
        raise ValueError(f"study {study.study_name!r} was not made by deeprel tune")
    return record


def check_record(
    study: optuna.Study,
    base: Config,
    settings: TuneSettings,
    keys: tuple[str, ...] = ("base_config", "objective", "space"),
) -> None:
    """Refuse to mix trials of different base configurations, objectives or spaces in one study."""
    record = dict(study_attributes(study))
    if isinstance(record.get("base_config"), dict):  # through the model: defaults filled, old run settings dropped
        record["base_config"] = parse_config(record["base_config"], source="the study's base configuration").to_dict()
    mine = study_record(base, settings)
    differs = [key for key in keys if record.get(key) != mine[key]]
    if differs:
        raise ValueError(
            f"study {study.study_name!r} in {storage_label(settings.storage_url)} was started with a different"
            f" {' and '.join(differs)}; use another --study-name or --study-dir for a new search"
        )


def open_study(base: Config, settings: TuneSettings) -> optuna.Study:
    """Create or join the study; the sampler's seed also counts the trials already there, so a resumed
    run or a later worker does not replay the random proposals of the first."""
    storage = open_storage(settings.storage_url, heartbeat=settings.heartbeat)
    pruner: optuna.pruners.BasePruner = make_pruner(settings.pruner, settings.warmup_epochs, settings.startup_trials)
    study = optuna.create_study(
        study_name=settings.name, storage=storage, direction="maximize", pruner=pruner, load_if_exists=True
    )
    if _ATTR not in study.user_attrs and not study.get_trials(deepcopy=False):
        study.set_user_attr(_ATTR, study_record(base, settings))
    check_record(study, base, settings)
    if settings.enqueue_base and not study.get_trials(deepcopy=False):
        # skip_if_exists: two workers starting together on a new study enqueue it once.
        study.enqueue_trial(base_params(base, settings.space), skip_if_exists=True)
    sampler = optuna.samplers.TPESampler(seed=settings.seed + len(study.get_trials(deepcopy=False)), constant_liar=True)
    return optuna.load_study(study_name=settings.name, storage=storage, sampler=sampler, pruner=pruner)


def base_params(base: Config, space: SearchSpace) -> dict[str, Any]:
    """The base configuration's own value of every searched key: a trial's params for the base itself."""
    return {dotted: base.value_of(dotted) for dotted in (*DEPTH_KEYS, *space.params)}


def make_pruner(kind: Literal["median", "none"], warmup_epochs: int, startup_trials: int) -> optuna.pruners.BasePruner:
    """Median pruning once ``startup_trials`` trials have finished; no trial is pruned in its first
    ``warmup_epochs`` epochs (steps are epoch numbers, from 1)."""
    if kind == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=warmup_epochs + 1)


def trial_config(base: Config, params: dict[str, Any], objective: Objective) -> Config:
    """What a trial trains: the base with the trial's values, the dev protocol, and no test set, since a
    search must never look at test scores. Early stopping follows the objective when it is one metric."""
    return best_config(base, params, objective).with_overrides(
        {"training.protocol": "dev", "training.retrain_epochs": None, "data.test": None, "data.train_dev": None}
    )


def best_config(base: Config, params: dict[str, Any], objective: Objective) -> Config:
    """The base configuration (its own protocol and data) with a trial's values and early stopping metric."""
    changes = dict(params)
    if objective.metric is not None:
        changes["training.early_stopping_metric"] = objective.metric
    return base.with_overrides(changes)


def dev_scores(row: dict[str, Any]) -> dict[str, float]:
    """A trainer log row's dev scores, keyed by metric name."""
    return {key.removeprefix("dev_"): value for key, value in row.items() if key.startswith("dev_")}


@dataclass
class EpochReporter:
    """The trainer's per-epoch hook for one trial: reports the objective and prunes a hopeless trial."""

    trial: optuna.Trial
    objective: Objective
    rows: dict[int, dict[str, Any]] = field(default_factory=dict)

    def __call__(self, row: dict[str, Any]) -> None:
        epoch = row["epoch"]
        self.rows[epoch] = row
        value = self.objective.score(dev_scores(row))
        self.trial.report(value, epoch)
        self.trial.set_user_attr("epochs", epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"dev {self.objective} = {value:.2f} after epoch {epoch}, below the median")


@dataclass
class TrialRunner:
    """Optuna's objective function: sample, train, return the objective on dev at the epoch kept."""

    base: Config
    settings: TuneSettings
    log: Log
    _data: dict[str, Datasets] = field(default_factory=dict)  # read once per worker, by data section

    def datasets(self, config: Config) -> Datasets:
        """The trial's splits: read on a worker's first trial, then passed to every trial with the same data."""
        key = config.data.model_dump_json()
        if key not in self._data:
            self._data[key] = load_datasets(config, log=self.log if self.settings.progress else _silent)
        return self._data[key]

    def __call__(self, trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", WORKER)
        params = self.settings.space.suggest(trial)
        run_dir = self.settings.study_dir / "trials" / str(trial.number)
        if run_dir.exists():
            raise FileExistsError(
                f"{run_dir} exists already, so {self.settings.study_dir} holds the trials of another study"
                " (a new storage or study name?): tune into a fresh --study-dir"
            )
        trial.set_user_attr("run_dir", str(run_dir))
        reporter = EpochReporter(trial, self.settings.objective)
        config = trial_config(self.base, params, self.settings.objective)
        shown = ", ".join(f"{key.rpartition('.')[2]}={format_value(value)}" for key, value in params.items())
        self.log(f"trial {trial.number}: {shown}")
        training_log = (lambda m: self.log(f"trial {trial.number}: {m}")) if self.settings.progress else _silent
        try:
            metrics = train(
                config,
                run_dir,
                data=self.datasets(config),
                runtime=self.settings.runtime,
                progress=self.settings.progress,
                log=training_log,
                on_epoch=reporter,
            )
        except optuna.TrialPruned:
            shutil.rmtree(run_dir / "checkpoint-final", ignore_errors=True)  # a pruned trial is never resumed
            raise
        except BaseException as error:
            trial.set_user_attr("error", f"{type(error).__name__}: {error}")
            raise
        training = metrics["training"]
        trial.set_user_attr("epochs", training["epochs_run"])
        trial.set_user_attr("best_epoch", training["best_epoch"])
        kept = dev_scores(reporter.rows[training["best_epoch"]])
        trial.set_user_attr("dev_scores", kept)
        return self.settings.objective.score(kept)


def _silent(_: str) -> None:
    pass


def format_value(value: Any) -> str:
    """Floats to four significant digits (learning rates, dropouts), anything else as it is."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@dataclass
class Quota:
    """Stops a worker once the study has ``target`` finished (complete or pruned) trials, counting all workers.

    A worker starts a trial only while the finished and running trials fall short of the target; when
    they do not, it waits for the running ones, which either finish or, if their worker was killed,
    go stale, are failed and queued again, and are then picked up here.
    """

    target: int
    poll_seconds: float
    deadline: float | None = None

    def work_left(self, study: optuna.Study) -> bool:
        while True:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)
                fail_stale_trials(study)
            counts = Counter(t.state for t in study.get_trials(deepcopy=False))
            finished = sum(counts[state] for state in FINISHED)
            if finished >= self.target:
                return False
            if finished + counts[TrialState.RUNNING] < self.target:
                return True
            if self.deadline is not None and time.monotonic() >= self.deadline:
                return False
            time.sleep(self.poll_seconds)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if not self.work_left(study):
            study.stop()


def run_trials(
    base: Config,
    settings: TuneSettings,
    after_trial: Callable[[optuna.Study, FrozenTrial], None],
    log: Log = print,
) -> optuna.Study:
    """Join the study and run trials until it has ``settings.trials`` finished ones (all workers together)."""
    if base.data.dev is None and base.data.dev_fraction is None:
        raise ConfigError(
            "tuning needs a dev set: the configuration has no data.dev; with no dev file (ADE),"
            " hold out part of train with data.dev_fraction"
        )
    settings.space.check(base, settings.space_source)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # trials are reported through ``log`` instead
    study = open_study(base, settings)
    started = time.monotonic()
    quota = Quota(
        settings.trials,
        poll_seconds=settings.heartbeat,
        deadline=started + settings.timeout if settings.timeout is not None else None,
    )
    if quota.work_left(study):
        study.optimize(
            TrialRunner(base, settings, log),
            timeout=settings.timeout,
            callbacks=[after_trial, quota],
            gc_after_trial=True,
        )
    return study
