"""The optional extras: serve, tune and plots fail or degrade clearly without their packages."""

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

from deeprel.cli import main
from deeprel.extras import EXTRAS, MissingExtraError, require
from deeprel.training import curves

OPTIONAL_MODULES = sorted({m for modules in EXTRAS.values() for m in modules})
ROWS = [
    {"phase": "train", "epoch": 1, "loss": 2.0, "dev_ner_micro_f1": 10.0, "dev_re_micro_f1": 1.0},
    {"phase": "train", "epoch": 2, "loss": 1.0, "dev_ner_micro_f1": 20.0, "dev_re_micro_f1": 2.0},
]


def test_require_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    with pytest.raises(MissingExtraError) as caught:
        require("serve", "deeprel serve")
    assert str(caught.value) == (
        "deeprel serve needs the optional 'serve' extra (uvicorn is not installed): pip install 'deeprel[serve]'"
    )
    assert isinstance(caught.value, ImportError)


def test_serve_without_fastapi(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "fastapi", None)
    result = CliRunner().invoke(main, ["serve", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [
        "error: deeprel serve needs the optional 'serve' extra (fastapi is not installed): pip install 'deeprel[serve]'"
    ]


def test_tune_without_optuna(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)
    config = tmp_path / "config.toml"
    config.write_text("", encoding="utf-8")
    result = CliRunner().invoke(main, ["tune", str(config), "--study-dir", str(tmp_path / "study")])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [
        "error: deeprel tune needs the optional 'tune' extra (optuna is not installed): pip install 'deeprel[tune]'"
    ]
    assert not (tmp_path / "study").exists()


def test_learning_curve_without_matplotlib(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setattr(curves, "_warned", False)
    path = tmp_path / "learning_curve.png"
    with pytest.warns(UserWarning, match=r"deeprel\[plots\].*no learning_curve\.png is written"):
        curves.plot_learning_curve(ROWS, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per process: the second epoch says nothing
        curves.plot_learning_curve(ROWS, path)
    assert list(tmp_path.iterdir()) == []


def test_learning_curve_with_matplotlib(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "learning_curve.png"
    curves.plot_learning_curve(ROWS, path)
    assert path.read_bytes().startswith(b"\x89PNG")
    assert [p.name for p in tmp_path.iterdir()] == ["learning_curve.png"]


def test_core_modules_do_not_import_the_extras() -> None:
    code = (
        "import json, sys\n"
        "import deeprel, deeprel.api, deeprel.cli, deeprel.training.trainer\n"
        f"print(json.dumps(sorted(m for m in {OPTIONAL_MODULES!r} if m in sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
