import gzip
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from deeprel.data.types import DataError
from deeprel.embeddings.static import (
    PAD_ID,
    UNK_ID,
    StaticEmbedding,
    WordVocabulary,
    candidate_keys,
    load_vectors,
)

GLOVE = "the 0.1 0.2 0.3\nCat 1 2 3\ncat -1 -2 -3\ndog 4e-1 5 6\n"


@pytest.fixture
def data_dir() -> Path:
    return Path(os.environ.get("DEEPREL_DATA_DIR", Path(__file__).resolve().parents[2] / "shared"))


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_glove_text(tmp_path: Path) -> None:
    words, matrix = load_vectors(write(tmp_path / "v.txt", GLOVE), lowercase=False)
    assert words == ["the", "Cat", "cat", "dog"]
    assert matrix.dtype == np.float32 and matrix.shape == (4, 3)
    np.testing.assert_allclose(matrix[3], [0.4, 5, 6])


def test_lowercase_keeps_first_of_merged_words(tmp_path: Path) -> None:
    words, matrix = load_vectors(write(tmp_path / "v.txt", GLOVE))
    assert words == ["the", "cat", "dog"]
    np.testing.assert_allclose(matrix[1], [1, 2, 3])


def test_word2vec_header_and_gzip(tmp_path: Path) -> None:
    path = tmp_path / "v.vec.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("2 3\nnaïve 1 2 3 \nword 4 5 6 \n")  # trailing spaces as some writers leave them
    words, matrix = load_vectors(path)
    assert words == ["naïve", "word"]
    np.testing.assert_allclose(matrix, [[1, 2, 3], [4, 5, 6]])


def test_word2vec_header_count_checked(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="header announces 3"):
        load_vectors(write(tmp_path / "v.txt", "3 2\na 1 2\nb 3 4\n"))


def test_word_with_spaces(tmp_path: Path) -> None:
    words, _ = load_vectors(write(tmp_path / "v.txt", "a 1 2\n. . . 3 4\n"))
    assert words == ["a", ". . ."]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("bad 1 2", "expected a word and 3 values, found 2"),
        ("bad 1 2 3 4", "expected a word and 3 values, found 4"),
        ("bad 1 x 3", "not a number"),
        ("bad 1 nan 3", "not finite"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path / "v.txt", f"a 1 2 3\nb 4 5 6\n{line}\nc 7 8 9\n")
    with pytest.raises(DataError, match=message) as error:
        load_vectors(path)
    assert f"{path}:3:" in str(error.value)


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no vectors"):
        load_vectors(write(tmp_path / "v.txt", ""))


def test_vocabulary_and_max_words(tmp_path: Path) -> None:
    path = write(tmp_path / "v.txt", GLOVE)
    assert load_vectors(path, vocabulary={"DOG", "unseen"})[0] == ["dog"]
    assert load_vectors(path, max_words=2)[0] == ["the", "cat"]
    assert load_vectors(path, vocabulary={"dog"}, max_words=1)[0] == ["the", "dog"]
    assert load_vectors(path, vocabulary=set(), max_words=0)[1].shape == (0, 3)


def test_stops_reading_once_everything_is_found(tmp_path: Path) -> None:
    # The malformed last line is never reached: both requested words come before it.
    path = write(tmp_path / "v.txt", GLOVE + "broken line\n")
    assert load_vectors(path, vocabulary={"the", "cat"})[0] == ["the", "cat"]
    with pytest.raises(DataError, match=":5:"):
        load_vectors(path)


def test_candidate_keys() -> None:
    assert candidate_keys("Paris") == ["paris"]
    assert candidate_keys("Paris", lowercase=False) == ["Paris", "paris"]
    assert candidate_keys("1990s", normalize_digits=True) == ["1990s", "0000s"]


def test_vocabulary_lookup_and_round_trip() -> None:
    vocab = WordVocabulary(["the", "Cat", "cat", "0000"], lowercase=False, normalize_digits=True)
    assert len(vocab) == 6
    assert vocab.encode(["the", "Cat", "CAT", "THE", "1984", "zebra"]) == [2, 3, 4, 2, 5, UNK_ID]
    restored = WordVocabulary.from_dict(json.loads(json.dumps(vocab.to_dict())))
    assert restored.encode(["CAT", "1984"]) == [4, 5]
    assert WordVocabulary(["paris"]).lookup("PARIS") == 2


def test_embedding_rows() -> None:
    matrix = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    module = StaticEmbedding.from_vectors(["a", "b"], matrix)
    assert module.output_size == 2
    ids = torch.tensor([[2, 3, UNK_ID, PAD_ID]])
    out = module(ids)
    assert out.shape == (1, 4, 2)
    torch.testing.assert_close(out[0, :2], torch.from_numpy(matrix))
    torch.testing.assert_close(out[0, 2], torch.tensor([2.0, 3.0]))  # UNK starts at the mean
    assert out[0, 3].eq(0).all()


def test_frozen_rows_do_not_change_but_unk_does() -> None:
    torch.manual_seed(0)
    module = StaticEmbedding.from_vectors(["a", "b"], np.random.rand(2, 4).astype(np.float32))
    assert [name for name, _ in module.named_parameters()] == ["unk"]
    assert "vectors" in module.state_dict()
    frozen, unk = module.vectors.clone(), module.unk.detach().clone()
    optimizer = torch.optim.Adam(module.parameters(), lr=0.1)
    target = torch.randn(1, 4, 4)
    loss = ((module(torch.tensor([[2, 3, UNK_ID, PAD_ID]])) - target) ** 2).sum()
    loss.backward()
    optimizer.step()
    assert torch.equal(module.vectors, frozen)
    assert not torch.equal(module.unk.detach(), unk)


def test_state_dict_round_trip() -> None:
    module = StaticEmbedding.from_vectors(["a"], np.ones((1, 3), dtype=np.float32))
    rebuilt = StaticEmbedding(WordVocabulary.from_dict(module.vocabulary.to_dict()), 3)
    rebuilt.load_state_dict(module.state_dict())
    ids = torch.tensor([[2, UNK_ID]])
    torch.testing.assert_close(rebuilt(ids), module(ids))


def test_real_glove_restricted(data_dir: Path) -> None:
    path = data_dir / "vectors" / "glove.6B.50d.txt.gz"
    if not path.exists():
        pytest.skip(f"{path} not available")
    wanted = {"the", "Paris", "kill", "located", "organization", "drug", "headache", "john", "said", "in"}
    # All ten are frequent, so reading stops within the first few thousand lines.
    words, matrix = load_vectors(path, vocabulary=wanted)
    assert sorted(words) == sorted(w.lower() for w in wanted)
    assert matrix.shape == (10, 50)
    assert words[0] == "the"
    np.testing.assert_allclose(matrix[0, :3], [0.418, 0.24968, -0.41242], rtol=1e-5)
