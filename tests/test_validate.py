import json
from pathlib import Path

import pytest

from deeprel.data.types import DataError
from deeprel.data.validate import validate_files


def entity(kind: str, start: int, end: int) -> dict:
    return {"type": kind, "start": start, "end": end}


def relation(kind: str, head: int, tail: int) -> dict:
    return {"type": kind, "head": head, "tail": tail}


GOOD = {"tokens": ["Ann", "works", "for", "Acme"], "entities": [entity("Peop", 0, 1), entity("Org", 3, 4)],
        "relations": [relation("Work_For", 0, 1)], "orig_id": 1}  # fmt: skip

# One document per problem; the expected (index, kind) pairs follow the list order.
BROKEN = [
    GOOD,
    {**GOOD, "orig_id": 2, "entities": [entity("Peop", 0, 9)]},  # span out of range
    {**GOOD, "orig_id": 3, "relations": [relation("Work_For", 0, 5)]},  # relation tail out of range
    {
        **GOOD,
        "orig_id": 4,
        "entities": [entity("Peop", 0, 2), entity("Org", 1, 3), entity("Org", 1, 3)],
        "relations": [],
    },
    {
        **GOOD,
        "orig_id": 5,
        "relations": [relation("Work_For", 0, 1), relation("Work_For", 0, 1), relation("Kill", 0, 0)],
    },
    {"tokens": [], "orig_id": 6},
    {**GOOD, "orig_id": 7, "tokens": ["Ann", " ", "for", "Acme"]},
    {
        **GOOD,
        "orig_id": 8,
        "entities": [entity("Thing", 0, 1), entity("Org", 3, 4)],
        "relations": [relation("Likes", 0, 1)],
    },
]
EXPECTED = [
    (1, "2", "invalid_document"),
    (2, "3", "invalid_document"),
    (3, "4", "overlapping_entities"),  # [0, 2) and [1, 3)
    (3, "4", "overlapping_entities"),  # [0, 2) and the second [1, 3)
    (3, "4", "duplicate_span"),  # the two [1, 3)
    (4, "5", "duplicate_relation"),
    (4, "5", "self_relation"),
    (5, "6", "empty_sentence"),
    (6, "7", "empty_token"),
    (7, "8", "unknown_entity_type"),
    (7, "8", "unknown_relation_type"),
]


@pytest.fixture
def types_file(tmp_path: Path) -> Path:
    path = tmp_path / "types.json"
    path.write_text(json.dumps({"entities": {"Peop": {}, "Org": {}}, "relations": {"Work_For": {}, "Kill": {}}}))
    return path


@pytest.fixture
def broken_file(tmp_path: Path) -> Path:
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(BROKEN))
    return path


def test_every_problem_is_reported_with_its_document(broken_file: Path, types_file: Path) -> None:
    report = validate_files([broken_file], types_file)
    (file,) = report.files
    assert [(p.doc_index, p.doc_id, p.kind) for p in file.problems] == EXPECTED
    assert all(p.file == str(broken_file) for p in file.problems)
    assert all(p.message.startswith(f"{broken_file}") and f"document {p.doc_index} (doc_id {p.doc_id})" in p.message
               for p in file.problems)  # fmt: skip
    assert "entity 0 (Peop [0, 9)): end > 4 tokens" in file.problems[0].message
    assert not report.ok and not file.failed
    assert (report.count("error"), report.count("warning")) == (4, 7)


def test_counts_cover_the_readable_documents(broken_file: Path) -> None:
    (file,) = validate_files([broken_file]).files
    assert (file.format, file.documents, file.tokens, file.entities, file.relations) == ("spert", 6, 20, 11, 6)
    assert file.entity_labels == {"Org": 6, "Peop": 4, "Thing": 1}
    assert file.relation_labels == {"Work_For": 4, "Kill": 1, "Likes": 1}


def test_labels_are_only_checked_against_a_types_file(broken_file: Path) -> None:
    kinds = {p.kind for p in validate_files([broken_file]).problems}
    assert not kinds & {"unknown_entity_type", "unknown_relation_type"}


def test_warnings_alone_are_ok(tmp_path: Path, types_file: Path) -> None:
    path = tmp_path / "warn.jsonl"
    path.write_text("\n".join(json.dumps(d) for d in [GOOD, BROKEN[3], BROKEN[5]]))
    report = validate_files([path], types_file)
    assert report.ok and report.count("warning") == 4


def test_an_unparsable_file_fails_and_the_others_are_still_checked(tmp_path: Path, broken_file: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('[{"tokens": [}')
    report = validate_files([bad, tmp_path / "missing.json", broken_file])
    failed, missing, checked = report.files
    assert failed.failed and [p.kind for p in failed.problems] == ["file_error"]
    assert "bad.json: invalid JSON at line 1, column 14" in failed.problems[0].message
    assert missing.failed and "missing.json: No such file or directory" in missing.problems[0].message
    assert not checked.failed and checked.documents == 6


def test_bekoulis_problems_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("#doc 1\n0\tAnn\tB-Peop\t['N']\t[0]\n#doc 2\n0\tBo\tQ-Peop\t['N']\t[0]\n#doc 3\n")
    (file,) = validate_files([path]).files
    assert [(p.doc_index, p.doc_id, p.kind) for p in file.problems] == [
        (1, "2", "invalid_document"),
        (2, "3", "empty_sentence"),
    ]
    assert f"{path}:4: document 1 (doc_id 2): invalid BIO tag" in file.problems[0].message


def test_format_caps_problems_per_kind(tmp_path: Path) -> None:
    path = tmp_path / "many.json"
    path.write_text(json.dumps([{"tokens": []} for _ in range(8)]))
    report = validate_files([path])
    text = report.format()
    assert "warning empty_sentence (8)" in text and text.count("the sentence has no tokens") == 5
    assert "... and 3 more" in text and text.endswith("OK: 1 file(s), 0 error(s), 8 warning(s)")
    assert report.format(verbose=True).count("the sentence has no tokens") == 8


def test_to_dict_is_json(broken_file: Path, types_file: Path) -> None:
    data = json.loads(json.dumps(validate_files([broken_file], types_file).to_dict()))
    assert data["ok"] is False and (data["errors"], data["warnings"]) == (4, 7)
    problem = data["files"][0]["problems"][0]
    assert (problem["doc_index"], problem["doc_id"], problem["kind"], problem["severity"]) == (
        1,
        "2",
        "invalid_document",
        "error",
    )


def test_a_broken_types_file_is_the_callers_error(tmp_path: Path, broken_file: Path) -> None:
    types = tmp_path / "types.json"
    types.write_text("{}")
    with pytest.raises(DataError, match="not a SpERT types file"):
        validate_files([broken_file], types)


def test_shared_conll04_is_clean(data_dir: Path) -> None:
    folder = data_dir / "datasets" / "conll04"
    files = [folder / f"conll04_{s}.json" for s in ("train", "dev", "test")] + [folder / "bekoulis" / "test.txt"]
    report = validate_files(files, folder / "conll04_types.json")
    assert report.ok and not report.problems
    assert report.files[0].entity_labels.keys() == {"Loc", "Org", "Peop", "Other"}


def test_shared_ade_has_overlap_warnings(data_dir: Path) -> None:
    folder = data_dir / "datasets" / "ade"
    report = validate_files([folder / "ade_full.json"], folder / "ade_types.json")
    assert report.ok
    assert {p.kind for p in report.problems} == {"overlapping_entities"}
    assert len({p.doc_index for p in report.problems}) == 119  # the README's count of sentences


def test_messages_quote_the_entity_tokens(broken_file: Path, types_file: Path) -> None:
    (file,) = validate_files([broken_file], types_file).files
    unknown = next(p for p in file.problems if p.kind == "unknown_entity_type")
    assert unknown.message.endswith(": entity 0 (Thing [0, 1) 'Ann') has a type missing from the types file")
    assert f"{broken_file}: document 7 (doc_id 8): " in unknown.message
