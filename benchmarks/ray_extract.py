"""`deeprel extract` beside `deeprel extract --engine ray` with 1 and 2 actors, on the same file, in one run.

    python benchmarks/ray_extract.py --model runs/conll04-bench/model --repeat 35 \\
        --output docs/results/ray_extract.json

The input is the CoNLL04 test set as pre-tokenised sentences repeated ``--repeat`` times (35: 10,080
sentences), one JSON line each (the file benchmarks/extract_vs_spacy.py times). Each engine runs as the
command a user types, in a subprocess, on an otherwise idle machine:

- ``deeprel extract`` with ``--workers 2`` (its default here: a worker process per core, one torch thread);
- ``deeprel extract --engine ray --actors N`` for N = 1, 2, which starts a local Ray (``ray.init()``: every
  core) and writes JSONL shards of ``--shard-rows`` rows.

Each is timed twice: on the whole file, and on its first line alone (start-up: imports, Ray's processes,
loading the model); sentences/s leaves the start-up out, as in extract_vs_spacy.py. While a command runs,
its whole process tree (for Ray: the driver, gcs_server, raylet, the actors and Ray's helpers) is sampled
every ``--sample-seconds``: each process's peak resident memory (the kernel's high-water mark, VmHWM) and
CPU seconds, summed by role. The outputs are compared: the share of sentences where Ray and extract found
the same entities and relations, and the largest score difference.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import psutil
from extract_vs_spacy import environment, write_benchmark_input

from deeprel.atomic import write_text_atomically
from deeprel.config import resolve_data_path
from deeprel.data.readers import read_sentences
from deeprel.runtime import EXTRACT_BATCH_SIZE


def role(process: psutil.Process) -> str:
    """What a process of a run is, from its command line."""
    try:
        command = " ".join(process.cmdline())
    except psutil.Error:
        return "gone"
    if "ray::MapWorker" in command or "ray::ExtractActor" in command:
        return "ray actor"
    for name in ("gcs_server", "raylet", "dashboard", "log_monitor", "monitor.py", "runtime_env"):
        if name in command:
            return f"ray {name.removesuffix('.py')}"
    if command.startswith("ray::"):
        return "ray worker (other)"
    if "multiprocessing" in command:
        return "extract worker"
    if "deeprel" in command:
        return "driver"
    return "other"


def peak_kib(pid: int) -> int | None:
    """The process's peak resident set so far (Linux's VmHWM), in KiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class TreeSampler:
    """Samples a process and all its descendants: peak memory and CPU seconds of each, until stopped."""

    def __init__(self, pid: int, every: float) -> None:
        self.root, self.every = psutil.Process(pid), every
        self.seen: dict[int, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        try:
            processes = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return
        for process in processes:
            entry = self.seen.setdefault(process.pid, {"role": None, "peak_kib": 0, "cpu_seconds": 0.0})
            if entry["role"] != "ray actor":  # a Ray worker is named for its actor once it holds one
                found = role(process)
                entry["role"] = found if found != "gone" else entry["role"]
            peak = peak_kib(process.pid)
            if peak is not None:
                entry["peak_kib"] = max(entry["peak_kib"], peak)
            try:
                times = process.cpu_times()
                entry["cpu_seconds"] = max(entry["cpu_seconds"], times.user + times.system)
            except psutil.Error:
                pass

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.every)

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join()
        by_role: dict[str, dict[str, Any]] = defaultdict(
            lambda: {"processes": 0, "peak_mib_max": 0.0, "cpu_seconds": 0.0}
        )
        for entry in self.seen.values():
            summary = by_role[entry["role"] or "gone"]
            summary["processes"] += 1
            summary["peak_mib_max"] = round(max(summary["peak_mib_max"], entry["peak_kib"] / 1024), 1)
            summary["cpu_seconds"] = round(summary["cpu_seconds"] + entry["cpu_seconds"], 2)
        return dict(sorted(by_role.items()))


def timed(command: list[str], every: float) -> dict[str, Any]:
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = TreeSampler(process.pid, every)
    stdout, stderr = process.communicate()
    seconds = time.perf_counter() - started
    processes = sampler.stop()
    if process.returncode != 0:
        sys.exit(f"{shlex.join(command)} failed with exit code {process.returncode}:\n{stderr[-4000:]}")
    return {"seconds": round(seconds, 3), "processes": processes, "summary": stdout.strip().splitlines()[-1]}


def command_for(args: argparse.Namespace, engine: str, actors: int, source: Path, target: Path) -> list[str]:
    command = [str(args.deeprel), "extract", str(args.model), str(source), "-o", str(target), "--overwrite"]
    command += ["--batch-size", str(args.batch_size), "--precision", args.precision, "--quiet"]
    if engine == "local":
        return [*command, "--workers", str(actors), "--on-error", "stop"]
    command += ["--engine", "ray", "--actors", str(actors), "--output-format", "jsonl"]
    return [*command, "--shard-rows", str(args.shard_rows)]


def found_by_line(output: Path) -> dict[int, tuple]:
    """Each input line's entities and relations (scores apart) and scores, from a file or a shard folder."""
    files = sorted(output.glob("*.jsonl")) if output.is_dir() else [output]
    found = {}
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            entities = tuple((e["type"], e["start_char"], e["end_char"]) for e in record["entities"])
            relations = tuple((r["type"], r["head"], r["tail"]) for r in record["relations"])
            scores = [e["score"] for e in record["entities"]] + [r["score"] for r in record["relations"]]
            found[record["line"]] = (entities, relations, scores)
    return found


def compare(local: dict[int, tuple], ray: dict[int, tuple]) -> dict[str, Any]:
    same = [k for k in local if k in ray and local[k][:2] == ray[k][:2]]
    differences = [abs(a - b) for k in same for a, b in zip(local[k][2], ray[k][2])]
    return {
        "lines": len(local),
        "lines_in_ray_output": len(ray),
        "same_entities_and_relations": round(len(same) / len(local), 4),
        "largest_score_difference": round(max(differences, default=0.0), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=35)
    parser.add_argument("--data", default="datasets/conll04/conll04_test.json")
    parser.add_argument("--batch-size", type=int, default=EXTRACT_BATCH_SIZE)
    parser.add_argument("--shard-rows", type=int, default=1000)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--sample-seconds", type=float, default=0.25)
    parser.add_argument("--deeprel", type=Path, default=Path(sys.executable).with_name("deeprel"))
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()

    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="deeprel-ray-bench-") as folder:
        work = Path(folder)
        source = work / "input.jsonl"
        sentences = write_benchmark_input(read_sentences(resolve_data_path(args.data)), args.repeat, source)
        first = work / "first.jsonl"
        first.write_text(source.read_text(encoding="utf-8").splitlines(keepends=True)[0], encoding="utf-8")
        outputs = {}
        for name, engine, actors in (
            ("extract, 2 workers", "local", 2),
            ("ray, 1 actor", "ray", 1),
            ("ray, 2 actors", "ray", 2),
        ):
            target = work / name.replace(", ", "-").replace(" ", "_")
            target = target.with_suffix(".jsonl") if engine == "local" else target
            startup = timed(
                command_for(args, engine, actors, first, work / f"{target.name}-first"), args.sample_seconds
            )
            run = timed(command_for(args, engine, actors, source, target), args.sample_seconds)
            running = run["seconds"] - startup["seconds"]
            runs[name] = {
                "command": shlex.join(command_for(args, engine, actors, Path("INPUT.jsonl"), Path("OUT"))),
                "sentences": sentences,
                "seconds": run["seconds"],
                "startup_seconds": startup["seconds"],
                "sentences_per_second": round(sentences / running, 1),
                "sentences_per_second_with_startup": round(sentences / run["seconds"], 1),
                "cpu_seconds": round(sum(p["cpu_seconds"] for p in run["processes"].values()), 1),
                "processes": run["processes"],
                "summary": run["summary"],
            }
            outputs[name] = found_by_line(target)
            print(f"{name}: {runs[name]['sentences_per_second']} sentences/s ({run['summary']})", file=sys.stderr)
    local = outputs["extract, 2 workers"]
    result = {
        "benchmark": "benchmarks/ray_extract.py",
        "command": shlex.join([sys.executable, *sys.argv]),
        "model": str(args.model),
        "input": f"{args.data} x{args.repeat} ({sentences} sentences, one a line, pre-tokenised)",
        "environment": environment(),
        "runs": runs,
        "ray_2_actors_vs_extract": round(
            runs["ray, 2 actors"]["sentences_per_second"] / runs["extract, 2 workers"]["sentences_per_second"], 3
        ),
        "agreement": {name: compare(local, outputs[name]) for name in ("ray, 1 actor", "ray, 2 actors")},
    }
    write_text_atomically(args.output, json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("ray_2_actors_vs_extract", "agreement")}, indent=2))


if __name__ == "__main__":
    main()
