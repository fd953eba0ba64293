"""`deeprel report`: the results page is a pure function of the result files."""

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from deeprel.cli import main
from deeprel.reporting.report import CRONE_2020, pm, render_report
from deeprel.reporting.results import add_result, command_line

REPO = Path(__file__).resolve().parents[1]


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


def test_comparison_with_the_paper_uses_our_best_mean(tmp_path):
    add_result(tmp_path / "conll04.json", "a", _summary(80.0, 60.0))
    add_result(tmp_path / "conll04.json", "b", _summary(85.5, 70.0))
    page = render_report(tmp_path)
    gap = 70.0 - CRONE_2020["conll04"]["re_micro_f1"]
    assert f"| re micro F1 | 71.08 | 71.47 | 60.00 ± 1.00 | 70.00 ± 1.00 | −{abs(gap):.2f} (b) |" in page
    assert "deeprel seeds configs/x.toml" in page


def test_missing_files_are_reported_not_invented(tmp_path):
    page = render_report(tmp_path)
    assert "Not measured yet: `conll04.json` holds no results." in page
    assert not re.search(r"\d ± \d", page)


def test_malformed_result_file_names_the_file(tmp_path):
    (tmp_path / "conll04.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ValueError, match="conll04.json"):
        render_report(tmp_path)
    (tmp_path / "conll04.json").write_text(json.dumps({"a": {"seeds": [1]}}), encoding="utf-8")
    with pytest.raises(ValueError, match="conll04.json: unexpected contents"):
        render_report(tmp_path)


def test_mean_and_spread_formatting():
    assert pm({"x_mean": 86.321, "x_sd": 0.5}, "x") == "86.32 ± 0.50"
    assert pm({"x_mean": 86.321, "x_sd": 0.5}, "x", bold=True) == "**86.32 ± 0.50**"
    assert pm({"x": 3}, "x") == "3"
    assert pm({}, "x") == "–"


def test_add_result_keeps_other_names_and_command_is_pasteable(tmp_path):
    path = tmp_path / "r.json"
    add_result(path, "a", {"v": 1})
    add_result(path, "b", {"v": 2})
    add_result(path, "a", {"v": 3})
    assert json.loads(path.read_text()) == {"a": {"v": 3}, "b": {"v": 2}}
    assert command_line(["deeprel", "seeds", "--set", "a=b c"]) == "deeprel seeds --set 'a=b c'"
