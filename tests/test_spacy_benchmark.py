"""The spaCy side-by-side benchmark: CoNLL04 to spaCy DocBin and back, and the conversions used for scoring."""

import json
import sys
from pathlib import Path

import pytest
import spacy
from extract_vs_spacy import (
    Throughput,
    ner_scores,
    read_extract_output,
    read_token_lines,
    sentence_from_record,
    write_benchmark_input,
)
from spacy.tokens import Doc, DocBin, Span
from spacy_ner import prepare

from deeprel.data.readers import read_sentences, write_json
from deeprel.data.text import from_tokens
from deeprel.data.types import Document, Entity, Sentence


@pytest.fixture(scope="module")
def conll04_slice(data_dir: Path) -> list[Sentence]:
    return read_sentences(data_dir / "datasets/conll04/conll04_train.json", "spert")[:25]


def entity_keys(sentence: Sentence) -> list[tuple[str, int, int]]:
    return sorted((e.type, e.start, e.end) for e in sentence.entities)


def documents(sentences: list[Sentence]) -> list[Document]:
    """One-sentence documents, as the writers take them."""
    return [Document.from_tokens(s.tokens, s.entities, s.relations, id=s.id) for s in sentences]


def read_docbin(data: bytes) -> list[Sentence]:
    vocab = spacy.blank("en").vocab
    return [prepare.from_spacy_doc(doc) for doc in DocBin().from_bytes(data).get_docs(vocab)]


def test_docbin_round_trip_keeps_conll04_tokens_and_entities(conll04_slice: list[Sentence]) -> None:
    docbin, stats = prepare.to_docbin(conll04_slice, "keep_longest")
    back = read_docbin(docbin.to_bytes())
    assert stats.entities_removed == 0
    assert [d.tokens for d in back] == [d.tokens for d in conll04_slice]
    assert [entity_keys(d) for d in back] == [entity_keys(d) for d in conll04_slice]
    assert sum(len(d.entities) for d in back) > 50  # the slice really has entities to compare


def test_spacy_doc_text_is_the_tokens_joined_by_single_spaces_as_deeprel_does() -> None:
    tokens = ("He", "was", "hanged.", ",Virginia")
    doc = prepare.to_spacy_doc(Sentence(tokens=tokens), spacy.blank("en").vocab)
    assert [t.text for t in doc] == list(tokens)
    assert doc.text == from_tokens(tokens).text == "He was hanged. ,Virginia"


def test_overlapping_entities_are_resolved_with_the_training_policy() -> None:
    sentence = Sentence(
        tokens=("Bank", "of", "New", "York", "rose"),
        entities=(Entity("Loc", 2, 4), Entity("Org", 0, 4)),
    )
    docbin, stats = prepare.to_docbin([sentence], "keep_longest")
    (back,) = read_docbin(docbin.to_bytes())
    assert stats.entities_removed == 1
    assert entity_keys(back) == [("Org", 0, 4)]


def test_prepare_writes_train_and_dev_docbins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, conll04_slice) -> None:
    write_json(documents(conll04_slice[:10]), tmp_path / "train.json")
    write_json(documents(conll04_slice[10:14]), tmp_path / "dev.json")
    argv = ["prepare.py", "--output", str(tmp_path / "corpus"), "--train", str(tmp_path / "train.json")]
    monkeypatch.setattr(sys, "argv", [*argv, "--dev", str(tmp_path / "dev.json")])
    prepare.main()
    train = read_docbin((tmp_path / "corpus/train.spacy").read_bytes())
    dev = read_docbin((tmp_path / "corpus/dev.spacy").read_bytes())
    assert [d.tokens for d in train] == [d.tokens for d in conll04_slice[:10]]
    assert [entity_keys(d) for d in dev] == [entity_keys(d) for d in conll04_slice[10:14]]


def test_spacy_predictions_become_sentences_that_score_as_expected() -> None:
    words = ["John", "Smith", "works", "for", "Acme", "Corp", "in", "Boston", "."]
    doc = Doc(spacy.blank("en").vocab, words=words)
    doc.ents = [Span(doc, 0, 2, label="Peop"), Span(doc, 4, 5, label="Org"), Span(doc, 7, 8, label="Org")]
    predicted = prepare.from_spacy_doc(doc, id="s1")
    assert predicted == Sentence(
        tokens=tuple(words),
        entities=(Entity("Peop", 0, 2), Entity("Org", 4, 5), Entity("Org", 7, 8)),
        id="s1",
    )
    gold = Sentence(tokens=tuple(words), entities=(Entity("Peop", 0, 2), Entity("Org", 4, 6), Entity("Loc", 7, 8)))
    scores = ner_scores([gold], [predicted], ["Loc", "Org", "Peop", "Other"])
    # One of three predictions is right (John Smith); "Acme" misses a token, Boston has the wrong type.
    assert (scores.micro.correct, scores.micro.predicted, scores.micro.support) == (1, 3, 3)
    assert scores.micro.f1 == pytest.approx(100 / 3)
    # Macro over the types that occur: Peop 100, Org 0, Loc 0 (Other has no items and is left out).
    assert scores.macro.f1 == pytest.approx(100 / 3)
    assert scores.per_type["Peop"].f1 == 100


def test_benchmark_input_repeats_the_sentences(tmp_path: Path, conll04_slice: list[Sentence]) -> None:
    path = tmp_path / "input.jsonl"
    assert write_benchmark_input(conll04_slice[:4], 3, path) == 12
    lines = read_token_lines(path)
    assert lines == [list(d.tokens) for d in conll04_slice[:4]] * 3
    with pytest.raises(ValueError, match="--repeat"):
        write_benchmark_input(conll04_slice[:4], 0, path)


def extract_record(line: int, tokens: list[str], entities: list[dict]) -> dict:
    text = " ".join(tokens)
    starts = [sum(len(t) + 1 for t in tokens[:k]) for k in range(len(tokens))]
    offsets = [[start, start + len(token)] for start, token in zip(starts, tokens)]
    sentence = {"start_char": 0, "end_char": len(text), "tokens": tokens, "token_offsets": offsets}
    return {"line": line, "id": None, "text": text, "sentences": [sentence], "entities": entities, "relations": []}


def test_extract_output_is_read_in_line_order_with_token_spans(tmp_path: Path) -> None:
    boston = {"type": "Loc", "text": "Boston", "start_char": 11, "end_char": 17, "sentence": 0}
    records = [
        extract_record(2, ["In", "Paris"], []),
        extract_record(1, ["He", "visited", "Boston"], [{**boston, "token_start": 2, "token_end": 3, "score": 0.9}]),
        extract_record(3, ["Ignored"], []),
    ]
    path = tmp_path / "out.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    first, second = read_extract_output(path, 2)
    assert (first.id, first.tokens) == ("1", ("He", "visited", "Boston"))  # no id: the line number
    assert first.entities == (Entity("Loc", 2, 3),)
    assert first.entities[0].score == 0.9
    assert second.tokens == ("In", "Paris") and second.entities == ()
    with pytest.raises(ValueError, match="3 records, expected at least 4"):
        read_extract_output(path, 4)


def test_an_extract_record_with_several_sentences_is_refused() -> None:
    record = extract_record(5, ["A", "."], [])
    record["sentences"] *= 2
    with pytest.raises(ValueError, match="line 5: expected exactly one sentence"):
        sentence_from_record(record, "out.jsonl: line 5")


def test_throughput_with_and_without_startup() -> None:
    throughput = Throughput(sentences=600, seconds=5.0, startup_seconds=2.0, cpu_seconds=8.0)
    assert throughput.per_second == pytest.approx(200.0)
    assert throughput.per_second_with_startup == pytest.approx(120.0)
    summary = throughput.to_dict()
    assert (summary["sentences_per_second"], summary["cores_busy"]) == (200.0, 1.6)
