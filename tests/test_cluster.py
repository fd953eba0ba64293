"""deeprel on Ray Data: a local two-CPU Ray cluster, the tiny model, the same output as ``deeprel extract``."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray
from click.testing import CliRunner

import deeprel
from deeprel.cli import main
from deeprel.cluster import (
    STATE_FILE,
    ClusterState,
    _prepare_output,
    extract_dataset,
    extract_files,
    output_schema,
    plan_shards,
    resolve_inputs,
)
from deeprel.data.types import DataError
from deeprel.extract import extract_file

# fp32: extract and the Ray path batch sentences differently, and bf16 scores move with the batch
OPTIONS = {"precision": "fp32", "threshold": 0.2}
ONE = {**OPTIONS, "actors": 1}  # most tests: one actor starts in half the time of two on two cores


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def model(trained_run: Path) -> Path:
    return trained_run / "model"


@pytest.fixture(scope="module")
def sentences(data_dir: Path) -> list[list[str]]:
    documents = json.loads((data_dir / "datasets/conll04/conll04_test.json").read_text(encoding="utf-8"))
    return [d["tokens"] for d in documents[:90]]


def write_jsonl(path: Path, sentences: list[list[str]], bad: bool = False) -> Path:
    """Documents of two test sentences each, ids alternately integers and strings; ``bad`` mixes in bad lines."""
    lines = []
    for k in range(0, len(sentences), 2):
        text = " ".join(" ".join(s) for s in sentences[k : k + 2])
        lines.append(json.dumps({"id": k if k % 4 else f"doc-{k}", "text": text}))
    lines.append(json.dumps({"tokens": sentences[0]}))  # one pre-tokenised sentence
    if bad:
        lines[3:3] = ["{not json", json.dumps({"id": 1, "text": 7}), ""]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def local_output(model: Path, source: Path, tmp_path: Path) -> list[dict]:
    output = tmp_path / "local.jsonl"
    extract_file(model, source, output, workers=1, progress=False, **OPTIONS)
    return [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]


def assert_same_records(found: list[dict], expected: list[dict]) -> None:
    """Same documents, sentences, entities (offsets, types) and relations; scores to 1e-3."""
    assert len(found) == len(expected)
    for a, b in zip(found, expected):
        for key in ("line", "text", "sentences"):
            assert a[key] == b[key], key
        assert str(a["id"]) == str(b["id"]) if b["id"] is not None else a["id"] is None
        for key in ("entities", "relations"):
            assert [{k: v for k, v in x.items() if k != "score"} for x in a[key]] == [
                {k: v for k, v in x.items() if k != "score"} for x in b[key]
            ]
            assert [x["score"] for x in a[key]] == pytest.approx([x["score"] for x in b[key]], abs=1e-3)


def shard_records(output: Path, fmt: str) -> list[dict]:
    files = sorted(output.glob(f"*.{fmt}"))
    if fmt == "parquet":
        rows = [row for f in files for row in pq.read_table(f).to_pylist()]
    else:
        rows = [json.loads(line) for f in files for line in f.read_text(encoding="utf-8").splitlines()]
    return sorted(rows, key=lambda r: (r["source"], r["line"]))


def test_jsonl_in_parquet_out_equals_deeprel_extract(cluster, model, sentences, tmp_path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", sentences)
    expected = local_output(model, source, tmp_path)
    output = tmp_path / "shards"
    summary = extract_files(model, [str(source)], str(output), shard_rows=10, actors=2, **OPTIONS)
    assert (summary.shards, summary.rows, summary.documents, summary.errors) == (5, 46, 46, 0)
    assert summary.sentences == sum(len(r["sentences"]) for r in expected)
    files = sorted(output.glob("*.parquet"))
    assert len(files) == 5 and all(
        pq.read_schema(f).field("entities").type == output_schema().field("entities").type for f in files
    )
    found = shard_records(output, "parquet")
    assert {r["source"] for r in found} == {str(source.resolve())}
    assert_same_records(found, expected)
    assert any(r["relations"] for r in found) and any(not r["relations"] for r in found)


def test_text_in_jsonl_out_equals_deeprel_extract(cluster, model, sentences, tmp_path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("\n".join(" ".join(s) for s in sentences[:30]) + "\n\nZoë wrote from Paris.\n", encoding="utf-8")
    expected = local_output(model, source, tmp_path)
    output = tmp_path / "shards"
    summary = extract_files(model, [str(source)], str(output), output_format="jsonl", shard_rows=7, **ONE)
    assert (summary.shards, summary.documents) == (5, 32)
    found = shard_records(output, "jsonl")
    for record in found:  # the records deeprel extract writes, and where they came from
        assert record.pop("source") == str(source.resolve())
    assert_same_records(found, expected)


def test_bad_rows_go_to_the_errors_with_their_file_and_line(cluster, model, sentences, tmp_path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", sentences[:20], bad=True)
    logged: list[str] = []
    output = tmp_path / "shards"
    summary = extract_files(model, [str(source)], str(output), shard_rows=4, log=logged.append, **ONE)
    assert (summary.rows, summary.documents, summary.errors) == (14, 11, 3)
    errors = [
        json.loads(line) for f in sorted((output / "errors").glob("*.jsonl")) for line in f.read_text().splitlines()
    ]
    where = str(source.resolve())
    assert sorted((e["line"], e["error"]) for e in errors) == [
        (4, "invalid JSON: Expecting property name enclosed in double quotes at column 2"),
        (5, '"text" must be a string, got a number'),
        (6, "blank line, expected a JSON object"),
    ]
    assert {e["source"] for e in errors} == {where}
    assert sorted(logged) == sorted(f"{where}:{e['line']}: {e['error']}" for e in errors)
    assert [r["line"] for r in shard_records(output, "parquet")] == [1, 2, 3, *range(7, 15)]


def test_a_killed_run_resumes_skipping_finished_shards(cluster, model, sentences, tmp_path) -> None:
    """The command line, joined to the test's cluster, killed once some shards are written; the rerun writes
    the rest, and the output is complete with no row twice."""
    source = tmp_path / "in.txt"
    source.write_text("\n".join(" ".join(s) for s in (sentences * 3)[:240]) + "\n", encoding="utf-8")
    output = tmp_path / "shards"
    command = [sys.executable, "-m", "deeprel.cli", "extract", str(model), str(source), "-o", str(output)]
    command += ["--engine", "ray", "--address", cluster, "--shard-rows", "8", "--output-format", "jsonl", "--quiet"]
    command += ["--precision", "fp32", "--threshold", "0.2", "--actors", "1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    while len(list(output.glob("*.jsonl"))) < 3 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished = {p.name for p in output.glob("*.jsonl")}
    assert 3 <= len(finished) < 30, "the run was not killed mid-job"
    before = {name: (output / name).read_bytes() for name in finished}

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"skipped {len(finished)} shards done before" in rerun.stdout
    assert all((output / name).read_bytes() == content for name, content in before.items())  # not rewritten
    records = shard_records(output, "jsonl")
    assert [r["line"] for r in records] == list(range(1, 241))  # complete, each line once
    assert not [p for p in output.rglob(".*") if p.is_file()]  # no temporary file left
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "wrote 0 shards, skipped 30 shards done before" in again.stdout


def test_a_changed_setting_or_input_is_refused_unless_overwritten(cluster, model, sentences, tmp_path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", sentences[:8])
    output = tmp_path / "shards"
    extract_files(model, [str(source)], str(output), **ONE)
    with pytest.raises(DataError, match=r"made with other inputs or settings \(threshold: 0.2 before, 0.5 now\)"):
        extract_files(model, [str(source)], str(output), precision="fp32", threshold=0.5)
    write_jsonl(source, sentences[:10])
    with pytest.raises(DataError, match="inputs: different files"):
        extract_files(model, [str(source)], str(output), **OPTIONS)
    summary = extract_files(model, [str(source)], str(output), overwrite=True, **ONE)
    assert summary.documents == 6 and json.loads((output / STATE_FILE).read_text())["threshold"] == 0.2
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not written by deeprel"):
        extract_files(model, [str(source)], str(tmp_path / "other"), **OPTIONS)


def test_folders_globs_and_parquet_inputs(cluster, model, sentences, tmp_path) -> None:
    folder = tmp_path / "corpus"
    (folder / "part").mkdir(parents=True)
    write_jsonl(folder / "a.jsonl", sentences[:6])
    (folder / "part" / "b.txt").write_text(" ".join(sentences[6]) + "\n", encoding="utf-8")
    (folder / "README.md").write_text("not input")
    texts = [" ".join(s) for s in sentences[7:12]]
    pq.write_table(pa.table({"id": list(range(5)), "text": texts}), folder / "c.parquet", row_group_size=2)
    found = resolve_inputs([str(folder)])
    assert [(Path(s).name, f) for s, f in found] == [("a.jsonl", "jsonl"), ("c.parquet", "parquet"), ("b.txt", "text")]
    assert resolve_inputs([str(folder / "**" / "*.txt")]) == [(str(folder / "part" / "b.txt"), "text")]
    shards, _ = plan_shards(found, 2)
    assert [(Path(s.source).name, s.first, s.count) for s in shards if s.format == "parquet"] == [
        ("c.parquet", 1, 2),
        ("c.parquet", 3, 2),
        ("c.parquet", 5, 1),
    ]
    output = tmp_path / "shards"
    summary = extract_files(model, [str(folder)], str(output), shard_rows=2, **ONE)
    assert (summary.shards, summary.documents, summary.errors) == (2 + 3 + 1, 4 + 5 + 1, 0)
    rows = [r for r in shard_records(output, "parquet") if r["source"].endswith("c.parquet")]
    assert [(r["line"], r["id"], r["text"]) for r in rows] == [(i + 1, str(i), t) for i, t in enumerate(texts)]
    with pytest.raises(DataError, match="no file matches the pattern"):
        resolve_inputs([str(tmp_path / "*.nothing")])
    with pytest.raises(DataError, match="no such file or folder"):
        resolve_inputs([str(tmp_path / "missing.jsonl")])


def test_extract_dataset_keeps_columns_and_marks_bad_rows(cluster, model, sentences, tmp_path) -> None:
    texts = [" ".join(s) for s in sentences[:12]]
    items = [{"id": i, "text": t, "year": 2000 + i} for i, t in enumerate(texts)]
    items += [{"id": 99, "text": None, "year": 1999}]
    dataset = ray.data.from_items(items)
    result = extract_dataset(dataset, model, keep=["year"], actors=2, rows_per_call=4, **OPTIONS)
    rows = sorted(pa.concat_tables(ray.get(result.to_arrow_refs())).to_pylist(), key=lambda r: int(r["id"]))
    expected = deeprel.load(model, **OPTIONS).extract(texts)
    assert [r["year"] for r in rows] == [*range(2000, 2012), 1999]
    assert_same_records(
        [{**r, "line": 0} for r in rows[:-1]],
        [{"line": 0, "id": str(i), **e.to_dict()} for i, e in enumerate(expected)],
    )
    assert rows[-1]["error"] == 'expected exactly one of "text" and "tokens"' and rows[-1]["entities"] == []
    assert all(r["error"] is None for r in rows[:-1])
    # rows with nothing found still write to Parquet under the explicit schema
    empty = extract_dataset(ray.data.from_items([{"text": ""}, {"text": "   "}]), model, **ONE)
    empty.write_parquet(str(tmp_path / "empty"))
    table = pq.read_table(tmp_path / "empty")
    assert table.num_rows == 2 and table.schema.field("relations").type == output_schema().field("relations").type
    with pytest.raises(ValueError, match="neither a 'text' nor a 'tokens' column"):
        extract_dataset(ray.data.from_items([{"body": "x"}]), model)
    with pytest.raises(ValueError, match="keep: the dataset has no column 'title'"):
        extract_dataset(dataset, model, keep=["title"])


def test_the_command_line_on_ray(cluster, model, sentences, tmp_path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", sentences[:10], bad=True)
    output = tmp_path / "shards"
    command = ["extract", str(model), str(source), "-o", str(output), "--engine", "ray", "--precision", "fp32"]
    result = CliRunner().invoke(main, [*command, "--address", cluster, "--shard-rows", "3", "--quiet", "--actors", "1"])
    assert result.exit_code == 0, result.output
    assert "wrote 3 shards: 6 documents (11 sentences) from 9 rows, 3 bad rows" in result.stdout
    assert f"{source.resolve()}:4: invalid JSON" in result.stderr
    wrong = CliRunner().invoke(main, [*command, "--workers", "2"])
    assert wrong.exit_code == 2 and "--workers: not used by --engine ray" in wrong.output
    local = CliRunner().invoke(
        main, ["extract", str(model), str(source), "-o", str(tmp_path / "x.jsonl"), "--actors", "2"]
    )
    assert local.exit_code == 2 and "--actors: only with --engine ray" in local.output


def test_a_shard_killed_between_its_errors_and_its_output_is_not_done(tmp_path) -> None:
    """Its errors file (written first, with the same suffix as JSONL output) does not mark it written."""
    state = ClusterState(1, "m", "sha", None, "fp32", True, "jsonl", 10, [])
    output = tmp_path / "shards"
    assert _prepare_output(str(output), state, overwrite=False) == (set(), 0)
    (output / "errors").mkdir()
    (output / "errors" / "a-00000.jsonl").write_text('{"line": 3}\n')
    (output / "errors" / "a-00001.jsonl").write_text('{"line": 12}\n')
    (output / "a-00001.jsonl").write_text("{}\n")
    assert _prepare_output(str(output), state, overwrite=False) == ({"a-00001"}, 1)
