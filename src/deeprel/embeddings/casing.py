"""The 7-class one-hot casing feature of a token (Crone 2020, token representation)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

CASING_CLASSES: tuple[str, ...] = (
    "all_digits",
    "all_lower",
    "all_upper",
    "title",
    "mostly_digits",
    "contains_digit",
    "other",
)

ALL_DIGITS, ALL_LOWER, ALL_UPPER, TITLE, MOSTLY_DIGITS, CONTAINS_DIGIT, OTHER = range(len(CASING_CLASSES))


def casing_class(token: str) -> int:
    """The index into ``CASING_CLASSES`` of ``token``; the first rule that matches wins.

    1. ``all_digits``: non-empty and every character is a digit ("1990").
    2. ``all_lower``: no digit, at least one cased letter, and every cased letter is lower case;
       punctuation may be present ("the", "well-known", "don't").
    3. ``all_upper``: no digit, at least one cased letter, all of them upper case ("IBM", "U.S.", "A").
    4. ``title``: no digit and the first character is an upper-case letter ("Smith", "McDonald").
    5. ``mostly_digits``: more than half of the characters are digits ("1990s", "12.5").
    6. ``contains_digit``: at least one digit ("B52", "mid-1990s").
    7. ``other``: everything else: punctuation, mixed case ("iPhone"), scripts without case ("東京"),
       the empty string.

    Rules 2-4 exclude digits so that digit-bearing tokens always reach rules 5-6, which makes the
    listed order a partition instead of letting ``str.islower`` swallow "abc1".
    """
    digits = sum(char.isdigit() for char in token)
    if token and digits == len(token):
        return ALL_DIGITS
    if digits == 0:
        if token.islower():
            return ALL_LOWER
        if token.isupper():
            return ALL_UPPER
        if token[:1].isupper():
            return TITLE
    if 2 * digits > len(token):
        return MOSTLY_DIGITS
    if digits > 0:
        return CONTAINS_DIGIT
    return OTHER


class CasingEmbedding(nn.Module):
    """A fixed one-hot encoding of casing class ids; it has no parameters.

    Padded positions get whatever class id the caller put there; downstream masks discard them.
    """

    @property
    def output_size(self) -> int:
        return len(CASING_CLASSES)

    def forward(self, ids: Tensor) -> Tensor:
        """``ids``: [B, T] long casing class ids. Returns [B, T, 7] float."""
        return nn.functional.one_hot(ids, num_classes=len(CASING_CLASSES)).to(torch.get_default_dtype())
