"""Load test of ``deeprel serve``: throughput, latency and memory under concurrent clients (run by hand).

Starts ``deeprel serve MODEL_DIR`` on 127.0.0.1 (a free port; ``--workers N`` passed on when given), waits
for /health and for every worker to start, reads each worker's resident memory (VmRSS in /proc/PID/status:
the server's worker processes, or the server itself when it runs one in-process), warms it up, then lets
``--concurrency`` clients post ``--requests`` texts (sentences of the CoNLL04 test set,
``--sentences-per-text`` consecutive ones per text) as fast as they are answered. Reports requests/s,
sentences/s, p50/p90/p99 latency, errors (must be 0: the exit code is 1 otherwise), the worker count and
the memory after, each worker's and their sum (the supervisor of several workers apart, in the JSON only);
writes JSON (``--output``) and prints a row of the markdown table

    | model | workers | concurrency | requests | req/s | sentences/s | p50 | p90 | p99 (ms) | errors
    | RSS MiB per worker before → after | RSS MiB sum before → after |

With ``$DEEPREL_API_KEY`` set, the server asks for it and the clients send it.

    python benchmarks/load_test.py runs/demo/model --concurrency 8 --requests 400 --output docs/results/load.json
    python benchmarks/load_test.py runs/demo/model --workers 2 --concurrency 8 --output docs/results/load_w2.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

import deeprel
from deeprel.atomic import write_text_atomically
from deeprel.config import resolve_data_path
from deeprel.data.readers import read_sentences


@dataclass(frozen=True)
class Outcome:
    """One request: how long it took, its HTTP status (0: no answer at all), sentences extracted."""

    seconds: float
    status: int
    sentences: int


def texts_from(data: Path, sentences_per_text: int) -> list[str]:
    """Texts of ``sentences_per_text`` consecutive test sentences each (tokens joined by spaces)."""
    sentences = [" ".join(sentence.tokens) for sentence in read_sentences(data) if sentence.tokens]
    return [
        " ".join(sentences[k : k + sentences_per_text])
        for k in range(0, len(sentences) - sentences_per_text + 1, sentences_per_text)
    ]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_mib(pid: int) -> float:
    """The process's resident memory now, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


def worker_pids(server_pid: int) -> list[int]:
    """The server's worker processes: its children started by multiprocessing's spawn (not its resource
    tracker); none when it serves in-process, with one worker."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue  # a process that ended meanwhile
        if parent == server_pid and b"spawn_main" in command:
            pids.append(int(stat.parent.name))
    return sorted(pids)


def wait_for_workers(url: str, headers: dict[str, str], server: subprocess.Popen, log: Path, timeout: float) -> int:
    """Wait until /health answers and every worker has started (uvicorn logs each); the worker count."""
    deadline = time.monotonic() + timeout
    workers = None
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"deeprel serve exited with {server.returncode}:\n{log.read_text()}")
        if workers is None:
            try:
                answering = httpx.get(f"{url}/health", timeout=2).status_code == 200
            except httpx.TransportError:
                answering = False
            if answering:
                workers = httpx.get(f"{url}/model", headers=headers, timeout=10).raise_for_status().json()["workers"]
        if workers is not None and log.read_text().count("Application startup complete.") >= workers:
            return workers
        time.sleep(0.3)
    sys.exit(f"deeprel serve did not start within {timeout} s:\n{log.read_text()}")


async def post(client: httpx.AsyncClient, text: str) -> Outcome:
    started = time.perf_counter()
    try:
        response = await client.post("/extract", json={"text": text})
    except httpx.HTTPError:
        return Outcome(time.perf_counter() - started, 0, 0)
    seconds = time.perf_counter() - started
    sentences = len(response.json()["results"][0]["sentences"]) if response.status_code == 200 else 0
    return Outcome(seconds, response.status_code, sentences)


async def load(
    url: str, headers: dict[str, str], texts: list[str], requests: int, concurrency: int, warmup: int
) -> tuple[list[Outcome], float]:
    """``requests`` posts by ``concurrency`` clients, cycling through ``texts``; the outcomes and the wall time."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=300) as client:
        for k in range(warmup):
            await post(client, texts[k % len(texts)])
        queue: asyncio.Queue[str] = asyncio.Queue()
        for k in range(requests):
            queue.put_nowait(texts[k % len(texts)])
        outcomes: list[Outcome] = []

        async def client_loop() -> None:
            while not queue.empty():
                outcomes.append(await post(client, queue.get_nowait()))

        started = time.perf_counter()
        await asyncio.gather(*(client_loop() for _ in range(concurrency)))
        return outcomes, time.perf_counter() - started


def latency_summary(outcomes: list[Outcome]) -> dict[str, float]:
    """Percentiles of the answered requests' latencies, in milliseconds."""
    latencies = sorted(o.seconds * 1000 for o in outcomes if o.status == 200)
    if not latencies:
        return {}
    cuts = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else latencies * 99
    return {"p50": cuts[49], "p90": cuts[89], "p99": cuts[98], "max": latencies[-1]}


def summarise(outcomes: list[Outcome], seconds: float) -> dict[str, Any]:
    return {
        "seconds": round(seconds, 3),
        "requests_per_s": round(len(outcomes) / seconds, 2),
        "sentences_per_s": round(sum(o.sentences for o in outcomes) / seconds, 2),
        "latency_ms": {name: round(value, 1) for name, value in latency_summary(outcomes).items()},
        "errors": sum(o.status != 200 for o in outcomes),
        "statuses": {str(s): sum(o.status == s for o in outcomes) for s in sorted({o.status for o in outcomes})},
    }


def resident(server_pid: int) -> dict[str, Any]:
    """Resident MiB of each worker (the server itself when it serves in-process) and, with several, of their
    supervisor (the ``deeprel serve`` process: it checks the model once, then holds none)."""
    workers = worker_pids(server_pid)
    return {
        "workers": [round(rss_mib(pid), 1) for pid in workers or [server_pid]],
        "supervisor": round(rss_mib(server_pid), 1) if workers else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="model directory to serve")
    parser.add_argument("--concurrency", type=int, default=8, help="clients posting at once")
    parser.add_argument("--requests", type=int, default=400, help="requests in all (after the warm-up)")
    parser.add_argument("--warmup", type=int, default=8, help="requests before timing starts")
    parser.add_argument("--sentences-per-text", type=int, default=1)
    parser.add_argument("--data", default="datasets/conll04/conll04_test.json")
    parser.add_argument("--batch-size", type=int, default=32, help="deeprel serve --batch-size")
    parser.add_argument("--num-threads", type=int, help="deeprel serve --num-threads")
    parser.add_argument("--workers", type=int, help="deeprel serve --workers (default: its own)")
    parser.add_argument("--startup-timeout", type=float, default=300)
    parser.add_argument("--output", type=Path, help="JSON results file")
    args = parser.parse_args()
    if min(args.concurrency, args.requests, args.sentences_per_text, args.workers or 1) < 1 or args.warmup < 0:
        parser.error(
            "--concurrency, --requests, --sentences-per-text and --workers must be at least 1, --warmup at least 0"
        )

    texts = texts_from(resolve_data_path(args.data), args.sentences_per_text)
    port = free_port()
    command = [sys.executable, "-m", "deeprel.cli", "serve", str(args.model), "--port", str(port)]
    command += ["--batch-size", str(args.batch_size), "--max-queue", str(max(256, 2 * args.concurrency))]
    if args.num_threads is not None:
        command += ["--num-threads", str(args.num_threads)]
    if args.workers is not None:
        command += ["--workers", str(args.workers)]
    key = os.environ.get("DEEPREL_API_KEY", "").strip()
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "serve.log"
        with log.open("w") as output:
            server = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        try:
            workers = wait_for_workers(url, headers, server, log, args.startup_timeout)
            before = resident(server.pid)
            outcomes, seconds = asyncio.run(load(url, headers, texts, args.requests, args.concurrency, args.warmup))
            after = resident(server.pid)
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()

    result = {
        "model": str(args.model),
        "concurrency": args.concurrency,
        "requests": args.requests,
        "warmup": args.warmup,
        "sentences_per_text": args.sentences_per_text,
        "data": args.data,
        "batch_size": args.batch_size,
        "num_threads": args.num_threads,
        "workers": workers,
        **summarise(outcomes, seconds),
        "rss_mib": {
            "before": round(sum(before["workers"]), 1),  # all workers together
            "after": round(sum(after["workers"]), 1),
            "workers_before": before["workers"],
            "workers_after": after["workers"],
            "supervisor_before": before["supervisor"],
            "supervisor_after": after["supervisor"],
        },
        "deeprel_version": deeprel.__version__,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "command": shlex.join(["python", *sys.argv]),
    }
    if args.output:
        write_text_atomically(args.output, json.dumps(result, indent=2) + "\n")
    latency = {name: f"{result['latency_ms'].get(name, float('nan')):.0f}" for name in ("p50", "p90", "p99")}
    rss = result["rss_mib"]
    per_worker = " / ".join(f"{b:.0f} → {a:.0f}" for b, a in zip(rss["workers_before"], rss["workers_after"]))
    print(
        f"| {args.model} | {workers} | {args.concurrency} | {args.requests} | {result['requests_per_s']:.1f} "
        f"| {result['sentences_per_s']:.1f} | {latency['p50']} | {latency['p90']} | {latency['p99']} "
        f"| {result['errors']} | {per_worker} | {rss['before']:.0f} → {rss['after']:.0f} |"
    )
    if result["errors"]:
        sys.exit(f"{result['errors']} requests failed: {result['statuses']}")


if __name__ == "__main__":
    main()
