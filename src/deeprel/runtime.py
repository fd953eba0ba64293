"""Run settings: where and how a job runs (device, CPU threads, the frozen features' cache).

They are not part of a model's configuration: the same configuration trains to the same model on any
device or thread count, so a saved model and a resumed run never carry them. The command line sets them
with ``--device`` and ``--num-threads`` (as spaCy's ``--gpu-id``), the environment with
``$DEEPREL_CACHE_DIR``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    import torch

EncoderPrecision = Literal["fp32", "bf16", "int8"]  # what an encoder runs at
Precision = Literal["auto", EncoderPrecision]  # what may be asked for: "auto" is resolved to one of those
PRECISIONS: tuple[str, ...] = get_args(Precision)
DEFAULT_PRECISION: Precision = "auto"  # extraction (API, predict, extract, serve): bf16 where the CPU has it
# deeprel extract's sentences per batch. Measured (benchmarks/extract_settings.py, docs/results.md): with each
# chunk's sentences sorted by length, batches of 16 ran faster than 32, 64 or 128 on 2 cores (less padding).
EXTRACT_BATCH_SIZE = 16


@dataclass(frozen=True)
class Runtime:
    """``device``: "auto" (CUDA when present), "cpu", "cuda" or "cuda:N"; ``num_threads``: torch's CPU
    threads (None: torch's default, all cores); ``cache_dir``: the frozen mode's feature cache (None:
    ``$DEEPREL_CACHE_DIR``, else ``~/.cache/deeprel``)."""

    device: str = "auto"
    num_threads: int | None = None
    cache_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError(f"num_threads must be at least 1, got {self.num_threads}")

    def torch_device(self) -> torch.device:
        return pick_device(self.device)

    def apply(self) -> torch.device:
        """Set torch's thread count (when given) and return the device to run on."""
        import torch

        if self.num_threads is not None:
            torch.set_num_threads(self.num_threads)
        return self.torch_device()

    def feature_cache_dir(self) -> Path:
        if self.cache_dir is not None:
            return Path(self.cache_dir).expanduser()
        return Path(os.environ.get("DEEPREL_CACHE_DIR", Path.home() / ".cache" / "deeprel")).expanduser()


def pick_device(name: str | torch.device) -> torch.device:
    """The torch device a name means; "auto" is CUDA when it is available, else the CPU."""
    import torch

    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device {name!r} is not one of auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r}, but CUDA is not available here")
    return device


def resolve_precision(precision: str, device: torch.device) -> EncoderPrecision:
    """The encoder precision to run at. "auto": bf16 on a CPU whose instructions do bf16 natively (AVX-512
    BF16 or AMX), fp32 elsewhere (emulated bf16 is slower than fp32; a GPU is fast at fp32 already). int8
    (PyTorch's dynamic quantisation of the encoder's linear layers) runs on the CPU only."""
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        native = device.type == "cpu" and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
        return "bf16" if native else "fp32"
    if precision == "int8" and device.type != "cpu":
        raise ValueError(f"precision int8 runs on the CPU only, not on {device}")
    return precision  # type: ignore[return-value]


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity, as a container or ``taskset`` sets it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
