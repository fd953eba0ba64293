"""Ablation: the variants' depths and inputs, the entries and paired differences, the results file, the CLI."""

import json
import statistics
from pathlib import Path

import pytest
from click.testing import CliRunner

from deeprel.cli import main
from deeprel.config import Config, load_config
from deeprel.experiments import ablation, crossval
from deeprel.experiments.ablation import (
    VARIANTS,
    Depths,
    ablated_depths,
    build_variant,
    run_ablation,
    store_ablation,
)
from deeprel.reporting.results import F1_METRICS as F1_KEYS

ROOT = Path(__file__).resolve().parents[1]


def _config(shared: int, ner: int, re: int, **changes) -> Config:
    depths = {"model.shared_depth": shared, "model.ner_depth": ner, "model.re_depth": re}
    return load_config(ROOT / "configs" / "conll04.toml").with_overrides({**depths, **changes})


@pytest.mark.parametrize(
    ("depths", "no_task_layers", "no_shared"),
    [
        ((1, 1, 2), (3, 0, 0), (0, 2, 3)),
        ((2, 0, 3), (5, 0, 0), (0, 2, 5)),
        ((0, 2, 2), (2, 0, 0), (0, 2, 2)),
        ((3, 1, 0), (4, 0, 0), (0, 4, 3)),
        ((1, 2, 2), (3, 0, 0), (0, 3, 3)),
    ],
)
def test_depth_variants(depths, no_task_layers, no_shared) -> None:
    base = Depths(*depths)
    without_tasks = ablated_depths(base, "no_task_layers")
    without_shared = ablated_depths(base, "no_shared")
    assert (without_tasks.shared, without_tasks.ner, without_tasks.re) == no_task_layers
    assert (without_shared.shared, without_shared.ner, without_shared.re) == no_shared
    # No shared stack: both paths keep their depth exactly.
    assert (without_shared.ner_path, without_shared.re_path) == (base.ner_path, base.re_path)
    # One shared stack: the deeper path keeps its depth, neither gets shallower.
    assert without_tasks.ner_path == without_tasks.re_path == max(base.ner_path, base.re_path)


def test_variants_build_configs_with_those_depths_and_inputs() -> None:
    base = _config(1, 1, 2)
    no_task = build_variant(base, "no_task_layers").config
    assert (no_task.model.shared_depth, no_task.model.ner_depth, no_task.model.re_depth) == (3, 0, 0)
    assert no_task.embeddings == base.embeddings and no_task.training == base.training
    no_static = build_variant(base, "no_static").config
    assert not no_static.embeddings.static.enabled and no_static.embeddings.contextual.enabled
    assert no_static.model == base.model
    assert not build_variant(base, "no_casing").config.embeddings.casing
    assert not build_variant(base, "no_chars").config.embeddings.chars.enabled
    assert not build_variant(base, "no_contextual").config.embeddings.contextual.enabled
    assert build_variant(base, "tuned").config == base


def test_variants_that_would_be_the_tuned_model_or_have_no_input_are_explained() -> None:
    no_shared = build_variant(_config(0, 1, 2), "no_shared")
    assert no_shared.config is None and "s = 0" in no_shared.reason
    no_task = build_variant(_config(2, 0, 0), "no_task_layers")
    assert no_task.config is None and "t_e = t_r = 0" in no_task.reason
    unused = build_variant(_config(1, 1, 2, **{"embeddings.static.enabled": False}), "no_static")
    assert unused.config is None and "does not use the static word vectors" in unused.reason
    only_casing = _config(
        1,
        1,
        2,
        **{
            "embeddings.static.enabled": False,
            "embeddings.contextual.enabled": False,
            "embeddings.chars.enabled": False,
        },
    )
    alone = build_variant(only_casing, "no_casing")
    assert alone.config is None and "only input" in alone.reason
    with pytest.raises(ValueError, match="unknown ablation variant 'deeper'"):
        build_variant(only_casing, "deeper")


def _fake_summary(config: Config, run_ids: list[int]) -> dict:
    """Scores that depend on the depths and inputs, so differences are known."""
    depths = Depths.of(config)
    offset = depths.ner + depths.re - 2 * config.embeddings.casing
    summary = {"trainable_parameters": 100 + depths.shared, "train_minutes_per_run": 1.5, "epochs": [4] * len(run_ids)}
    for index, key in enumerate(F1_KEYS):
        runs = [60.0 + index + offset + i * (1 + depths.shared) for i in range(len(run_ids))]
        summary |= {
            f"{key}_mean": round(statistics.mean(runs), 2),
            f"{key}_sd": round(statistics.stdev(runs), 2),
            f"{key}_runs": runs,
        }
    return summary


def test_conll04_ablation_entries_and_paired_differences(monkeypatch, tmp_path: Path) -> None:
    calls = []

    def fake_run_seeds(config, seeds, runs, select_once, runtime, progress, log):
        calls.append((runs, tuple(seeds), select_once))
        return {**_fake_summary(config, list(seeds)), "seeds": list(seeds)}

    monkeypatch.setattr(ablation, "run_seeds", fake_run_seeds)
    entries = run_ablation(
        _config(0, 1, 2),
        "conll04",
        tmp_path,
        variants=["no_task_layers", "no_shared", "no_casing"],
        seeds=[1, 2, 3],
        select_once=True,
        command="deeprel ablate x",
        log=lambda _: None,
    )
    assert list(entries) == ["tuned", "no_task_layers", "no_shared", "no_casing"]  # tuned first, always
    assert [c[0] for c in calls] == [tmp_path / "conll04" / n for n in ("tuned", "no_task_layers", "no_casing")]
    assert all(c[1:] == ((1, 2, 3), True) for c in calls)
    assert entries["no_shared"] == {
        "status": "not run",
        "reason": "the tuned model has no shared layers (s = 0), so this variant is the tuned model",
        "command": "deeprel ablate x",
    }
    tuned, no_task = entries["tuned"], entries["no_task_layers"]
    assert no_task["depths"] == {"shared": 2, "ner": 0, "re": 0, "ner_path": 2, "re_path": 2}
    assert tuned["depths"] == {"shared": 0, "ner": 1, "re": 2, "ner_path": 1, "re_path": 2}
    assert no_task["seeds"] == [1, 2, 3] and no_task["command"] == "deeprel ablate x"
    assert no_task["trainable_parameters"] == 102 and no_task["train_minutes_per_run"] == 1.5
    for key in F1_KEYS:
        for stat in ("mean", "sd", "runs"):
            assert f"{key}_{stat}" in no_task
    # tuned runs: base + (0, 1, 2); no_task_layers: base - 3 + (0, 3, 6) -> differences -3, -1, +1.
    assert no_task["difference_to_tuned"]["re_macro_f1"] == {"mean": -1.0, "sd": 2.0, "runs": [-3.0, -1.0, 1.0]}
    assert tuned["difference_to_tuned"]["ner_micro_f1"] == {"mean": 0.0, "sd": 0.0, "runs": [0.0, 0.0, 0.0]}
    assert entries["no_casing"]["inputs"] == {"contextual": True, "static": True, "chars": True, "casing": False}
    assert entries["no_casing"]["difference_to_tuned"]["ner_macro_f1"]["mean"] == 2.0

    results = tmp_path / "ablation.json"
    store_ablation(results, "conll04", entries)
    store_ablation(results, "conll04", {"no_static": {"status": "not run", "reason": "r", "command": ""}})
    stored = json.loads(results.read_text())
    assert list(stored["conll04"]) == ["tuned", "no_task_layers", "no_shared", "no_casing", "no_static"]


def test_ade_ablation_runs_crossval_per_variant(monkeypatch, tmp_path: Path) -> None:
    plans = []

    def fake_run_crossval(config, runs, plan, runtime, progress, log):
        plans.append((runs, plan))
        return {**_fake_summary(config, list(plan.folds)), "folds": [{"fold": f} for f in plan.folds]}

    monkeypatch.setattr(ablation, "run_crossval", fake_run_crossval)
    plan = crossval.CrossvalPlan(folds=(0, 1))
    entries = run_ablation(_config(1, 1, 2), "ade", tmp_path, plan=plan, log=lambda _: None)
    assert list(entries) == ["tuned", "no_task_layers", "no_shared"]  # ADE's default variants
    assert [r for r, _ in plans] == [tmp_path / "ade" / n for n in entries] and all(p is plan for _, p in plans)
    assert entries["no_shared"]["folds"] == [0, 1] and "seeds" not in entries["no_shared"]
    assert entries["no_shared"]["difference_to_tuned"]["ner_micro_f1"]["runs"] == [2.0, 1.0]


def test_conll04_ablation_needs_the_retrain_protocol(tmp_path: Path) -> None:
    config = _config(1, 1, 2, **{"training.protocol": "dev"})
    with pytest.raises(ValueError, match="retrain protocol"):
        run_ablation(config, "conll04", tmp_path, log=lambda _: None)
    with pytest.raises(ValueError, match="unknown ablation variant"):
        run_ablation(_config(1, 1, 2), "conll04", tmp_path, variants=["no_everything"], log=lambda _: None)
    assert set(VARIANTS) == {
        "tuned",
        "no_task_layers",
        "no_shared",
        "no_contextual",
        "no_static",
        "no_chars",
        "no_casing",
    }


def test_cli_ablate_and_crossval_parse_and_store(monkeypatch, tmp_path: Path) -> None:
    seen = {}

    def fake_run_ablation(config, dataset, runs, variants, seeds, plan, select_once, command, runtime, log):
        seen.update(
            dataset=dataset,
            variants=variants,
            seeds=seeds,
            folds=plan.folds,
            dev=plan.dev_fraction,
            depth=config.model.shared_depth,
        )
        return {"tuned": {"status": "done", "command": command}}

    monkeypatch.setattr(ablation, "run_ablation", fake_run_ablation)
    results = tmp_path / "ablation.json"
    config = str(ROOT / "configs" / "ade.toml")
    outcome = CliRunner().invoke(
        main,
        [
            "ablate",
            config,
            "--runs",
            str(tmp_path),
            "--dataset",
            "ade",
            "--folds",
            "0-2,5",
            "--dev-fraction",
            "0",
            "--variants",
            "no_shared, tuned",
            "--set",
            "model.shared_depth=2",
            "--results",
            str(results),
        ],
    )
    assert outcome.exit_code == 0, outcome.output
    assert seen == {
        "dataset": "ade",
        "variants": ["no_shared", "tuned"],
        "seeds": [1, 2, 3],
        "folds": (0, 1, 2, 5),
        "dev": 0.0,
        "depth": 2,
    }
    assert json.loads(results.read_text())["ade"]["tuned"]["command"].startswith("deeprel")

    monkeypatch.setattr(
        crossval,
        "run_crossval",
        lambda config, runs, plan, score, runtime, log: {"folds": list(plan.folds), "dev": plan.dev_fraction},
    )
    outcome = CliRunner().invoke(
        main,
        [
            "crossval",
            config,
            "--runs",
            str(tmp_path),
            "--folds",
            "3",
            "--dev-fraction",
            "0",
            "--results",
            str(tmp_path / "ade.json"),
            "--name",
            "frozen",
        ],
    )
    assert outcome.exit_code == 0, outcome.output
    stored = json.loads((tmp_path / "ade.json").read_text())["frozen"]
    assert stored["folds"] == [3] and stored["dev"] == 0.0 and "command" in stored
    bad = CliRunner().invoke(main, ["crossval", config, "--runs", str(tmp_path), "--folds", "2-1"])
    assert bad.exit_code == 2 and "runs backwards" in bad.output


def test_ade_ablation_end_to_end_on_a_slice_and_rerun_without_training(tiny_config, monkeypatch, tmp_path) -> None:
    config = tiny_config.with_overrides(
        {
            "data.types": "datasets/ade/ade_types.json",
            "data.dev": None,
            "data.train_dev": "datasets/ade/ade_split_0_train.json",
            "data.max_train_documents": 30,
            "data.max_eval_documents": 10,
            "embeddings.contextual.enabled": False,
            "embeddings.static.enabled": False,
            "model.hidden_size": 8,
            "model.ner_hidden_size": 8,
            "model.re_hidden_size": 8,
            "training.protocol": "retrain",
            "training.max_epochs": 1,
        }
    )
    plan = crossval.CrossvalPlan(folds=(0,), dev_fraction=0.2)
    entries = run_ablation(config, "ade", tmp_path, plan=plan, command="c", log=lambda _: None)
    assert [e["depths"]["shared"] for e in entries.values()] == [1, 2, 0]
    assert all(e["folds"] == [0] and e["epochs"] == [1] for e in entries.values())
    assert entries["no_task_layers"]["trainable_parameters"] != entries["tuned"]["trainable_parameters"]
    for name, entry in entries.items():
        result = json.loads((tmp_path / "ade" / name / "fold-0" / "result.json").read_text())
        assert entry["re_macro_f1_runs"] == [round(result["test"]["strict"]["re"]["macro"]["f1"], 2)]

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(crossval, "train", no_training)
    assert run_ablation(config, "ade", tmp_path, plan=plan, command="c", log=lambda _: None) == entries
