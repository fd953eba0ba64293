"""Writing files and directories so that a reader never sees half of one (the standard library has no such helper)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def write_atomically(path: str | os.PathLike[str], write: Callable[[IO[Any]], None], binary: bool = False) -> None:
    """Write to a temporary file beside ``path``, then rename it over ``path``; a failed write leaves
    the old file intact and no temporary file behind. ``write`` gets a text file, or bytes with ``binary``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes it private; the data file should not be
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def write_text_atomically(path: str | os.PathLike[str], text: str) -> None:
    write_atomically(path, lambda f: f.write(text))


def write_bytes_atomically(path: str | os.PathLike[str], data: bytes) -> None:
    write_atomically(path, lambda f: f.write(data), binary=True)


def replace_directory(source: Path, target: Path) -> None:
    """Move a finished directory into place, so a reader never sees a half-written one."""
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(source, target)
        shutil.rmtree(old)
    else:
        os.replace(source, target)


def _staging_prefix(target: Path) -> str:
    return f".{target.name}.tmp-"


@contextmanager
def staged_directory(target: Path) -> Iterator[Path]:
    """A temporary directory beside ``target`` to write into: it replaces ``target`` when the block ends
    without an error, and is removed when it does not."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=_staging_prefix(target), dir=target.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; the finished directory should not be
        yield staging
        replace_directory(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def remove_stale_staging(target: Path) -> list[Path]:
    """Remove the staging directories of ``target`` that a killed process left (:func:`staged_directory`
    cleans up after errors, not after SIGKILL); returns what it removed."""
    stale = sorted(target.parent.glob(f"{_staging_prefix(target)}*")) if target.parent.is_dir() else []
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale
