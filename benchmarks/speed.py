"""Speed on this machine's CPU, on the CoNLL04 test set (run by hand; results go to docs/results.md).

Measures, for a trained model directory:
  - encoder feature extraction alone (the transformer forward pass and pooling), sentences/second;
  - end-to-end inference (featurise, encoder, BiRNNs, CRF Viterbi, relation scoring, decoding), sentences/second;
  - the ratio end-to-end time / encoder-alone time;
  - training seconds per epoch, by training the model's own configuration for two epochs on CoNLL04 train.

    python benchmarks/speed.py --model runs/conll04-frozen-s1/model --output docs/results/speed_frozen.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from deeprel.config import resolve_data_path
from deeprel.data.readers import read_sentences
from deeprel.inference.predictor import Predictor
from deeprel.runtime import Runtime
from deeprel.training.trainer import train


def timed(function, repeats: int) -> float:
    """The best of ``repeats`` wall-clock timings, in seconds (the least disturbed run)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--data", default="datasets/conll04/conll04_test.json")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-epochs", type=int, default=2)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    predictor = Predictor.load(args.model, device="cpu")
    sentences = read_sentences(resolve_data_path(args.data))
    encoder = predictor.model.embedder.contextual
    tokens = sorted((s.tokens for s in sentences), key=len)

    def encoder_only() -> None:
        with torch.no_grad():
            for k in range(0, len(tokens), args.batch_size):
                encoder(tokens[k : k + args.batch_size])

    def end_to_end() -> None:
        predictor.predict(sentences, batch_size=args.batch_size)

    encoder_seconds = timed(encoder_only, args.repeats) if encoder is not None else None
    e2e_seconds = timed(end_to_end, args.repeats)

    changes = {"training.max_epochs": args.train_epochs, "training.protocol": "dev", "data.test": None}
    contextual = predictor.config.embeddings.contextual
    if contextual.enabled and (args.model / contextual.encoder).is_dir():
        changes["embeddings.contextual.encoder"] = str((args.model / contextual.encoder).resolve())
    config = predictor.config.with_overrides(changes)
    runtime = Runtime(device="cpu", num_threads=None)  # all cores, whatever the run was trained with
    with tempfile.TemporaryDirectory() as run:
        train(config, run, runtime=runtime, progress=False, log=lambda _: None)
        rows = [json.loads(line) for line in (Path(run) / "log.jsonl").read_text().splitlines()]
    epoch_seconds = [r["seconds"] for r in rows]

    result = {
        "model": str(args.model),
        "mode": config.embeddings.contextual.mode if config.embeddings.contextual.enabled else "none",
        "sentences": len(sentences),
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "encoder_seconds": round(encoder_seconds, 3) if encoder_seconds else None,
        "encoder_sentences_per_second": round(len(sentences) / encoder_seconds, 1) if encoder_seconds else None,
        "end_to_end_seconds": round(e2e_seconds, 3),
        "end_to_end_sentences_per_second": round(len(sentences) / e2e_seconds, 1),
        "end_to_end_over_encoder": round(e2e_seconds / encoder_seconds, 2) if encoder_seconds else None,
        "train_epoch_seconds": epoch_seconds,
        "train_documents": len(read_sentences(resolve_data_path(config.data.train))),
        "command": "python " + " ".join(sys.argv),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
