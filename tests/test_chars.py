import json

import pytest
import torch

from deeprel.embeddings.chars import (
    PAD_ID,
    UNK_ID,
    CharBiRNN,
    CharVocabulary,
    pad_char_ids,
)


def test_vocabulary_ids_and_round_trip() -> None:
    vocab = CharVocabulary.build(["abba", "cab"])
    assert len(vocab) == 2 + 3
    # Most frequent first: a (3), b (3) tie broken by the character, then c.
    assert vocab.encode(["abc"]) == [[2, 3, 4]]
    assert vocab.encode(["az"]) == [[2, UNK_ID]]
    restored = CharVocabulary.from_dict(json.loads(json.dumps(vocab.to_dict())))
    assert restored.encode(["cab", "x"]) == vocab.encode(["cab", "x"])
    assert len(restored) == len(vocab)


def test_min_count() -> None:
    vocab = CharVocabulary.build(["aab"], min_count=2)
    assert vocab.encode(["ab"]) == [[2, UNK_ID]]


def test_long_token_keeps_prefix_and_suffix() -> None:
    vocab = CharVocabulary.build("abcdefghij")
    (ids,) = vocab.encode(["abcdefghij"], max_len=4)
    assert ids == vocab.encode(["abij"])[0]


def test_empty_token_is_not_padding() -> None:
    vocab = CharVocabulary.build(["a"])
    assert vocab.encode([""]) == [[UNK_ID]]


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_shapes_and_padding(cell: str) -> None:
    torch.manual_seed(0)
    vocab = CharVocabulary.build(["hello", "world", "x"])
    sentences = [vocab.encode(["hello", "world", "x"]), vocab.encode(["x"])]
    char_ids = pad_char_ids(sentences)
    assert char_ids.shape == (2, 3, 5)
    assert char_ids[1, 1:].eq(PAD_ID).all()
    module = CharBiRNN(len(vocab), char_dim=8, hidden_size=6, cell=cell)
    out = module(char_ids)
    assert out.shape == (2, 3, 12) == (2, 3, module.output_size)
    assert torch.isfinite(out).all()
    assert out[1, 1:].eq(0).all()  # padding tokens
    # A token's vector does not depend on the padding around it.
    alone = module(pad_char_ids([vocab.encode(["x"])]))
    torch.testing.assert_close(alone[0, 0], out[0, 2])
    torch.testing.assert_close(alone[0, 0], out[1, 0])
    out.sum().backward()
    grads = [p.grad for p in module.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_all_padding_batch() -> None:
    module = CharBiRNN(5, hidden_size=4)
    out = module(torch.zeros(2, 3, 4, dtype=torch.long))
    assert out.shape == (2, 3, 8) and out.eq(0).all()


def test_rejects_unknown_cell() -> None:
    with pytest.raises(ValueError, match="cell"):
        CharBiRNN(5, cell="rnn")  # type: ignore[arg-type]
