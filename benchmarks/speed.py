"""Speed on this machine's CPU, on the CoNLL04 test set (run by hand; results go to docs/results.md).

Measures, for a trained model directory and each encoder precision asked for (``--precisions``):
  - the model's load time;
  - encoder feature extraction alone (the transformer forward pass and pooling), sentences/second;
  - end-to-end inference (featurise, encoder, BiRNNs, CRF Viterbi and marginals, relation scoring, decoding),
    sentences/second, with entity scores and without (``entity_scores=False`` skips the forward-backward pass);
  - the ratios end-to-end time / encoder-alone time, both against the fp32 encoder;
  - strict NER and RE micro F1 on the same sentences, and their change from fp32's;
and, once, training seconds per epoch, by training the model's own configuration for two epochs on CoNLL04
train (``--train-epochs 0`` skips it).

    python benchmarks/speed.py --model runs/conll04-frozen/seed-1/model --output docs/results/speed_frozen.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

from deeprel.config import Config, resolve_data_path
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
    parser.add_argument("--precisions", default="fp32,bf16,int8", help="Encoder precisions, comma-separated.")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    sentences = read_sentences(resolve_data_path(args.data))
    tokens = sorted((s.tokens for s in sentences), key=len)
    runs: dict[str, dict[str, float | None]] = {}
    for precision in args.precisions.split(","):
        started = time.perf_counter()
        predictor = Predictor.load(args.model, device="cpu", precision=precision)
        load_seconds = time.perf_counter() - started
        encoder = predictor.model.embedder.contextual

        def encoder_only(encoder=encoder) -> None:
            with torch.inference_mode():
                for k in range(0, len(tokens), args.batch_size):
                    encoder(tokens[k : k + args.batch_size])

        def end_to_end(predictor=predictor, entity_scores: bool = True) -> None:
            predictor.predict(sentences, batch_size=args.batch_size, entity_scores=entity_scores)

        scores = predictor.evaluate(sentences, batch_size=args.batch_size).flat()
        runs[predictor.precision] = {
            "load_seconds": round(load_seconds, 3),
            "encoder_seconds": round(timed(encoder_only, args.repeats), 3) if encoder is not None else None,
            "end_to_end_seconds": round(timed(end_to_end, args.repeats), 3),
            "end_to_end_without_entity_scores_seconds": round(
                timed(lambda p=predictor: end_to_end(p, entity_scores=False), args.repeats), 3
            ),
            "ner_micro_f1": round(scores["ner_micro_f1"], 2),
            "re_micro_f1": round(scores["re_micro_f1"], 2),
        }
    fp32 = runs.get("fp32")
    for run in runs.values():
        run["end_to_end_sentences_per_second"] = round(len(sentences) / run["end_to_end_seconds"], 1)
        if run["encoder_seconds"]:
            run["encoder_sentences_per_second"] = round(len(sentences) / run["encoder_seconds"], 1)
            run["end_to_end_over_encoder"] = round(run["end_to_end_seconds"] / run["encoder_seconds"], 2)
        if fp32 is not None:
            if fp32["encoder_seconds"]:
                run["end_to_end_over_fp32_encoder"] = round(run["end_to_end_seconds"] / fp32["encoder_seconds"], 2)
            for metric in ("ner_micro_f1", "re_micro_f1"):
                run[f"{metric}_change"] = round(run[metric] - fp32[metric], 2)

    epoch_seconds = (
        train_epoch_seconds(own_config(predictor, args.model), args.train_epochs) if args.train_epochs else []
    )
    contextual = predictor.config.embeddings.contextual
    result = {
        "model": str(args.model),
        "mode": contextual.mode if contextual.enabled else "none",
        "encoder": contextual.encoder if contextual.enabled else None,
        "sentences": len(sentences),
        "batch_size": args.batch_size,
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "precisions": runs,
        "train_epoch_seconds": epoch_seconds,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "command": "python " + " ".join(sys.argv),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n", encoding="utf-8")


def own_config(predictor: Predictor, model: Path) -> Config:
    """The model's configuration, its encoder read from the model directory when it ships one."""
    contextual = predictor.config.embeddings.contextual
    if contextual.enabled and (model / contextual.encoder).is_dir():
        return predictor.config.with_overrides(
            {"embeddings.contextual.encoder": str((model / contextual.encoder).resolve())}
        )
    return predictor.config


def train_epoch_seconds(config: Config, epochs: int, num_threads: int | None = None) -> list[float]:
    """Seconds per epoch of training ``config`` on its training set, no dev scoring (torch's threads by default:
    all cores, whatever the run was trained with)."""
    config = config.with_overrides({"training.max_epochs": epochs, "training.protocol": "dev", "data.test": None})
    runtime = Runtime(device="cpu", num_threads=num_threads)
    with tempfile.TemporaryDirectory() as run:
        train(config, run, runtime=runtime, progress=False, log=lambda _: None)
        rows = [json.loads(line) for line in (Path(run) / "log.jsonl").read_text().splitlines()]
    return [r["seconds"] for r in rows]


if __name__ == "__main__":
    main()
