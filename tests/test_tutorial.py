"""docs/tutorial-annotations.md, run: every command of its bash blocks, in order, on the BRAT tutorial corpus."""

import json
import os
import re
import shlex
import shutil
from pathlib import Path

from click.testing import CliRunner

from deeprel.cli import main
from deeprel.data.readers import read_documents

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "tutorial-annotations.md"
# The one change from the page: fewer epochs, so that the test stays fast.
FAST = ["--set", "training.max_epochs=3"]


def _commands() -> list[list[str]]:
    blocks = re.findall(r"```bash\n(.*?)```", TUTORIAL.read_text(encoding="utf-8"), flags=re.S)
    return [shlex.split(os.path.expandvars(line)) for block in blocks for line in block.splitlines() if line.strip()]


def test_every_command_of_the_tutorial_runs(data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DEEPREL_DATA_DIR", str(data_dir))
    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    commands = _commands()
    assert [c[1] for c in commands] == ["validate", "train", "evaluate", "predict", "convert"]
    runner = CliRunner()
    outputs = {}
    for command in commands:
        assert command[0] == "deeprel"
        arguments = command[1:] + (FAST if command[1] == "train" else [])
        answer = runner.invoke(main, arguments, catch_exceptions=False)
        assert answer.exit_code == 0, (command, answer.output)
        outputs[command[1]] = answer.output
    assert "brat_events 23" in outputs["validate"] and "OK: 1 file(s)" in outputs["validate"]
    scores = json.loads((tmp_path / "runs" / "brat-tutorial" / "scores.json").read_text())
    assert scores["strict"]["ner"]["micro"]["support"] == 96  # every entity of the folder is scored
    corpus = data_dir / "datasets" / "brat-tutorial" / "news"
    pre = tmp_path / "runs" / "brat-tutorial" / "pre-annotated"
    assert (pre / "annotation.conf").is_file()
    assert (pre / "000-introduction.txt").read_bytes() == (corpus / "000-introduction.txt").read_bytes()
    assert len(read_documents(pre)) == 13
    assert len(json.loads((tmp_path / "runs" / "brat-tutorial" / "news.json").read_text())) == 190


def test_the_tutorial_runs_on_a_brat_copy_of_conll04(data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """The same commands on CoNLL04 sentences written as BRAT (one sentence a file), the tutorial's folder and
    annotation.conf replaced by that copy's."""
    monkeypatch.setenv("DEEPREL_DATA_DIR", str(data_dir))
    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    runner = CliRunner()
    copy = tmp_path / "conll04-brat"
    source = data_dir / "datasets" / "conll04" / "conll04_dev.json"
    assert runner.invoke(main, ["convert", str(source), str(copy), "--to", "brat"]).exit_code == 0
    tutorial = str(data_dir / "datasets" / "brat-tutorial" / "news")
    data = [f"--set=data.{split}={copy}" for split in ("train", "dev", "test")] + [
        f"--set=data.types={copy}/annotation.conf"
    ]
    for command in _commands():
        arguments = [a.replace(tutorial, str(copy)) for a in command[1:]]
        arguments += (
            FAST + data + ["--set", "data.max_train_documents=60", "--set", "data.max_eval_documents=40"]
            if command[1] == "train"
            else []
        )
        answer = runner.invoke(main, arguments, catch_exceptions=False)
        assert answer.exit_code == 0, (command, answer.output)
    scores = json.loads((tmp_path / "runs" / "brat-tutorial" / "scores.json").read_text())
    assert scores["strict"]["ner"]["micro"]["support"] == 893  # CoNLL04 dev's entities, all read back
    assert len(read_documents(tmp_path / "runs" / "brat-tutorial" / "pre-annotated")) == 231
