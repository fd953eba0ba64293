import pytest
import torch

from deeprel.embeddings.casing import CASING_CLASSES, CasingEmbedding, casing_class


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("1990", "all_digits"),
        ("7", "all_digits"),
        ("the", "all_lower"),
        ("well-known", "all_lower"),
        ("café", "all_lower"),
        ("IBM", "all_upper"),
        ("U.S.", "all_upper"),
        ("Smith", "title"),
        ("McDonald", "title"),
        ("Émile", "title"),
        ("1990s", "mostly_digits"),
        ("12.5", "mostly_digits"),
        ("B52", "mostly_digits"),
        ("mid-1990s", "contains_digit"),
        ("abc1", "contains_digit"),
        ("COVID-19", "contains_digit"),
        (".", "other"),
        ("iPhone", "other"),
        ("東京", "other"),
        ("", "other"),
    ],
)
def test_each_class(token: str, expected: str) -> None:
    assert CASING_CLASSES[casing_class(token)] == expected


def test_precedence() -> None:
    # A single capital is both upper and title case: "all_upper" comes first.
    assert CASING_CLASSES[casing_class("A")] == "all_upper"
    # Digits keep lower / upper / title from matching, even where str.islower() is true.
    assert "abc1".islower() and CASING_CLASSES[casing_class("abc1")] == "contains_digit"
    assert CASING_CLASSES[casing_class("A1")] == "contains_digit"
    # Exactly half digits is not "more than half".
    assert CASING_CLASSES[casing_class("ab12")] == "contains_digit"
    assert CASING_CLASSES[casing_class("a123")] == "mostly_digits"


def test_embedding_is_fixed_one_hot() -> None:
    module = CasingEmbedding()
    assert list(module.parameters()) == []
    ids = torch.tensor([[0, 3, 6], [1, 1, 2]])
    out = module(ids)
    assert out.shape == (2, 3, len(CASING_CLASSES)) == (2, 3, module.output_size)
    assert out.dtype == torch.float32
    assert torch.equal(out.argmax(-1), ids)
    assert torch.equal(out.sum(-1), torch.ones(2, 3))
