"""The spaCy component's throughput beside the library's and `deeprel extract`'s, on the same file.

    python benchmarks/spacy_component.py --model runs/conll04-frozen/seed-1/model --repeat 10 \\
        --output docs/results/spacy_component.json

The input is the CoNLL04 test set as pre-tokenised sentences, repeated ``--repeat`` times (the file
``benchmarks/extract_vs_spacy.py`` times). Three ways of running one model over it, on an otherwise idle
machine:

- ``deeprel extract`` in a subprocess (its defaults: a worker per core, one torch thread each), timed by
  wall clock less its start-up, measured apart on a one-line file, as in extract_vs_spacy.py;
- the library in this process: ``extractor.extract_tokens(chunk)`` over chunks of ``--docs-per-batch``
  sentences (one sentence a document);
- the component in this process: a blank English pipeline with ``deeprel`` and ``nlp.pipe(docs,
  batch_size=--docs-per-batch)`` over Docs built from the same tokens (``Doc(words=...)``, one sentence
  each: spaCy does not re-tokenise).

The library and the component share the settings (batch size, precision, torch's threads) and the model
files, and are timed ``--rounds`` times each, alternating, so that a slow spell of the machine hits both;
the median is reported. What they found is compared too: the share of sentences where both found the
same entities, and the largest score difference.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import spacy
import torch
from extract_vs_spacy import environment, read_token_lines, time_deeprel, write_benchmark_input
from spacy.tokens import Doc

import deeprel
from deeprel.atomic import write_text_atomically
from deeprel.config import resolve_data_path
from deeprel.data.readers import read_sentences
from deeprel.runtime import EXTRACT_BATCH_SIZE

Found = list[tuple[tuple[str, int, int, float | None], ...]]


def run_library(extractor: deeprel.api.Extractor, lines: list[list[str]], per_batch: int) -> tuple[float, Found]:
    started = time.perf_counter()
    results = []
    for k in range(0, len(lines), per_batch):
        results.extend(extractor.extract_tokens(lines[k : k + per_batch]))
    seconds = time.perf_counter() - started
    return seconds, [tuple((e.type, e.start_char, e.end_char, e.score) for e in r.entities) for r in results]


def run_component(nlp: spacy.Language, lines: list[list[str]], per_batch: int) -> tuple[float, Found]:
    started = time.perf_counter()
    docs = (Doc(nlp.vocab, words=tokens, sent_starts=[True] + [False] * (len(tokens) - 1)) for tokens in lines)
    done = list(nlp.pipe(docs, batch_size=per_batch))
    seconds = time.perf_counter() - started
    return seconds, [tuple((s.label_, s.start_char, s.end_char, s._.score) for s in d.spans["deeprel"]) for d in done]


def agreement(a: Found, b: Found) -> dict[str, Any]:
    """Sentences with the same entities (type and offsets) in both, and the largest score difference there."""
    same = [x for x, y in zip(a, b) if [e[:3] for e in x] == [e[:3] for e in y]]
    differences = [
        abs(p[3] - q[3])
        for x, y in zip(a, b)
        if [e[:3] for e in x] == [e[:3] for e in y]
        for p, q in zip(x, y)
        if p[3] is not None and q[3] is not None
    ]
    return {
        "sentences_with_the_same_entities": round(len(same) / len(a), 4),
        "largest_score_difference": round(max(differences, default=0.0), 5),
        "entities": [sum(map(len, a)), sum(map(len, b))],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="deeprel model directory or installed package name.")
    parser.add_argument("--data", default="datasets/conll04/conll04_test.json")
    parser.add_argument("--repeat", type=int, default=10, help="How many times the test set is repeated.")
    parser.add_argument("--rounds", type=int, default=3, help="Timings of the library and the component, each.")
    parser.add_argument("--batch-size", type=int, default=EXTRACT_BATCH_SIZE, help="Sentences per forward pass.")
    parser.add_argument("--docs-per-batch", type=int, default=128, help="nlp.pipe batch_size; the library's chunks.")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--workers", type=int, help="deeprel extract --workers (default: one per usable core).")
    parser.add_argument("--deeprel", type=Path, default=Path(sys.executable).with_name("deeprel"))
    parser.add_argument("--output", type=Path, help="Write the result as JSON here.")
    args = parser.parse_args()
    if args.repeat < 1 or args.rounds < 1:
        parser.error("--repeat and --rounds must be at least 1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    data = resolve_data_path(args.data)
    gold = read_sentences(data)
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        source = work / "benchmark_input.jsonl"
        count = write_benchmark_input(gold, args.repeat, source)
        extract_speed, command, startup_command = time_deeprel(args, work, source, count)
        lines = read_token_lines(source)

    settings = {"batch_size": args.batch_size, "precision": args.precision}
    extractor = deeprel.load(args.model, **settings)
    nlp = spacy.blank("en")
    nlp.add_pipe("deeprel", config={"model": args.model, **settings})
    nlp.initialize()  # loads the model now, not on the first Doc

    library_seconds, component_seconds = [], []
    for _ in range(args.rounds):
        seconds, library_found = run_library(extractor, lines, args.docs_per_batch)
        library_seconds.append(seconds)
        seconds, component_found = run_component(nlp, lines, args.docs_per_batch)
        component_seconds.append(seconds)
    library = count / statistics.median(library_seconds)
    component = count / statistics.median(component_seconds)
    result = {
        "data": data.name,
        "sentences": count,
        "repeat": args.repeat,
        "model": args.model,
        "precision": extractor.precision,
        "batch_size": args.batch_size,
        "docs_per_batch": args.docs_per_batch,
        "torch_threads": torch.get_num_threads(),
        "extract": {
            **extract_speed.to_dict(),
            "command": shlex.join(command),
            "startup_command": shlex.join(startup_command),
        },
        "library": {
            "sentences_per_second": round(library, 1),
            "seconds": [round(s, 3) for s in library_seconds],
            "call": f"extractor.extract_tokens(chunk of {args.docs_per_batch})",
        },
        "component": {
            "sentences_per_second": round(component, 1),
            "seconds": [round(s, 3) for s in component_seconds],
            "call": f"nlp.pipe(docs, batch_size={args.docs_per_batch})",
        },
        "component_over_library": round(component / library, 3),
        "component_over_extract": round(component / extract_speed.per_second, 3),
        "agreement": agreement(library_found, component_found),
        "environment": environment(),
        "command": shlex.join(["python", *sys.argv]),
    }
    print(json.dumps({k: result[k] for k in ("library", "component", "extract")}, indent=2))
    ratios = result["component_over_library"], result["component_over_extract"]
    print("component / library: {}, component / extract: {}".format(*ratios))
    if args.output:
        write_text_atomically(args.output, json.dumps(result, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
