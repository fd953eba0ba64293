"""The Python API: what ``deeprel.load(model_dir)(text)`` gives back, on the tiny trained model."""

import json
import shutil
from pathlib import Path

import pytest

import deeprel
from deeprel.api import ExtractedEntity, ExtractedRelation, ExtractedSentence, Extraction, Extractor
from deeprel.data.types import DataError
from deeprel.model.files import ModelLoadError


@pytest.fixture(scope="module")
def extractor(trained_run: Path) -> Extractor:
    return deeprel.load(trained_run / "model", device="cpu", num_threads=1)


@pytest.fixture(scope="module")
def sentences(data_dir: Path) -> list[str]:
    """Sentences the tiny model was trained on (its first 60), so that it finds entities in them."""
    documents = json.loads((data_dir / "datasets/conll04/conll04_train.json").read_text(encoding="utf-8"))
    return [" ".join(d["tokens"]) for d in documents[2:5]]


def unicode_document(sentences: list[str]) -> str:
    """Accents, an emoji (outside the Basic Multilingual Plane), CJK and a combining accent (two code points)
    before and between the sentences, so that every offset after them depends on counting code points."""
    return (
        f"Zoë 🙂 wrote from 東京タワー. {sentences[0]} Cafe\u0301 Noël, naïve façade! {sentences[1]}\n\n"
        f"Ελλάδα 😀😀 is written in Greek. {sentences[2]}"
    )


def assert_offsets_consistent(result: Extraction) -> None:
    text = result.text
    for sentence in result.sentences:
        assert len(sentence.tokens) == len(sentence.token_offsets) > 0
        for token, (start, end) in zip(sentence.tokens, sentence.token_offsets):
            assert text[start:end] == token
        assert sentence.start_char == sentence.token_offsets[0][0]
        assert sentence.end_char == sentence.token_offsets[-1][1]
    for entity in result.entities:
        sentence = result.sentences[entity.sentence]
        assert text[entity.start_char : entity.end_char] == entity.text
        assert 0 <= entity.token_start < entity.token_end <= len(sentence.tokens)
        assert entity.start_char == sentence.token_offsets[entity.token_start][0]
        assert entity.end_char == sentence.token_offsets[entity.token_end - 1][1]
        assert entity.text.startswith(sentence.tokens[entity.token_start])
        assert entity.text.endswith(sentence.tokens[entity.token_end - 1])


def test_offsets_point_at_the_characters_in_unicode_text(extractor, sentences) -> None:
    text = unicode_document(sentences)
    result = extractor(text)
    assert result.text == text
    assert_offsets_consistent(result)
    tokens = [token for sentence in result.sentences for token in sentence.tokens]
    assert {"🙂", "東京タワー", "Cafe\u0301", "Ελλάδα"} <= set(tokens)  # a combining mark stays in its token
    after_the_emoji = [e for e in result.entities if e.start_char > text.index("😀")]
    assert after_the_emoji, "the model should find entities in its own training sentences"
    for entity in after_the_emoji:
        assert entity.text in sentences[2]


def test_sentences_entities_and_relations_agree(extractor, sentences) -> None:
    result = extractor(unicode_document(sentences))
    assert len(result.sentences) >= 5
    assert [e.sentence for e in result.entities] == sorted(e.sentence for e in result.entities)
    assert {e.sentence for e in result.entities} >= {1, 3}  # entities in more than one sentence
    for entity in result.entities:
        sentence = result.sentences[entity.sentence]
        assert sentence.start_char <= entity.start_char < entity.end_char <= sentence.end_char
    for relation in result.relations:
        assert relation.head.sentence == relation.tail.sentence and relation.head is not relation.tail
    record = result.to_dict()
    assert json.loads(json.dumps(record, ensure_ascii=False)) == record
    assert len(record["entities"]) == len(result.entities) and len(record["relations"]) == len(result.relations)
    for relation, item in zip(result.relations, record["relations"]):
        assert item["type"] == relation.type
        assert record["entities"][item["head"]] == relation.head.model_dump(mode="json")
        assert record["entities"][item["tail"]] == relation.tail.model_dump(mode="json")


def test_relations_come_from_one_sentence_even_at_threshold_zero(trained_run, sentences) -> None:
    everything = deeprel.load(trained_run / "model", device="cpu", threshold=0.0)
    result = everything(" ".join(sentences))
    per_sentence = [sum(e.sentence == s for e in result.entities) for s in range(len(result.sentences))]
    types = len(everything.relation_types)
    # Every ordered pair of entities within a sentence, every type: no pair across sentences.
    assert len(result.relations) == sum(n * (n - 1) * types for n in per_sentence) > 0


def test_a_list_keeps_its_order(extractor, sentences) -> None:
    texts = [sentences[2], "", sentences[0], "Nothing here", sentences[1]]
    results = extractor(texts)
    assert [r.text for r in results] == texts
    for text, result in zip(texts, results):
        alone = extractor(text)
        assert [(e.type, e.start_char, e.end_char) for e in result.entities] == [
            (e.type, e.start_char, e.end_char) for e in alone.entities
        ]
        assert [(r.type, r.head.text, r.tail.text) for r in result.relations] == [
            (r.type, r.head.text, r.tail.text) for r in alone.relations
        ]
    assert extractor.extract(iter(texts[:2]))[0].text == texts[0]  # any iterable of strings


@pytest.mark.parametrize("text", ["", " ", " \n\n\t  \u3000 "])
def test_empty_and_whitespace_input_give_an_empty_extraction(extractor, text) -> None:
    result = extractor(text)
    assert result == Extraction(text=text, sentences=(), entities=(), relations=())
    assert result.to_dict() == {"text": text, "sentences": [], "entities": [], "relations": []}


def test_pretokenised_sentences(extractor, data_dir) -> None:
    documents = json.loads((data_dir / "datasets/conll04/conll04_train.json").read_text(encoding="utf-8"))
    token_lists = [documents[3]["tokens"], ["Zoë", "visited", "東京", "🙂", "."]]
    results = extractor.extract_tokens(token_lists)
    assert len(results) == 2
    for tokens, result in zip(token_lists, results):
        (sentence,) = result.sentences
        assert result.text == " ".join(tokens)
        assert list(sentence.tokens) == tokens
        assert_offsets_consistent(result)
    assert results[0].entities  # its training sentence


def test_bad_input_types_are_rejected(extractor) -> None:
    with pytest.raises(TypeError, match="text 1: expected a str, got int"):
        extractor(["fine", 3])
    with pytest.raises(TypeError, match="text 0: expected a str, got bytes"):
        extractor.extract([b"bytes"])
    with pytest.raises(TypeError, match=r"extract takes a list of texts; for one text, call the model"):
        extractor.extract("one text, not a list")
    with pytest.raises(TypeError, match="sentence 0: expected a list of str tokens"):
        extractor.extract_tokens(["not a token list"])
    with pytest.raises(TypeError, match="sentence 1: expected a list of str tokens"):
        extractor.extract_tokens([["ok"], ["a", 1]])
    with pytest.raises(ValueError, match="no tokens"):
        extractor.extract_tokens([[]])
    with pytest.raises(ValueError, match="token 1 is empty"):
        extractor.extract_tokens([["a", ""]])


def test_a_higher_threshold_never_adds_relations(trained_run, sentences) -> None:
    text = " ".join(sentences)
    found = {}
    for threshold in (0.0, 0.2, 0.5, 0.8, 1.0):
        result = deeprel.load(trained_run / "model", device="cpu", threshold=threshold)(text)
        assert all(r.score >= threshold for r in result.relations)
        found[threshold] = {(r.type, r.head.start_char, r.tail.start_char) for r in result.relations}
    counts = [len(found[t]) for t in sorted(found)]
    assert counts == sorted(counts, reverse=True) and counts[0] > counts[-1]
    thresholds = sorted(found)
    for lower, higher in zip(thresholds, thresholds[1:]):
        assert found[higher] <= found[lower]


def test_labels_are_the_models(extractor, trained_run, data_dir, sentences) -> None:
    labels = json.loads((trained_run / "model" / "labels.json").read_text())
    assert extractor.entity_types == tuple(labels["entity_types"])
    assert extractor.relation_types == tuple(labels["relation_types"])
    types = json.loads((data_dir / "datasets/conll04/conll04_types.json").read_text())
    assert set(extractor.entity_types) == set(types["entities"])
    assert set(extractor.relation_types) <= set(types["relations"])
    result = deeprel.load(trained_run / "model", device="cpu", threshold=0.0)(" ".join(sentences))
    assert {e.type for e in result.entities} <= set(extractor.entity_types)
    assert {r.type for r in result.relations} == set(extractor.relation_types)
    assert extractor.device == "cpu"
    assert extractor.meta["deeprel_version"] == deeprel.__version__


def test_loading_a_bad_directory_raises_model_load_error(trained_run, tmp_path) -> None:
    with pytest.raises(ModelLoadError, match="no such model directory"):
        deeprel.load(tmp_path / "nope")
    incomplete = tmp_path / "incomplete"
    shutil.copytree(trained_run / "model", incomplete)
    (incomplete / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="missing model.safetensors"):
        deeprel.load(incomplete)
    corrupt = tmp_path / "corrupt"
    shutil.copytree(trained_run / "model", corrupt)
    (corrupt / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelLoadError, match="corrupt weights file"):
        deeprel.load(corrupt)


def test_relation_threshold_is_the_given_one_else_the_models(trained_run) -> None:
    import json

    configured = json.loads((trained_run / "model" / "config.json").read_text())["model"]["threshold"]
    assert deeprel.load(trained_run / "model", device="cpu").relation_threshold == configured
    assert deeprel.load(trained_run / "model", device="cpu", threshold=0.25).relation_threshold == 0.25


# --- the extraction schema: written by to_dict, read back by from_dict -------------------------------------------


def handmade_extraction() -> Extraction:
    """Two sentences after an emoji; scores of at most six decimals, the precision a record keeps."""
    text = "Bob 😀 works.  Ann lives in Rome."
    ann = ExtractedEntity(
        type="Peop", text="Ann", start_char=14, end_char=17, sentence=1, token_start=0, token_end=1, score=0.9
    )
    rome = ExtractedEntity(
        type="Loc", text="Rome", start_char=27, end_char=31, sentence=1, token_start=3, token_end=4, score=0.812345
    )
    gold_bob = ExtractedEntity(
        type="Peop", text="Bob", start_char=0, end_char=3, sentence=0, token_start=0, token_end=1, score=None
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
        entities=(gold_bob, ann, rome),
        relations=(
            ExtractedRelation(type="Live_In", head=ann, tail=rome, score=0.7),
            ExtractedRelation(type="Located_In", head=rome, tail=ann, score=None),
        ),
    )


def test_an_extraction_reads_back_from_its_record() -> None:
    extraction = handmade_extraction()
    record = extraction.to_dict()
    assert record["relations"] == [
        {"type": "Live_In", "head": 1, "tail": 2, "score": 0.7},
        {"type": "Located_In", "head": 2, "tail": 1, "score": None},
    ]
    assert [(r.type, r.head, r.tail) for r in extraction.relation_records()] == [
        ("Live_In", 1, 2),
        ("Located_In", 2, 1),
    ]
    assert Extraction.from_dict(record, "here") == extraction
    assert Extraction.from_dict(json.loads(json.dumps(record, ensure_ascii=False)), "here") == extraction
    # a deeprel predict/extract line: "line" and "id" are not part of the extraction
    assert Extraction.from_dict({"line": 3, "id": "doc-7", **record}, "here") == extraction


def test_a_models_extraction_reads_back_but_for_the_rounding_of_scores(extractor, sentences) -> None:
    result = extractor(unicode_document(sentences))
    assert result.entities and result.relations
    record = json.loads(json.dumps(result.to_dict(), ensure_ascii=False))
    back = Extraction.from_dict(record, "here")
    assert back.to_dict() == record
    unscored = {"score": None}
    assert (back.text, back.sentences) == (result.text, result.sentences)
    assert [e.model_copy(update=unscored) for e in back.entities] == [
        e.model_copy(update=unscored) for e in result.entities
    ]
    assert [r.model_copy(update=unscored) for r in back.relation_records()] == [
        r.model_copy(update=unscored) for r in result.relation_records()
    ]
    for kind in ("entities", "relations"):
        assert [x.score for x in getattr(back, kind)] == pytest.approx(
            [x.score for x in getattr(result, kind)], abs=5e-7
        )


def test_an_extraction_record_is_checked_and_errors_name_where() -> None:
    record = handmade_extraction().to_dict()

    def broken(change) -> dict:
        copy = json.loads(json.dumps(record))
        change(copy)
        return copy

    def far_head(r: dict) -> None:
        r["relations"][1]["head"] = 3

    def negative_tail(r: dict) -> None:
        r["relations"][0]["tail"] = -1

    def entity_in_the_other_sentence(r: dict) -> None:
        r["entities"][2]["sentence"] = 0

    def tokens_past_the_sentence(r: dict) -> None:
        r["entities"][2]["token_end"] = 6

    def entity_in_no_sentence(r: dict) -> None:
        r["entities"][1]["sentence"] = 2

    def sentence_past_the_text(r: dict) -> None:
        r["sentences"][1]["end_char"] = 40

    cases = [
        (far_head, r"relation 1: head 3 is not one of 3 entities"),
        (negative_tail, r"relation 0: tail -1 is not one of 3 entities"),
        (entity_in_the_other_sentence, r"entity 2 \(Loc\): characters \[27, 31\) are not inside its sentence"),
        (tokens_past_the_sentence, r"entity 2 \(Loc\): tokens \[3, 6\) are not inside its sentence"),
        (entity_in_no_sentence, r"entity 1 \(Peop\): sentence 2 is not one of 2 sentences"),
        (sentence_past_the_text, r"sentence 1 \[14, 40\) is not in the text"),
    ]
    for change, message in cases:
        with pytest.raises(DataError, match=r"^out\.jsonl:4: not an extraction record: .*" + message):
            Extraction.from_dict(broken(change), "out.jsonl:4")
    with pytest.raises(DataError, match=r"^here: expected a JSON object, got list"):
        Extraction.from_dict([record], "here")
    with pytest.raises(DataError, match=r"^here: not an extraction record: .*relations"):
        Extraction.from_dict({k: v for k, v in record.items() if k != "relations"}, "here")


def test_an_extraction_refuses_relations_outside_its_entities_or_across_sentences() -> None:
    from pydantic import ValidationError

    sentences = (
        ExtractedSentence(start_char=0, end_char=3, tokens=("Ann",), token_offsets=((0, 3),)),
        ExtractedSentence(start_char=4, end_char=7, tokens=("Bob",), token_offsets=((4, 7),)),
    )

    def entity(text: str, start: int, sentence: int) -> ExtractedEntity:
        return ExtractedEntity(
            type="Peop",
            text=text,
            start_char=start,
            end_char=start + 3,
            sentence=sentence,
            token_start=0,
            token_end=1,
            score=0.9,
        )

    ann, bob = entity("Ann", 0, 0), entity("Bob", 4, 1)
    stranger = ExtractedEntity(**{**ann.model_dump(), "score": 0.5})
    with pytest.raises(ValidationError, match="must be among the entities"):
        Extraction(
            text="Ann Bob",
            sentences=sentences,
            entities=(ann, bob),
            relations=(ExtractedRelation(type="Kill", head=stranger, tail=bob, score=0.9),),
        )
    with pytest.raises(ValidationError, match="in different sentences"):
        Extraction(
            text="Ann Bob",
            sentences=sentences,
            entities=(ann, bob),
            relations=(ExtractedRelation(type="Kill", head=ann, tail=bob, score=0.9),),
        )
