"""doccano and Label Studio exports in, pre-annotations out, and a model trained from an annotation tool's
export scoring as the same model trained from the equivalent SpERT file."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from deeprel.cli import main
from deeprel.config import resolve_data_path
from deeprel.data.alignment import AnnotationOptions, Losses
from deeprel.data.annotation_tools import write_doccano, write_label_studio
from deeprel.data.readers import detect_format, read_documents, write_documents
from deeprel.data.types import DataError, sentences_of

TEXT = "Ann Lee works for Acme. 🙂 Bob lives in Paris."


def _spans(document) -> tuple[list, list]:
    """Entities as (type, text, start, end) and relations as (type, head text, tail text), by characters."""
    entities, relations = [], []
    for sentence in document.sentences:
        mine = [
            (e.type, document.span_text(sentence, e), sentence.offsets[e.start][0], sentence.offsets[e.last][1])
            for e in sentence.entities
        ]
        entities += mine
        relations += [(r.type, mine[r.head][1], mine[r.tail][1]) for r in sentence.relations]
    return sorted(entities), sorted(relations)


EXPECTED = (
    sorted([("Peop", "Ann Lee", 0, 7), ("Org", "Acme", 18, 22), ("Peop", "Bob", 26, 29), ("Loc", "Paris", 39, 44)]),
    sorted([("Work_For", "Ann Lee", "Acme"), ("Live_In", "Bob", "Paris")]),
)


def _doccano(tmp_path: Path, shift: int = 0) -> Path:
    """A doccano relation export; ``shift`` moves offsets after the emoji (1: a UTF-16 export)."""
    entities = [
        (1, "Peop", 0, 7),
        (2, "Org", 18, 22),
        (3, "Peop", 26 + shift, 29 + shift),
        (4, "Loc", 39 + shift, 44 + shift),
    ]
    record = {
        "id": 7,
        "text": TEXT,
        "entities": [{"id": i, "label": label, "start_offset": s, "end_offset": e} for i, label, s, e in entities],
        "relations": [
            {"id": 1, "from_id": 1, "to_id": 2, "type": "Work_For"},
            {"id": 2, "from_id": 3, "to_id": 4, "type": "Live_In"},
        ],
        "Comments": [],
    }
    path = tmp_path / "doccano.jsonl"
    path.write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def test_a_doccano_relation_export_reads_with_character_offsets(tmp_path: Path) -> None:
    path = _doccano(tmp_path)
    assert detect_format(path) == "doccano"
    [document] = read_documents(path)
    assert document.id == "7" and document.text == TEXT and _spans(document) == EXPECTED
    assert document.metadata["Comments"] == []


def test_utf16_offsets_of_older_exports_are_converted_and_counted(tmp_path: Path) -> None:
    losses = Losses()
    [document] = read_documents(_doccano(tmp_path, shift=1), losses=losses)
    assert _spans(document) == EXPECTED and losses.counts["utf16_offsets_converted"] == 4


def test_the_sequence_labelling_export_reads_too(tmp_path: Path) -> None:
    path = tmp_path / "seq.jsonl"
    path.write_text(json.dumps({"text": "Ann met Bob.", "label": [[0, 3, "Peop"], [8, 11, "Peop"]]}) + "\n")
    [document] = read_documents(path, "doccano")
    assert [document.span_text(s, e) for s in document.sentences for e in s.entities] == ["Ann", "Bob"]


def test_bad_doccano_tasks_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    good = {
        "text": "Ann met Bob.",
        "entities": [{"id": 1, "label": "Peop", "start_offset": 0, "end_offset": 3}],
        "relations": [],
    }
    bad = {**good, "relations": [{"id": 1, "from_id": 1, "to_id": 9, "type": "Knows"}]}
    path.write_text(json.dumps(good) + "\n{oops\n" + json.dumps(bad) + "\n")
    with pytest.raises(DataError, match=r"bad\.jsonl:2 .*invalid JSON"):
        read_documents(path, "doccano")
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(DataError, match=r"bad\.jsonl:2 .*relation 0 names entity 9"):
        read_documents(path, "doccano")
    outside = {**good, "entities": [{"id": 1, "label": "Peop", "start_offset": 0, "end_offset": 30}]}
    path.write_text(json.dumps(outside) + "\n")
    with pytest.raises(DataError, match=r"offsets \[0, 30\) are outside the text"):
        read_documents(path, "doccano")


def _label_studio(tmp_path: Path, cancelled_first: bool = False) -> Path:
    regions = [("a", "Peop", 0, 7), ("b", "Org", 18, 22), ("c", "Peop", 26, 29), ("d", "Loc", 39, 44)]
    result = [
        {
            "id": i,
            "from_name": "label",
            "to_name": "text",
            "type": "labels",
            "value": {"start": s, "end": e, "text": TEXT[s:e], "labels": [label]},
        }
        for i, label, s, e in regions
    ]
    result += [
        {"from_id": "b", "to_id": "a", "type": "relation", "direction": "left", "labels": ["Work_For"]},
        {"from_id": "c", "to_id": "d", "type": "relation", "direction": "right", "labels": ["Live_In"]},
        {"from_id": "a", "to_id": "c", "type": "relation", "direction": "right"},  # no label
    ]
    annotations = [{"id": 2, "was_cancelled": False, "result": result}]
    if cancelled_first:
        annotations.insert(0, {"id": 1, "was_cancelled": True, "result": []})
    path = tmp_path / "ls.json"
    path.write_text(json.dumps([{"id": 11, "data": {"text": TEXT}, "annotations": annotations}], ensure_ascii=False))
    return path


def test_a_label_studio_export_reads_labels_and_directed_relations(tmp_path: Path) -> None:
    path = _label_studio(tmp_path, cancelled_first=True)
    assert detect_format(path) == "label-studio"
    losses = Losses()
    [document] = read_documents(path, losses=losses)
    assert document.id == "11" and _spans(document) == EXPECTED  # "left" reverses from/to
    assert losses.counts["label_studio_cancelled_annotations_skipped"] == 1
    assert losses.counts["label_studio_relation_without_label"] == 1
    with pytest.raises(DataError, match="no annotation 5"):
        read_documents(path, options=AnnotationOptions(annotation=5))
    [first] = read_documents(path, options=AnnotationOptions(annotation=0))  # the cancelled one, as asked
    assert not any(s.entities for s in first.sentences)


def test_a_label_studio_task_without_text_is_named(tmp_path: Path) -> None:
    path = tmp_path / "ls.json"
    path.write_text(json.dumps([{"id": 3, "data": {"body": "x"}, "annotations": []}]))
    with pytest.raises(DataError, match=r"ls\.json: task 0 \(doc_id 3\): a Label Studio task needs data.text"):
        read_documents(path, "label-studio")


def test_round_trips_through_doccano_and_label_studio(tmp_path: Path) -> None:
    [document] = read_documents(_doccano(tmp_path))
    write_doccano([document], tmp_path / "again.jsonl")
    [back] = read_documents(tmp_path / "again.jsonl")
    assert back.text == document.text and _spans(back) == EXPECTED
    write_label_studio([document], tmp_path / "tasks.json")
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    assert tasks[0]["predictions"][0]["model_version"] == "deeprel"
    [from_ls] = read_documents(tmp_path / "tasks.json")  # predictions read when a task has no annotation
    assert _spans(from_ls) == EXPECTED


def test_predictions_go_back_to_the_tools_with_scores(trained_run: Path, data_dir: Path, tmp_path: Path) -> None:
    model = str(trained_run / "model")
    source = _doccano(tmp_path)
    runner = CliRunner()
    for fmt, target in (("label-studio", "pre.json"), ("doccano", "pre.jsonl"), ("brat", "pre-brat")):
        answer = runner.invoke(
            main,
            ["predict", model, str(source), "--format", fmt, "--output", str(tmp_path / target), "--threshold", "0.01"],
        )
        assert answer.exit_code == 0, answer.output
    prediction = json.loads((tmp_path / "pre.json").read_text())[0]["predictions"][0]
    assert prediction["model_version"] == "deeprel" and all("score" in r for r in prediction["result"])
    record = json.loads((tmp_path / "pre.jsonl").read_text())
    assert record["text"] == TEXT and all("score" in e for e in record["entities"])
    [brat] = read_documents(tmp_path / "pre-brat")
    assert brat.text == TEXT
    # deeprel extract writes the same for the tools, from its finished JSONL.
    texts = tmp_path / "texts.txt"
    texts.write_text(TEXT + "\nMary met Bob.\n", encoding="utf-8")
    answer = runner.invoke(
        main,
        [
            "extract",
            model,
            str(texts),
            "-o",
            str(tmp_path / "x.jsonl"),
            "--workers",
            "1",
            "--quiet",
            "--format",
            "label-studio",
            "--export",
            str(tmp_path / "x-ls.json"),
        ],
    )
    assert answer.exit_code == 0, answer.output
    exported = json.loads((tmp_path / "x-ls.json").read_text())
    assert [t["data"]["text"] for t in exported] == [TEXT, "Mary met Bob."]
    assert (
        runner.invoke(
            main, ["extract", model, str(texts), "-o", str(tmp_path / "y.jsonl"), "--format", "brat"]
        ).exit_code
        == 2
    )
    # Predictions written by deeprel predict read back as documents, e.g. to convert them to a tool's format.
    runner.invoke(main, ["predict", model, str(source), "--output", str(tmp_path / "out.jsonl")])
    [from_records] = read_documents(tmp_path / "out.jsonl")
    assert detect_format(tmp_path / "out.jsonl") == "extraction" and from_records.text == TEXT


def test_a_model_trained_from_a_brat_folder_scores_as_the_one_trained_from_its_spert_file(
    tiny_config, tmp_path: Path
) -> None:
    from deeprel.training.trainer import train

    slice_ = tmp_path / "slice.json"
    documents = read_documents(resolve_data_path(tiny_config.data.train))[:24]
    write_documents(documents, slice_, "spert")
    write_documents(documents, tmp_path / "brat", "brat")
    CliRunner().invoke(
        main,
        [
            "convert",
            str(tmp_path / "brat"),
            str(tmp_path / "from-brat.json"),
            "--to",
            "spert",
            "--sentence-split",
            "lines",
        ],
    )
    small = {
        "embeddings.contextual.enabled": False,
        "embeddings.static.enabled": False,
        "training.max_epochs": 3,
        "training.patience": 3,
        "data.dev": None,
        "data.test": None,
        "data.max_train_documents": None,
    }
    runs = {}
    for name, path, fmt in (("brat", tmp_path / "brat", "brat"), ("spert", tmp_path / "from-brat.json", "spert")):
        config = tiny_config.with_overrides(
            {
                **small,
                "data.train": str(path),
                "data.dev": str(path),
                "data.format": fmt,
                "data.sentence_split": "lines",
            }
        )
        runs[name] = train(config, tmp_path / f"run-{name}", progress=False, log=lambda _: None)
    assert runs["brat"]["training"]["best_dev_score"] == runs["spert"]["training"]["best_dev_score"]
    assert len(sentences_of(read_documents(tmp_path / "brat", options=AnnotationOptions(sentences="lines")))) == 24
