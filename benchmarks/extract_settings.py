"""`deeprel extract` over its batch size and worker count, to choose the defaults (run by hand, machine idle).

The input is the CoNLL04 test set repeated ``--repeat`` times as pre-tokenised JSONL (as in
``extract_vs_spacy.py``); each setting runs ``deeprel extract`` in a subprocess, start-up included, and the
table gives sentences/s with it and without it (a one-line run of the same setting measures the start-up).

    python benchmarks/extract_settings.py --model runs/conll04-frozen/seed-1/model --precision auto \\
        --output docs/results/extract_settings.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from extract_vs_spacy import extract_command, timed_run, write_benchmark_input

from deeprel.atomic import write_text_atomically
from deeprel.config import resolve_data_path
from deeprel.data.readers import read_sentences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--data", default="datasets/conll04/conll04_test.json")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--batch-sizes", default="16,32,64,128")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--deeprel", type=Path, default=Path(sys.executable).with_name("deeprel"))
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    rows = []
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        source, first_line = work / "input.jsonl", work / "one.jsonl"
        sentences = write_benchmark_input(read_sentences(resolve_data_path(args.data)), args.repeat, source)
        write_text_atomically(first_line, source.read_text(encoding="utf-8").splitlines(keepends=True)[0])
        for workers in map(int, args.workers.split(",")):
            for batch_size in map(int, args.batch_sizes.split(",")):
                setting = argparse.Namespace(**{**vars(args), "workers": workers, "batch_size": batch_size})
                startup, _ = timed_run(extract_command(setting, first_line, work / "one_out.jsonl"))
                seconds, cpu = timed_run(extract_command(setting, source, work / "out.jsonl"))
                row = {
                    "workers": workers,
                    "batch_size": batch_size,
                    "seconds": round(seconds, 2),
                    "startup_seconds": round(startup, 2),
                    "cores_busy": round(cpu / seconds, 2),
                    "sentences_per_second": round(sentences / (seconds - startup), 1),
                    "sentences_per_second_with_startup": round(sentences / seconds, 1),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    result = {
        "model": str(args.model),
        "sentences": sentences,
        "precision": args.precision,
        "cpus_usable": len(os.sched_getaffinity(0)),
        "rows": rows,
        "command": "python " + " ".join(sys.argv),
    }
    if args.output:
        write_text_atomically(args.output, json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
