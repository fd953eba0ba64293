"""Input records, one a line or a row: what ``deeprel extract`` and its Ray engine read, and how a bad one is told.

A record is a document's text, or one pre-tokenised sentence, with an optional id. Kept free of torch and
spaCy (the package's names load lazily), so that Ray's read tasks can parse rows without loading a model.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

READ_BLOCK = 1 << 16


@dataclass(frozen=True)
class InputRecord:
    """A good input line: a document's text, or one pre-tokenised sentence."""

    line: int
    id: str | int | None
    text: str | None = None
    tokens: tuple[str, ...] | None = None


@dataclass(frozen=True)
class BadLine:
    line: int
    error: str


def parse_line(number: int, raw: bytes, fmt: Literal["text", "jsonl"]) -> InputRecord | BadLine:
    """One raw input line (with its newline) as a record, or the reason it is bad."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return BadLine(number, f"not valid UTF-8 ({error.reason} at byte offset {error.start} of the line)")
    line = line.removesuffix("\n").removesuffix("\r")
    if number == 1:
        line = line.removeprefix("\ufeff")  # a byte-order mark some editors write
    if fmt == "text":
        return InputRecord(number, None, text=line)
    return _parse_json_line(number, line)


def _parse_json_line(number: int, line: str) -> InputRecord | BadLine:
    if not line.strip():
        return BadLine(number, "blank line, expected a JSON object")
    try:
        data = json.loads(line)
    except json.JSONDecodeError as error:
        return BadLine(number, f"invalid JSON: {error.msg} at column {error.colno}")
    if not isinstance(data, dict):
        return BadLine(number, f"expected a JSON object, got {_json_type(data)}")
    return parse_record(number, data)


def parse_record(number: int, data: dict[str, Any]) -> InputRecord | BadLine:
    """An input record's fields (a JSON line's object, a Parquet or Arrow row; a missing field and null are
    alike) as a record, or the reason it is bad."""
    data = {key: value for key, value in data.items() if value is not None}
    identifier = data.get("id")
    if identifier is not None and (isinstance(identifier, bool) or not isinstance(identifier, str | int)):
        return BadLine(number, f'"id" must be a string or an integer, got {_json_type(identifier)}')
    if ("text" in data) == ("tokens" in data):
        return BadLine(number, 'expected exactly one of "text" and "tokens"')
    if "text" in data:
        text = data["text"]
        if not isinstance(text, str):
            return BadLine(number, f'"text" must be a string, got {_json_type(text)}')
        if not _encodable(text):
            return BadLine(number, '"text" holds a lone surrogate escape (not a Unicode character)')
        return InputRecord(number, identifier, text=text)
    tokens = data["tokens"]
    if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) for t in tokens):
        return BadLine(number, '"tokens" must be a non-empty list of strings')
    blank = next((i for i, token in enumerate(tokens) if not token.strip()), None)
    if blank is not None:
        return BadLine(number, f'"tokens": token {blank} is empty or whitespace')
    if not all(_encodable(token) for token in tokens):
        return BadLine(number, '"tokens" holds a lone surrogate escape (not a Unicode character)')
    return InputRecord(number, identifier, tokens=tuple(tokens))


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _encodable(text: str) -> bool:
    """JSON may escape lone surrogates, which no UTF-8 output can hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class InputScan:
    """An input file read once: its SHA-256, size in bytes, number of lines and, when asked for every N
    lines, the byte offset where each run of N lines starts (``starts[0] == 0``)."""

    sha256: str
    size: int
    lines: int
    starts: tuple[int, ...] = ()


def scan_input(path: Path, every: int | None = None) -> InputScan:
    """Hash and count the lines of ``path`` in one read; ``every``: also where lines 1, N+1, 2N+1, ... start."""
    digest, size, newlines, last = hashlib.sha256(), 0, 0, b"\n"
    starts = [0] if every else []
    with path.open("rb") as handle:
        while block := handle.read(READ_BLOCK * 16):
            digest.update(block)
            count = block.count(b"\n")
            if every and (newlines + count) // every > newlines // every:  # a run starts after a newline here
                position, seen = -1, newlines
                while (position := block.find(b"\n", position + 1)) >= 0:
                    seen += 1
                    if seen % every == 0:
                        starts.append(size + position + 1)
            size += len(block)
            newlines += count
            last = block[-1:]
    lines = newlines + (last != b"\n")
    if starts and starts[-1] >= size:  # the file ends with a newline after a full run: no run starts there
        starts.pop()
    return InputScan(digest.hexdigest(), size, lines, tuple(starts))
