"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint is a directory written in full and then moved into place, so an interrupted write never
leaves a checkpoint that `--resume` would half-read.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from deeprel.atomic import staged_directory


def save_checkpoint(
    directory: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    generator: torch.Generator,
    state: dict[str, Any],
) -> None:
    with staged_directory(directory) as staging:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(staging / "model.safetensors"))
        optimizer_state = optimizer.state_dict()
        tensors: dict[str, torch.Tensor] = {}
        scalars: dict[str, dict[str, Any]] = {}
        for index, values in optimizer_state["state"].items():
            for name, value in values.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"{index}.{name}"] = value.contiguous()
                else:
                    scalars.setdefault(str(index), {})[name] = value
        tensors["rng.torch"] = torch.get_rng_state()
        tensors["rng.generator"] = generator.get_state()
        save_file(tensors, str(staging / "optimizer.safetensors"))
        numpy_state = np.random.get_state()
        python_state = random.getstate()
        extra = {
            "param_groups": optimizer_state["param_groups"],
            "scalars": scalars,
            "scheduler": scheduler.state_dict(),
            "rng_numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
            "rng_python": [python_state[0], list(python_state[1]), python_state[2]],
            "trainer": state,
        }
        (staging / "state.json").write_text(json.dumps(extra), encoding="utf-8")


def load_checkpoint(
    directory: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    generator: torch.Generator,
) -> dict[str, Any]:
    """Restore model, optimiser, schedule and random states; returns the trainer's own state.

    A checkpoint from before the schedule was saved resumes it at the trainer's step count."""
    model.load_state_dict(load_file(str(directory / "model.safetensors")))
    tensors = load_file(str(directory / "optimizer.safetensors"))
    extra = json.loads((directory / "state.json").read_text(encoding="utf-8"))
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("rng."):
            continue
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    for index, values in extra["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": extra["param_groups"]})
    if "scheduler" in extra:
        scheduler.load_state_dict(extra["scheduler"])
    else:
        step = extra["trainer"]["step"]
        scheduler.last_epoch = step
        for group, base, factor in zip(optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas, strict=True):
            group["lr"] = base * factor(step)
    torch.set_rng_state(tensors["rng.torch"])
    generator.set_state(tensors["rng.generator"])
    kind, keys, *rest = extra["rng_numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), *rest))
    version, internal, gauss = extra["rng_python"]
    random.setstate((version, tuple(internal), gauss))
    return extra["trainer"]
