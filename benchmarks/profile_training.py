"""Where a training epoch's time goes (run by hand, on an otherwise idle machine).

Trains a configuration's model for ``--batches`` batches of its training set (the frozen features from the
cache, as a real run reads them) under torch's profiler and prints the operators that took the most time,
then the same split by the trainer's own steps (featurise, forward, loss, backward, clip, step).

    python benchmarks/profile_training.py configs/conll04.toml --batches 40
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from deeprel.config import load_config
from deeprel.inference.predictor import Predictor
from deeprel.model.files import build_model, static_embedding
from deeprel.runtime import Runtime
from deeprel.training.seeding import set_seed
from deeprel.training.trainer import Optimisation, Trainer, build_labels, epoch_batches, load_datasets, model_parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=Path)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--rows", type=int, default=25, help="Operators listed.")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    config = load_config(args.config)
    runtime = Runtime(device="cpu")
    datasets = load_datasets(config, log=lambda _: None)
    labels = build_labels(config, datasets)
    static, chars = model_parts(config, datasets, log=lambda _: None)
    set_seed(config.training.seed)
    model, featurizer = build_model(config, labels, chars, static_embedding(config, *static) if static else None)
    train = datasets.get("train")
    assert train is not None
    features = Trainer(config, "/tmp/unused", runtime=runtime, log=lambda _: None)._features(model, train)
    optimisation = Optimisation.build(model, config, args.batches)
    predictor = Predictor(model, featurizer, config)
    training = config.training
    batches = epoch_batches(train, training, torch.Generator().manual_seed(1))[: args.batches]
    steps: dict[str, float] = defaultdict(float)

    def timed(name: str, work):
        started = time.perf_counter()
        with record_function(name):
            result = work()
        steps[name] += time.perf_counter() - started
        return result

    predictor.model.train()
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for indices in batches:
            batch = timed(
                "featurise",
                lambda indices=indices: featurizer.batch(
                    [train[i] for i in indices],
                    features=[features[i] for i in indices] if features is not None else None,
                    targets=True,
                ),
            )
            optimisation.optimizer.zero_grad()
            loss, _ = timed("forward + loss", lambda batch=batch: model.loss(batch, training.lambda_re))
            timed("backward", loss.backward)
            timed("clip", lambda: torch.nn.utils.clip_grad_norm_(model.parameters(), training.clip_norm))
            timed("optimiser step", optimisation.step)
    print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))
    total = sum(steps.values())
    for name, seconds in steps.items():
        print(f"{name:>16}: {seconds:7.2f} s ({seconds / total:5.1%})")
    print(f"{'all':>16}: {total:7.2f} s for {len(batches)} batches of {training.batch_size}")


if __name__ == "__main__":
    main()
