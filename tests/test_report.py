"""`deeprel report`: the results page is a pure function of the result files."""

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from deeprel.cli import main
from deeprel.reporting.report import pm, read_papers, render_report
from deeprel.reporting.results import add_result, command_line

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    """An empty results directory but for the papers' reported numbers, which every page prints."""
    shutil.copy(REPO / "docs" / "results" / "papers.json", tmp_path / "papers.json")
    return tmp_path


def test_committed_page_is_what_the_result_files_give():
    assert render_report(REPO / "docs" / "results") == (REPO / "docs" / "results.md").read_text(encoding="utf-8")


def test_regenerating_twice_gives_the_same_bytes(tmp_path):
    shutil.copytree(REPO / "docs" / "results", tmp_path / "results")
    first, second = tmp_path / "a.md", tmp_path / "b.md"
    results = ["--results-dir", str(tmp_path / "results")]
    runner = CliRunner()
    for out in (first, second):
        result = runner.invoke(main, ["report", *results, "--output", str(out)])
        assert result.exit_code == 0, result.output
    assert first.read_bytes() == second.read_bytes()
    check = runner.invoke(main, ["report", *results, "--output", str(first), "--check"])
    assert check.exit_code == 0
    first.write_text("stale\n", encoding="utf-8")
    check = runner.invoke(main, ["report", *results, "--output", str(first), "--check"])
    assert check.exit_code == 1


def _summary(ner: float, re: float, sd: float = 1.0) -> dict:
    summary = {"seeds": [1, 2, 3], "threshold": 0.9, "trainable_parameters": 1000, "epochs": [5, 5, 5]}
    for task, value in (("ner", ner), ("re", re)):
        for avg in ("micro", "macro"):
            for metric in ("p", "r", "f1"):
                summary[f"{task}_{avg}_{metric}_mean"] = value
                summary[f"{task}_{avg}_{metric}_sd"] = sd
                summary[f"{task}_{avg}_{metric}_runs"] = [value - sd, value, value + sd]
    summary["command"] = "deeprel seeds configs/x.toml"
    return summary


def test_comparison_with_the_paper_uses_our_best_mean(results_dir):
    add_result(results_dir / "conll04.json", "a", _summary(80.0, 60.0))
    add_result(results_dir / "conll04.json", "b", _summary(85.5, 70.0))
    page = render_report(results_dir)
    gap = 70.0 - read_papers(results_dir).crone.scores["conll04"]["re_micro_f1"]
    assert f"| re micro F1 | 71.08 | 71.47 | 60.00 ± 1.00 | 70.00 ± 1.00 | −{abs(gap):.2f} (b) |" in page
    assert "deeprel seeds configs/x.toml" in page


def test_missing_files_are_reported_not_invented(results_dir):
    page = render_report(results_dir)
    assert "Not measured yet: `conll04.json` holds no results." in page
    assert not re.search(r"\d ± \d", page)


def test_malformed_result_file_names_the_file(results_dir):
    (results_dir / "conll04.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ValueError, match="conll04.json"):
        render_report(results_dir)
    (results_dir / "conll04.json").write_text(json.dumps({"a": {"seeds": [1]}}), encoding="utf-8")
    with pytest.raises(ValueError, match="conll04.json: unexpected contents"):
        render_report(results_dir)


def test_missing_or_malformed_papers_file_names_the_file(results_dir):
    papers = results_dir / "papers.json"
    reported = json.loads(papers.read_text(encoding="utf-8"))
    papers.unlink()
    with pytest.raises(ValueError, match=r"papers\.json: missing"):
        render_report(results_dir)
    papers.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=r"papers\.json: not a readable papers file"):
        render_report(results_dir)
    del reported["spert"]["ade"]["re_macro_f1"]  # a number a comparison table prints
    papers.write_text(json.dumps(reported), encoding="utf-8")
    with pytest.raises(ValueError, match=r"papers\.json: unexpected contents .*ade\.re_macro_f1"):
        render_report(results_dir)
    reported["spert"]["ade"]["re_macro_f1"] = {"value": 78.84}  # no source
    papers.write_text(json.dumps(reported), encoding="utf-8")
    with pytest.raises(ValueError, match=r"papers\.json: unexpected contents"):
        render_report(results_dir)


def test_mean_and_spread_formatting():
    assert pm({"x_mean": 86.321, "x_sd": 0.5}, "x") == "86.32 ± 0.50"
    assert pm({"x_mean": 86.321, "x_sd": 0.5}, "x", bold=True) == "**86.32 ± 0.50**"
    assert pm({"x_mean": 86.321, "x_sd": None}, "x") == "86.32"  # one seed: no sd to show
    assert pm({"x": 3}, "x") == "3"
    assert pm({}, "x") == "–"


def test_add_result_keeps_other_names_and_command_is_pasteable(tmp_path):
    path = tmp_path / "r.json"
    add_result(path, "a", {"v": 1})
    add_result(path, "b", {"v": 2})
    add_result(path, "a", {"v": 3})
    assert json.loads(path.read_text()) == {"a": {"v": 3}, "b": {"v": 2}}
    assert command_line(["deeprel", "seeds", "--set", "a=b c"]) == "deeprel seeds --set 'a=b c'"


def _folds_summary() -> dict:
    summary = _summary(88.0, 80.0, sd=2.0)
    del summary["seeds"]
    summary["folds"] = [
        {"fold": i, "ner_macro_f1": 88.0, "re_macro_f1": 80.0, "ner_micro_f1": 88.5, "re_micro_f1": 79.0}
        | {"tested_epoch": 7}
        for i in range(2)
    ]
    summary["overlaps"] = {
        "policy": "keep_longest",
        "train_removed_total": {"entities_removed": 216, "relations_removed": 350},
        "test_unrepresentable_total": {"entities_removed": 24, "relations_removed": 39},
    }
    summary["train_minutes_per_run"] = 12.5
    return summary


def test_ade_section_reports_folds_overlaps_and_the_macro_gap(results_dir):
    add_result(results_dir / "ade.json", "frozen", _folds_summary())
    page = render_report(results_dir)
    assert "| frozen | 2 | **88.00 ± 2.00** | **80.00 ± 2.00** | 88.00 ± 2.00 | 80.00 ± 2.00 | 1,000 | 12.50 |" in page
    assert "216 entities and 350 relations" in page and "24 gold entities and 39 gold relations" in page
    assert "| 1 | 88.00 | 80.00 | 88.50 | 79.00 | 7 |" in page
    assert "| re macro F1 | 83.74 | 78.84 | 80.00 ± 2.00 | −3.74 (frozen (2 of 10 folds)) |" in page
    # Folds whose character vocabularies differ show the range of their parameter counts.
    add_result(results_dir / "ade.json", "frozen", {**_folds_summary(), "trainable_parameters_range": [975, 1000]})
    assert "| 88.00 ± 2.00 | 80.00 ± 2.00 | 975–1,000 | 12.50 |" in render_report(results_dir)


def test_ade_section_pairs_later_runs_with_the_first_on_the_folds_both_ran(results_dir):
    add_result(results_dir / "ade.json", "frozen", _folds_summary())
    finetuned = _folds_summary()
    finetuned["folds"] = [
        {**finetuned["folds"][0], "ner_macro_f1": 90.0, "re_macro_f1": 83.0},
        {**finetuned["folds"][1], "fold": 5, "ner_macro_f1": 70.0},  # frozen has no fold 5: not paired
    ]
    add_result(results_dir / "ade.json", "finetuned", finetuned)
    page = render_report(results_dir)
    assert (
        "**finetuned** − **frozen**, paired by fold over the 1 fold both ran:"
        " NER macro F1 +2.00 (higher on 1 of 1); RE macro F1 +3.00 (higher on 1 of 1)." in page
    )


def test_ablation_section_shows_paired_differences_and_variants_not_run(results_dir):
    tuned = {**_summary(86.0, 64.0), "status": "done", "depths": {"shared": 1, "ner": 1, "re": 2}}
    flat = {
        **_summary(85.0, 61.0),
        "status": "done",
        "depths": {"shared": 3, "ner": 0, "re": 0},
        "difference_to_tuned": {
            "ner_micro_f1": {"mean": -1.0, "sd": 0.5, "runs": []},
            "re_micro_f1": {"mean": -3.0, "sd": 1.25, "runs": []},
        },
    }
    skipped = {"status": "not run", "reason": "the tuned model does not use casing", "command": "deeprel ablate x"}
    add_result(results_dir / "ablation.json", "conll04", {"tuned": tuned, "no_task_layers": flat, "no_casing": skipped})
    page = render_report(results_dir)
    assert "| tuned | 1, 1, 2 | 3 | 86.00 ± 1.00 | 64.00 ± 1.00 | – | – |" in page
    assert "| no_task_layers | 3, 0, 0 | 3 | 85.00 ± 1.00 | 61.00 ± 1.00 | −1.00 ± 0.50 | −3.00 ± 1.25 |" in page
    assert "not run: the tuned model does not use casing" in page


def test_ablation_section_compares_ade_in_macro_f1(results_dir):
    tuned = {**_summary(88.0, 80.0), "status": "done", "depths": {"shared": 1, "ner": 1, "re": 2}}
    for key in ("ner_macro_f1_mean", "re_macro_f1_mean"):
        tuned[key] -= 10  # macro differs from micro, so the table shows which one it reports
    flat = {
        **_summary(87.0, 79.0),
        "status": "done",
        "depths": {"shared": 3, "ner": 0, "re": 0},
        "difference_to_tuned": {
            f"{task}_{avg}_f1": {"mean": delta, "sd": 0.5, "runs": []}
            for task in ("ner", "re")
            for avg, delta in (("micro", -1.0), ("macro", -2.0))
        },
    }
    add_result(results_dir / "ablation.json", "ade", {"tuned": tuned, "no_task_layers": flat})
    page = render_report(results_dir)
    assert "| variant | s, t_e, t_r | runs | NER macro F1 | RE macro F1 | Δ NER vs tuned | Δ RE vs tuned |" in page
    assert "| tuned | 1, 1, 2 | 3 | 78.00 ± 1.00 | 70.00 ± 1.00 | – | – |" in page
    assert "| no_task_layers | 3, 0, 0 | 3 | 87.00 ± 1.00 | 79.00 ± 1.00 | −2.00 ± 0.50 | −2.00 ± 0.50 |" in page


def test_tuning_section_lists_best_trial_and_depths(results_dir):
    summary = {
        "objective": "re_micro_f1",
        "trials": {"COMPLETE": 3, "PRUNED": 1, "FAIL": 0},
        "best_trial": 2,
        "best_value": 66.5,
        "best_params": {"model.shared_depth": 2, "training.learning_rate": 0.0005},
        "by_depths": [{"s": 2, "t_e": 0, "t_r": 1, "trials": 2, "best": 66.5}],
        "command": "deeprel tune configs/conll04.toml --study-dir runs/t",
    }
    add_result(results_dir / "tuning.json", "conll04", summary)
    page = render_report(results_dir)
    assert "trials: 3 complete, 1 pruned" in page
    assert "Best trial 2: 66.50, with `model.shared_depth` = 2, `training.learning_rate` = 0.0005." in page
    assert "| 2 | 0 | 1 | 2 | 66.50 |" in page


def test_benchmark_sections_read_every_file_of_a_pattern_in_natural_order(results_dir):
    def run(concurrency: int) -> dict:
        return {
            "model": "m",
            "concurrency": concurrency,
            "requests": 100,
            "requests_per_s": 10.0 * concurrency,
            "sentences_per_s": 11.0,
            "latency_ms": {"p50": 50.0, "p99": 99.4},
            "errors": 0,
            "workers": 2,
            "rss_mib": {
                "before": 500.0,
                "after": 600.4,
                "workers_before": [250.0, 250.0],
                "workers_after": [300.0, 300.4],
            },
            "command": f"python benchmarks/load_test.py m --concurrency {concurrency}",
        }

    for concurrency in (32, 8):
        (results_dir / f"load_test_c{concurrency}.json").write_text(json.dumps(run(concurrency)), encoding="utf-8")
    page = render_report(results_dir)
    c8 = page.index("| m | 2 | 8 | 100 | 80.0 | 11.0 | 50 | 99 | 0 | 500 → 600 | 300 / 300 |")
    c32 = page.index("| m | 2 | 32 | 100 | 320.0 | 11.0 | 50 | 99 | 0 | 500 → 600 | 300 / 300 |")
    assert c8 < c32
    assert "[results/load_test_c8.json](results/load_test_c8.json), [results/load_test_c32.json]" in page


def test_lever_sections_pair_each_variants_dev_and_test_scores_with_its_threshold(results_dir):
    def scores(ner: float, re: float, threshold: float, data: str) -> dict:
        return {
            "data": data,
            "threshold": threshold,
            "epoch": 12,
            "ner_micro_f1": ner,
            "re_micro_f1": re,
            "command": f"deeprel evaluate runs/m {data} --threshold {threshold}",
        }

    for name, threshold in (("16_epochs", 0.9), ("16_epochs_t0.5", 0.5)):
        add_result(
            results_dir / "levers_finetuned.json", f"{name}_dev", scores(80.0, 60.0 + threshold, threshold, "dev")
        )
        add_result(results_dir / "levers_finetuned.json", f"{name}_test", scores(81.0, 55.0, threshold, "test"))
    page = render_report(results_dir)
    section = page[page.index("## Single-seed levers, fine-tuned mode") :]
    assert "| variant | epoch (best on dev) | relation threshold | dev NER | dev RE | test NER | test RE |" in section
    assert "| 16_epochs | 12 | 0.90 | 80.00 | 60.90 | 81.00 | 55.00 |" in section
    assert "| 16_epochs_t0.5 | 12 | 0.50 | 80.00 | 60.50 | 81.00 | 55.00 |" in section
    assert "deeprel evaluate runs/m test --threshold 0.5" in section


def test_training_speed_section_divides_each_variant_by_the_configuration_as_it_is(results_dir):
    def variant(seconds: list[float], overrides: dict, steps: int) -> dict:
        median = sorted(seconds)[len(seconds) // 2]
        work = {"sentences": 10, "batches": 2, "birnn_steps": steps, "scored_pairs": 4000, "tokens": 100}
        work["real_pairs"] = 1000
        return {"overrides": overrides, "epoch_seconds": seconds, "median_epoch_seconds": median, "work": work}

    variants = {
        "as configured": variant([30.0, 31.0, 29.0], {}, 150) | {"over_baseline": 1.0},
        "grouped": variant([15.0, 16.0, 14.0], {"training.batch_order": "grouped_shuffled"}, 110)
        | {"over_baseline": 0.5},
    }
    results = {"config": "configs/conll04.toml", "epochs_per_run": 3, "rounds": 1, "threads": 2}
    results |= {"variants": variants, "command": "python benchmarks/training_speed.py configs/conll04.toml"}
    (results_dir / "training_speed.json").write_text(json.dumps(results), encoding="utf-8")
    finetuned = results | {
        "config": "configs/conll04_finetuned.toml",
        "command": "python benchmarks/training_speed.py F",
    }
    (results_dir / "training_speed_finetuned.json").write_text(json.dumps(finetuned), encoding="utf-8")
    page = render_report(results_dir)
    # One table per configuration, each file's command listed once.
    assert page.index("`configs/conll04.toml`:") < page.index("`configs/conll04_finetuned.toml`:")
    assert page.count("| as configured | – | 30.0, 31.0, 29.0 |") == 2
    assert "python benchmarks/training_speed.py configs/conll04.toml\npython benchmarks/training_speed.py F" in page
    assert "| as configured | – | 30.0, 31.0, 29.0 | 30.00 | 1.00× | 150 (1.50) | 4,000 (4.00) |" in page
    assert (
        '| grouped | `training.batch_order="grouped_shuffled"` | 15.0, 16.0, 14.0 | 15.00 | 0.50× | 110 (1.10) |'
        in page
    )
    assert "Each variant trained 1× for 3 epochs, taking turns; 2 threads." in page
