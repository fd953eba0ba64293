"""Result files: JSON objects in docs/results/ that map a name to one measured summary.

Every summary carries the ``command`` that produced it, so `deeprel report` can print it beside the
numbers and anyone can rerun it.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

from deeprel.atomic import write_text_atomically


def command_line(argv: list[str] | None = None) -> str:
    """The `deeprel ...` command being run, quoted so it can be pasted into a shell."""
    argv = sys.argv if argv is None else argv
    return " ".join(["deeprel", *(shlex.quote(a) for a in argv[1:])])


def read_results(path: Path) -> dict[str, Any]:
    """The summaries in ``path`` ({} when it does not exist yet); a malformed file is an error naming it."""
    if not path.exists():
        return {}
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a readable results file: {error}") from None
    if not isinstance(results, dict):
        raise ValueError(f"{path}: a results file must hold a JSON object (name -> summary)")
    return results


def add_result(path: Path, name: str, summary: dict[str, Any]) -> None:
    """Store ``summary`` under ``name`` in ``path``, keeping the other names; written atomically."""
    results = read_results(path)
    results[name] = summary
    write_text_atomically(path, json.dumps(results, indent=2, ensure_ascii=False) + "\n")


def evaluation_summary(result: Any, meta: dict[str, Any], data: Path, threshold: float, command: str) -> dict[str, Any]:
    """One `deeprel evaluate` run as a result-file entry: flat strict and boundaries scores in percent
    (two decimals), the relation threshold, the epoch and parameter count the model was saved with."""
    return {
        "data": data.name,
        "threshold": threshold,
        "epoch": meta.get("epoch"),
        "trainable_parameters": meta.get("trainable_parameters"),
        **{key: round(value, 2) for key, value in result.flat().items()},
        "command": command,
    }
