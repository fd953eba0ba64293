"""Pre-trained static word vectors: reading GloVe / word2vec text files, and a frozen embedding layer.

Which vectors the model keeps. The whole GloVe 6B 50-d table (400k x 50 float32) is 80 MB in the saved
model, and the 300-d files are six times that. Keeping only the words of train/dev/test is small, but
a sentence given at prediction time has new words, and those would all fall back to the UNK vector.
The middle road (``load_vectors(..., vocabulary=data_words, max_words=N)``): keep the data's words plus
the N most frequent words of the file (GloVe and word2vec files are sorted by frequency). With N=100k
the 50-d table is about 20 MB. Measured on text the model has not seen (GloVe 6B, lowercased), the top
100k cover 96.1% of CoNLL04 test tokens (all 400k: 97.4%) but only 89.2% of ADE test tokens (400k:
96.6%): raise N for prediction text from a specialised domain, lower it when model size matters.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from deeprel.data.types import DataError

PAD_ID = 0
UNK_ID = 1


def candidate_keys(token: str, lowercase: bool = True, normalize_digits: bool = False) -> list[str]:
    """The table keys ``WordVocabulary.lookup`` tries for ``token``, in order.

    A lowercased table (``lowercase=True``) is looked up with the lowercased token. A cased table is
    looked up as-is first (so "Apple" keeps its own vector when the file has one), then lowercased.
    With ``normalize_digits`` each of those is finally retried with every digit replaced by "0", for
    tables trained on digit-normalised text; GloVe keeps real numbers, so it is off by default.
    Pass the union of these keys over the data's tokens as ``load_vectors(vocabulary=...)``.
    """
    keys = [token.lower()] if lowercase else [token, token.lower()]
    if normalize_digits:
        keys += ["".join("0" if char.isdigit() else char for char in key) for key in keys]
    return list(dict.fromkeys(keys))  # drop repeats, keep order


def _open_lines(path: Path) -> io.BufferedIOBase:
    """The file as a binary stream, gunzipped on the fly when it starts with the gzip magic number."""
    with path.open("rb") as probe:
        is_gzip = probe.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if is_gzip else path.open("rb")


def _is_float(field: bytes) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _parse_header(fields: list[bytes]) -> tuple[int, int] | None:
    """``(count, dim)`` when the first line is a word2vec header, else None."""
    if len(fields) == 2 and fields[0].isdigit() and fields[1].isdigit():
        return int(fields[0]), int(fields[1])
    return None


def _split_lines(stream: Iterable[bytes]) -> Iterator[tuple[int, list[bytes]]]:
    """``(1-based line number, space-separated fields)`` of each non-blank line."""
    for line_no, line in enumerate(stream, start=1):
        # rstrip also removes the trailing space some word2vec writers leave on every line.
        stripped = line.rstrip()
        if stripped:
            yield line_no, stripped.split(b" ")


def _parse_word(fields: list[bytes], dim: int, where: str) -> str:
    word_fields = fields[:-dim]
    if len(fields) <= dim or any(_is_float(f) for f in word_fields[1:]):
        raise DataError(f"{where}: expected a word and {dim} values, found {len(fields) - 1} values")
    try:
        return b" ".join(word_fields).decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{where}: the word is not valid UTF-8 ({error.reason})") from None


def _parse_vector(value_fields: list[bytes], where: str) -> np.ndarray:
    try:
        vector = np.array(value_fields, dtype=np.float32)
    except ValueError:
        raise DataError(f"{where}: a vector value is not a number") from None
    if not np.isfinite(vector).all():
        raise DataError(f"{where}: a vector value is not finite")
    return vector


def load_vectors(
    path: str | Path,
    vocabulary: Iterable[str] | None = None,
    lowercase: bool = True,
    max_words: int | None = None,
) -> tuple[list[str], np.ndarray]:
    """Read a GloVe (``word v1 ... vd``) or word2vec text file (same, after a ``count dim`` header).

    Plain or gzip-compressed (read as a stream, never unpacked to disk). Returns the words and a
    float32 [n, dim] matrix, in file order. A row is kept when it is among the first ``max_words``
    rows of the file or its word is in ``vocabulary``; with neither given, every row is kept. Reading
    stops as soon as no further row can be kept. With ``lowercase`` words are lowercased and, of
    words that then coincide, the first (most frequent) is kept.

    A first line of exactly two integers is taken as a word2vec header. A line whose values are too
    few or too many, or, in a kept row, not numbers or not finite, raises ``DataError`` naming the
    file and line. A word may contain spaces (glove.840B has a few such words): extra leading fields
    belong to the word when none of them reads as a number.
    """
    path = Path(path)
    if max_words is not None and max_words < 0:
        raise ValueError(f"max_words must be >= 0, got {max_words}")
    wanted: set[str] | None = None
    if vocabulary is not None:
        wanted = {w.lower() for w in vocabulary} if lowercase else set(vocabulary)
    keep_all = vocabulary is None and max_words is None
    rank_limit = max_words or 0

    words: list[str] = []
    rows: list[np.ndarray] = []
    seen: set[str] = set()
    dim: int | None = None
    announced: int | None = None
    rank = 0
    stopped_early = False
    with _open_lines(path) as stream:
        for line_no, fields in _split_lines(stream):
            if line_no == 1 and (header := _parse_header(fields)) is not None:
                announced, dim = header
                continue
            if dim is None:
                dim = len(fields) - 1
                if dim < 1:
                    raise DataError(f"{path}:{line_no}: a word followed by its vector values expected")
            if not keep_all and rank >= rank_limit and not wanted:
                stopped_early = True
                break
            where = f"{path}:{line_no}"
            word = _parse_word(fields, dim, where)
            rank += 1
            if lowercase:
                word = word.lower()
            if word in seen:
                continue
            if keep_all or rank <= rank_limit or (wanted is not None and word in wanted):
                # Values are parsed (and checked) only for kept rows: that is most of the reading time.
                rows.append(_parse_vector(fields[-dim:], where))
                seen.add(word)
                words.append(word)
                if wanted is not None:
                    wanted.discard(word)
    if dim is None:
        raise DataError(f"{path}: no vectors found")
    if announced is not None and not stopped_early and rank != announced:
        raise DataError(f"{path}: the header announces {announced} vectors but the file holds {rank}")
    matrix = np.stack(rows) if rows else np.zeros((0, dim), dtype=np.float32)
    return words, matrix


class WordVocabulary:
    """Words of a static vector table; id 0 is padding, id 1 unknown, word k of the table is k + 2."""

    def __init__(self, words: Sequence[str], lowercase: bool = True, normalize_digits: bool = False) -> None:
        self._words = list(words)
        self._index = {word: i + 2 for i, word in enumerate(self._words)}
        if len(self._index) != len(self._words):
            raise ValueError("words must be distinct")
        self.lowercase = lowercase
        self.normalize_digits = normalize_digits

    def __len__(self) -> int:
        return len(self._words) + 2

    def lookup(self, token: str) -> int:
        """The id of the first of ``candidate_keys(token)`` in the table, else ``UNK_ID``."""
        for key in candidate_keys(token, self.lowercase, self.normalize_digits):
            if (index := self._index.get(key)) is not None:
                return index
        return UNK_ID

    def encode(self, tokens: Iterable[str]) -> list[int]:
        return [self.lookup(token) for token in tokens]

    def to_dict(self) -> dict[str, Any]:
        return {
            "words": list(self._words),
            "lowercase": self.lowercase,
            "normalize_digits": self.normalize_digits,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WordVocabulary:
        return cls(data["words"], lowercase=data["lowercase"], normalize_digits=data["normalize_digits"])


class StaticEmbedding(nn.Module):
    """Frozen pre-trained word vectors plus one trained vector for unknown words.

    The table is a buffer, not a parameter: no optimiser can change it, yet it is saved with the
    model's state dict, so prediction needs no vector file. The padding row is zero.
    """

    vectors: Tensor

    def __init__(self, vocabulary: WordVocabulary, dim: int) -> None:
        super().__init__()
        self.vocabulary = vocabulary
        # Rows PAD_ID and UNK_ID stay zero here; forward puts the trained ``unk`` in place of the latter.
        self.register_buffer("vectors", torch.zeros(len(vocabulary), dim))
        self.unk = nn.Parameter(torch.zeros(dim))

    @classmethod
    def from_vectors(
        cls,
        words: Sequence[str],
        matrix: np.ndarray,
        lowercase: bool = True,
        normalize_digits: bool = False,
    ) -> StaticEmbedding:
        """``words`` and ``matrix`` as ``load_vectors`` returns them (with the same ``lowercase``)."""
        if matrix.ndim != 2 or matrix.shape[0] != len(words):
            raise ValueError(f"matrix of shape {matrix.shape} does not match {len(words)} words")
        module = cls(WordVocabulary(words, lowercase, normalize_digits), matrix.shape[1])
        table = torch.as_tensor(matrix, dtype=module.vectors.dtype)
        with torch.no_grad():
            module.vectors[2:] = table
            # Start the unknown word at the average word rather than at the origin, an unusual point.
            if len(words):
                module.unk.copy_(table.mean(dim=0))
        return module

    @property
    def output_size(self) -> int:
        return self.vectors.shape[1]

    def forward(self, ids: Tensor) -> Tensor:
        """``ids``: [B, T] long word ids. Returns [B, T, dim]."""
        out = nn.functional.embedding(ids, self.vectors)
        return torch.where((ids == UNK_ID).unsqueeze(-1), self.unk, out)
