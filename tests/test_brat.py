"""BRAT standoff in and out: the tool's own tutorial corpus, round trips, bad files, and CoNLL04 as BRAT."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from deeprel.cli import main
from deeprel.data.alignment import AnnotationOptions, CharEntity, Losses, align, char_annotations
from deeprel.data.brat import read_annotation_conf, write_brat
from deeprel.data.readers import read_documents, read_types
from deeprel.data.types import DataError, sentences_of
from deeprel.data.validate import validate_files


def _corpus(data_dir: Path, name: str) -> Path:
    return data_dir / "datasets" / "brat-tutorial" / name


def _lines(path: Path, kinds: str) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines() if line[:1] in kinds]


def _annotations(folder: Path, name: str, triggers: set[str] = frozenset()) -> tuple[set, set]:
    """The T lines as (type, start, end, text) and the R lines as (type, head T, tail T), by content."""
    spans = {}
    for line in _lines(folder / f"{name}.ann", "T"):
        identifier, annotation, text = line
        if identifier not in triggers:
            entity_type, start, end = annotation.split(" ")
            spans[identifier] = (entity_type, int(start), int(end), text)
    relations = set()
    for _identifier, annotation, *_ in _lines(folder / f"{name}.ann", "R"):
        relation_type, head, tail = annotation.split(" ")[:3]
        relations.add((relation_type, spans[head.partition(":")[2]], spans[tail.partition(":")[2]]))
    return set(spans.values()), relations


@pytest.mark.parametrize("name", ["news", "bio"])
def test_the_tutorial_corpus_reads_with_every_line_kind_counted(data_dir: Path, name: str) -> None:
    losses = Losses()
    documents = read_documents(_corpus(data_dir, name), losses=losses)
    assert len(documents) == 13 and all(d.text for d in documents)
    for document in documents:
        for sentence in document.sentences:
            for entity in sentence.entities:  # every entity's characters are its tokens'
                text = document.span_text(sentence, entity)
                assert text == text.strip() and text in document.text
    entities = sum(len(s.entities) for s in sentences_of(documents))
    relations = sum(len(s.relations) for s in sentences_of(documents))
    counts = losses.counts
    if name == "news":  # README: 119 T, 8 R, 23 E, 11 A, 1 N, 2 *, 4 #
        assert (entities + counts["brat_event_triggers"], relations) == (119, 8)
        assert counts["brat_events"] == counts["brat_event_triggers"] == 23
        assert (counts["brat_attributes_kept_as_metadata"], counts["brat_normalizations_kept_as_metadata"]) == (11, 1)
        assert (counts["brat_equivalences_kept_as_metadata"], counts["brat_notes_kept_as_metadata"]) == (2, 4)
    assert not counts["relation_across_sentences"]
    introduction = next(d for d in documents if d.id == "000-introduction")
    assert introduction.metadata["source"].endswith("000-introduction.txt")
    assert any(n["value"].startswith("AnnotatorNotes") for n in introduction.metadata.get("notes", []))


@pytest.mark.parametrize("name", ["news", "bio"])
def test_brat_to_deeprel_to_brat_gives_back_the_same_spans_relations_and_text(
    data_dir: Path, tmp_path: Path, name: str
) -> None:
    source = _corpus(data_dir, name)
    documents = read_documents(source)
    write_brat(documents, tmp_path)
    for document in documents:
        triggers = {fields[1].split(" ")[0].partition(":")[2] for fields in _lines(source / f"{document.id}.ann", "E")}
        assert (tmp_path / f"{document.id}.txt").read_bytes() == (source / f"{document.id}.txt").read_bytes()
        assert _annotations(tmp_path, document.id) == _annotations(source, document.id, triggers)
    entity_types, relation_types = read_annotation_conf(tmp_path / "annotation.conf")
    assert set(entity_types) == {e.type for s in sentences_of(documents) for e in s.entities}
    assert set(relation_types) == {r.type for s in sentences_of(documents) for r in s.relations}
    again = read_documents(tmp_path)
    assert [s.entities for s in sentences_of(again)] == [s.entities for s in sentences_of(documents)]


def test_annotation_conf_gives_the_types(data_dir: Path) -> None:
    entities, relations = read_types(_corpus(data_dir, "news") / "annotation.conf")
    assert entities == ["Person", "Organization", "GPE", "Money"]
    assert relations[:2] == ["Located", "Geographical_part"] and "Alias" in relations


def _write(folder: Path, name: str, text: str, ann: str, newline: str = "\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.txt").write_bytes(text.replace("\n", newline).encode("utf-8"))
    (folder / f"{name}.ann").write_text(ann, encoding="utf-8")
    return folder


def test_discontinuous_spans_are_skipped_covered_or_refused(tmp_path: Path) -> None:
    folder = _write(
        tmp_path / "c", "d", "John and Mary Smith left.", "T1\tPeop 0 4;14 19\tJohn Smith\nT2\tPeop 9 19\tMary Smith\n"
    )
    losses = Losses()
    [skipped] = read_documents(folder, losses=losses)
    assert [e.type for e in skipped.sentences[0].entities] == ["Peop"] and losses.counts[
        "discontinuous_span_skipped"
    ] == 1
    [covered] = read_documents(folder, options=AnnotationOptions(discontinuous="cover"))
    first = covered.sentences[0].entities[0]
    assert covered.span_text(covered.sentences[0], first) == "John and Mary Smith"
    with pytest.raises(DataError, match=r"d\.ann:1.*T1 is a discontinuous span"):
        read_documents(folder, options=AnnotationOptions(discontinuous="error"))


def test_crlf_counts_as_one_character_and_the_text_is_copied_unchanged(tmp_path: Path) -> None:
    # BRAT reads the text with universal newlines: "Boston" starts at 22 after one "\r\n" counted as one.
    folder = _write(
        tmp_path / "c",
        "d",
        "Ann lives in Paris.\n\nBob in Boston.",
        "T1\tLoc 13 18\tParis\nT2\tLoc 28 34\tBoston\n",
        "\r\n",
    )
    [document] = read_documents(folder)
    assert [document.span_text(s, e) for s in document.sentences for e in s.entities] == ["Paris", "Boston"]
    write_brat([document], tmp_path / "out")
    assert (tmp_path / "out" / "d.txt").read_bytes() == (folder / "d.txt").read_bytes()
    assert _annotations(tmp_path / "out", "d") == _annotations(folder, "d")


@pytest.mark.parametrize(
    ("ann", "message"),
    [
        ("X1\tPeop 0 3\tAnn\n", r"d\.ann:1 \(doc_id d\): unknown annotation line kind 'X1'"),
        ("\tPeop 0 3\tAnn\n", r"d\.ann:1 \(doc_id d\): unknown annotation line kind ''"),  # no id
        (
            "T1\tPeop 0 3\tAnn\nT1\tPeop 4 7\tmet\n",
            r"d\.ann:2 \(doc_id d\): the id T1 is used twice \(first on line 1\)",
        ),
        (
            "T1\tPeop 0 3\tAnn\nR1\tKnows Arg1:T1 Arg2:T9\t\n",
            r"d\.ann:2 \(doc_id d\): R1 names T9, which is no entity of the file",
        ),
        ("T1\tPeop 0 99\tAnn\n", r"d\.ann:1 \(doc_id d\): T1: offsets \[0, 99\) are outside the text"),
        ("T1\tPeop 0 3\tBob\n", r"d\.ann:1 \(doc_id d\): T1: the text at \[0, 3\) is 'Ann', the annotation says 'Bob'"),
        ("T1\tPeop zero 3\tAnn\n", r"d\.ann:1 \(doc_id d\): T1: expected 'TYPE START END"),
    ],
)
def test_bad_ann_files_are_errors_naming_the_file_and_line(tmp_path: Path, ann: str, message: str) -> None:
    folder = _write(tmp_path / "c", "d", "Ann met Bob.", ann)
    with pytest.raises(DataError, match=message):
        read_documents(folder)


def test_validate_reports_every_bad_file_at_once(tmp_path: Path) -> None:
    folder = _write(tmp_path / "c", "a", "Ann met Bob.", "T1\tPeop 0 3\tAnn\n")
    _write(folder, "b", "Ann met Bob.", "T1\tPeop 0 3\tBob\n")
    _write(folder, "c", "Ann met Bob.", "Q1\tx\n")
    (folder / "lonely.ann").write_text("T1\tPeop 0 3\tAnn\n")
    report = validate_files([folder])
    invalid = [p for p in report.problems if p.kind == "invalid_document"]
    assert [p.doc_id for p in invalid] == ["b", "c", "lonely"] and not report.ok
    assert "no lonely.txt beside it" in invalid[2].message
    assert report.files[0].documents == 1  # the good one is read and counted


def test_a_text_without_its_ann_is_a_document_without_annotations(tmp_path: Path) -> None:
    folder = _write(tmp_path / "c", "a", "Ann met Bob.", "T1\tPeop 0 3\tAnn\n")
    (folder / "sub").mkdir()
    (folder / "sub" / "new.txt").write_text("Nobody has annotated me yet.", encoding="utf-8")
    documents = read_documents(folder)
    assert [d.id for d in documents] == ["a", "sub/new"]
    assert not documents[1].sentences[0].entities and documents[1].text == "Nobody has annotated me yet."


def test_an_entity_edge_inside_a_token_splits_it_or_widens_the_entity() -> None:
    text = "Washingtonians hired Mary."  # spaCy keeps "Washingtonians" one token
    entities = [CharEntity("T1", "Loc", 0, 10), CharEntity("T2", "Peop", 21, 25)]
    split = align(text, entities, id="d")
    assert split.sentences[0].tokens[:2] == ("Washington", "ians")
    assert [split.span_text(split.sentences[0], e) for e in split.sentences[0].entities] == ["Washington", "Mary"]
    losses = Losses()
    snapped = align(text, entities, id="d", options=AnnotationOptions(boundaries="snap"), losses=losses)
    assert snapped.sentences[0].tokens[0] == "Washingtonians"
    assert snapped.span_text(snapped.sentences[0], snapped.sentences[0].entities[0]) == "Washingtonians"
    assert losses.counts["entity_snapped_to_tokens"] == 1


def test_a_relation_across_sentences_is_counted_or_its_sentences_kept_together() -> None:
    from deeprel.data.alignment import CharRelation

    text = "Ann was here. Bob met her."
    entities = [CharEntity("T1", "Peop", 0, 3), CharEntity("T2", "Peop", 14, 17)]
    relations = [CharRelation("Knows", "T2", "T1", "R1")]
    losses = Losses()
    apart = align(text, entities, relations, id="d", losses=losses)
    assert len(apart.sentences) == 2 and not any(s.relations for s in apart.sentences)
    assert losses.counts["relation_across_sentences"] == 1
    together = align(text, entities, relations, id="d", options=AnnotationOptions(join_related=True))
    assert len(together.sentences) == 1 and len(together.sentences[0].relations) == 1
    entities_back, relations_back = char_annotations(together)
    assert [(e.start, e.end) for e in entities_back] == [(0, 3), (14, 17)] and relations_back[0].head == "T2"


def test_an_entity_across_a_sentence_boundary_joins_the_sentences() -> None:
    losses = Losses()
    assert len(align("We met Ann! Lee came.", [], id="d").sentences) == 2
    document = align("We met Ann! Lee came.", [CharEntity("T1", "Peop", 7, 15)], id="d", losses=losses)
    assert len(document.sentences) == 1 and losses.counts["sentences_joined_for_an_entity"] == 1
    assert [document.span_text(s, e) for s in document.sentences for e in s.entities] == ["Ann! Lee"]


@pytest.mark.parametrize("file", ["conll04/conll04_dev.json", "ade/ade_split_0_test.json"])
def test_conll04_and_ade_written_as_brat_read_back_the_same(data_dir: Path, tmp_path: Path, file: str) -> None:
    source = data_dir / "datasets" / file
    answer = CliRunner().invoke(main, ["convert", str(source), str(tmp_path / "brat"), "--to", "brat"])
    assert answer.exit_code == 0, answer.output
    original = read_documents(source)
    again = read_documents(tmp_path / "brat", options=AnnotationOptions(sentences="lines"))
    by_id = {d.id: d for d in again}
    assert len(again) == len(original) > 200
    for document in original:
        back = by_id[document.id]
        assert back.text == document.text and len(back.sentences) == 1

        def spans(d):
            sentence = d.sentences[0]
            entities = [(e.type, sentence.offsets[e.start][0], sentence.offsets[e.last][1]) for e in sentence.entities]
            relations = sorted((r.type, entities[r.head], entities[r.tail]) for r in sentence.relations)
            return sorted(entities), relations

        assert spans(back) == spans(document), document.id
