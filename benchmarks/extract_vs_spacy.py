"""`deeprel extract` beside a spaCy NER pipeline on the same file: throughput on this CPU and NER F1.

    python benchmarks/extract_vs_spacy.py --model runs/conll04-frozen/seed-1/model \\
        --spacy-model runs/spacy-ner/model-best --repeat 10 --output docs/results/extract_vs_spacy.json

(`make spacy-benchmark MODEL=...` prepares the data, trains the spaCy model once and runs this.)

The input is the CoNLL04 test set as JSON lines of pre-tokenised sentences (``{"tokens": [...]}``),
repeated ``--repeat`` times so the timings are long enough to be stable; both systems read that file.

- deeprel: ``deeprel extract`` in a subprocess, timed by wall clock. That includes starting Python,
  the imports and loading the model, so a second run on a one-sentence file measures that start-up and
  the throughput is given both with it and without it.
- spaCy: in this process, ``spacy.load`` (timed apart, as the load), then reading the same file,
  building a ``Doc(words=...)`` per line (spaCy does not re-tokenise) and ``nlp.pipe`` over them. Its
  "with start-up" figure counts the load but not starting Python and importing spaCy, so the ratio
  with start-up flatters spaCy a little; the ratio without start-up is the like-for-like one.

Both sides may use every core; "cores busy" (processor time / wall time) shows how many they did use.

NER F1 (strict, micro and macro, :func:`deeprel.evaluation.metrics.evaluate`) is scored on the first
repetition: deeprel's entities from its extract output, spaCy's from ``doc.ents``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, TextIO

import spacy
from spacy_ner.prepare import from_spacy_doc, to_spacy_doc

from deeprel.atomic import write_atomically, write_text_atomically
from deeprel.config import resolve_data_path
from deeprel.data.extraction import Extraction
from deeprel.data.readers import read_sentences, read_types
from deeprel.data.types import Entity, Sentence
from deeprel.evaluation.metrics import Scores, evaluate


@dataclass(frozen=True)
class Throughput:
    """``sentences`` processed in ``seconds`` (wall clock), of which ``startup_seconds`` went to starting and
    loading; ``cpu_seconds`` is the processor time spent meanwhile, over all threads and processes."""

    sentences: int
    seconds: float
    startup_seconds: float
    cpu_seconds: float

    @property
    def per_second(self) -> float:
        """Sentences per second once running (start-up and loading left out)."""
        return self.sentences / (self.seconds - self.startup_seconds)

    @property
    def per_second_with_startup(self) -> float:
        return self.sentences / self.seconds

    def to_dict(self) -> dict[str, float | int]:
        return {
            "sentences": self.sentences,
            "seconds": round(self.seconds, 3),
            "startup_seconds": round(self.startup_seconds, 3),
            "cpu_seconds": round(self.cpu_seconds, 3),
            "cores_busy": round(self.cpu_seconds / self.seconds, 2),  # how much parallelism was really used
            "sentences_per_second": round(self.per_second, 1),
            "sentences_per_second_with_startup": round(self.per_second_with_startup, 1),
        }


def write_benchmark_input(sentences: Sequence[Sentence], repeat: int, path: Path) -> int:
    """The sentences' tokens as ``{"tokens": [...]}`` lines, all of them ``repeat`` times over; the line count."""
    if repeat < 1:
        raise ValueError(f"--repeat must be at least 1, got {repeat}")
    lines = [json.dumps({"tokens": list(s.tokens)}, ensure_ascii=False) + "\n" for s in sentences]

    def write(f: TextIO) -> None:
        for _ in range(repeat):
            f.writelines(lines)

    write_atomically(path, write)
    return len(lines) * repeat


def sentence_from_record(record: dict[str, Any], where: str) -> Sentence:
    """A deeprel extract output record of one pre-tokenised sentence as a Sentence with its entities."""
    extraction = Extraction.from_dict(record, where)
    if len(extraction.sentences) != 1:
        raise ValueError(f"{where}: expected exactly one sentence in the record, got {len(extraction.sentences)}")
    return Sentence(
        tokens=extraction.sentences[0].tokens,
        entities=tuple(Entity(e.type, e.token_start, e.token_end, e.score) for e in extraction.entities),
        id=str(record.get("id") or record.get("line", "")),
    )


def read_extract_output(path: Path, count: int) -> list[Sentence]:
    """The first ``count`` records of a deeprel extract output file (in input line order) as Sentences."""
    with path.open(encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    records.sort(key=lambda r: r["line"])
    if len(records) < count:
        raise ValueError(f"{path}: {len(records)} records, expected at least {count}")
    return [sentence_from_record(r, f"{path}: line {r['line']}") for r in records[:count]]


def read_token_lines(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line)["tokens"] for line in f if line.strip()]


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def timed_run(command: list[str]) -> tuple[float, float]:
    """Wall-clock and processor seconds of a command; its stderr is shown when it fails."""
    cpu_before, started = cpu_seconds(resource.RUSAGE_CHILDREN), time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True)
    seconds, cpu = time.perf_counter() - started, cpu_seconds(resource.RUSAGE_CHILDREN) - cpu_before
    if completed.returncode != 0:
        sys.exit(f"{shlex.join(command)} failed with exit code {completed.returncode}:\n{completed.stderr}")
    return seconds, cpu


def ner_scores(gold: Sequence[Sentence], predicted: Sequence[Sentence], entity_types: Sequence[str]) -> Scores:
    """Strict NER scores (boundaries and type must match)."""
    return evaluate(gold, predicted, entity_types=entity_types).strict.ner


def extract_command(args: argparse.Namespace, source: Path, target: Path) -> list[str]:
    command = [str(args.deeprel), "extract", str(args.model), str(source), "-o", str(target), "--input-format", "jsonl"]
    command += ["--batch-size", str(args.batch_size), "--on-error", "stop", "--overwrite", "--quiet"]
    command += ["--precision", args.precision]
    return command + (["--workers", str(args.workers)] if args.workers is not None else [])


def time_deeprel(
    args: argparse.Namespace, work: Path, source: Path, sentences: int
) -> tuple[Throughput, list[str], list[str]]:
    """Time the extraction of ``source`` and of its first line alone; the throughput and both commands."""
    first_line = work / "one_sentence.jsonl"
    with source.open(encoding="utf-8") as f:
        write_text_atomically(first_line, f.readline())
    startup_command = extract_command(args, first_line, work / "one_sentence_out.jsonl")
    command = extract_command(args, source, work / "deeprel_out.jsonl")
    startup, _ = timed_run(startup_command)
    seconds, cpu = timed_run(command)
    return Throughput(sentences, seconds, startup, cpu), command, startup_command


def time_spacy(args: argparse.Namespace, source: Path) -> tuple[Throughput, list[Sentence], dict[str, Any]]:
    """Load the spaCy pipeline and run it over ``source``; the throughput, every prediction and model facts."""

    def cpu_now() -> float:  # children count too, for n_process > 1
        return cpu_seconds(resource.RUSAGE_SELF) + cpu_seconds(resource.RUSAGE_CHILDREN)

    cpu_before, started = cpu_now(), time.perf_counter()
    nlp = spacy.load(args.spacy_model)
    loaded = time.perf_counter()
    docs = (to_spacy_doc(Sentence(tokens=tuple(tokens)), nlp.vocab) for tokens in read_token_lines(source))
    predicted = list(nlp.pipe(docs, batch_size=args.batch_size, n_process=args.spacy_processes))
    finished, cpu = time.perf_counter(), cpu_now() - cpu_before
    training = nlp.config["training"]
    facts = {
        "pipeline": nlp.pipe_names,
        "labels": list(nlp.get_pipe("ner").labels),
        "max_epochs": training["max_epochs"],
        "patience": training["patience"],
    }
    throughput = Throughput(len(predicted), finished - started, loaded - started, cpu)
    return throughput, [from_spacy_doc(doc, str(i)) for i, doc in enumerate(predicted)], facts


def environment() -> dict[str, Any]:
    """What the timings depend on: cores, thread pools, versions."""
    import torch

    variables = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    return {
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "torch_default_threads": torch.get_num_threads(),  # deeprel extract sets 1 per worker
        "thread_variables": {name: os.environ[name] for name in variables if name in os.environ},
        "python": platform.python_version(),
        "versions": {name: version(name) for name in ("deeprel", "torch", "spacy", "thinc", "blis")},
    }


def markdown_table(result: dict[str, Any]) -> str:
    rows = []
    for name in ("deeprel", "spacy"):
        side = result[name]
        ner = side["ner"]
        rows.append(
            f"| {name} | {side['parallelism']} | {side['cores_busy']:.2f} | {side['sentences']} "
            f"| {side['seconds']:.2f} | {side['startup_seconds']:.2f} | {side['sentences_per_second']:.1f} "
            f"| {side['sentences_per_second_with_startup']:.1f} | {ner['micro']['f1']:.2f} | {ner['macro']['f1']:.2f} |"
        )
    return "\n".join(
        [
            "| system | processes / threads | cores busy | sentences | seconds | start-up / load s | sentences/s "
            "| sentences/s with start-up | NER micro F1 | NER macro F1 |",
            "|---|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            f"spaCy / deeprel throughput: {result['ratio_spacy_over_deeprel']:.2f} "
            f"({result['ratio_spacy_over_deeprel_with_startup']:.2f} with start-up)",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path, help="deeprel model directory.")
    parser.add_argument("--spacy-model", type=Path, default=Path("runs/spacy-ner/model-best"))
    parser.add_argument("--data", default="datasets/conll04/conll04_test.json")
    parser.add_argument("--types", default="datasets/conll04/conll04_types.json")
    parser.add_argument("--repeat", type=int, default=10, help="How many times the test set is repeated.")
    parser.add_argument("--batch-size", type=int, default=32, help="Sentences per batch, both systems.")
    parser.add_argument("--workers", type=int, help="deeprel extract --workers (default: one per usable core).")
    parser.add_argument("--precision", default="auto", help="deeprel extract --precision (the encoder's).")
    # One process: with two on this 2-core CPU, nlp.pipe was slower (930 against 1180 sentences/s on 5,760
    # sentences), the workers' start-up and the passing of Docs between processes outweighing the second core.
    parser.add_argument("--spacy-processes", type=int, default=1, help="nlp.pipe(n_process=...).")
    parser.add_argument("--deeprel", type=Path, default=Path(sys.executable).with_name("deeprel"))
    parser.add_argument("--work-dir", type=Path, help="Keep the input and outputs here (default: a temporary folder).")
    parser.add_argument("--output", type=Path, help="Write the result as JSON here.")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    if not args.spacy_model.is_dir():  # found out before minutes of timing deeprel, not after
        parser.error(f"{args.spacy_model}: no spaCy model directory (`make spacy-benchmark` trains one)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    data = resolve_data_path(args.data)
    gold = read_sentences(data)
    entity_types, _ = read_types(resolve_data_path(args.types))
    with tempfile.TemporaryDirectory() as temporary:
        work = args.work_dir or Path(temporary)
        source = work / "benchmark_input.jsonl"
        sentences = write_benchmark_input(gold, args.repeat, source)
        deeprel_speed, command, startup_command = time_deeprel(args, work, source, sentences)
        deeprel_predicted = read_extract_output(work / "deeprel_out.jsonl", len(gold))
        # The largest of deeprel's processes at its peak (its workers are waited for, so they count).
        deeprel_peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        spacy_speed, spacy_predicted, spacy_facts = time_spacy(args, source)
    if deeprel_speed.seconds <= deeprel_speed.startup_seconds:
        sys.exit(f"deeprel extract took no longer than its start-up ({deeprel_speed.seconds:.2f} s): raise --repeat")

    env = environment()
    # deeprel extract runs --workers processes (default: one per usable core), one torch thread each.
    processes = args.workers or env["cpus_usable"]
    result = {
        "data": data.name,
        "test_sentences": len(gold),
        "repeat": args.repeat,
        "batch_size": args.batch_size,
        "deeprel": {
            "model": str(args.model),
            "parallelism": f"{processes} process(es), 1 torch thread each",
            "precision": args.precision,
            "peak_rss_mib_largest_process": round(deeprel_peak_mib, 1),
            **deeprel_speed.to_dict(),
            "ner": ner_scores(gold, deeprel_predicted, entity_types).to_dict(),
            "command": shlex.join(command),
            "startup_command": shlex.join(startup_command),
        },
        "spacy": {
            "model": str(args.spacy_model),
            # thinc's CPU matrix products go through blis, which does not split one operation over threads.
            "parallelism": f"{args.spacy_processes} process(es), 1 thread each",
            **spacy_speed.to_dict(),
            **spacy_facts,
            "ner": ner_scores(gold, spacy_predicted[: len(gold)], entity_types).to_dict(),
            "call": f"nlp.pipe(docs, batch_size={args.batch_size}, n_process={args.spacy_processes})",
        },
        "ratio_spacy_over_deeprel": round(spacy_speed.per_second / deeprel_speed.per_second, 2),
        "ratio_deeprel_over_spacy": round(deeprel_speed.per_second / spacy_speed.per_second, 3),
        "ratio_spacy_over_deeprel_with_startup": round(
            spacy_speed.per_second_with_startup / deeprel_speed.per_second_with_startup, 2
        ),
        "environment": env,
        "command": shlex.join(["python", *sys.argv]),
    }
    print(markdown_table(result))
    if args.output:
        write_text_atomically(args.output, json.dumps(result, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
