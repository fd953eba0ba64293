import itertools

import pytest

from deeprel.data.types import DataError
from deeprel.inference.text import Tokenizer, from_tokens

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
    documents = tokenizer.split(text, "doc")
    assert documents
    for i, document in enumerate(documents):
        assert document.text == text
        assert document.doc_id == f"doc#{i}"
        assert document.offsets is not None and len(document.offsets) == len(document.tokens)
        for token, (start, end) in zip(document.tokens, document.offsets, strict=True):
            assert text[start:end] == token
            assert token.strip() == token and token
    # Sentences are in order and do not overlap.
    bounds = [d.offsets for d in documents if d.offsets]
    for earlier, later in itertools.pairwise(bounds):
        assert earlier[-1][1] <= later[0][0]


def test_sentences(tokenizer: Tokenizer) -> None:
    documents = tokenizer.split(TRICKY[1])
    assert [d.tokens[0] for d in documents] == ["Mr.", "He", "Then"]
    assert documents[0].tokens[-2:] == ("5th", ".")
    assert [d.doc_id for d in documents] == ["#0", "#1", "#2"]


def test_unicode_tokens(tokenizer: Tokenizer) -> None:
    (document,) = tokenizer.split(TRICKY[2])
    assert document.tokens[:3] == ("Café", "naïve", "résumé")
    (document,) = tokenizer.split("Un été à Zürich 😀.")
    assert document.tokens == ("Un", "été", "à", "Zürich", "😀", ".")
    assert document.offsets == ((0, 2), (3, 6), (7, 8), (9, 15), (16, 17), (17, 18))


def test_newlines(tokenizer: Tokenizer) -> None:
    # A single newline (wrapped text) does not end a sentence; a blank line does.
    (wrapped,) = tokenizer.split("The drug caused\na severe rash.")
    assert wrapped.tokens == ("The", "drug", "caused", "a", "severe", "rash", ".")
    documents = tokenizer.split("Adverse events\n\nThe drug caused a rash.\n\n\n")
    assert [d.tokens for d in documents] == [
        ("Adverse", "events"),
        ("The", "drug", "caused", "a", "rash", "."),
    ]


@pytest.mark.parametrize("text", ["", " ", "\n\n\t "])
def test_empty_text(tokenizer: Tokenizer, text: str) -> None:
    assert tokenizer.split(text) == []


def test_pipeline_built_lazily_once() -> None:
    tokenizer = Tokenizer()
    assert tokenizer._nlp is None
    assert tokenizer.nlp is tokenizer.nlp


def test_from_tokens() -> None:
    document = from_tokens(["Café", "東京", "😀", "."], doc_id="x")
    assert document.text == "Café 東京 😀 ."
    assert document.doc_id == "x"
    assert document.offsets is not None
    for token, (start, end) in zip(document.tokens, document.offsets, strict=True):
        assert document.text[start:end] == token


@pytest.mark.parametrize("tokens", [[], ["a", ""]])
def test_from_tokens_rejects_empty(tokens: list[str]) -> None:
    with pytest.raises(DataError):
        from_tokens(tokens)
