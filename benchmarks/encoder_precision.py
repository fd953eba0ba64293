"""The encoder alone at each precision, PyTorch's and ONNX Runtime's, on the CoNLL04 test set (run by hand).

For a trained model directory's encoder: seconds for the test sentences (sorted by length, batch 32, the
transformer's forward pass over the word pieces; tokenising and pooling are left out, being the same for
all), and how far each variant's last-layer word-piece vectors move from PyTorch fp32's (mean and smallest
cosine over the real pieces). Variants:
  - torch fp32, torch bf16 (autocast), torch int8 (``quantize_dynamic`` of the linear layers): what
    ``deeprel.load(..., precision=...)`` runs;
  - onnxruntime fp32 (the encoder exported by ``torch.onnx.export``) and onnxruntime int8
    (``onnxruntime.quantization.quantize_dynamic`` of that export).
ONNX Runtime is measured here only, to choose between the two; it needs ``pip install -e ".[bench]"``.

    python benchmarks/encoder_precision.py --model runs/conll04-frozen/seed-1/model \\
        --output docs/results/encoder_precision.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from deeprel.atomic import write_text_atomically
from deeprel.config import resolve_data_path
from deeprel.data.readers import read_sentences
from deeprel.inference.predictor import Predictor

Batch = tuple[torch.Tensor, torch.Tensor]  # input ids and attention mask, [N, P]


def batches_of(predictor: Predictor, data: Path, batch_size: int) -> list[Batch]:
    """The test sentences' word pieces with [CLS] and [SEP], sorted by length, padded batch by batch."""
    encoder = predictor.model.embedder.contextual
    tokenizer = encoder.tokenizer
    pieces = sorted(
        (tokenizer(list(s.tokens), is_split_into_words=True)["input_ids"] for s in read_sentences(data)), key=len
    )
    batches = []
    for k in range(0, len(pieces), batch_size):
        chunk = pieces[k : k + batch_size]
        length = max(map(len, chunk))
        ids = torch.tensor([p + [tokenizer.pad_token_id] * (length - len(p)) for p in chunk])
        mask = torch.tensor([[1] * len(p) + [0] * (length - len(p)) for p in chunk])
        batches.append((ids, mask))
    return batches


def run_all(forward: Callable[[Batch], np.ndarray], batches: list[Batch], repeats: int) -> tuple[float, list]:
    """The best of ``repeats`` timings over all batches, and the last run's outputs."""
    best, outputs = float("inf"), []
    for _ in range(repeats):
        started = time.perf_counter()
        outputs = [forward(batch) for batch in batches]
        best = min(best, time.perf_counter() - started)
    return best, outputs


def torch_forward(model: torch.nn.Module, bf16: bool) -> Callable[[Batch], np.ndarray]:
    def forward(batch: Batch) -> np.ndarray:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return model(input_ids=batch[0], attention_mask=batch[1]).last_hidden_state.float().numpy()

    return forward


def onnx_forward(path: Path) -> Callable[[Batch], np.ndarray]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def forward(batch: Batch) -> np.ndarray:
        return session.run(["last_hidden_state"], {"input_ids": batch[0].numpy(), "attention_mask": batch[1].numpy()})[
            0
        ]

    return forward


def export_onnx(model: torch.nn.Module, batch: Batch, directory: Path) -> tuple[Path, Path]:
    """The encoder as ONNX (fp32) and its int8 dynamic quantisation."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    class LastHidden(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    fp32, int8 = directory / "encoder.onnx", directory / "encoder.int8.onnx"
    pieces = torch.export.Dim("pieces", min=2, max=512)
    sentences = torch.export.Dim("sentences", min=1, max=1024)
    torch.onnx.export(
        LastHidden(model).eval(),
        batch,
        str(fp32),
        input_names=["input_ids", "attention_mask"],
        output_names=["last_hidden_state"],
        dynamic_shapes={"input_ids": {0: sentences, 1: pieces}, "attention_mask": {0: sentences, 1: pieces}},
        dynamo=True,
    )
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    return fp32, int8


def cosines(reference: list[np.ndarray], other: list[np.ndarray], batches: list[Batch]) -> tuple[float, float]:
    """Mean and smallest cosine between the two variants' vectors of every real word piece."""
    values = []
    for a, b, (_, mask) in zip(reference, other, batches, strict=True):
        real = mask.numpy().astype(bool)
        x, y = a[real], b[real]
        values.append((x * y).sum(-1) / (np.linalg.norm(x, axis=-1) * np.linalg.norm(y, axis=-1)))
    joined = np.concatenate(values)
    return float(joined.mean()), float(joined.min())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--data", default="datasets/conll04/conll04_test.json")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    data = resolve_data_path(args.data)
    predictor = Predictor.load(args.model, device="cpu", precision="fp32")
    encoder = predictor.model.embedder.contextual
    if encoder is None:
        sys.exit(f"{args.model}: the model has no contextual encoder")
    batches = batches_of(predictor, data, args.batch_size)
    variants: dict[str, Callable[[Batch], np.ndarray]] = {
        "torch fp32": torch_forward(encoder.encoder, bf16=False),
        "torch bf16": torch_forward(encoder.encoder, bf16=True),
    }
    quantised = Predictor.load(args.model, device="cpu", precision="int8").model.embedder.contextual
    variants["torch int8"] = torch_forward(quantised.encoder, bf16=False)
    rows = {}
    with tempfile.TemporaryDirectory() as work:
        fp32_path, int8_path = export_onnx(encoder.encoder, batches[-1], Path(work))
        variants["onnxruntime fp32"] = onnx_forward(fp32_path)
        variants["onnxruntime int8"] = onnx_forward(int8_path)
        reference = None
        for name, forward in variants.items():
            seconds, outputs = run_all(forward, batches, args.repeats)
            reference = reference or outputs
            mean, smallest = cosines(reference, outputs, batches)
            rows[name] = {"seconds": round(seconds, 3), "cosine_mean": round(mean, 4), "cosine_min": round(smallest, 4)}
    fp32_seconds = rows["torch fp32"]["seconds"]
    for row in rows.values():
        row["speed_up"] = round(fp32_seconds / row["seconds"], 2)
    result = {
        "model": str(args.model),
        "sentences": sum(len(batch[0]) for batch in batches),
        "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "bf16_native": bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()),
        "variants": rows,
        "command": "python " + " ".join(sys.argv),
    }
    for name, row in rows.items():
        print(
            f"{name:>18}: {row['seconds']:6.2f} s ({row['speed_up']:.2f}x), cosine {row['cosine_mean']:.4f} mean,"
            f" {row['cosine_min']:.4f} smallest"
        )
    if args.output:
        write_text_atomically(args.output, json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
