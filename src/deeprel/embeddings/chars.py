"""Character-level token embeddings: a character vocabulary and a BiRNN over each token's characters."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from deeprel.config import Cell

PAD_ID = 0
UNK_ID = 1
DEFAULT_MAX_CHARS = 30

_RNN_CLASSES: dict[str, type[nn.GRU] | type[nn.LSTM]] = {"gru": nn.GRU, "lstm": nn.LSTM}


class CharVocabulary:
    """Characters seen in training; id 0 is padding, id 1 any unknown character."""

    def __init__(self, chars: Sequence[str]) -> None:
        if len(set(chars)) != len(chars) or any(len(char) != 1 for char in chars):
            raise ValueError("chars must be distinct single characters")
        self._chars = list(chars)
        self._index = {char: i + 2 for i, char in enumerate(self._chars)}

    @classmethod
    def build(cls, tokens: Iterable[str], min_count: int = 1) -> CharVocabulary:
        """Every character occurring at least ``min_count`` times, most frequent first."""
        counts = Counter(char for token in tokens for char in token)
        # Ties broken by the character itself, so the same data always gives the same ids.
        ordered = sorted((c for c, n in counts.items() if n >= min_count), key=lambda c: (-counts[c], c))
        return cls(ordered)

    def __len__(self) -> int:
        return len(self._chars) + 2

    def encode(self, tokens: Sequence[str], max_len: int = DEFAULT_MAX_CHARS) -> list[list[int]]:
        """Character ids of each token, at least 1 and at most ``max_len`` per token.

        A token longer than ``max_len`` (URLs, chemical names) keeps its first ``max_len // 2`` and
        last ``max_len - max_len // 2`` characters: the forward RNN reads the prefix and the backward
        RNN the suffix, and both carry the useful signal (capitals, endings like "-mab" or "-ing").
        An empty token becomes one unknown character, so that every real token has length >= 1 and
        is never mistaken for padding.
        """
        if max_len < 2:
            raise ValueError(f"max_len must be >= 2, got {max_len}")
        head = max_len // 2
        encoded = []
        for token in tokens:
            if len(token) > max_len:
                token = token[:head] + token[len(token) - (max_len - head) :]
            encoded.append([self._index.get(char, UNK_ID) for char in token] or [UNK_ID])
        return encoded

    def to_dict(self) -> dict[str, Any]:
        return {"chars": list(self._chars)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CharVocabulary:
        return cls(data["chars"])


def pad_char_ids(sentences: Sequence[Sequence[Sequence[int]]]) -> Tensor:
    """Stack ``encode`` outputs of several sentences into a [B, T, C] long tensor padded with 0."""
    batch = len(sentences)
    max_tokens = max((len(s) for s in sentences), default=0)
    max_chars = max((len(t) for s in sentences for t in s), default=0)
    out = torch.zeros(batch, max_tokens, max_chars, dtype=torch.long)
    for b, sentence in enumerate(sentences):
        for t, ids in enumerate(sentence):
            out[b, t, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
    return out


class CharBiRNN(nn.Module):
    """Lample et al. (2016): a BiRNN reads each token's characters; the final forward and backward
    states are concatenated into a ``2 * hidden_size`` token vector. Trained with the model."""

    def __init__(self, vocab_size: int, char_dim: int = 25, hidden_size: int = 32, cell: Cell = "gru") -> None:
        super().__init__()
        if cell not in _RNN_CLASSES:
            raise ValueError(f"cell must be one of {sorted(_RNN_CLASSES)}, got {cell!r}")
        self.embedding = nn.Embedding(vocab_size, char_dim, padding_idx=PAD_ID)
        self.rnn = _RNN_CLASSES[cell](char_dim, hidden_size, batch_first=True, bidirectional=True)
        self.hidden_size = hidden_size

    @property
    def output_size(self) -> int:
        return 2 * self.hidden_size

    def forward(self, char_ids: Tensor) -> Tensor:
        """``char_ids``: [B, T, C] long, characters left-aligned, 0 = padding.

        Returns [B, T, 2 * hidden_size]; padding tokens (all-zero rows) get zero vectors.
        """
        batch, tokens, chars = char_ids.shape
        flat = char_ids.reshape(batch * tokens, chars)
        lengths = (flat != PAD_ID).sum(dim=1)
        out = flat.new_zeros(batch * tokens, self.output_size, dtype=self.embedding.weight.dtype)
        # Only real tokens go through the RNN: packing rejects length 0, and skipping padding saves work.
        real = lengths > 0
        if not bool(real.any()):
            return out.reshape(batch, tokens, self.output_size)
        packed = pack_padded_sequence(
            self.embedding(flat[real]), lengths[real].cpu(), batch_first=True, enforce_sorted=False
        )
        _, hidden = self.rnn(packed)
        final = hidden[0] if isinstance(hidden, tuple) else hidden  # LSTM returns (h_n, c_n)
        # final: [2, N, H], forward then backward direction; hidden states come back in input order.
        out[real] = torch.cat([final[0], final[1]], dim=-1)
        return out.reshape(batch, tokens, self.output_size)
