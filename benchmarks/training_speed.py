"""Training seconds per epoch: a configuration as it is beside variants of it (run by hand, on an idle machine).

Trains CONFIG on its training set for ``--epochs`` epochs (frozen features from the cache, as a real run reads
them; the dev scoring after each epoch is not timed) as it is and with each ``--variant``'s overrides, the
variants taking turns over ``--rounds`` rounds so that a drift of the machine's speed touches all of them alike.
Beside the seconds it counts the padded work of the first epoch's batches, which the speed follows: the
BiRNNs' time steps (a batch runs as many as its longest sentence) and the token pairs the relation scorer
scores (a batch's size times its longest length, squared).

    python benchmarks/training_speed.py configs/conll04.toml --variant "grouped: training.batch_order=grouped" \\
        --variant "shuffled: training.batch_order=grouped_shuffled" --output docs/results/training_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
from pathlib import Path
from typing import Any

import torch
from speed import train_epoch_seconds

from deeprel.config import Config, load_config, parse_override
from deeprel.training.seeding import set_seed
from deeprel.training.trainer import epoch_batches, load_datasets

BASELINE = "as configured"


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """``"NAME: key=value key=value"``: a name, then the overrides, separated by spaces."""
    name, sep, overrides = text.partition(":")
    if not sep or not name.strip() or not overrides.split():
        raise SystemExit(f"--variant {text!r}: expected 'NAME: section.key=value ...'")
    return name.strip(), dict(parse_override(o) for o in overrides.split())


def padded_work(config: Config) -> dict[str, int]:
    """The first epoch's batches (the training seed's, as the trainer draws them): the BiRNN time steps they run
    and the token pairs the relation scorer scores, padding included, beside the sentences' own."""
    train = load_datasets(config, log=lambda _: None).get("train")
    assert train is not None, "the configuration names no training set"
    lengths = [len(s.tokens) for s in train]
    batches = epoch_batches(train, config.training, set_seed(config.training.seed))
    return {
        "sentences": len(train),
        "batches": len(batches),
        "birnn_steps": sum(max(lengths[i] for i in b) for b in batches),
        "scored_pairs": sum(len(b) * max(lengths[i] for i in b) ** 2 for b in batches),
        "tokens": sum(lengths),
        "real_pairs": sum(n * n for n in lengths),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=Path)
    parser.add_argument("--variant", action="append", default=[], help="'NAME: section.key=value ...'")
    parser.add_argument("--epochs", type=int, default=2, help="Epochs per training run.")
    parser.add_argument("--rounds", type=int, default=2, help="Training runs per variant, taking turns.")
    parser.add_argument("--num-threads", type=int, help="torch threads (default: torch's, all cores).")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not args.variant:
        parser.error("give at least one --variant to compare with the configuration as it is")

    base = load_config(args.config)
    overrides: dict[str, dict[str, Any]] = {BASELINE: {}}
    for text in args.variant:
        name, changes = parse_variant(text)
        if name in overrides:
            parser.error(f"--variant {name!r} is given twice")
        overrides[name] = changes
    configs = {name: base.with_overrides(changes) for name, changes in overrides.items()}
    seconds: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(args.rounds):
        for name, config in configs.items():
            seconds[name] += train_epoch_seconds(config, args.epochs, args.num_threads)
    baseline = statistics.median(seconds[BASELINE])
    variants = {
        name: {
            "overrides": overrides[name],
            "epoch_seconds": seconds[name],
            "median_epoch_seconds": round(statistics.median(seconds[name]), 2),
            "over_baseline": round(statistics.median(seconds[name]) / baseline, 3),
            "work": padded_work(config),
        }
        for name, config in configs.items()
    }
    result = {
        "config": str(args.config),
        "epochs_per_run": args.epochs,
        "rounds": args.rounds,
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "variants": variants,
        "command": "python " + shlex.join(sys.argv),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
