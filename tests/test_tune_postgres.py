"""Two `deeprel tune` workers share one study in a real PostgreSQL server that this test run starts.

The server comes from Debian's postgresql package (/usr/lib/postgresql/*/bin). Without it the test
skips, unless DEEPREL_REQUIRE_POSTGRES=1 (as in CI) makes that a failure.
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from test_tune import small_config, tune_command, worker_env, write_config


def _postgres_bin() -> Path | None:
    """The newest installed server's bin folder."""
    found = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0) if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(command: list[str | Path], what: str) -> None:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A private PostgreSQL server (free port, own socket folder, trust auth) with one empty database."""
    required = os.environ.get("DEEPREL_REQUIRE_POSTGRES") == "1"
    bin_dir = _postgres_bin()
    if bin_dir is None:
        if required:
            pytest.fail("DEEPREL_REQUIRE_POSTGRES=1, but there is no /usr/lib/postgresql/*/bin/initdb")
        pytest.skip("no PostgreSQL server binaries (Debian's postgresql package)")
    if required:
        import psycopg  # noqa: F401  (the driver of postgresql+psycopg URLs: a failure here, not a skip)
    else:
        pytest.importorskip("psycopg")
    root = Path(tempfile.mkdtemp(prefix="deeprel-postgres-"))
    as_owner: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: the server runs as the postgres system user
        shutil.chown(root, "postgres", "postgres")
        as_owner = ["runuser", "-u", "postgres", "--"]
    data, sockets, port = root / "data", root / "sockets", _free_port()
    _run([*as_owner, "mkdir", sockets], "making the socket folder")
    _run([*as_owner, bin_dir / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync"], "initdb")
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg_ctl = [*as_owner, bin_dir / "pg_ctl", "-D", data, "-w", "-t", "60"]
    try:
        try:
            _run([*pg_ctl, "-l", root / "server.log", "-o", options, "start"], "starting PostgreSQL")
        except RuntimeError as error:
            log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
            raise RuntimeError(f"{error}\nserver log:\n{log}") from None
        _run([bin_dir / "createdb", "-h", sockets, "-p", str(port), "-U", "postgres", "deeprel"], "createdb")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/deeprel"
    finally:
        subprocess.run([str(c) for c in [*pg_ctl, "-m", "fast", "stop"]], capture_output=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_share_one_study_and_run_each_trial_once(postgres_url, tiny_config, tmp_path: Path) -> None:
    target = 4
    config = write_config(small_config(tiny_config), tmp_path)
    study_dirs = [tmp_path / "worker-a", tmp_path / "worker-b"]
    workers = [
        subprocess.Popen(
            tune_command(
                config,
                study_dir,
                *("--storage", postgres_url, "--study-name", "shared", "--trials", str(target), "--seed", str(seed)),
            ),
            env=worker_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed, study_dir in enumerate(study_dirs, start=1)
    ]
    outputs = [worker.communicate(timeout=400) for worker in workers]
    for worker, (_, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stderr

    trials = optuna.load_study(study_name="shared", storage=postgres_url).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * target, "together exactly the requested trials"
    pids = {worker.pid for worker in workers}
    by_worker = {t.number: int(t.user_attrs["worker"].rpartition(":")[2]) for t in trials}
    assert set(by_worker.values()) == pids, "both workers ran trials"
    for trial in trials:
        trained = [d for d in study_dirs if (d / "trials" / str(trial.number) / "metrics.json").exists()]
        assert len(trained) == 1, f"trial {trial.number} was trained once, by one worker"
        owner = next(w for w, d in zip(workers, study_dirs) if d == trained[0])
        assert by_worker[trial.number] == owner.pid
    for study_dir, (stdout, _) in zip(study_dirs, outputs):
        summary = json.loads((study_dir / "summary.json").read_text())
        assert summary["trials"]["COMPLETE"] == target
        assert summary["storage"].startswith("postgresql+psycopg://postgres@127.0.0.1:")
        assert f"{target} complete" in stdout and "best trial" in stdout
