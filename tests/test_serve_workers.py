"""``deeprel serve`` in several worker processes: how they are started and configured, and a real
two-worker server (one for the module) answering as the one-process service does, behind an API key."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
import uvicorn
from click.testing import CliRunner
from fastapi.testclient import TestClient
from load_test import free_port, worker_pids  # benchmarks/load_test.py: the same look at the server's processes

import deeprel
from deeprel import runtime
from deeprel.api import Extractor
from deeprel.cli import main
from deeprel.serving import ServeSettings, server
from deeprel.serving.server import WORKER_ENVIRONMENT, WorkerSpec, resolve_workers, worker_app

SENTENCE = "In 1752, flagmaker Betsy Ross was born in Philadelphia."
KEY = "worker-key-0123456789"
LIMITS = ["--max-body-bytes", "20000", "--max-text-chars", "2000", "--max-texts", "4"]


def as_json(value: Any) -> Any:
    return json.loads(json.dumps(value))


@pytest.fixture(scope="module")
def extractor(trained_run: Path) -> Extractor:
    return deeprel.load(trained_run / "model", device="cpu")


@pytest.fixture()
def torch_threads() -> Iterator[None]:
    """A worker app built in this process sets torch's thread count: put it back for the other tests."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


# How the workers are started and configured (uvicorn itself stubbed out).


@pytest.mark.parametrize(
    ("workers", "num_threads", "cores", "expected"),
    [
        (None, None, 4, (4, 1)),  # one worker per core, one thread each
        (2, None, 4, (2, 2)),  # the cores shared out
        (3, None, 2, (3, 1)),  # at least one thread each
        (2, 3, 4, (2, 3)),  # threads given: kept
        (1, None, 4, (1, None)),  # one worker: torch's own default, as before
        (None, None, 1, (1, None)),
    ],
)
def test_the_worker_count_and_threads_default_to_the_usable_cores(
    monkeypatch: pytest.MonkeyPatch, workers: int | None, num_threads: int | None, cores: int, expected: tuple
) -> None:
    monkeypatch.setattr(runtime, "usable_cores", lambda: cores)
    settings = resolve_workers(ServeSettings(device="cpu", workers=workers, num_threads=num_threads))
    assert (settings.workers, settings.num_threads) == expected


def test_on_cuda_one_worker_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "pick_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr(runtime, "usable_cores", lambda: 8)
    assert resolve_workers(ServeSettings()).workers == 1
    assert resolve_workers(ServeSettings(workers=2)).workers == 2


def test_a_bad_device_fails_before_any_worker_starts(trained_run: Path) -> None:
    result = CliRunner().invoke(main, ["serve", str(trained_run / "model"), "--workers", "2", "--device", "tpu"])
    assert result.exit_code == 2
    assert "error: device 'tpu' is not one of auto, cpu, cuda or cuda:N" in result.output


@pytest.fixture()
def uvicorn_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What ``uvicorn.run`` was called with, and the workers' spec in the environment at the time."""
    calls: list[dict[str, Any]] = []

    def run(app: Any, **options: Any) -> None:
        calls.append({"app": app, **options, "spec": os.environ.get(WORKER_ENVIRONMENT)})

    monkeypatch.setattr(uvicorn, "run", run)
    return calls


def test_several_workers_are_uvicorns_processes_each_building_the_app_from_the_environment(
    trained_run: Path, uvicorn_calls: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, torch_threads: None
) -> None:
    model = trained_run / "model"
    command = ["serve", str(model), "--workers", "2", "--host", "0.0.0.0", "--port", "8123", "--device", "cpu", *LIMITS]
    result = CliRunner().invoke(main, command, env={"DEEPREL_API_KEY": KEY})
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # no warning: a key is set
    [call] = uvicorn_calls
    assert (call["app"], call["factory"], call["workers"]) == ("deeprel.serving.server:worker_app", True, 2)
    assert (call["host"], call["port"]) == ("0.0.0.0", 8123)
    assert WORKER_ENVIRONMENT not in os.environ  # removed once uvicorn returns

    spec = WorkerSpec.model_validate_json(call["spec"])
    assert spec.model_dir == model
    assert spec.settings.api_key is not None and spec.settings.api_key.get_secret_value() == KEY
    assert (spec.settings.workers, spec.settings.num_threads) == (2, max(1, runtime.usable_cores() // 2))
    assert (spec.settings.max_texts, spec.settings.device) == (4, "cpu")

    monkeypatch.setenv(WORKER_ENVIRONMENT, call["spec"])
    with TestClient(worker_app()) as client:
        assert WORKER_ENVIRONMENT not in os.environ  # read once, then dropped from the worker's environment
        assert client.get("/model").status_code == 401
        info = client.get("/model", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert (info["name"], info["workers"]) == (trained_run.name, 2)
    assert torch.get_num_threads() == spec.settings.num_threads


def test_one_worker_is_served_in_this_process(trained_run: Path, uvicorn_calls: list[dict[str, Any]]) -> None:
    result = CliRunner().invoke(main, ["serve", str(trained_run / "model"), "--workers", "1", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    [call] = uvicorn_calls
    assert "workers" not in call and call["spec"] is None
    with TestClient(call["app"]) as client:
        assert client.get("/model").json()["workers"] == 1


def test_serving_beyond_this_machine_without_a_key_warns(
    trained_run: Path, uvicorn_calls: list[dict[str, Any]]
) -> None:
    command = ["serve", str(trained_run / "model"), "--workers", "2", "--host", "0.0.0.0", "--device", "cpu"]
    result = CliRunner().invoke(main, command, env={"DEEPREL_API_KEY": None})
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "warning: serving on 0.0.0.0 without an API key, anyone who reaches it may use it"
        " (set --api-key-file or $DEEPREL_API_KEY)"
    ]
    assert len(uvicorn_calls) == 1  # a warning, not a refusal


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True), ("::1", True), ("0.0.0.0", False)]
    + [("::", False), ("192.168.1.5", False), ("example.org", False)],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert server.is_loopback(host) is loopback


# A real server: `deeprel serve MODEL --workers 2`, started once for the tests below.


@dataclass(frozen=True)
class Server:
    url: str
    port: int
    process: subprocess.Popen
    log: Path

    def client(self, key: str | None = KEY) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)


def connections(pid: int, port: int) -> int:
    """How many established TCP connections to ``port`` the process ``pid`` holds (from /proc, Linux)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port, state, inode = int(fields[1].rsplit(":", 1)[1], 16), fields[3], fields[9]
            count += local_port == port and state == "01" and inode in inodes  # 01: ESTABLISHED
    return count


@pytest.fixture(scope="module")
def served(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    scratch = tmp_path_factory.mktemp("serve-workers")
    key_file = scratch / "key"
    key_file.write_text(KEY + "\n", encoding="utf-8")
    port = free_port()
    command = [sys.executable, "-m", "deeprel.cli", "serve", str(trained_run / "model"), "--port", str(port)]
    command += ["--workers", "2", "--device", "cpu", "--api-key-file", str(key_file), *LIMITS]
    environment = {name: value for name, value in os.environ.items() if name != "DEEPREL_API_KEY"}
    log = scratch / "serve.log"
    with log.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=environment)
    served = Server(f"http://127.0.0.1:{port}", port, process, log)
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 300  # two models loading on two busy cores
        while True:
            assert process.poll() is None, f"deeprel serve exited with {process.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"no answer on /health:\n{log.read_text()}"
            try:
                if httpx.get(f"{served.url}/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        workers = set(worker_pids(process.pid))
        yield served
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for pid in workers:  # the supervisor stops its workers; a killed one could not
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def wait_for_workers(served: Server, count: int) -> set[int]:
    """The worker PIDs, once ``count`` of them have finished their start-up (one answered /health already)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        log = served.log.read_text()
        if log.count("Application startup complete.") >= count:
            return {int(pid) for pid in re.findall(r"Started server process \[(\d+)\]", log)}
        time.sleep(0.3)
    raise AssertionError(f"{count} workers did not start:\n{served.log.read_text()}")


def test_two_worker_processes_answer(served: Server) -> None:
    started = wait_for_workers(served, 2)
    pids = set(worker_pids(served.process.pid))
    assert len(pids) == 2 and started == pids
    # Which worker accepts a connection is the kernel's choice: open connections until each holds one.
    clients: list[httpx.Client] = []
    try:
        for _ in range(200):
            client = served.client()
            clients.append(client)
            assert client.get("/model").json()["workers"] == 2
            if all(connections(pid, served.port) for pid in pids):
                break
        assert all(connections(pid, served.port) for pid in pids), f"one worker took all {len(clients)} connections"
    finally:
        for client in clients:
            client.close()


def test_extract_one_text_gives_what_the_python_api_gives(served: Server, extractor: Extractor) -> None:
    with served.client() as client:
        response = client.post("/extract", json={"text": SENTENCE})
    assert response.status_code == 200
    assert response.json() == {"results": [as_json(extractor(SENTENCE).to_dict())]}


def test_extract_a_list_gives_one_result_per_text_in_order(served: Server, extractor: Extractor) -> None:
    texts = [SENTENCE, "", "John Smith lives in Boston. He was born in Paris."]
    with served.client() as client:
        response = client.post("/extract", json={"texts": texts})
    assert response.status_code == 200
    assert response.json() == {"results": as_json([result.to_dict() for result in extractor(texts)])}


def test_the_limits_hold_in_every_worker(served: Server) -> None:
    body = json.dumps({"texts": ["word " * 399] * 12}).encode()  # 24 kB of valid JSON
    with served.client() as client:
        honest = client.post("/extract", content=body, headers={"content-type": "application/json"})
        chunked = client.post("/extract", content=iter([body[:10_000], body[10_000:]]))
        too_many = client.post("/extract", json={"texts": ["a"] * 5})
        bad = client.post("/extract", json={"text": "a", "texts": ["b"]})
    for response in (honest, chunked):
        assert (response.status_code, response.json()) == (
            413,
            {"detail": "request body too large: the limit is 20000 bytes"},
        )
    assert too_many.status_code == 422 and "at most 4 items" in too_many.json()["detail"][0]["msg"]
    assert bad.status_code == 422 and "exactly one of 'text'" in bad.json()["detail"][0]["msg"]


def test_model_and_the_page(served: Server, trained_run: Path, extractor: Extractor) -> None:
    with served.client() as client:
        info = client.get("/model").json()
        page = client.get("/")
        script = client.get("/static/deeprel-view.js")
    assert info == {
        "name": trained_run.name,
        "version": deeprel.__version__,
        "entity_types": list(extractor.entity_types),
        "relation_types": list(extractor.relation_types),
        "threshold": extractor.relation_threshold,
        "device": "cpu",
        "precision": runtime.resolve_precision("auto", torch.device("cpu")),  # the default: bf16 where the CPU has it
        "meta": as_json(extractor.meta),
        "workers": 2,
    }
    assert page.status_code == 200 and 'id="extract-form"' in page.text
    assert script.status_code == 200


@pytest.mark.parametrize("key", [None, "wrong-key", KEY[:-1]])
def test_without_the_key_every_request_but_health_gets_401(served: Server, key: str | None) -> None:
    with served.client(key) as client:
        for response in (client.post("/extract", json={"text": SENTENCE}), client.get("/model"), client.get("/")):
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == "Bearer"
            assert set(response.json()) == {"detail"}
        assert client.get("/health").json() == {"status": "ok"}


def test_the_key_is_in_no_log(served: Server) -> None:
    with served.client() as client:
        assert client.get("/model").status_code == 200
    with served.client("wrong-key") as client:
        assert client.get("/model").status_code == 401
    log = served.log.read_text()
    assert "GET /model" in log and KEY not in log
