"""Cross-validation: per-fold runs on tiny folds, mean ± sd over folds, resumption, overlap counts."""

import json
import statistics
from pathlib import Path
from unittest.mock import ANY

import pytest

from deeprel.config import load_config
from deeprel.data.readers import read_documents, write_json
from deeprel.data.tagging import overlapping_pairs
from deeprel.data.types import Document, Entity, Relation, Sentence
from deeprel.experiments import crossval
from deeprel.experiments.crossval import (
    CrossvalPlan,
    comparable_config,
    crossval_protocol,
    format_folds,
    merge_fold_summaries,
    parse_folds,
    run_crossval,
    split_dev,
    summarise_folds,
)

ROOT = Path(__file__).resolve().parents[1]

# keep_longest drops the nested Adverse-Effect [2, 3) and its relation.
TRAIN_OVERLAP = Document.from_tokens(
    ("aspirin", "caused", "severe", "rash", "today"),
    (Entity("Drug", 0, 1), Entity("Adverse-Effect", 1, 4), Entity("Adverse-Effect", 2, 3)),
    (Relation("Adverse-Effect", 1, 0), Relation("Adverse-Effect", 2, 0)),
    id="train-overlap",
)
# Two spans of equal length sharing a token: keep_longest keeps the earlier, the Drug and the relation go.
TEST_OVERLAP = Document.from_tokens(
    ("renal", "failure", "lithium", "use"),
    (Entity("Adverse-Effect", 0, 2), Entity("Drug", 1, 3)),
    (Relation("Adverse-Effect", 0, 1),),
    id="test-overlap",
)


@pytest.fixture(scope="module")
def folds(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two folds of ADE sentences without overlaps, plus one hand-made overlapping sentence in each part."""
    clean = [
        d
        for d in read_documents(data_dir / "datasets/ade/ade_full.json")[:80]
        if not overlapping_pairs(d.sentences[0].entities)
    ]
    folder = tmp_path_factory.mktemp("folds")
    for fold in (0, 1):
        test = clean[fold * 6 : fold * 6 + 6]
        train = [d for d in clean[:40] if d not in test]
        write_json([*train, TRAIN_OVERLAP], folder / f"split_{fold}_train.json")
        write_json([*test, TEST_OVERLAP], folder / f"split_{fold}_test.json")
    return folder


@pytest.fixture()
def config(tiny_config, folds: Path):
    """Chars and casing only, tiny layers, retrain protocol: a fold trains in about a second."""
    return tiny_config.with_overrides(
        {
            "data.types": "datasets/ade/ade_types.json",
            "data.dev": None,
            "data.train_dev": str(folds / "split_0_train.json"),
            "data.max_train_documents": None,
            "data.max_eval_documents": None,
            "embeddings.contextual.enabled": False,
            "embeddings.static.enabled": False,
            "model.hidden_size": 8,
            "model.ner_hidden_size": 8,
            "model.re_hidden_size": 8,
            "training.protocol": "retrain",
            "training.max_epochs": 2,
            "training.patience": 2,
        }
    )


def _plan(folds: Path, which: tuple[int, ...], **changes) -> CrossvalPlan:
    return CrossvalPlan(
        folds=which,
        train_pattern=str(folds / "split_{fold}_train.json"),
        test_pattern=str(folds / "split_{fold}_test.json"),
        **{"dev_fraction": 0.25, **changes},
    )


def test_parse_folds() -> None:
    assert parse_folds("0-9") == tuple(range(10))
    assert parse_folds("0-2,7") == (0, 1, 2, 7)
    assert parse_folds("3") == (3,)
    for bad, message in (("3-1", "backwards"), ("a", "neither"), ("1,1", "twice")):
        with pytest.raises(ValueError, match=message):
            parse_folds(bad)


def test_plan_checks_its_patterns_and_dev_fraction() -> None:
    with pytest.raises(ValueError, match="placeholder"):
        CrossvalPlan(train_pattern="datasets/ade/train.json")
    with pytest.raises(ValueError, match="dev fraction"):
        CrossvalPlan(dev_fraction=1.0)
    assert CrossvalPlan().files(3) == ("datasets/ade/ade_split_3_train.json", "datasets/ade/ade_split_3_test.json")


def test_split_dev_is_seeded_disjoint_and_keeps_order() -> None:
    documents = [Sentence(("w",), id=str(i)) for i in range(20)]
    rest, dev = split_dev(documents, 0.1, seed=1)
    assert len(dev) == 2 and len(rest) == 18
    assert {d.id for d in rest} | {d.id for d in dev} == {str(i) for i in range(20)}
    assert [int(d.id) for d in rest] == sorted(int(d.id) for d in rest)
    assert split_dev(documents, 0.1, seed=1) == (rest, dev)
    assert split_dev(documents, 0.1, seed=2)[1] != dev
    with pytest.raises(ValueError, match="cannot hold out"):
        split_dev(documents[:1], 0.5, seed=1)


def _result(fold: int, ner_macro: float, re_macro: float, seconds: float, parameters: int = 7) -> dict:
    def prf(f1: float) -> dict:
        return {"precision": f1 + 1, "recall": f1 - 1, "f1": f1}

    scores = {
        "strict": {
            "ner": {"micro": prf(ner_macro + 2), "macro": prf(ner_macro)},
            "re": {"micro": prf(re_macro), "macro": prf(re_macro)},
        }
    }
    overlaps = {"documents_affected": fold + 1, "entities_removed": fold + 1, "relations_removed": 2 * fold}
    return {
        "fold": fold,
        "test_documents": 10,
        "overlaps": {"policy": "keep_longest", "train_removed": overlaps, "test_unrepresentable": overlaps},
        "training": {
            "trainable_parameters": parameters,
            "train_seconds": seconds,
            "epochs_run": 4,
            "best_epoch": 4,
            "selection": {"best_epoch": 4, "train_seconds": seconds},
        },
        "test": scores,
        "test_without_overlaps": {
            "strict": {task: {avg: prf(v["f1"] + 1) for avg, v in s.items()} for task, s in scores["strict"].items()}
        },
    }


def test_summary_is_mean_and_sample_sd_over_folds() -> None:
    results = [_result(0, 80.0, 60.0, 30), _result(1, 84.0, 70.0, 60), _result(2, 85.0, 62.0, 90)]
    summary = summarise_folds(results, score_without_overlaps=True)
    assert summary["ner_macro_f1_mean"] == 83.0
    assert summary["ner_macro_f1_sd"] == round(statistics.stdev([80, 84, 85]), 2) == 2.65
    assert summary["re_macro_f1_mean"] == 64.0 and summary["re_macro_f1_sd"] == round(statistics.stdev([60, 70, 62]), 2)
    assert summary["ner_micro_f1_mean"] == 85.0 and summary["re_micro_f1_mean"] == 64.0
    assert summary["ner_macro_f1_runs"] == [80.0, 84.0, 85.0]
    assert [f["fold"] for f in summary["folds"]] == [0, 1, 2]
    assert summary["folds"][1]["ner_macro_f1"] == 84.0 and summary["folds"][1]["re_micro_f1"] == 70.0
    assert summary["overlaps"]["train_removed_total"] == {
        "documents_affected": 6,
        "entities_removed": 6,
        "relations_removed": 6,
    }
    assert summary["without_overlaps"]["ner_macro_f1_mean"] == 84.0
    assert summary["folds"][0]["without_overlaps"]["re_macro_f1"] == 61.0
    # Selection and retraining both count: (30 + 30, 60 + 60, 90 + 90) seconds.
    assert summary["train_minutes_per_run"] == 2.0 and summary["trainable_parameters"] == 7
    assert "seeds" not in summary and "without_overlaps" not in summarise_folds(results)


def test_folds_keep_their_own_parameter_counts() -> None:
    # Each fold builds its character vocabulary from its own training part, so counts may differ a little.
    results = [_result(0, 80.0, 60.0, 30, parameters=125), _result(1, 84.0, 70.0, 60, parameters=100)]
    summary = summarise_folds(results)
    assert [f["trainable_parameters"] for f in summary["folds"]] == [125, 100]
    assert summary["trainable_parameters"] == 125 and summary["trainable_parameters_range"] == [100, 125]


COMMAND = "deeprel crossval configs/ade.toml --runs runs/ade --folds {} --set training.retrain_epochs=6"
CONFIG = {"model": {"hidden_size": 8}, "training": {"retrain_epochs": 6}}


def _summary(results: list[dict], folds: str, **extra) -> dict:
    summary = summarise_folds(results, score_without_overlaps=True)
    return {"config": CONFIG, **summary, "command": COMMAND.format(folds), **extra}


def test_format_folds_is_what_parse_folds_reads() -> None:
    assert format_folds([7, 0, 1, 2]) == "0-2,7" and format_folds([3]) == "3" and format_folds(range(10)) == "0-9"
    assert parse_folds(format_folds([0, 2, 3, 5])) == (0, 2, 3, 5)


def test_merged_folds_summarise_like_one_call_over_all_of_them() -> None:
    results = [_result(0, 80.0, 60.0, 60), _result(1, 84.0, 70.0, 60), _result(2, 85.0, 62.0, 60)]
    stored = _summary([results[0], results[2]], "0,2", protocol={"epochs": "6"})
    new = _summary([results[1]], "1", protocol={"epochs": "6"})
    merged = merge_fold_summaries(stored, new, COMMAND.format("0-2"))
    whole = _summary(results, "0-2", protocol={"epochs": "6"})
    assert {k: v for k, v in merged.items() if k not in ("command", "merged_commands")} == {
        k: v for k, v in whole.items() if k != "command"
    }
    assert merged["ner_macro_f1_runs"] == [80.0, 84.0, 85.0] and merged["ner_macro_f1_sd"] == 2.65
    assert merged["overlaps"]["train_removed_total"]["entities_removed"] == 6
    assert merged["command"] == COMMAND.format("0-2")
    assert merged["merged_commands"] == [COMMAND.format("0,2"), COMMAND.format("1")]
    # A third call keeps the commands of both earlier ones.
    fourth = _summary([_result(4, 70.0, 50.0, 60)], "4", protocol={"epochs": "6"})
    third = merge_fold_summaries(merged, fourth, COMMAND.format("0-2,4"))
    assert [f["fold"] for f in third["folds"]] == [0, 1, 2, 4] and third["command"] == COMMAND.format("0-2,4")
    assert len(third["merged_commands"]) == 3


def test_merging_folds_with_other_parameter_counts_keeps_the_range() -> None:
    results = [_result(0, 80.0, 60.0, 60, parameters=125), _result(1, 84.0, 70.0, 60, parameters=100)]
    results.append(_result(2, 85.0, 62.0, 60, parameters=150))
    stored = _summary(results[1:], "1-2", protocol={"epochs": "6"})
    merged = merge_fold_summaries(stored, _summary(results[:1], "0", protocol={"epochs": "6"}), COMMAND.format("0-2"))
    assert merged == {**_summary(results, "0-2", protocol={"epochs": "6"}), "merged_commands": ANY}
    assert merged["trainable_parameters"] == 125 and merged["trainable_parameters_range"] == [100, 150]
    # A row stored before ranges were recorded counts as one number.
    legacy = {k: v for k, v in stored.items() if k != "trainable_parameters_range"} | {"trainable_parameters": 90}
    merged = merge_fold_summaries(legacy, _summary(results[:1], "0", protocol={"epochs": "6"}), COMMAND.format("0-2"))
    assert merged["trainable_parameters_range"] == [90, 125]


def test_merging_other_settings_or_a_stored_fold_is_refused() -> None:
    stored = _summary([_result(0, 80.0, 60.0, 60)], "0", protocol={"epochs": "6"})
    command = COMMAND.format("0-1")
    with pytest.raises(ValueError, match="stored already"):
        merge_fold_summaries(stored, _summary([_result(0, 80.0, 60.0, 60)], "0", protocol={"epochs": "6"}), command)
    other = _summary([_result(1, 80.0, 60.0, 60)], "1", protocol={"epochs": "6"})
    # Decided on the stored configuration, not on the command line: another spelling of it merges.
    assert merge_fold_summaries(stored, {**other, "command": "deeprel crossval x.toml --folds 1"}, command)
    changed = {"model": {"hidden_size": 8}, "training": {"retrain_epochs": 8}}
    with pytest.raises(ValueError, match=r"differ in configuration \(training.retrain_epochs\)"):
        merge_fold_summaries(stored, {**other, "config": changed}, command)
    with pytest.raises(ValueError, match=r"differ in protocol \(epochs\)"):
        merge_fold_summaries(stored, {**other, "protocol": {"epochs": "8"}}, command)
    with pytest.raises(ValueError, match="without-overlaps"):
        merge_fold_summaries(stored, {k: v for k, v in other.items() if k != "without_overlaps"}, command)
    with pytest.raises(ValueError, match="does not record its configuration"):
        merge_fold_summaries({k: v for k, v in stored.items() if k != "config"}, other, command)


def test_cli_refuses_a_merge_before_any_fold_trains(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from deeprel.cli import main

    results = tmp_path / "ade.json"
    runs = tmp_path / "runs"
    config = ROOT / "configs" / "ade.toml"
    argv = ["crossval", str(config), "--runs", str(runs), "--folds", "0", "--merge-folds"]
    argv += ["--results", str(results), "--name", "frozen"]
    stored = _summary([_result(0, 80.0, 60.0, 60)], "0")
    ade = load_config(config)
    stored |= {"config": comparable_config(ade), "protocol": crossval_protocol(ade, CrossvalPlan(folds=(0,)), False)}
    results.write_text(json.dumps({"frozen": stored}), encoding="utf-8")
    answer = CliRunner().invoke(main, argv)
    assert answer.exit_code == 2 and "fold(s) 0 are stored already" in answer.output
    answer = CliRunner().invoke(main, [*argv, "--set", "model.hidden_size=8"])
    assert answer.exit_code == 2 and "differ in configuration (model.hidden_size)" in answer.output
    assert not runs.exists()
    answer = CliRunner().invoke(main, [*argv[:-1], "other"])
    assert answer.exit_code == 2 and "holds no entry 'other'" in answer.output


def test_two_folds_train_resume_and_count_overlaps(config, folds: Path, tmp_path: Path, monkeypatch) -> None:
    runs = tmp_path / "runs"
    first = run_crossval(config, runs, _plan(folds, (0,)), log=lambda _: None)
    fold0 = runs / "fold-0" / "result.json"
    stamp = fold0.stat().st_mtime_ns
    assert len(first["folds"]) == 1 and not (runs / "fold-0" / "data").exists()  # the trainer gets sentences
    fold_config = load_config(runs / "fold-0" / "config.json").data  # and the fold's config says which
    assert (fold_config.train, fold_config.dev_fraction, fold_config.dev_seed) == (
        str(folds / "split_0_train.json"),
        0.25,
        1,
    )
    assert first["config"] == comparable_config(config) and "train" not in first["config"]["data"]

    def stop_in_epoch_2(message: str) -> None:
        if message.startswith("epoch 2:"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_crossval(config, runs, _plan(folds, (0, 1)), log=stop_in_epoch_2)
    assert (runs / "fold-1" / "checkpoint-select").is_dir() and not (runs / "fold-1" / "result.json").exists()

    trained = []
    real_train = crossval.train
    monkeypatch.setattr(crossval, "train", lambda c, out, **kw: trained.append(out) or real_train(c, out, **kw))
    logged: list[str] = []
    summary = run_crossval(config, runs, _plan(folds, (0, 1)), score_without_overlaps=True, log=logged.append)
    assert trained == [runs / "fold-1"]  # the finished fold is not trained again
    assert fold0.stat().st_mtime_ns == stamp
    assert any(line.startswith("fold 0: finished already") for line in logged)
    assert "resumed phase 'select' after epoch 1" in logged

    results = [json.loads((runs / f"fold-{i}" / "result.json").read_text()) for i in (0, 1)]
    assert [f["fold"] for f in summary["folds"]] == [0, 1]
    for key in ("ner_micro_f1", "ner_macro_f1", "re_micro_f1", "re_macro_f1"):
        task, average, _ = key.split("_")
        values = [r["test"]["strict"][task][average]["f1"] for r in results]
        assert summary[f"{key}_mean"] == round(statistics.mean(values), 2)
        assert summary[f"{key}_sd"] == round(statistics.stdev(values), 2)
    for result in results:
        assert result["training_part_documents"] == 35 and result["dev_documents"] == 9
        assert result["test_documents"] == 7
        assert result["overlaps"]["train_removed"] == {
            "documents_affected": 1,
            "entities_removed": 1,
            "relations_removed": 1,
        }
        assert result["overlaps"]["test_unrepresentable"] == {
            "documents_affected": 1,
            "entities_removed": 1,
            "relations_removed": 1,
        }
        full, reduced = result["test"]["strict"], result["test_without_overlaps"]["strict"]
        assert full["ner"]["micro"]["support"] - reduced["ner"]["micro"]["support"] == 1
        assert full["re"]["micro"]["support"] - reduced["re"]["micro"]["support"] == 1
        assert result["training"]["selection"]["train_documents"] == 26  # the dev part is held out
        assert result["training"]["train_documents"] == 35  # retrained on the whole training part
    assert summary["overlaps"]["test_unrepresentable_total"]["entities_removed"] == 2
    assert summary["trainable_parameters"] > 0 and "without_overlaps" in summary


def test_a_rerun_with_other_settings_is_refused(config, folds: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    (runs / "fold-0").mkdir(parents=True)
    (runs / "fold-0" / "result.json").write_text(json.dumps(_result(0, 80.0, 60.0, 30)))
    run_crossval(config, runs, _plan(folds, (0,)), log=lambda _: None)  # reuses the finished fold
    with pytest.raises(ValueError, match="dev_fraction"):
        run_crossval(config, runs, _plan(folds, (0,), dev_fraction=0.5), log=lambda _: None)
    with pytest.raises(ValueError, match="model.hidden_size"):
        run_crossval(config.with_overrides({"model.hidden_size": 4}), runs, _plan(folds, (0,)), log=lambda _: None)


def test_missing_fold_files_and_impossible_protocols_are_clear_errors(config, folds: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="fold 7: .*split_7_train.json"):
        run_crossval(config, tmp_path / "a", _plan(folds, (7,)), log=lambda _: None)
    with pytest.raises(ValueError, match="retrain_epochs"):
        run_crossval(config, tmp_path / "b", _plan(folds, (0,), dev_fraction=0.0), log=lambda _: None)


def test_fixed_epochs_without_dev(config, folds: Path, tmp_path: Path) -> None:
    fixed = config.with_overrides({"training.protocol": "dev", "training.max_epochs": 2, "data.train_dev": None})
    summary = run_crossval(fixed, tmp_path, _plan(folds, (1,), dev_fraction=0.0), log=lambda _: None)
    assert summary["folds"][0]["epochs_run"] == 2 and summary["folds"][0]["tested_epoch"] == 2
    assert "a fixed 2 epochs" in summary["protocol"]["epochs"]
    assert not (tmp_path / "fold-1" / "data").exists()


def test_ade_config_names_existing_folds(data_dir: Path) -> None:
    config = load_config(ROOT / "configs" / "ade.toml")
    assert config.training.protocol == "retrain" and config.embeddings.contextual.mode == "frozen"
    assert (config.model.shared_depth, config.model.ner_depth, config.model.re_depth) == (1, 1, 2)
    plan = CrossvalPlan()
    for fold in plan.folds:
        for name in plan.files(fold):
            assert (data_dir / name).is_file(), name
    assert (config.data.train, config.data.test) == plan.files(0)


def test_an_entry_stored_before_a_configuration_key_existed_still_merges(tmp_path: Path) -> None:
    from deeprel.experiments.crossval import check_mergeable

    ade = load_config(ROOT / "configs" / "ade.toml")
    planned = {"config": comparable_config(ade), "protocol": crossval_protocol(ade, CrossvalPlan(folds=(1,)), False)}
    older = json.loads(json.dumps(planned["config"]))
    del older["data"]["sentence_split"], older["data"]["events"]  # keys newer than the stored entry
    older["training"]["num_threads"] = 2  # and a run setting it still held
    stored = {**planned, "config": older, "folds": [{"fold": 0}]}
    check_mergeable(stored, planned, [1])  # the defaults fill the gap
    with pytest.raises(ValueError, match=r"differ in configuration \(data.events\)"):
        check_mergeable({**stored, "config": {**older, "data": {**older["data"], "events": "relations"}}}, planned, [1])
