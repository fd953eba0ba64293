"""Checkpoints: model, optimiser, learning-rate schedule and random states, without pickle."""

import json

import torch

from deeprel.training.checkpoint import load_checkpoint, save_checkpoint
from deeprel.training.trainer import warmup_then_decay


def _parts():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam([{"params": model.parameters(), "lr": 0.1, "name": "encoder"}])
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, [lambda step: warmup_then_decay(step, 10, 0.2)])
    return model, optimizer, schedule, torch.Generator().manual_seed(1)


def _steps(model, optimizer, schedule, count: int) -> None:
    for _ in range(count):
        optimizer.zero_grad()
        model(torch.ones(1, 3)).sum().backward()
        optimizer.step()
        schedule.step()


def test_a_checkpoint_restores_the_schedule_where_it_stopped(tmp_path) -> None:
    model, optimizer, schedule, generator = _parts()
    _steps(model, optimizer, schedule, 4)
    save_checkpoint(tmp_path / "c", model, optimizer, schedule, generator, {"step": 4})
    lr = optimizer.param_groups[0]["lr"]
    fresh = _parts()
    assert load_checkpoint(tmp_path / "c", *fresh) == {"step": 4}
    assert fresh[2].last_epoch == 4 and fresh[1].param_groups[0]["lr"] == lr == 0.1 * warmup_then_decay(4, 10, 0.2)
    _steps(model, optimizer, schedule, 1)
    _steps(*fresh[:3], 1)
    assert fresh[1].param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]
    assert torch.equal(fresh[0].weight, model.weight)


def test_a_checkpoint_from_before_the_schedule_was_saved_resumes_at_its_step(tmp_path) -> None:
    model, optimizer, schedule, generator = _parts()
    _steps(model, optimizer, schedule, 3)
    save_checkpoint(tmp_path / "c", model, optimizer, schedule, generator, {"step": 3})
    state = json.loads((tmp_path / "c" / "state.json").read_text())
    del state["scheduler"]
    state["param_groups"][0]["lr"] = 0.1 * warmup_then_decay(2, 10, 0.2)  # what the old trainer left there
    (tmp_path / "c" / "state.json").write_text(json.dumps(state))
    fresh = _parts()
    load_checkpoint(tmp_path / "c", *fresh)
    assert fresh[2].last_epoch == 3
    assert fresh[1].param_groups[0]["lr"] == optimizer.param_groups[0]["lr"] == 0.1 * warmup_then_decay(3, 10, 0.2)
