import itertools

import pytest

from deeprel.data.text import Tokenizer, from_tokens
from deeprel.data.types import DataError, Document, sentences_of

TRICKY = [
    "John Smith works for IBM in New York. He lives in Boston!",
    'Mr. Smith went to Washington D.C. on Jan. 5th. He said "hi." Then left.',
    "Café naïve résumé: Zürich — São Paulo.",
    "東京タワーに行った。 Then 北京 again.",
    "Emoji 😀👍🏽 and 👨‍👩‍👧 family.",
    "  leading and trailing spaces   \n",
    "Tabs\tand\u00a0no-break spaces.\r\nWindows line end.",
    "Aspirin 100 mg/day caused a rash (2%) in 3/10 patients.",
]


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer()


@pytest.mark.parametrize("text", TRICKY)
def test_offsets_point_into_original_text(tokenizer: Tokenizer, text: str) -> None:
    document = tokenizer.document(text, "doc")
    assert isinstance(document, Document)
    assert (document.id, document.text) == ("doc", text)
    sentences = document.sentences
    assert sentences
    for i, sentence in enumerate(sentences):
        assert sentence.id == f"doc#{i}"
        assert sentence.offsets is not None and len(sentence.offsets) == len(sentence.tokens)
        for token, (start, end) in zip(sentence.tokens, sentence.offsets, strict=True):
            assert text[start:end] == token
            assert token.strip() == token and token
    # Sentences are in order and do not overlap.
    bounds = [s.offsets for s in sentences if s.offsets]
    for earlier, later in itertools.pairwise(bounds):
        assert earlier[-1][1] <= later[0][0]


def test_sentences(tokenizer: Tokenizer) -> None:
    sentences = tokenizer.document(TRICKY[1]).sentences
    assert [s.tokens[0] for s in sentences] == ["Mr.", "He", "Then"]
    assert sentences[0].tokens[-2:] == ("5th", ".")
    assert [s.id for s in sentences] == ["#0", "#1", "#2"]


def test_sentence_ids_and_offsets(tokenizer: Tokenizer) -> None:
    text = "Ann met Bo. Bo left."
    document = tokenizer.document(text, id="x")
    assert document.id == "x"
    assert [s.id for s in document.sentences] == ["x#0", "x#1"]
    assert [s.offsets for s in document.sentences] == [
        ((0, 3), (4, 7), (8, 10), (10, 11)),
        ((12, 14), (15, 19), (19, 20)),
    ]
    assert [[text[a:b] for a, b in s.offsets] for s in document.sentences] == [
        ["Ann", "met", "Bo", "."],
        ["Bo", "left", "."],
    ]
    assert [s.tokens for s in sentences_of([document])] == [("Ann", "met", "Bo", "."), ("Bo", "left", ".")]


def test_unicode_tokens(tokenizer: Tokenizer) -> None:
    (sentence,) = tokenizer.document(TRICKY[2]).sentences
    assert sentence.tokens[:3] == ("Café", "naïve", "résumé")
    (sentence,) = tokenizer.document("Un été à Zürich 😀.").sentences
    assert sentence.tokens == ("Un", "été", "à", "Zürich", "😀", ".")
    assert sentence.offsets == ((0, 2), (3, 6), (7, 8), (9, 15), (16, 17), (17, 18))


def test_newlines(tokenizer: Tokenizer) -> None:
    # A single newline (wrapped text) does not end a sentence; a blank line does.
    (wrapped,) = tokenizer.document("The drug caused\na severe rash.").sentences
    assert wrapped.tokens == ("The", "drug", "caused", "a", "severe", "rash", ".")
    sentences = tokenizer.document("Adverse events\n\nThe drug caused a rash.\n\n\n").sentences
    assert [s.tokens for s in sentences] == [
        ("Adverse", "events"),
        ("The", "drug", "caused", "a", "rash", "."),
    ]


@pytest.mark.parametrize("text", ["", " ", "\n\n\t "])
def test_empty_text(tokenizer: Tokenizer, text: str) -> None:
    document = tokenizer.document(text, "e")
    assert document == Document("e", text, ())


def test_pipeline_built_lazily_once() -> None:
    tokenizer = Tokenizer()
    assert tokenizer._nlp is None
    assert tokenizer.nlp is tokenizer.nlp


def test_from_tokens() -> None:
    document = from_tokens(["Café", "東京", "😀", "."], id="x")
    assert document.text == "Café 東京 😀 ."
    (sentence,) = document.sentences
    assert document.id == sentence.id == "x"
    assert sentence.offsets is not None
    for token, (start, end) in zip(sentence.tokens, sentence.offsets, strict=True):
        assert document.text[start:end] == token
    assert document == Document.from_tokens(["Café", "東京", "😀", "."], id="x")


@pytest.mark.parametrize("tokens", [[], ["a", ""]])
def test_from_tokens_rejects_empty(tokens: list[str]) -> None:
    with pytest.raises(DataError):
        from_tokens(tokens)
