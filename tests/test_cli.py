"""The command line: a thin layer, tested for what a user sees."""

import json

from click.testing import CliRunner

from deeprel.cli import main

RECORD_KEYS = ["line", "id", "text", "sentences", "entities", "relations"]


def test_predict_on_raw_text_gives_character_offsets(trained_run) -> None:
    text = "Jim Smith works for IBM in Armonk , New York.\n\nHe was born in Ohio."
    result = CliRunner().invoke(main, ["predict", str(trained_run / "model"), "--text", text, "--threshold", "0.1"])
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]  # one document
    assert list(record) == RECORD_KEYS
    assert (record["line"], record["id"], record["text"]) == (1, None, text)
    assert len(record["sentences"]) == 2  # two sentences
    assert record["sentences"][0]["tokens"][:2] == ["Jim", "Smith"]
    for sentence in record["sentences"]:
        for token, (start, end) in zip(sentence["tokens"], sentence["token_offsets"], strict=True):
            assert text[start:end] == token
    assert record["entities"]
    for entity in record["entities"]:
        assert text[entity["start_char"] : entity["end_char"]] == entity["text"]
        assert 0 <= entity["score"] <= 1
    for relation in record["relations"]:
        assert 0 <= relation["head"] < len(record["entities"]) and 0 <= relation["tail"] < len(record["entities"])
        head, tail = record["entities"][relation["head"]], record["entities"][relation["tail"]]
        assert head["sentence"] == tail["sentence"]


def test_predict_on_pretokenised_jsonl(trained_run, tmp_path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"tokens": ["Bill", "Clinton", "visited", "Moscow", "."]}) + "\n")
    output = tmp_path / "out.jsonl"
    result = CliRunner().invoke(main, ["predict", str(trained_run / "model"), str(source), "--output", str(output)])
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(line) for line in output.read_text().splitlines()]
    assert list(record) == RECORD_KEYS
    assert (record["line"], record["id"]) == (1, "in.jsonl:0")  # a record without orig_id: file and index
    (sentence,) = record["sentences"]
    assert sentence["tokens"] == ["Bill", "Clinton", "visited", "Moscow", "."]
    assert record["text"] == "Bill Clinton visited Moscow ."  # pre-tokenised input: offsets into the joined tokens
    for entity in record["entities"]:
        assert record["text"][entity["start_char"] : entity["end_char"]] == entity["text"]


def test_predict_on_a_spert_file_writes_a_record_per_input_record(trained_run, data_dir, tmp_path) -> None:
    gold = json.loads((data_dir / "datasets/conll04/conll04_dev.json").read_text())[:3]
    gold[1] = {**gold[1], "orig_id": "second"}
    gold[2] = {k: v for k, v in gold[2].items() if k != "orig_id"}
    source = tmp_path / "gold.json"
    source.write_text(json.dumps(gold))
    runner = CliRunner()
    result = runner.invoke(main, ["predict", str(trained_run / "model"), str(source), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["line"], r["id"]) for r in records] == [(1, str(gold[0]["orig_id"])), (2, "second"), (3, "gold.json:2")]
    assert [[s["tokens"] for s in r["sentences"]] for r in records] == [[g["tokens"]] for g in gold]
    assert [r["text"] for r in records] == [" ".join(g["tokens"]) for g in gold]


def test_run_settings_are_options(trained_run, tmp_path) -> None:
    runner = CliRunner()
    model = str(trained_run / "model")
    text = "Jim Smith works for IBM in Armonk."
    default = runner.invoke(main, ["predict", model, "--text", text])
    pinned = runner.invoke(main, ["predict", model, "--text", text, "--device", "cpu", "--num-threads", "1"])
    assert default.exit_code == pinned.exit_code == 0, (default.output, pinned.output)
    assert json.loads(pinned.stdout) == json.loads(default.stdout)
    for command in ("predict", "evaluate", "train", "seeds", "crossval", "ablate", "tune"):
        help_text = runner.invoke(main, [command, "--help"]).output
        assert "--device" in help_text and "--num-threads" in help_text, command
    result = runner.invoke(main, ["predict", model, "--text", text, "--num-threads", "0"])
    assert result.exit_code == 2 and "--num-threads" in result.output
    # A run setting given as configuration still works, with a note; the bad key then stops the run.
    config = tmp_path / "c.toml"
    config.write_text("[model]\nhiden_size = 3\n")
    result = runner.invoke(
        main, ["train", str(config), "--output", str(tmp_path / "run"), "--set", "training.num_threads=2"]
    )
    assert result.exit_code == 2 and "model.hiden_size" in result.output
    assert "note: training.num_threads is a run setting now" in result.stderr
    assert not (tmp_path / "run").exists()


def test_evaluate_prints_a_table_and_writes_json(trained_run, data_dir, tmp_path) -> None:
    gold = tmp_path / "gold.json"
    gold.write_text(json.dumps(json.loads((data_dir / "datasets/conll04/conll04_dev.json").read_text())[:20]))
    scores = tmp_path / "scores.json"
    result = CliRunner().invoke(main, ["evaluate", str(trained_run / "model"), str(gold), "--output", str(scores)])
    assert result.exit_code == 0, result.output
    assert "micro (pooled counts)" in result.output and "macro (mean over types)" in result.output
    written = json.loads(scores.read_text())
    assert set(written) == {"strict", "boundaries"}
    assert 0 <= written["strict"]["ner"]["micro"]["f1"] <= 100


def test_errors_are_one_line_and_exit_2(trained_run, tmp_path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["evaluate", str(tmp_path / "nope"), str(trained_run / "config.json")])
    assert result.exit_code == 2 and "no such model directory" in result.output
    bad = tmp_path / "bad.json"
    bad.write_text('[{"tokens": ["a"], "entities": [{"type": "X", "start": 0, "end": 5}], "relations": []}]')
    result = runner.invoke(main, ["evaluate", str(trained_run / "model"), str(bad)])
    assert result.exit_code == 2 and "bad.json" in result.output and "error:" in result.output
    config = tmp_path / "c.toml"
    config.write_text("[model]\nhiden_size = 3\n")
    result = runner.invoke(main, ["train", str(config), "--output", str(tmp_path / "run")])
    assert result.exit_code == 2 and "model.hiden_size" in result.output
    assert not (tmp_path / "run").exists()


def test_validate_exit_codes(data_dir, tmp_path) -> None:
    runner = CliRunner()
    good = runner.invoke(
        main,
        [
            "validate",
            str(data_dir / "datasets/conll04/conll04_dev.json"),
            "--types",
            str(data_dir / "datasets/conll04/conll04_types.json"),
        ],
    )
    assert good.exit_code == 0, good.output
    assert "231" in good.output  # the dev set's sentence count
    bad = tmp_path / "bad.json"
    empty = {"tokens": [], "entities": [], "relations": []}
    alien = {"tokens": ["a"], "entities": [{"type": "Alien", "start": 0, "end": 1}], "relations": []}
    bad.write_text(json.dumps([empty, alien]))
    report = tmp_path / "report.json"
    result = runner.invoke(
        main,
        ["validate", str(bad), "--types", str(data_dir / "datasets/conll04/conll04_types.json"), "--json", str(report)],
    )
    assert result.exit_code == 1
    kinds = {p["kind"] for f in json.loads(report.read_text())["files"] for p in f["problems"]}
    assert {"empty_sentence", "unknown_entity_type"} <= kinds


def test_results_without_a_name_is_a_usage_error_before_any_work(tmp_path) -> None:
    from pathlib import Path

    config = str(Path(__file__).resolve().parents[1] / "configs" / "tiny.toml")
    data = tmp_path / "data.json"
    data.write_text("[]")
    results = str(tmp_path / "r.json")
    commands = [
        ["seeds", config, "--runs", str(tmp_path / "runs")],
        ["evaluate", str(tmp_path / "no-model"), str(data)],
        ["crossval", config, "--runs", str(tmp_path / "runs")],
        ["tune", config, "--study-dir", str(tmp_path / "study")],
    ]
    for command in commands:
        result = CliRunner().invoke(main, [*command, "--results", results])
        assert result.exit_code == 2, (command, result.output)
        assert "--results needs --name" in result.output
    assert list(tmp_path.iterdir()) == [data]
