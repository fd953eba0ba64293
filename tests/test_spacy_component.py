"""deeprel inside a real spaCy pipeline: the same output as ``deeprel.load``, saved and reloaded, DocBin."""

import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import spacy
from spacy.tokens import Doc, DocBin

import deeprel
from deeprel.api import Extraction
from deeprel.model.files import ModelLoadError
from deeprel.spacy_component import DeeprelComponent, SpanRelation

THRESHOLD = 0.2  # low, so that the tiny model finds relations to compare


@pytest.fixture(scope="module")
def model(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny model that the module may delete (to show a saved pipeline no longer needs it)."""
    copy = tmp_path_factory.mktemp("component") / "model"
    shutil.copytree(trained_run / "model", copy)
    return copy


@pytest.fixture(scope="module")
def texts(data_dir: Path) -> list[str]:
    """100 documents of two CoNLL04 training sentences each (the tiny model learned from the first 60)."""
    documents = json.loads((data_dir / "datasets/conll04/conll04_train.json").read_text(encoding="utf-8"))
    sentences = [" ".join(d["tokens"]) for d in documents[:200]]
    return [f"{a} {b}" for a, b in zip(sentences[::2], sentences[1::2])]


def make_nlp(model: Path | str, **config) -> spacy.Language:
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.add_pipe("deeprel", config={"model": str(model), "precision": "fp32", "threshold": THRESHOLD, **config})
    return nlp


def doc_output(doc: Doc, group: str = "deeprel") -> dict:
    """What the component wrote, by character offsets, as plain data."""
    return {
        "entities": [(s.label_, s.start_char, s.end_char, s._.score) for s in doc.spans[group]],
        "relations": [
            (r.label, r.head.start_char, r.head.end_char, r.tail.start_char, r.tail.end_char, r.score)
            for r in doc._.relations
        ],
    }


def library_output(result: Extraction) -> dict:
    return {
        "entities": [(e.type, e.start_char, e.end_char, e.score) for e in result.entities],
        "relations": [
            (r.type, r.head.start_char, r.head.end_char, r.tail.start_char, r.tail.end_char, r.score)
            for r in result.relations
        ],
    }


def assert_same(found: dict, expected: dict) -> None:
    for key in ("entities", "relations"):
        assert len(found[key]) == len(expected[key])
        for a, b in zip(found[key], expected[key]):
            assert a[:-1] == tuple(b[:-1])
            assert a[-1] == pytest.approx(b[-1], abs=1e-3)


@pytest.fixture(scope="module")
def expected(model: Path, texts: list[str]) -> list[dict]:
    extractor = deeprel.load(model, precision="fp32", threshold=THRESHOLD)
    return [library_output(result) for result in extractor(texts)]


@pytest.fixture(scope="module")
def nlp(model: Path) -> spacy.Language:
    return make_nlp(model)


def test_the_factory_is_an_entry_point() -> None:
    (point,) = [p for p in entry_points(group="spacy_factories") if p.name == "deeprel"]
    assert point.value == "deeprel.spacy_component:make_deeprel"


def test_the_pipeline_finds_what_the_library_finds(nlp, texts, expected) -> None:
    docs = [nlp(text) for text in texts[:20]]
    for doc, want in zip(docs, expected[:20]):
        assert_same(doc_output(doc), want)
    assert sum(len(w["entities"]) for w in expected[:20]) > 20
    assert sum(len(w["relations"]) for w in expected[:20]) > 0


def test_relations_in_the_tutorial_layout(nlp, texts) -> None:
    doc = next(d for d in nlp.pipe(texts) if d._.relations)
    rel = {}
    for r in doc._.relations:
        assert isinstance(r, SpanRelation)
        assert r.head.sent == r.tail.sent
        assert r.head.label_ in nlp.get_pipe("deeprel").labels
        rel.setdefault((r.head.start, r.tail.start), {})[r.label] = r.score
    assert doc._.rel == rel
    assert all(score >= THRESHOLD for labels in rel.values() for score in labels.values())


def test_pipe_in_batches_equals_one_by_one(nlp, texts, expected) -> None:
    docs = list(nlp.pipe(texts, batch_size=8))
    assert len(docs) == 100
    for doc, want in zip(docs, expected):
        assert_same(doc_output(doc), want)
    for text, doc in zip(texts[:30], docs):
        assert_same(doc_output(nlp(text)), doc_output(doc))


def test_docbin_keeps_spans_scores_and_relations(nlp, texts) -> None:
    docs = list(nlp.pipe(texts[:10]))
    data = DocBin(store_user_data=True, docs=docs).to_bytes()
    back = list(DocBin().from_bytes(data).get_docs(spacy.blank("en").vocab))
    for before, after in zip(docs, back):
        assert doc_output(after) == doc_output(before)
        assert after._.rel == before._.rel
        assert [(e.label_, e.start, e.end) for e in after.ents] == [(e.label_, e.start, e.end) for e in before.ents]


def test_ents_keep_existing_entities_unless_overwrite(model, texts) -> None:
    text = texts[0]
    plain = make_nlp(model)(text)
    found = [(s.start, s.end, s.label_) for s in plain.spans["deeprel"]]
    start, end, _ = found[0]
    for overwrite in (False, True):
        nlp = spacy.blank("en")
        nlp.add_pipe("sentencizer")
        ruler = nlp.add_pipe("entity_ruler")
        words = [t.text for t in nlp.make_doc(text)[start:end]]
        ruler.add_patterns([{"label": "MINE", "pattern": [{"ORTH": w} for w in words]}])
        nlp.add_pipe("deeprel", config={"model": str(model), "precision": "fp32", "overwrite_ents": overwrite})
        doc = nlp(text)
        ents = [(e.start, e.end, e.label_) for e in doc.ents]
        assert [(s.start, s.end, s.label_) for s in doc.spans["deeprel"]] == found  # all of them, either way
        if overwrite:
            assert ents == found
        else:
            assert ents == [(start, end, "MINE"), *found[1:]]


def test_the_docs_own_tokens_are_used(nlp) -> None:
    words = ["John", "Smith", "works", "for", "IBM", "Corp", ".", "He", "lives", "in", "Boston", "."]
    doc = Doc(nlp.vocab, words=words, sent_starts=[True] + [False] * 6 + [True] + [False] * 4)
    doc = nlp.get_pipe("deeprel")(doc)
    for span in doc.spans["deeprel"]:
        assert span.text == " ".join(words[span.start : span.end])  # on the Doc's own token boundaries
    assert doc.spans["deeprel"]


def test_a_doc_without_sentence_boundaries_says_how_to_add_them(model) -> None:
    nlp = spacy.blank("en")
    nlp.add_pipe("deeprel", config={"model": str(model)})
    with pytest.raises(ValueError, match=r"no sentence boundaries.*nlp.add_pipe\('sentencizer', before='deeprel'\)"):
        nlp("John Smith works for IBM. He lives in Boston.")
    empty = nlp("")
    assert len(empty.spans["deeprel"]) == 0  # nothing to split


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"batch_size": 0}, "batch_size: Input should be greater than or equal to 1"),
        ({"threshold": 1.5}, "threshold: Input should be less than or equal to 1"),
        ({"device": "gpu"}, 'device: Value error, must be "auto", "cpu", "cuda" or "cuda:N"'),
        ({"precision": "fp16"}, "precision: Value error, must be one of auto, fp32, bf16, int8"),
        ({"model": ""}, "model: String should have at least 1 character"),
    ],
)
def test_invalid_config_is_named(model, config, problem) -> None:
    nlp = spacy.blank("en")
    with pytest.raises(ValueError) as error:
        nlp.add_pipe("deeprel", config={"model": str(model), **config})
    assert "spaCy component 'deeprel' (deeprel): invalid config" in str(error.value)
    assert problem in str(error.value)


def test_unknown_or_incomplete_models_are_named(model, tmp_path) -> None:
    nlp = make_nlp("no_such_model")
    with pytest.raises(ModelLoadError, match="'deeprel'.*no installed deeprel model package is named 'no_such_model'"):
        nlp.initialize()
    with pytest.raises(ModelLoadError, match="no_such_model"):
        nlp("John Smith works for IBM.")
    broken = tmp_path / "broken"
    shutil.copytree(model, broken)
    (broken / "labels.json").unlink()
    with pytest.raises(ModelLoadError, match=r"incomplete model directory, missing labels.json"):
        make_nlp(broken)("John Smith works for IBM.")


def test_to_bytes_and_back(nlp, texts, expected) -> None:
    data = nlp.to_bytes()
    copy = spacy.blank("en").from_config(nlp.config).from_bytes(data)
    assert isinstance(copy.get_pipe("deeprel"), DeeprelComponent)
    for doc, want in zip(copy.pipe(texts[:5]), expected[:5]):
        assert_same(doc_output(doc), want)


RELOAD = """
import json, sys
import spacy
nlp = spacy.load(sys.argv[1])
texts = json.loads(sys.stdin.read())
out = []
for doc in nlp.pipe(texts):
    out.append({
        "entities": [(s.label_, s.start_char, s.end_char, s._.score) for s in doc.spans["deeprel"]],
        "relations": [(r.label, r.head.start_char, r.head.end_char, r.tail.start_char, r.tail.end_char, r.score)
                      for r in doc._.relations],
    })
print(json.dumps(out))
"""


def test_saved_pipeline_loads_in_a_fresh_process_without_the_original_model(model, texts, expected, tmp_path) -> None:
    original = tmp_path / "original-model"
    shutil.copytree(model, original)
    nlp = make_nlp(original)
    nlp("warm up: the model is loaded on the first Doc.")
    nlp.to_disk(tmp_path / "pipeline")
    shutil.rmtree(original)
    saved = tmp_path / "pipeline" / "deeprel" / "model"
    assert {p.name for p in saved.iterdir()} >= {"config.json", "labels.json", "vocab.json", "model.safetensors"}
    assert not list(saved.rglob("*.pkl")) and not list(saved.rglob("*.bin"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run(
        [sys.executable, "-c", RELOAD, str(tmp_path / "pipeline")],
        input=json.dumps(texts[:10]),
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert len(result) == 10
    for found, want in zip(result, expected[:10]):
        assert_same({k: [tuple(x) for x in v] for k, v in found.items()}, want)
    # saved again from the loaded pipeline: the model is copied out of the pipeline folder it came from
    again = spacy.load(tmp_path / "pipeline")
    again.to_disk(tmp_path / "pipeline-2")
    again.to_disk(tmp_path / "pipeline")  # onto itself: nothing to copy
    assert (tmp_path / "pipeline-2" / "deeprel" / "model" / "model.safetensors").is_file()
    assert (tmp_path / "pipeline" / "deeprel" / "model" / "model.safetensors").is_file()


def test_the_example_pipeline_config_assembles(model, texts, expected, tmp_path) -> None:
    config = Path(__file__).resolve().parents[1] / "configs" / "spacy_pipeline.cfg"
    command = [sys.executable, "-m", "spacy", "assemble", str(config), str(tmp_path / "assembled")]
    command += ["--components.deeprel.model", str(model), "--components.deeprel.precision", "fp32"]
    command += ["--components.deeprel.threshold", str(THRESHOLD)]
    run = subprocess.run(command, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    nlp = spacy.load(tmp_path / "assembled")
    assert nlp.pipe_names == ["sentencizer", "deeprel"]
    for doc, want in zip(nlp.pipe(texts[:5]), expected[:5]):
        assert_same(doc_output(doc), want)
