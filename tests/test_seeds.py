"""Several seeds of one configuration: finished runs are reused, scores are summarised as mean ± sd."""

import json
import shutil

import pytest

from deeprel.experiments.seeds import run_seeds, summarise


def _metrics(ner: float, re: float, seconds: float) -> dict:
    def prf(f1: float) -> dict:
        return {"precision": f1 + 1, "recall": f1 - 1, "f1": f1}

    return {
        "training": {"trainable_parameters": 10, "train_seconds": seconds, "epochs_run": 3, "selection": None},
        "test": {"strict": {task: {"micro": prf(v), "macro": prf(v - 2)} for task, v in (("ner", ner), ("re", re))}},
    }


def test_summary_is_mean_and_sample_sd() -> None:
    summary = summarise([(1, _metrics(80, 60, 60)), (2, _metrics(82, 64, 120)), (3, _metrics(84, 62, 180))])
    assert summary["seeds"] == [1, 2, 3]
    assert summary["ner_micro_f1_mean"] == 82.0 and summary["ner_micro_f1_sd"] == 2.0
    assert summary["re_micro_f1_mean"] == 62.0 and summary["re_micro_f1_sd"] == 2.0
    assert summary["re_macro_f1_mean"] == 60.0 and summary["ner_micro_p_mean"] == 83.0
    assert summary["re_micro_f1_runs"] == [60, 64, 62]
    assert summary["train_minutes_per_run"] == 2.0 and summary["trainable_parameters"] == 10
    one = summarise([(1, _metrics(80, 60, 60))])
    assert one["ner_micro_f1_mean"] == 80.0 and one["ner_micro_f1_sd"] is None  # one seed has no spread


def test_finished_runs_are_reused_and_can_be_rescored(trained_run, tiny_config, tmp_path) -> None:
    config = tiny_config.with_overrides({"data.test": "datasets/conll04/conll04_dev.json"})
    for seed in (1, 2):
        shutil.copytree(trained_run, tmp_path / f"seed-{seed}")
        metrics = json.loads((trained_run / "metrics.json").read_text())
        metrics["test"] = _metrics(70, 40, 1)["test"]
        (tmp_path / f"seed-{seed}" / "metrics.json").write_text(json.dumps(metrics))
    logged = []
    summary = run_seeds(config, [1, 2], tmp_path, log=logged.append)
    assert all("finished already" in line for line in logged)  # nothing was trained again
    assert summary["re_micro_f1_mean"] == 40.0 and summary["threshold"] == config.model.threshold
    lenient = run_seeds(config, [1, 2], tmp_path, threshold=0.05, log=lambda _: None)
    strict = run_seeds(config, [1, 2], tmp_path, threshold=0.99, log=lambda _: None)
    assert lenient["threshold"] == 0.05
    assert lenient["re_micro_r_mean"] >= strict["re_micro_r_mean"]
    assert lenient["ner_micro_f1_mean"] == pytest.approx(strict["ner_micro_f1_mean"])  # entities do not depend on it
