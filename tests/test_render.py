"""The relation visualiser's Python side: record normalisation, tp/fp/fn marking, the HTML page, `deeprel render`."""

import json
import re
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from deeprel.api import ExtractedEntity, ExtractedRelation, ExtractedSentence, Extraction
from deeprel.cli import main
from deeprel.data.extraction import extraction_record
from deeprel.data.readers import sentence_to_dict, write_json
from deeprel.data.text import Tokenizer
from deeprel.data.types import DataError, Document, Entity, Relation, sentences_of
from deeprel.evaluation.metrics import evaluate
from deeprel.visual import render_html, static_dir
from deeprel.visual.compare import Counts, compare, pair_documents
from deeprel.visual.documents import (
    ViewDocument,
    ViewEntity,
    ViewRelation,
    document_view,
    read_predictions,
    record_view,
)
from deeprel.visual.render import build_report


def spans(view: ViewDocument) -> list[tuple[str, str, int, int]]:
    """(type, characters, token start, token end) of each entity, characters cut by Python code points."""
    return [(e.type, view.text[e.start_char : e.end_char], e.token_start, e.token_end) for e in view.entities]


def annotated(document: Document, sentence: int, entities: tuple[Entity, ...], relations: tuple[Relation, ...] = ()):
    """The document with one of its sentences annotated (as the model annotates it)."""
    sentences = list(document.sentences)
    sentences[sentence] = sentences[sentence].with_annotations(entities, relations)
    return document.with_sentences(sentences)


def as_json(record: dict) -> dict:
    return json.loads(json.dumps(record, ensure_ascii=False))


# --- normalising the record kinds: deeprel predict / extract records, SpERT records --------------------------


def test_predict_record_counts_tokens_over_its_sentences_with_astral_characters() -> None:
    text = "Ann 😀 met Bob.  Acme 😀 Corp hired Ann in 𝔅oston."
    document = Tokenizer().document(text, id="line1")
    assert document.sentences[1].tokens == ("Acme", "😀", "Corp", "hired", "Ann", "in", "𝔅oston", ".")
    predicted = annotated(
        document,
        1,
        (Entity("Org", 0, 3, 0.9), Entity("Peop", 4, 5, 0.8), Entity("Loc", 6, 7, 0.7)),
        (Relation("Work_For", 1, 0, 0.6),),
    )
    record = as_json(extraction_record(1, None, Extraction.from_document(predicted)))  # a deeprel predict line
    assert list(record) == ["line", "id", "text", "sentences", "entities", "relations"]
    view = record_view(record, "p.jsonl:1", default_id="p.jsonl:0")
    assert view.doc_id == "p.jsonl:0"  # a text line has no id
    assert view.text == text  # the whole line, every sentence of it
    assert view.sentences == ((0, 14), (16, len(text)))
    assert view.tokens == document.sentences[0].tokens + document.sentences[1].tokens
    assert spans(view) == [("Org", "Acme 😀 Corp", 5, 8), ("Peop", "Ann", 9, 10), ("Loc", "𝔅oston", 11, 12)]
    assert view.entities[0].score == 0.9
    assert view.relations == (ViewRelation("Work_For", 1, 0, 0.6),)
    assert record_view({**record, "id": "doc-3"}, "p.jsonl:1", default_id="p.jsonl:0").doc_id == "doc-3"
    assert record_view({**record, "id": 12}, "p.jsonl:1").doc_id == "12"


def test_predict_record_points_at_the_occurrence_its_sentence_holds() -> None:
    # The line holds the sentence twice, the first time with a double space; the entity is in the second.
    text = "Ann met  Bob. Ann met Bob."
    document = annotated(Tokenizer().document(text), 1, (Entity("Peop", 2, 3, 0.5),))
    record = as_json(extraction_record(1, None, Extraction.from_document(document)))
    assert record["entities"][0]["start_char"] == 22
    view = record_view(record, "p.jsonl:2")
    assert view.text == text
    assert spans(view) == [("Peop", "Bob", 6, 7)]
    assert (view.entities[0].start_char, view.entities[0].end_char) == (22, 25)
    with pytest.raises(DataError, match=r"p\.jsonl:2: .*sentence 0 \[0, 13\) is not in the text"):
        record_view({**record, "text": "Ann met Bob."}, "p.jsonl:2")


def test_a_record_whose_text_does_not_hold_its_tokens_is_refused() -> None:
    text = "Ann met  Bob. Ann met Bob."
    document = annotated(Tokenizer().document(text), 1, (Entity("Peop", 2, 3, 0.5),))
    record = as_json(extraction_record(1, None, Extraction.from_document(document)))
    with pytest.raises(DataError, match=r"p\.jsonl:2: "):
        record_view({**record, "text": "Ann met  Bob. Ann met Rob."}, "p.jsonl:2")  # "Rob", where "Bob" is marked


def test_spert_document_joins_its_tokens() -> None:
    document = Document.from_tokens(
        ("John", "Smith", "visited", "Rome"),
        (Entity("Peop", 0, 2, 0.5), Entity("Loc", 3, 4, 0.25)),
        (Relation("Live_In", 0, 1, 0.75),),
        id="17",
    )
    view = record_view(sentence_to_dict(document.sentences[0]), "e.jsonl:1")
    assert view == ViewDocument(
        doc_id="17",
        text="John Smith visited Rome",
        sentences=((0, 23),),
        tokens=("John", "Smith", "visited", "Rome"),
        entities=(ViewEntity("Peop", 0, 10, 0, 2, 0.5), ViewEntity("Loc", 19, 23, 3, 4, 0.25)),
        relations=(ViewRelation("Live_In", 0, 1, 0.75),),
    )
    assert document_view(document) == view


def two_sentence_extraction() -> Extraction:
    text = "Bob 😀 works.  Ann lives in Rome."
    ann = ExtractedEntity(
        type="Peop", text="Ann", start_char=14, end_char=17, sentence=1, token_start=0, token_end=1, score=0.9
    )
    rome = ExtractedEntity(
        type="Loc", text="Rome", start_char=27, end_char=31, sentence=1, token_start=3, token_end=4, score=0.8
    )
    return Extraction(
        text=text,
        sentences=(
            ExtractedSentence(
                start_char=0,
                end_char=12,
                tokens=("Bob", "😀", "works", "."),
                token_offsets=((0, 3), (4, 5), (6, 11), (11, 12)),
            ),
            ExtractedSentence(
                start_char=14,
                end_char=32,
                tokens=("Ann", "lives", "in", "Rome", "."),
                token_offsets=((14, 17), (18, 23), (24, 26), (27, 31), (31, 32)),
            ),
        ),
        entities=(ann, rome),
        relations=(ExtractedRelation(type="Live_In", head=ann, tail=rome, score=0.7),),
    )


def test_extract_record_counts_tokens_over_all_sentences() -> None:
    extraction = two_sentence_extraction()
    view = record_view({**extraction.to_dict(), "line": 3, "id": "doc-7"}, "x.jsonl:3")
    assert view.doc_id == "doc-7"
    assert view.text == extraction.text and view.sentences == ((0, 12), (14, 32))
    assert view.tokens == ("Bob", "😀", "works", ".", "Ann", "lives", "in", "Rome", ".")
    assert spans(view) == [("Peop", "Ann", 4, 5), ("Loc", "Rome", 7, 8)]
    assert view.relations == (ViewRelation("Live_In", 0, 1, 0.7),)
    broken = extraction.to_dict()
    broken["entities"][1]["sentence"] = 0
    with pytest.raises(DataError, match=r"x\.jsonl:3\b.*: entity 1 \(Loc\): characters \[27, 31\)"):
        record_view({**broken, "id": "doc-7"}, "x.jsonl:3")


def test_a_bad_extract_record_is_named_by_its_id() -> None:
    broken = two_sentence_extraction().to_dict()
    broken["entities"][1]["sentence"] = 0
    with pytest.raises(DataError, match=r"x\.jsonl:3 \(id doc-7\): .*entity 1 \(Loc\): characters \[27, 31\)"):
        record_view({**broken, "id": "doc-7"}, "x.jsonl:3")


def test_a_bad_extract_record_names_the_file_and_line(tmp_path: Path) -> None:
    record = extraction_record(1, "a", two_sentence_extraction())
    path = tmp_path / "p.jsonl"
    bad = {**record, "relations": [{"type": "Live_In", "head": 0, "tail": 2, "score": 0.5}]}
    path.write_text(json.dumps(record) + "\n" + json.dumps(bad) + "\n", encoding="utf-8")
    with pytest.raises(
        DataError, match=r"p\.jsonl:2 \(id a\): not an extraction record: relation 0: tail 2 is not one of 2"
    ):
        read_predictions(path)
    path.write_text(json.dumps(record) + "\n\n" + json.dumps({**record, "id": None}) + "\n", encoding="utf-8")
    assert [v.doc_id for v in read_predictions(path)] == ["a", "p.jsonl:1"]


def test_bad_lines_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"tokens": ["a"]}\n\n{"tokens": ["a"], "entities": [{"type": "X", "start": 0, "end": 2}]}\n')
    with pytest.raises(DataError, match=r"p\.jsonl:3 .*entity 0 \(X \[0, 2\)\): end > 1 tokens"):
        read_predictions(path)
    path.write_text('{"tokens": ["a"]}\n{"words": ["a"]}\n')
    with pytest.raises(DataError, match=r"p\.jsonl:2: not a prediction record"):
        read_predictions(path)
    path.write_text('{"tokens": ["a"]}\n{"tokens": [\n')
    with pytest.raises(DataError, match=r"p\.jsonl:2: invalid JSON at column 13"):
        read_predictions(path)


# --- tp / fp / fn ----------------------------------------------------------------------------------------------

TOKENS = ("John", "Smith", "works", "for", "Acme", "Corp", "in", "Boston")
GOLD = Document.from_tokens(
    TOKENS,
    (Entity("Peop", 0, 2), Entity("Org", 4, 6), Entity("Loc", 7, 8)),
    (Relation("Work_For", 0, 1), Relation("OrgBased_In", 1, 2)),
    id="d1",
)


def changed(document: Document, **changes) -> Document:
    """A one-sentence document like ``document`` with other ``tokens``, ``entities``, ``relations`` or ``id``."""
    (sentence,) = document.sentences
    return Document.from_tokens(
        changes.get("tokens", sentence.tokens),
        changes.get("entities", sentence.entities),
        changes.get("relations", sentence.relations),
        id=changes.get("id", document.id),
    )


def statuses(view: ViewDocument) -> tuple[list[str | None], list[str | None]]:
    return [e.status for e in view.entities], [r.status for r in view.relations]


def test_a_reversed_relation_is_a_false_positive_and_a_miss() -> None:
    predicted = changed(GOLD, relations=(Relation("Work_For", 1, 0), Relation("OrgBased_In", 1, 2)))
    result = compare(document_view(GOLD), document_view(predicted))
    assert statuses(result.gold) == (["tp", "tp", "tp"], ["fn", "tp"])
    assert statuses(result.predicted) == (["tp", "tp", "tp"], ["fp", "tp"])
    assert (result.entities, result.relations) == (Counts(3, 0, 0), Counts(1, 1, 1))
    assert result.has_errors


def test_a_partly_right_span_fails_the_entity_and_its_relations() -> None:
    # "Corp" instead of "Acme Corp", and Boston typed as an organisation.
    predicted = changed(GOLD, entities=(Entity("Peop", 0, 2), Entity("Org", 5, 6), Entity("Org", 7, 8)))
    result = compare(document_view(GOLD), document_view(predicted))
    assert statuses(result.gold) == (["tp", "fn", "fn"], ["fn", "fn"])
    assert statuses(result.predicted) == (["tp", "fp", "fp"], ["fp", "fp"])
    assert (result.entities, result.relations) == (Counts(1, 2, 2), Counts(0, 2, 2))
    exact = compare(document_view(GOLD), document_view(GOLD))
    assert (exact.entities, exact.relations, exact.has_errors) == (Counts(3, 0, 0), Counts(2, 0, 0), False)


def test_summed_counts_equal_the_strict_micro_counts_of_evaluate() -> None:
    other = Document.from_tokens(
        ("Ann", "met", "Bob"), (Entity("Peop", 0, 1), Entity("Peop", 2, 3)), (Relation("Kill", 0, 1),)
    )
    gold = [GOLD, other]
    predicted = [
        changed(GOLD, entities=(Entity("Peop", 0, 2), Entity("Org", 5, 6)), relations=(Relation("Work_For", 0, 1),)),
        changed(other, relations=(Relation("Kill", 1, 0), Relation("Kill", 0, 1))),
    ]
    report = build_report(predicted, gold)
    summary = report.summary()
    scores = evaluate(sentences_of(gold), sentences_of(predicted)).strict
    for kind, task in (("entities", scores.ner.micro), ("relations", scores.re.micro)):
        counts = summary[kind]
        assert (counts["tp"], counts["tp"] + counts["fp"], counts["tp"] + counts["fn"]) == (
            task.correct,
            task.predicted,
            task.support,
        )
        assert counts["f1"] == pytest.approx(task.f1, abs=0.01)
    assert summary["documents_with_errors"] == 2


def test_different_tokens_cannot_be_compared() -> None:
    predicted = changed(GOLD, tokens=("John", "Smith", "works", "at", *TOKENS[4:]))
    with pytest.raises(DataError, match="document d1: predicted token 3 is 'at', the gold token 'for'"):
        compare(document_view(GOLD), document_view(predicted))


def test_documents_pair_by_id_else_by_position() -> None:
    gold = [document_view(changed(GOLD, id=i)) for i in ("a", "b", "c")]
    by_id = pair_documents([gold[2], gold[0]], gold)
    assert [(g.doc_id, p.doc_id) for g, p in by_id] == [("c", "c"), ("a", "a")]
    renamed = [replace(g, doc_id=f"line{i}#0") for i, g in enumerate(gold)]
    assert [(g.doc_id, p.doc_id) for g, p in pair_documents(renamed, gold)] == [
        ("a", "line0#0"),
        ("b", "line1#0"),
        ("c", "line2#0"),
    ]
    with pytest.raises(DataError, match="doc id 'line0#0' is not in gold, and there are 2 predicted but 3 gold"):
        pair_documents(renamed[:2], gold)


# --- the page ---------------------------------------------------------------------------------------------------


class _Page(HTMLParser):
    """Every tag with its attributes, and the text of each <script>."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self.scripts.append((dict(attrs), ""))
            self.in_script = True

    def handle_endtag(self, tag: str) -> None:
        self.in_script = self.in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        if self.in_script:
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)


def parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    parser.close()
    return parser


def test_page_is_self_contained_and_embeds_escaped_json() -> None:
    hostile = Document.from_tokens(
        ("Eve", "wrote", "</script><script>alert(1)</script>", "<!--", "&amp;", "\u2028"),
        (Entity("Peop", 0, 1),),
        id="</script>",
    )
    predicted = [sentence_to_dict(hostile.sentences[0]), sentence_to_dict(changed(GOLD, id="d2").sentences[0])]
    page = render_html(predicted, title="<b>T</b> & co")
    parsed = parse(page)
    assert [tag for tag, _ in parsed.tags if tag in ("link", "img", "iframe", "object", "embed")] == []
    assert all("src" not in attrs and "href" not in attrs for _, attrs in parsed.tags)
    assert [attrs for attrs, _ in parsed.scripts] == [{"type": "application/json", "id": "deeprel-data"}, {}, {}]
    assert "<title>&lt;b&gt;T&lt;/b&gt; &amp; co</title>" in page
    data = json.loads(parsed.scripts[0][1])
    assert "<" not in parsed.scripts[0][1]
    assert data["documents"][0]["id"] == "</script>"
    assert data["documents"][0]["predicted"]["text"] == "Eve wrote </script><script>alert(1)</script> <!-- &amp; \u2028"
    assert data["summary"] is None and data["total"] == 2
    assert data["entityTypes"] == ["Loc", "Org", "Peop"]
    assert "DeeprelView" in parsed.scripts[1][1] and ".deeprel-view" in page


def test_page_with_gold_holds_both_sides_and_the_summary() -> None:
    predicted = [changed(GOLD, relations=(Relation("Work_For", 1, 0),)), changed(GOLD, id="d2")]
    gold = [GOLD, changed(GOLD, id="d2")]
    data = json.loads(parse(render_html(predicted, gold, limit=1)).scripts[0][1])
    assert data["total"] == 2 and len(data["documents"]) == 1
    (document,) = data["documents"]
    assert document["counts"] == {"entities": {"tp": 3, "fp": 0, "fn": 0}, "relations": {"tp": 0, "fp": 1, "fn": 2}}
    assert document["errors"] is True
    assert [r["status"] for r in document["gold"]["relations"]] == ["fn", "fn"]
    assert document["predicted"]["relations"] == [{"type": "Work_For", "head": 1, "tail": 0, "status": "fp"}]
    assert document["gold"]["entities"][0] == {"type": "Peop", "start_char": 0, "end_char": 10, "status": "tp"}
    assert data["summary"]["relations"] == {"tp": 0, "fp": 1, "fn": 2, "precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_static_files_fetch_nothing_from_elsewhere() -> None:
    folder = static_dir()
    assert sorted(p.name for p in folder.iterdir()) == ["deeprel-view.css", "deeprel-view.js", "index.html"]
    for path in folder.iterdir():
        urls = re.findall(r"\w+://[^\s\"'`)]*", path.read_text(encoding="utf-8"))
        assert set(urls) <= {"http://www.w3.org/2000/svg"}, path.name  # the SVG namespace is a name, not a fetch
    index = parse((folder / "index.html").read_text(encoding="utf-8"))
    sources = [attrs.get("src") or attrs.get("href") for tag, attrs in index.tags if tag in ("script", "link")]
    assert [s for s in sources if s] == ["/static/deeprel-view.css", "/static/deeprel-view.js"]
    ids = {attrs.get("id") for _, attrs in index.tags}
    assert {"extract-form", "text", "submit", "status", "result"} <= ids


# --- the command --------------------------------------------------------------------------------------------------


def test_render_command_compares_with_gold(tmp_path: Path) -> None:
    predictions = tmp_path / "pred.jsonl"
    predicted = [
        changed(GOLD, entities=GOLD.sentences[0].entities[:2], relations=GOLD.sentences[0].relations[:1]),
        changed(GOLD, id="d2"),
    ]
    predictions.write_text("".join(json.dumps(sentence_to_dict(d.sentences[0])) + "\n" for d in predicted))
    gold = tmp_path / "gold.json"
    write_json([GOLD, changed(GOLD, id="d2")], gold)
    output = tmp_path / "out" / "page.html"
    result = CliRunner().invoke(main, ["render", str(predictions), "-o", str(output), "--gold", str(gold)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (
        f"{output}: 2 of 2 documents; entities: tp 5, fp 0, fn 1 (F1 90.9); relations: tp 3, fp 0, fn 1 (F1 85.7)"
    )
    data = json.loads(parse(output.read_text(encoding="utf-8")).scripts[0][1])
    assert data["title"] == "deeprel: pred.jsonl vs gold.json"
    assert [d["errors"] for d in data["documents"]] == [True, False]


def test_render_command_errors_name_the_file_and_line(tmp_path: Path) -> None:
    predictions = tmp_path / "bad.jsonl"
    predictions.write_text('{"tokens": ["a"]}\n{"tokens": ["a"], "relations": [{"type": "R", "head": 0, "tail": 1}]}\n')
    output = tmp_path / "page.html"
    runner = CliRunner()
    result = runner.invoke(main, ["render", str(predictions), "-o", str(output)])
    assert result.exit_code == 2
    assert (
        f"error: {predictions}:2 " in result.output
        and "relation 0 (R): head 0 is not one of 0 entities" in result.output
    )
    assert not output.exists()
    predictions.write_text('{"tokens": ["a"]}\n')
    gold = tmp_path / "gold.json"
    write_json([GOLD, GOLD], gold)
    result = runner.invoke(main, ["render", str(predictions), "-o", str(output), "--gold", str(gold)])
    assert result.exit_code == 2
    assert f"error: {predictions} vs {gold}: cannot match predictions to gold" in result.output


# --- drawing what deeprel predict writes --------------------------------------------------------------------------


def test_render_draws_a_text_file_as_deeprel_predict_wrote_it(trained_run: Path, tmp_path: Path) -> None:
    lines = ["Jim Smith works for IBM in Armonk.", "", "Ann 😀 was born in Ohio. She lives in 𝔅oston , Texas."]
    source = tmp_path / "in.txt"
    source.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    predictions = tmp_path / "pred.jsonl"
    runner = CliRunner()
    result = runner.invoke(main, ["predict", str(trained_run / "model"), str(source), "--output", str(predictions)])
    assert result.exit_code == 0, result.output
    written = [json.loads(line) for line in predictions.read_text(encoding="utf-8").split("\n") if line]
    views = read_predictions(predictions)
    assert [v.doc_id for v in views] == ["pred.jsonl:0", "pred.jsonl:1", "pred.jsonl:2"]  # text lines have no id
    assert [v.text for v in views] == lines
    assert [len(v.sentences) for v in views] == [len(r["sentences"]) for r in written] == [1, 0, 2]
    for view, record in zip(views, written, strict=True):
        assert [(e.type, view.text[e.start_char : e.end_char]) for e in view.entities] == [
            (e["type"], e["text"]) for e in record["entities"]
        ]
        assert [(r.type, r.head, r.tail) for r in view.relations] == [
            (r["type"], r["head"], r["tail"]) for r in record["relations"]
        ]
    assert sum(len(v.entities) for v in views) > 0
    page = tmp_path / "page.html"
    result = runner.invoke(main, ["render", str(predictions), "-o", str(page)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"{page}: 3 of 3 documents"
    data = json.loads(parse(page.read_text(encoding="utf-8")).scripts[0][1])
    assert [d["predicted"]["text"] for d in data["documents"]] == lines
    assert [d["predicted"] for d in data["documents"]] == [v.to_dict() for v in views]


def test_render_with_gold_counts_deeprel_predict_output_as_evaluate_does(
    trained_run: Path, data_dir: Path, tmp_path: Path
) -> None:
    records = json.loads((data_dir / "datasets/conll04/conll04_dev.json").read_text(encoding="utf-8"))[:20]
    gold = tmp_path / "gold.json"
    gold.write_text(json.dumps(records), encoding="utf-8")
    model = str(trained_run / "model")
    runner = CliRunner()
    predictions, scores, page = tmp_path / "pred.jsonl", tmp_path / "scores.json", tmp_path / "page.html"
    result = runner.invoke(main, ["predict", model, str(gold), "--output", str(predictions)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["evaluate", model, str(gold), "--output", str(scores)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["render", str(predictions), "-o", str(page), "--gold", str(gold)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{page}: 20 of 20 documents; entities: tp ")
    data = json.loads(parse(page.read_text(encoding="utf-8")).scripts[0][1])
    assert [d["id"] for d in data["documents"]] == [str(r["orig_id"]) for r in records]  # paired by id
    strict = json.loads(scores.read_text())["strict"]
    for kind, task in (("entities", "ner"), ("relations", "re")):
        counts, micro = data["summary"][kind], strict[task]["micro"]
        assert (counts["tp"], counts["tp"] + counts["fp"], counts["tp"] + counts["fn"]) == (
            micro["correct"],
            micro["predicted"],
            micro["support"],
        )
        assert counts["f1"] == pytest.approx(micro["f1"], abs=0.01)
    assert data["summary"]["entities"]["tp"] > 0
