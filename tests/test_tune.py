"""deeprel tune: the search space, the objective, pruning, a study end to end, and resuming after a kill."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from optuna.trial import TrialState

from deeprel.cli import main
from deeprel.config import ConfigError, load_config
from deeprel.runtime import Runtime
from deeprel.training.trainer import train
from deeprel.tuning import OUTPUT_FILES, SearchSpace, TuneSettings, load_space, parse_objective, tune
from deeprel.tuning.report import config_to_toml
from deeprel.tuning.space import DEPTH_KEYS, CategoricalParam, DepthRanges
from deeprel.tuning.study import EpochReporter, base_params, make_pruner, open_study, storage_label

# Small hidden sizes keep every trial at a few seconds.
SMALL_SPACE = SearchSpace(
    params={**SearchSpace().params, "model.hidden_size": CategoricalParam(type="categorical", choices=[8, 16])}
)
SMALL_SPACE_TOML = '[params."model.hidden_size"]\ntype = "categorical"\nchoices = [8, 16]\n'


def small_config(tiny_config):
    """Trials of a few seconds: no pre-trained embeddings, tiny layers, a slice of data, three epochs."""
    return tiny_config.with_overrides(
        {
            "embeddings.contextual.enabled": False,
            "embeddings.static.enabled": False,
            "data.max_train_documents": 30,
            "data.max_eval_documents": 15,
            "model.hidden_size": 16,
            "model.ner_hidden_size": 16,
            "model.re_hidden_size": 8,
            "training.batch_size": 8,
            "training.max_epochs": 3,
            "training.patience": 3,
        }
    )


@pytest.fixture(scope="module")
def tune_config(tiny_config):
    return small_config(tiny_config)


def _feasible(depths: tuple[int, int, int]) -> bool:
    s, t_e, t_r = depths
    return s + t_e >= 1 and s + t_r >= 1


# --- the objective ---------------------------------------------------------------------------------


def test_objective_single_metric_and_weighted_sums() -> None:
    single = parse_objective("re_micro_f1")
    assert single.metric == "re_micro_f1" and str(single) == "re_micro_f1"
    assert single.score({"re_micro_f1": 61.5, "ner_micro_f1": 88.0}) == 61.5
    mixed = parse_objective(" 0.25*ner_micro_f1 + 0.75 * re_macro_f1 ")
    assert mixed.metric is None
    assert mixed.terms == ((0.25, "ner_micro_f1"), (0.75, "re_macro_f1"))
    assert mixed.score({"ner_micro_f1": 80.0, "re_macro_f1": 40.0}) == pytest.approx(50.0)
    assert parse_objective(str(mixed)) == mixed
    assert parse_objective("2*re_boundaries_micro_f1").metric is None  # weighted: not the plain metric


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("re_f1", "unknown metric 're_f1'"),
        ("0.5*ner_micro_f1+0.5*re_mikro_f1", "unknown metric 're_mikro_f1'"),
        ("0.5*", "cannot read the term '0.5\\*'"),
        ("re_micro_f1-ner_micro_f1", "cannot read the term"),
        ("0*re_micro_f1", "must be positive"),
        ("re_micro_f1+re_micro_f1", "twice"),
        ("", "cannot read the term ''"),
    ],
)
def test_objective_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_objective(text)


# --- the search space ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "depths",
    [DepthRanges(), DepthRanges(ner=(0, 0)), DepthRanges(shared=(0, 0), ner=(1, 2)), DepthRanges(re=(0, 0))],
    ids=["default", "no-ner-layers", "no-shared-layers", "no-re-layers"],
)
def test_sampled_depths_are_always_feasible(depths: DepthRanges) -> None:
    space = SearchSpace(depths=depths)
    seen = Counter()
    for sampler in (optuna.samplers.RandomSampler(seed=0), optuna.samplers.TPESampler(seed=0, n_startup_trials=10)):
        study = optuna.create_study(direction="maximize", sampler=sampler)
        for _ in range(150):
            trial = study.ask()
            values = space.suggest(trial)
            triple = tuple(values[k] for k in DEPTH_KEYS)
            assert _feasible(triple), triple
            for key, (low, high) in zip(DEPTH_KEYS, (depths.shared, depths.ner, depths.re)):
                assert low <= values[key] <= high
            seen[triple] += 1
            study.tell(trial, float(triple[0] == 1) + values["training.learning_rate"])  # something to model
    feasible = {
        (s, e, r)
        for s in range(depths.shared[0], depths.shared[1] + 1)
        for e in range(depths.ner[0], depths.ner[1] + 1)
        for r in range(depths.re[0], depths.re[1] + 1)
        if _feasible((s, e, r))
    }
    assert set(seen) <= feasible
    assert len(seen) >= 0.8 * len(feasible), "sampling must reach (nearly) every feasible triple"


def test_a_space_without_feasible_depths_is_refused() -> None:
    with pytest.raises(ValueError, match="no feasible depths"):
        DepthRanges(shared=(0, 0), ner=(0, 0))


def test_space_file_changes_the_defaults(tmp_path: Path, tune_config) -> None:
    path = tmp_path / "space.toml"
    path.write_text(
        'exclude = ["model.threshold", "model.re_dropout"]\n'
        "[depths]\nshared = [1, 2]\nre = [0, 1]\n"
        '[params."model.hidden_size"]\ntype = "categorical"\nchoices = [32]\n'
        '[params."model.cell"]\ntype = "categorical"\nchoices = ["gru", "lstm"]\n'
        '[params."training.batch_size"]\ntype = "int"\nlow = 4\nhigh = 16\nstep = 4\n'
    )
    space = load_space(path)
    assert space.depths == DepthRanges(shared=(1, 2), ner=(0, 3), re=(0, 1))
    assert list(space.params) == [
        "model.hidden_size",
        "model.rnn_dropout",
        "training.learning_rate",
        "training.lambda_re",
        "model.cell",
        "training.batch_size",
    ]
    space.check(tune_config, str(path))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(20):
        values = space.suggest(study.ask())
        assert values["model.hidden_size"] == 32 and values["model.cell"] in ("gru", "lstm")
        assert values["training.batch_size"] in (4, 8, 12, 16) and "model.threshold" not in values
        assert 1 <= values["model.shared_depth"] <= 2 and values["model.re_depth"] <= 1
    json_path = tmp_path / "space.json"
    json_path.write_text(json.dumps({"depths": {"ner": [1, 1]}}))
    assert load_space(json_path).depths.ner == (1, 1)


def test_the_conll04_search_space_file_is_valid() -> None:
    root = Path(__file__).resolve().parents[1]
    space = load_space(root / "configs" / "tune_conll04.toml")
    space.check(load_config(root / "configs" / "conll04.toml"), "configs/tune_conll04.toml")
    assert space.depths == DepthRanges() and space.params["model.hidden_size"].choices == [128, 256]
    assert "model.threshold" in space.params  # defaults not named in the file are searched too


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[params."model.hidden_size"]\ntype = "categorical"\n', "params.model.hidden_size.categorical.choices"),
        ('[params."training.lambda_re"]\ntype = "float"\nlow = 5.0\nhigh = 1.0\n', "params.training.lambda_re"),
        ('[params."model.dropout"]\ntype = "uniform"\nlow = 0\nhigh = 1\n', "params.model.dropout"),
        ("[depths]\nshared = [2, 1]\n", "depths: .*shared: need 0 <= low <= high"),
        ("[depths]\nshallow = [0, 1]\n", "depths.shallow"),
        ('exclude = ["model.cell"]\n', "exclude: model.cell not among the default parameters"),
        ("[params\n", "not valid TOML"),
    ],
)
def test_space_file_errors_name_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "space.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"space.toml: .*{message}"):
        load_space(path)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ('"model.hiden_size": {"type": "int", "low": 8, "high": 16}', "params.model.hiden_size: .*unknown"),
        ('"model.rnn_dropout": {"type": "float", "low": 0.1, "high": 1.5}', "params.model.rnn_dropout: value 1.5"),
        (
            '"model.shared_depth": {"type": "int", "low": 0, "high": 2}',
            "params.model.shared_depth: .*searched through \\[depths\\]",
        ),
    ],
    ids=["unknown-key", "invalid-value", "depth-key"],
)
def test_space_keys_are_checked_against_the_configuration(tmp_path: Path, tune_config, params, message) -> None:
    path = tmp_path / "space.json"
    path.write_text('{"params": {' + params + "}}")
    with pytest.raises(ConfigError, match=f"space.json: {message}"):
        load_space(path).check(tune_config, str(path))


# --- the trainer's per-epoch hook and pruning -------------------------------------------------------


def test_trainer_calls_on_epoch_after_each_epoch_and_stops_when_it_raises(tune_config, tmp_path: Path) -> None:
    rows = []

    class Stop(Exception):
        pass

    def on_epoch(row):
        rows.append(row)
        if row["epoch"] == 2:
            raise Stop

    with pytest.raises(Stop):
        train(tune_config, tmp_path / "run", progress=False, log=lambda _: None, on_epoch=on_epoch)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert {"loss", "dev_re_micro_f1", "dev_ner_macro_f1"} <= set(rows[0])
    logged = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in logged] == [1, 2], "no epoch runs after the hook raised"
    assert logged[1]["dev_re_micro_f1"] == rows[1]["dev_re_micro_f1"]


def _report_epochs(study: optuna.Study, scores: list[float]) -> optuna.Trial:
    trial = study.ask()
    reporter = EpochReporter(trial, parse_objective("re_micro_f1"))
    for epoch, score in enumerate(scores, start=1):
        reporter({"epoch": epoch, "loss": 1.0, "dev_re_micro_f1": score})
    return trial


def test_median_pruner_prunes_a_trial_that_learns_nothing_after_the_warm_up() -> None:
    study = optuna.create_study(direction="maximize", pruner=make_pruner("median", warmup_epochs=1, startup_trials=2))
    for scores in ([10.0, 30.0, 50.0], [20.0, 40.0, 60.0]):
        study.tell(_report_epochs(study, scores), scores[-1])
    hopeless = study.ask()
    reporter = EpochReporter(hopeless, parse_objective("re_micro_f1"))
    reporter({"epoch": 1, "dev_re_micro_f1": 0.0})  # the warm-up epoch is never pruned
    with pytest.raises(optuna.TrialPruned, match="after epoch 2"):
        reporter({"epoch": 2, "dev_re_micro_f1": 0.0})
    assert hopeless.user_attrs["epochs"] == 2
    study.tell(hopeless, state=TrialState.PRUNED)
    _report_epochs(study, [25.0, 45.0, 65.0])  # as good as the others: runs on
    none = optuna.create_study(direction="maximize", pruner=make_pruner("none", warmup_epochs=0, startup_trials=0))
    for scores in ([10.0, 30.0], [20.0, 40.0]):
        none.tell(_report_epochs(none, scores), scores[-1])
    _report_epochs(none, [0.0, 0.0, 0.0])


def test_reporter_reports_a_weighted_objective() -> None:
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    reporter = EpochReporter(trial, parse_objective("0.5*ner_micro_f1+0.5*re_micro_f1"))
    reporter({"epoch": 1, "dev_ner_micro_f1": 80.0, "dev_re_micro_f1": 40.0})
    study.tell(trial, 60.0)
    assert study.trials[0].intermediate_values == {1: 60.0}


# --- a study end to end ----------------------------------------------------------------------------


def _settings(study_dir: Path, **changes) -> TuneSettings:
    values = {"study_dir": study_dir, "trials": 3, "space": SMALL_SPACE, "heartbeat": 1, "seed": 3}
    values |= {"runtime": Runtime(num_threads=1)} | changes
    return TuneSettings(**values)


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_tune_end_to_end_writes_outputs_of_the_best_trial(tune_config, tmp_path: Path) -> None:
    study_dir = tmp_path / "study"
    lines: list[str] = []
    summary = tune(tune_config, _settings(study_dir, command="deeprel tune test"), log=lines.append)

    for name in OUTPUT_FILES:
        assert (study_dir / name).is_file(), name
    study = optuna.load_study(study_name="study", storage=f"sqlite:///{study_dir / 'study.db'}")
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    best = max(trials, key=lambda t: t.value)
    assert summary["best_trial"] == best.number and summary["best_value"] == best.value
    assert summary["best_params"] == best.params
    assert summary["trials"]["COMPLETE"] == 3 and summary["trials"]["FAIL"] == 0
    assert summary["command"] == "deeprel tune test"
    assert json.loads((study_dir / "summary.json").read_text()) == summary
    for trial in trials:
        assert _feasible(tuple(trial.params[k] for k in DEPTH_KEYS))
        run = study_dir / "trials" / str(trial.number)
        assert (run / "model" / "model.safetensors").is_file()
        saved = json.loads((run / "config.json").read_text())
        assert saved["training"]["protocol"] == "dev" and saved["data"]["test"] is None
        assert saved["model"]["shared_depth"] == trial.params["model.shared_depth"]
        metrics = json.loads((run / "metrics.json").read_text())
        assert trial.user_attrs["epochs"] == metrics["training"]["epochs_run"] == 3
        assert trial.value == pytest.approx(trial.user_attrs["dev_scores"]["re_micro_f1"])
        assert trial.user_attrs["worker"].endswith(f":{os.getpid()}")

    best_config = load_config(study_dir / "best_config.toml")
    assert (best_config.model.shared_depth, best_config.model.ner_depth, best_config.model.re_depth) == tuple(
        best.params[k] for k in DEPTH_KEYS
    )
    assert best_config.model.hidden_size == best.params["model.hidden_size"]
    assert best_config.training.learning_rate == best.params["training.learning_rate"]
    assert best_config.data == tune_config.data, "the base configuration's data (and test set) stay"

    rows = _csv_rows(study_dir / "trials.csv")
    assert len(rows) == 3
    assert list(rows[0])[:6] == ["number", "state", "s", "t_e", "t_r", "model.hidden_size"]
    assert {"objective", "epochs", "minutes"} <= set(rows[0])
    assert [int(r["t_r"]) for r in rows] == [t.params["model.re_depth"] for t in trials]
    assert all(r["state"] == "COMPLETE" and r["epochs"] == "3" for r in rows)
    markdown = (study_dir / "trials.md").read_text()
    assert f"Best: trial {best.number}" in markdown and markdown.count("| COMPLETE |") == 3
    assert (study_dir / "depths.png").read_bytes().startswith(b"\x89PNG")
    assert any(line.startswith("trial 2: complete") for line in lines)

    # --report-only rewrites everything from the storage alone, training nothing.
    for name in OUTPUT_FILES:
        (study_dir / name).unlink()
    result = CliRunner().invoke(
        main, ["tune", write_config(tune_config, tmp_path), "--study-dir", str(study_dir), "--report-only"]
    )
    assert result.exit_code == 0, result.output
    assert f"best trial {best.number}: dev re_micro_f1 = {best.value:.2f}" in result.output
    assert "3 complete" in result.output
    for name in OUTPUT_FILES:
        assert (study_dir / name).is_file(), name
    assert load_config(study_dir / "best_config.toml") == best_config
    assert sorted(p.name for p in (study_dir / "trials").iterdir()) == ["0", "1", "2"]

    # A finished study does no more work, and refuses a different base configuration.
    assert tune(tune_config, _settings(study_dir), log=lines.append)["trials"]["COMPLETE"] == 3
    with pytest.raises(ValueError, match="different base_config"):
        tune(tune_config.with_overrides({"model.cell": "lstm"}), _settings(study_dir))
    with pytest.raises(ValueError, match="different objective"):
        tune(tune_config, _settings(study_dir, objective=parse_objective("ner_micro_f1")))


def test_a_trial_that_learns_nothing_is_pruned_end_to_end(tune_config, tmp_path: Path) -> None:
    settings = _settings(tmp_path / "study", pruner="median", warmup_epochs=1, startup_trials=2)
    study = open_study(tune_config, settings)
    for _ in range(2):  # two earlier trials that learnt well
        study.add_trial(
            optuna.trial.create_trial(
                state=TrialState.COMPLETE, value=90.0, intermediate_values={1: 80.0, 2: 85.0, 3: 90.0}
            )
        )
    tune(tune_config, settings, log=lambda _: None)
    trial = optuna.load_study(study_name="study", storage=settings.storage_url).trials[2]
    assert trial.state == TrialState.PRUNED and trial.user_attrs["epochs"] == 2
    run = settings.study_dir / "trials" / "2"
    assert len((run / "log.jsonl").read_text().splitlines()) == 2, "training stopped at the pruned epoch"
    assert not (run / "checkpoint-final").exists()
    rows = _csv_rows(settings.study_dir / "trials.csv")
    assert rows[2]["state"] == "PRUNED" and rows[2]["note"] == "pruned after epoch 2"


def test_a_study_without_a_dev_file_holds_out_dev_and_can_start_with_the_base(tune_config, tmp_path: Path) -> None:
    changes = {"data.dev": None, "data.dev_fraction": 0.3, "model.shared_depth": 2, "training.learning_rate": 1e-3}
    base = tune_config.with_overrides(changes)  # every base value inside the space: no warning
    with pytest.raises(ConfigError, match="tuning needs a dev set.*data.dev_fraction"):
        tune(base.with_overrides({"data.dev_fraction": None}), _settings(tmp_path / "none"), log=lambda _: None)
    settings = _settings(tmp_path / "study", trials=2, enqueue_base=True)
    tune(base, settings, log=lambda _: None)
    first, second = optuna.load_study(study_name="study", storage=settings.storage_url).trials
    assert first.params == base_params(base, SMALL_SPACE)
    assert (first.params["model.shared_depth"], first.params["model.hidden_size"]) == (2, 16)
    assert first.state == second.state == TrialState.COMPLETE and second.params != first.params
    run = settings.study_dir / "trials" / "0"
    saved = json.loads((run / "config.json").read_text())
    assert saved["data"]["dev"] is None and saved["data"]["dev_fraction"] == 0.3
    assert "dev_re_micro_f1" in json.loads((run / "log.jsonl").read_text().splitlines()[0]), "scored on dev"
    notes = [row["note"] for row in _csv_rows(settings.study_dir / "trials.csv")]
    assert notes == ["the base configuration (--enqueue-base)", ""]


def test_cli_reports_bad_arguments_in_one_line(tune_config, tmp_path: Path) -> None:
    config = write_config(tune_config, tmp_path)
    result = CliRunner().invoke(main, ["tune", config, "--study-dir", str(tmp_path / "s"), "--objective", "re_f1"])
    assert result.exit_code == 2 and "error: objective 're_f1': unknown metric" in result.output
    result = CliRunner().invoke(main, ["tune", config, "--study-dir", str(tmp_path / "s"), "--report-only"])
    assert result.exit_code == 2 and f"error: no study storage at {tmp_path / 's' / 'study.db'}" in result.output
    assert not (tmp_path / "s").exists(), "a report of nothing creates nothing"
    result = CliRunner().invoke(
        main, ["tune", config, "--study-dir", str(tmp_path / "s"), "--storage", "nosuchdb://x/y"]
    )
    assert result.exit_code == 2 and "error: cannot open the study storage nosuchdb://x/y" in result.output


def test_saved_storage_urls_hide_passwords_and_this_machines_paths() -> None:
    url = "postgresql+psycopg://tuner:s3cret@db.example:5432/studies"
    assert storage_label(url) == "postgresql+psycopg://tuner:***@db.example:5432/studies"
    assert TuneSettings(Path("runs/s"), storage=url).storage_for_reports == storage_label(url)
    # The default SQLite file is saved as the command named its folder, not as an absolute path.
    settings = TuneSettings(Path("runs/s"))
    assert settings.storage_for_reports == "sqlite:///runs/s/study.db"
    assert settings.storage_url == f"sqlite:///{Path.cwd() / 'runs/s/study.db'}"


# --- surviving a kill ------------------------------------------------------------------------------


def write_config(config, directory: Path) -> str:
    path = directory / "config.toml"
    path.write_text(config_to_toml(config))
    return str(path)


def tune_command(config_path: str, study_dir: Path, *extra: str) -> list[str]:
    """`deeprel tune` in a fresh interpreter, as a user or a batch job would start it."""
    space = study_dir.parent / "space.toml"
    space.write_text(SMALL_SPACE_TOML)
    return [
        sys.executable,
        "-m",
        "deeprel.cli",
        "tune",
        config_path,
        "--study-dir",
        str(study_dir),
        "--space",
        str(space),
        "--pruner",
        "none",
        "--heartbeat",
        "1",
        "--num-threads",
        "1",
        "--quiet",
        *extra,
    ]


def worker_env() -> dict[str, str]:
    return os.environ | {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_killed_study_resumes_and_retries_the_killed_trial(tune_config, tmp_path: Path) -> None:
    study_dir = tmp_path / "study"
    command = tune_command(
        write_config(tune_config.with_overrides({"training.max_epochs": 4, "training.patience": 4}), tmp_path),
        study_dir,
        "--trials",
        "3",
    )
    worker = subprocess.Popen(command, env=worker_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    storage = f"sqlite:///{study_dir / 'study.db'}"

    def second_trial_mid_training():
        # Watched through the files the worker writes, not the database: a second process opening a fresh
        # SQLite study would race the worker to create its tables.
        if worker.poll() is not None:
            raise AssertionError(f"the worker ended early:\n{worker.stdout.read().decode()}")
        second_log = study_dir / "trials" / "1" / "log.jsonl"
        return (study_dir / "summary.json").exists() and second_log.exists() and second_log.stat().st_size > 0

    try:
        _wait_for(second_trial_mid_training, 180, "the second trial to be running")
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    before = optuna.load_study(study_name="study", storage=storage).get_trials()
    assert [t.state for t in before] == [TrialState.COMPLETE, TrialState.RUNNING], "killed mid-training"
    first_log = study_dir / "trials" / "0" / "log.jsonl"
    first_log_mtime = first_log.stat().st_mtime_ns

    rerun = subprocess.run(command, env=worker_env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr

    trials = optuna.load_study(study_name="study", storage=storage).get_trials()
    states = Counter(t.state for t in trials)
    assert states[TrialState.COMPLETE] == 3 and states[TrialState.FAIL] == 1 and len(trials) == 4
    killed = trials[1]
    assert killed.state == TrialState.FAIL, "the killed trial is marked failed, not lost"
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == 1]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == killed.params == before[1].params, "the retry trains the killed configuration"
    assert trials[0].datetime_complete == before[0].datetime_complete
    assert first_log.stat().st_mtime_ns == first_log_mtime, "a finished trial is not trained again"
    rows = _csv_rows(study_dir / "trials.csv")
    assert [r["state"] for r in rows].count("FAIL") == 1 and len(rows) == 4
    assert rows[1]["note"] == "its worker stopped (no heartbeat)"
    assert rows[retries[0].number]["note"] == "retry of trial 1"
    assert json.loads((study_dir / "summary.json").read_text())["trials"]["COMPLETE"] == 3
    assert "best trial" in rerun.stdout


def test_by_depths_groups_finished_trials_by_depth_triple():
    from optuna.distributions import IntDistribution
    from optuna.trial import create_trial

    from deeprel.tuning.report import by_depths

    distributions = {k: IntDistribution(0, 3) for k in DEPTH_KEYS}

    def finished(s: int, t_e: int, t_r: int, value: float):
        params = dict(zip(DEPTH_KEYS, (s, t_e, t_r)))
        return create_trial(params=params, distributions=distributions, value=value)

    trials = [finished(1, 1, 2, 60.0), finished(0, 1, 1, 40.0), finished(1, 1, 2, 64.5)]
    assert by_depths(trials) == [
        {"s": 0, "t_e": 1, "t_r": 1, "trials": 1, "best": 40.0},
        {"s": 1, "t_e": 1, "t_r": 2, "trials": 2, "best": 64.5},
    ]
    assert by_depths([create_trial(params={}, distributions={}, value=1.0)]) == []
