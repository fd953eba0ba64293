"""Batch extraction over a file: same results as the API, resumable, bad lines reported, CLI."""

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import deeprel
from deeprel.api import Extractor
from deeprel.cli import main
from deeprel.data.types import DataError
from deeprel.extract import ExtractSummary, errors_path, extract_file, state_path
from deeprel.model.files import ModelLoadError


@pytest.fixture(scope="module")
def model(trained_run: Path) -> Path:
    return trained_run / "model"


@pytest.fixture(scope="module")
def extractor(model: Path) -> Extractor:
    # fp32 here and in run(): under bf16 a sentence's scores move by up to ~0.01 with the batch it shares
    # (its padding), and these tests compare extract's batching with the API's.
    return deeprel.load(model, device="cpu", num_threads=1, precision="fp32")


@pytest.fixture(scope="module")
def texts(data_dir: Path) -> list[str]:
    """Documents of one to three training sentences, a Unicode one and an empty one."""
    documents = json.loads((data_dir / "datasets/conll04/conll04_train.json").read_text(encoding="utf-8"))
    sentences = [" ".join(d["tokens"]) for d in documents[:14]]
    texts = [" ".join(sentences[k : k + 1 + k % 3]) for k in range(0, 12, 2)]
    return [*texts[:3], "", f"Zoë 🙂 wrote from 東京. {sentences[12]} Cafe\u0301!", *texts[3:], sentences[13]]


class CountingExtractor:
    """Counts the sentences that go through the model, and stops a run (like Ctrl-C) after ``stop_after`` calls."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, stop_after: int | None = None) -> None:
        self.sentences = 0
        self.calls = 0
        original = Extractor.extract_documents

        def extract_documents(extractor, documents):
            if stop_after is not None and self.calls == stop_after:
                raise KeyboardInterrupt
            self.calls += 1
            self.sentences += sum(len(document.sentences) for document in documents)
            return original(extractor, documents)

        monkeypatch.setattr(Extractor, "extract_documents", extract_documents)


def run(model: Path, source: Path, output: Path, **options) -> ExtractSummary:
    options.setdefault("precision", "fp32")
    return extract_file(model, source, output, workers=options.pop("workers", 1), progress=False, **options)


def records(path: Path) -> list[dict]:
    # split("\n"), not splitlines(): a JSON string written with ensure_ascii=False may hold U+2028 and the like.
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]


def scores_apart(results: list[dict]) -> tuple[list[dict], list[float]]:
    """The results with the entity and relation scores taken out, and those scores in order."""
    scores: list[float] = []
    bare = []
    for result in results:
        parts = {}
        for key in ("entities", "relations"):
            parts[key] = [{k: v for k, v in item.items() if k != "score"} for item in result[key]]
            scores += [item["score"] for item in result[key]]
        bare.append({**result, **parts})
    return bare, scores


def write_text_input(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    return path


def test_jsonl_output_equals_the_api(model, extractor, texts, tmp_path) -> None:
    tokens = texts[-1].split(" ")
    lines = [{"id": f"doc-{i}", "text": t} for i, t in enumerate(texts[:-1])]
    lines[2] = {"text": texts[2]}  # no id
    lines[3] = {"id": 7, "text": ""}
    lines.append({"tokens": tokens, "id": "tok"})
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(item, ensure_ascii=False) + "\n" for item in lines), encoding="utf-8")
    output = tmp_path / "out.jsonl"
    summary = run(model, source, output, chunk_size=3)
    written = records(output)
    assert [r["line"] for r in written] == list(range(1, len(lines) + 1))
    assert [r["id"] for r in written] == [item.get("id") for item in lines]
    expected = [extractor(t).to_dict() for t in texts[:-1]] + [extractor.extract_tokens([tokens])[0].to_dict()]
    got = [{k: v for k, v in r.items() if k not in ("line", "id")} for r in written]
    # Scores may differ in the 4th decimal: extract batches 3 documents, the API here one, and a float32
    # forward pass depends slightly on what else (padding) is in its batch. Everything else must be equal.
    (bare, scores), (expected_bare, expected_scores) = scores_apart(got), scores_apart(expected)
    assert bare == expected_bare
    assert scores == pytest.approx(expected_scores, abs=1e-3)
    assert summary.lines_read == summary.documents_written == len(lines)
    assert summary.sentences == sum(len(r["sentences"]) for r in written) > len(lines)
    assert summary.bad_lines == summary.resumed_after == 0
    assert errors_path(output).read_text() == ""
    assert state_path(output).name == "out.state.json"


def test_text_input_writes_a_record_for_every_line(model, extractor, texts, tmp_path) -> None:
    source = tmp_path / "in.txt"
    source.write_bytes("\r\n".join(texts).encode("utf-8"))  # Windows line ends, no final one
    output = tmp_path / "out.jsonl"
    summary = run(model, source, output, chunk_size=4)
    written = records(output)
    assert [r["line"] for r in written] == list(range(1, len(texts) + 1))
    assert all(r["id"] is None for r in written)
    assert [r["text"] for r in written] == texts
    assert written[3]["sentences"] == [] and written[3]["entities"] == []  # the blank line
    assert [{k: v for k, v in r.items() if k not in ("line", "id")} for r in written] == [
        e.to_dict() for e in extractor(texts)
    ]
    assert summary.documents_written == len(texts)


def test_an_interrupted_run_resumes_without_recomputing(model, texts, tmp_path, monkeypatch) -> None:
    source = write_text_input(tmp_path / "in.txt", texts)
    reference = tmp_path / "reference.jsonl"
    run(model, source, reference, chunk_size=3)
    output = tmp_path / "out.jsonl"
    with monkeypatch.context() as patch:
        CountingExtractor(patch, stop_after=2)
        with pytest.raises(KeyboardInterrupt):
            run(model, source, output, chunk_size=3)
    assert [r["line"] for r in records(output)] == [1, 2, 3, 4, 5, 6]  # two chunks were done
    done = sum(len(r["sentences"]) for r in records(output))
    counter = CountingExtractor(monkeypatch)
    summary = run(model, source, output, chunk_size=3)
    assert output.read_text(encoding="utf-8") == reference.read_text(encoding="utf-8")
    total = sum(len(r["sentences"]) for r in records(reference))
    assert counter.sentences == summary.sentences == total - done  # the first six lines were not redone
    assert (summary.resumed_after, summary.lines_read, summary.documents_written) == (6, len(texts) - 6, len(texts) - 6)
    again = run(model, source, output, chunk_size=3)  # a finished output: nothing left to do
    assert (again.resumed_after, again.lines_read, again.sentences) == (len(texts), 0, 0)
    assert output.read_text(encoding="utf-8") == reference.read_text(encoding="utf-8")


def test_a_torn_last_line_is_cut_off_and_redone(model, texts, tmp_path, monkeypatch) -> None:
    source = write_text_input(tmp_path / "in.txt", texts)
    reference = tmp_path / "reference.jsonl"
    run(model, source, reference, chunk_size=4)
    lines = reference.read_bytes().splitlines(keepends=True)
    output = tmp_path / "out.jsonl"
    output.write_bytes(b"".join(lines[:5]) + lines[5][: len(lines[5]) // 2])  # killed while writing line 6
    shutil.copy(state_path(reference), state_path(output))
    shutil.copy(errors_path(reference), errors_path(output))
    counter = CountingExtractor(monkeypatch)
    summary = run(model, source, output, chunk_size=4)
    assert output.read_bytes() == reference.read_bytes()
    assert summary.resumed_after == 5
    assert counter.sentences == sum(len(r["sentences"]) for r in records(reference)[5:])


BAD_LINES = {
    2: (b'{"text": "unfinished\n', "invalid JSON"),
    3: (b'["a", "list"]\n', "expected a JSON object, got an array"),
    5: (b'{"id": "x"}\n', 'expected exactly one of "text" and "tokens"'),
    6: (b'{"text": "a", "tokens": ["a"]}\n', 'expected exactly one of "text" and "tokens"'),
    7: (b'{"text": 12}\n', '"text" must be a string, got a number'),
    8: (b'{"tokens": "Not a list"}\n', '"tokens" must be a non-empty list of strings'),
    9: (b'{"tokens": []}\n', '"tokens" must be a non-empty list of strings'),
    10: (b'{"tokens": ["a", " "]}\n', "token 1 is empty or whitespace"),
    11: (b'{"text": "caf\xe9 latin-1"}\n', "not valid UTF-8"),
    12: (b"\n", "blank line"),
    14: (b'{"text": "ok", "id": [1]}\n', '"id" must be a string or an integer, got an array'),
    15: (b'{"text": "lone \\ud800 surrogate"}\n', "lone surrogate"),
}


def bad_input(path: Path, texts: list[str]) -> Path:
    good = iter(texts)
    with path.open("wb") as handle:
        for line in range(1, 17):
            bad = BAD_LINES.get(line)
            handle.write(bad[0] if bad else json.dumps({"text": next(good)}).encode() + b"\n")
    return path


def test_bad_lines_are_reported_and_skipped(model, texts, tmp_path, capsys) -> None:
    source = bad_input(tmp_path / "in.jsonl", texts)
    output = tmp_path / "out.jsonl"
    summary = run(model, source, output, chunk_size=5)
    good_lines = [n for n in range(1, 17) if n not in BAD_LINES]
    assert [r["line"] for r in records(output)] == good_lines
    assert [r["text"] for r in records(output)] == texts[: len(good_lines)]
    errors = records(errors_path(output))
    assert [e["line"] for e in errors] == sorted(BAD_LINES)
    for error in errors:
        assert BAD_LINES[error["line"]][1] in error["error"]
    stderr = capsys.readouterr().err
    for line, (_, reason) in BAD_LINES.items():
        assert f"{source}:{line}: " in stderr and reason in stderr
    assert (summary.lines_read, summary.documents_written, summary.bad_lines) == (16, len(good_lines), len(BAD_LINES))
    assert "skipped 12 bad lines" in summary.format()


def test_resuming_keeps_earlier_bad_lines_once(model, texts, tmp_path, monkeypatch) -> None:
    source = bad_input(tmp_path / "in.jsonl", texts)
    reference = tmp_path / "reference.jsonl"
    run(model, source, reference, chunk_size=5)
    output = tmp_path / "out.jsonl"
    with monkeypatch.context() as patch:
        CountingExtractor(patch, stop_after=2)
        with pytest.raises(KeyboardInterrupt):
            run(model, source, output, chunk_size=5)
    summary = run(model, source, output, chunk_size=5)
    assert output.read_bytes() == reference.read_bytes()
    assert errors_path(output).read_bytes() == errors_path(reference).read_bytes()
    assert summary.earlier_bad_lines + summary.bad_lines == len(BAD_LINES)
    assert summary.earlier_bad_lines == sum(1 for line in BAD_LINES if line <= summary.resumed_after) > 0


def test_on_error_stop_names_the_line_and_exits_2(model, texts, tmp_path) -> None:
    source = bad_input(tmp_path / "in.jsonl", texts)
    output = tmp_path / "out.jsonl"
    with pytest.raises(DataError, match=r"in\.jsonl: line 2: invalid JSON"):
        run(model, source, output, on_error="stop")
    assert [r["line"] for r in records(output)] == [1]  # what came before the bad line is kept
    result = CliRunner().invoke(
        main,
        ["extract", str(model), str(source), "-o", str(output), "--on-error", "stop", "--workers", "1"]
        + ["--precision", "fp32"],  # as run() wrote it: the state file must match to resume
    )
    assert result.exit_code == 2
    assert "error:" in result.stderr and f"{source}: line 2: invalid JSON" in result.stderr
    assert result.stderr.count("invalid JSON") == 1  # reported once, by the error


def test_a_mismatched_resume_is_refused(model, texts, tmp_path) -> None:
    source = write_text_input(tmp_path / "in.txt", texts[:4])
    output = tmp_path / "out.jsonl"
    run(model, source, output)
    before = output.read_bytes()
    with pytest.raises(DataError, match="threshold: None before, 0.3 now.*--overwrite"):
        run(model, source, output, threshold=0.3)
    with pytest.raises(DataError, match="input format: text before, jsonl now"):
        run(model, source, output, input_format="jsonl")
    with pytest.raises(DataError, match="precision: fp32 before, bf16 now"):
        run(model, source, output, precision="bf16")
    with pytest.raises(DataError, match="entity scores: True before, False now"):
        run(model, source, output, entity_scores=False)
    assert json.loads(state_path(output).read_text())["precision"] == "fp32"
    moved = tmp_path / "moved.txt"
    shutil.copy(source, moved)
    assert run(model, moved, output).resumed_after == 4  # the same content elsewhere resumes
    other_model = tmp_path / "model"
    shutil.copytree(model, other_model)
    labels = json.loads((other_model / "labels.json").read_text())
    (other_model / "labels.json").write_text(json.dumps(labels, indent=4))
    with pytest.raises(DataError, match="model: the files of"):
        run(other_model, source, output)
    with source.open("a", encoding="utf-8") as handle:
        handle.write("One more line.\n")
    with pytest.raises(DataError, match="input: the content of"):
        run(model, source, output)
    assert output.read_bytes() == before  # refusing changed nothing
    summary = run(model, source, output, overwrite=True)
    assert (summary.resumed_after, summary.documents_written) == (0, 5)
    assert records(output)[-1]["text"] == "One more line."


def test_an_output_not_written_by_extract_is_refused(model, texts, tmp_path) -> None:
    source = write_text_input(tmp_path / "in.txt", texts[:2])
    output = tmp_path / "out.jsonl"
    output.write_text('{"something": "else"}\n')
    with pytest.raises(DataError, match="exists without out.state.json"):
        run(model, source, output)
    with pytest.raises(ValueError, match="would overwrite the input"):
        run(model, source, source)
    with pytest.raises(ModelLoadError, match="no such model directory"):
        run(tmp_path / "nope", source, tmp_path / "new.jsonl")


def test_cli_extracts_resumes_and_uses_worker_processes(model, texts, tmp_path) -> None:
    source = write_text_input(tmp_path / "in.txt", texts)
    single = tmp_path / "single.jsonl"
    runner = CliRunner()
    args = ["extract", str(model), str(source), "--chunk-size", "3", "--batch-size", "4", "--quiet"]
    result = runner.invoke(main, [*args, "-o", str(single), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert f"read {len(texts)} lines, wrote {len(texts)} documents" in result.stdout
    assert "skipped 0 bad lines" in result.stdout and "sentences/s" in result.stdout
    result = runner.invoke(main, [*args, "-o", str(single), "--workers", "1"])
    assert result.exit_code == 0 and f"resumed after line {len(texts)}; read 0 lines" in result.stdout
    two = tmp_path / "two.jsonl"
    result = runner.invoke(main, [*args, "--output", str(two), "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert two.read_bytes() == single.read_bytes()


RECORD_KEYS = ["line", "id", "text", "sentences", "entities", "relations"]


def test_predict_and_extract_write_the_same_record_for_a_text_file(model, texts, tmp_path) -> None:
    source = write_text_input(tmp_path / "in.txt", texts)
    extracted = tmp_path / "extracted.jsonl"
    run(model, source, extracted, chunk_size=len(texts), batch_size=32)  # one chunk: the batches predict makes
    predicted = tmp_path / "predicted.jsonl"
    result = CliRunner().invoke(
        main,
        ["predict", str(model), str(source), "--output", str(predicted), "--batch-size", "32"]
        + ["--device", "cpu", "--num-threads", "1", "--precision", "fp32"],
    )
    assert result.exit_code == 0, result.output
    from_predict, from_extract = records(predicted), records(extracted)
    assert len(from_predict) == len(from_extract) == len(texts)
    for line, (mine, theirs) in enumerate(zip(from_predict, from_extract, strict=True), start=1):
        assert list(mine) == list(theirs) == RECORD_KEYS, line
        assert mine == theirs, line
    assert [r["line"] for r in from_predict] == list(range(1, len(texts) + 1))
    assert all(r["id"] is None for r in from_predict)
    assert [r["text"] for r in from_predict] == texts
    assert from_predict[3]["sentences"] == [] and from_predict[3]["entities"] == []  # the blank line
    assert any(r["relations"] for r in from_predict)


def test_predict_and_extract_agree_on_what_a_line_is(model, tmp_path) -> None:
    source = tmp_path / "in.txt"
    source.write_bytes("\ufeffJohn Smith lives in Boston.\nAnn met Bob.\u2028Then she left.\nlast\x0cline\n".encode())
    extracted, predicted = tmp_path / "extracted.jsonl", tmp_path / "predicted.jsonl"
    run(model, source, extracted)
    result = CliRunner().invoke(main, ["predict", str(model), str(source), "--output", str(predicted)])
    assert result.exit_code == 0, result.output
    assert [r["text"] for r in records(extracted)] == [
        "John Smith lives in Boston.",
        "Ann met Bob.\u2028Then she left.",
        "last\x0cline",
    ]
    assert [(r["line"], r["text"]) for r in records(predicted)] == [(r["line"], r["text"]) for r in records(extracted)]
