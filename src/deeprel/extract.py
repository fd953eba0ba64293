"""Batch extraction over a large file: streamed in chunks of lines, resumable, bad lines reported and skipped.

Input, one document a line: JSONL (an object with ``"text"``, a document that may hold many sentences, or
``"tokens"``, one pre-tokenised sentence, and an optional ``"id"``) or plain text (a blank line is a document
with no sentences). Output: JSONL, one record per good input line, in input order,
``{"line": N, "id": ..., **Extraction.to_dict()}`` (``line`` counts from 1; ``id`` is null for text input),
the record ``deeprel predict`` writes too (:func:`deeprel.data.extraction.extraction_record`).

Next to the output ``OUT.jsonl`` live
    OUT.errors.jsonl  the bad input lines, ``{"line": N, "error": "..."}`` (empty when there were none)
    OUT.state.json    what the output is made from: the input's SHA-256 and size, the model files' SHA-256,
                      the input format, the threshold, the encoder's precision and whether entities
                      are scored: the output's metadata.
A rerun onto the same output continues after its last complete record (a torn last line, left by a kill,
is cut off) when all of these match, and refuses otherwise; ``overwrite`` starts over. The input's content
is compared, not its path or modification time: a moved or copied input resumes, an edited one does not.
Hashing it costs one extra read of the file, nothing next to running the model over it. Batch size, chunk
size and workers may differ between runs: they change the speed, not what is extracted.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import closing
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import BinaryIO, Literal, TextIO

from tqdm import tqdm

from deeprel.api import Extraction, Extractor, load
from deeprel.atomic import write_atomically, write_text_atomically
from deeprel.data.extraction import extraction_record
from deeprel.data.lines import READ_BLOCK, BadLine, InputRecord, parse_line, scan_input
from deeprel.data.readers import read_documents
from deeprel.data.text import Tokenizer
from deeprel.data.types import DataError, Document
from deeprel.model.files import REQUIRED_FILES, model_directory
from deeprel.runtime import (
    DEFAULT_PRECISION,
    EXTRACT_BATCH_SIZE,
    Precision,
    pick_device,
    resolve_precision,
    usable_cores,
)

InputFormat = Literal["auto", "text", "jsonl"]
OnError = Literal["skip", "stop"]
STATE_VERSION = 1


@dataclass(frozen=True)
class Chunk:
    """Consecutive input lines, parsed; ``size`` counts them all, good and bad."""

    good: tuple[InputRecord, ...]
    bad: tuple[BadLine, ...]
    size: int


@dataclass(frozen=True)
class ChunkResult:
    lines: tuple[tuple[int, str], ...]  # (input line, output JSON line) for each good record, in order
    sentences: int


@dataclass(frozen=True)
class ExtractState:
    """What an output was made from; stored as ``OUT.state.json``. ``input``/``model`` are for people only."""

    version: int
    input: str
    input_sha256: str
    input_size: int
    input_format: Literal["text", "jsonl"]
    model: str
    model_sha256: str
    threshold: float | None
    precision: str = "fp32"  # the encoder's (states written before precision was a choice were all fp32)
    entity_scores: bool = True

    def differences(self, earlier: ExtractState) -> list[str]:
        """How an earlier run's state differs from this run's, in words (empty when it may be resumed)."""
        found = []
        if earlier.version != self.version:
            found.append(f"state version {earlier.version}, now {self.version}")
        if (earlier.input_sha256, earlier.input_size) != (self.input_sha256, self.input_size):
            found.append(f"input: the content of {self.input} differs from {earlier.input} before")
        if earlier.input_format != self.input_format:
            found.append(f"input format: {earlier.input_format} before, {self.input_format} now")
        if earlier.model_sha256 != self.model_sha256:
            found.append(f"model: the files of {self.model} differ from {earlier.model} before")
        if earlier.threshold != self.threshold:
            found.append(f"threshold: {earlier.threshold} before, {self.threshold} now")
        if earlier.precision != self.precision:
            found.append(f"precision: {earlier.precision} before, {self.precision} now")
        if earlier.entity_scores != self.entity_scores:
            found.append(f"entity scores: {earlier.entity_scores} before, {self.entity_scores} now")
        return found


@dataclass(frozen=True)
class ExtractSummary:
    """What one call of :func:`extract_file` did. Counts are for this run; ``seconds`` is the whole call."""

    lines_read: int  # input lines handled by this run
    resumed_after: int  # input lines an earlier run had already done (0 on a fresh start)
    documents_written: int
    sentences: int
    bad_lines: int  # bad lines this run met and skipped
    earlier_bad_lines: int  # bad lines an earlier run recorded, still in OUT.errors.jsonl
    seconds: float

    @property
    def sentences_per_second(self) -> float:
        return self.sentences / self.seconds if self.seconds > 0 else 0.0

    @property
    def lines_per_second(self) -> float:
        return self.lines_read / self.seconds if self.seconds > 0 else 0.0

    def format(self) -> str:
        resumed = f"resumed after line {self.resumed_after}; " if self.resumed_after else ""
        earlier = f" (and {self.earlier_bad_lines} from earlier runs)" if self.earlier_bad_lines else ""
        return (
            f"{resumed}read {self.lines_read} lines, wrote {self.documents_written} documents"
            f" ({self.sentences} sentences), skipped {self.bad_lines} bad lines{earlier}"
            f" in {self.seconds:.1f} s: {self.sentences_per_second:.1f} sentences/s,"
            f" {self.lines_per_second:.1f} lines/s"
        )


def errors_path(output: Path) -> Path:
    return output.with_name(output.stem + ".errors.jsonl")


def state_path(output: Path) -> Path:
    return output.with_name(output.stem + ".state.json")


def extract_file(
    model_dir: str | Path,
    input_path: str | Path,
    output_path: str | Path,
    *,
    input_format: InputFormat = "auto",
    batch_size: int = EXTRACT_BATCH_SIZE,
    chunk_size: int = 256,
    workers: int | None = None,
    on_error: OnError = "skip",
    threshold: float | None = None,
    overwrite: bool = False,
    progress: bool = True,
    precision: Precision = DEFAULT_PRECISION,
    entity_scores: bool = True,
) -> ExtractSummary:
    """Extract from every line of ``input_path`` into ``output_path`` (see the module docstring).

    ``precision`` is the encoder's (see :func:`deeprel.load`); "auto" is resolved here, on this machine, and
    the state file records the precision used: a rerun resumes only at the same one.

    Bad lines are reported on stderr and in ``OUT.errors.jsonl``; ``on_error="stop"`` raises ``DataError``
    at the first one instead. ``workers`` processes share the work (default: one per CPU core; one on a GPU);
    they are spawned, so a script that calls this with several workers needs ``if __name__ == "__main__":``.
    """
    started = time.perf_counter()
    input_path, output_path = Path(input_path), Path(output_path)
    if batch_size < 1 or chunk_size < 1 or (workers is not None and workers < 1):
        raise ValueError("batch_size, chunk_size and workers must be at least 1")
    if on_error not in ("skip", "stop"):
        raise ValueError(f"on_error must be 'skip' or 'stop', got {on_error!r}")
    if output_path.exists() and output_path.resolve() == input_path.resolve():
        raise ValueError(f"{output_path}: the output would overwrite the input")
    fmt = resolve_input_format(input_path, input_format)
    scan = scan_input(input_path)
    input_sha256, input_size, total_lines = scan.sha256, scan.size, scan.lines
    model_dir = model_directory(model_dir)  # checked; an installed package's name becomes its directory
    state = ExtractState(
        version=STATE_VERSION,
        input=str(input_path.resolve()),
        input_sha256=input_sha256,
        input_size=input_size,
        input_format=fmt,
        model=str(model_dir.resolve()),
        model_sha256=fingerprint_model(model_dir),
        threshold=threshold,
        precision=resolve_precision(precision, pick_device("auto")),
        entity_scores=entity_scores,
    )
    done, earlier_bad = _prepare_output(output_path, state, overwrite)
    options = _ModelOptions(str(model_dir), batch_size, threshold, state.precision, entity_scores)
    chunks = _read_chunks(input_path, fmt, done, chunk_size)
    documents = sentences = lines_read = bad_count = 0
    with (
        output_path.open("a", encoding="utf-8", newline="") as output,
        errors_path(output_path).open("a", encoding="utf-8", newline="") as errors,
        tqdm(
            total=total_lines, initial=done, unit="line", disable=not progress, file=sys.stderr, dynamic_ncols=True
        ) as bar,
        closing(_run_chunks(chunks, options, workers if workers is not None else _default_workers())) as results,
    ):
        for chunk, result in results:
            documents += _write_chunk(chunk, result, output, errors, input_path, stop=on_error == "stop")
            sentences += result.sentences
            lines_read += chunk.size
            bad_count += len(chunk.bad)
            bar.update(chunk.size)
            bar.set_postfix_str(f"{sentences / (time.perf_counter() - started):.1f} sentences/s", refresh=False)
    return ExtractSummary(
        lines_read=lines_read,
        resumed_after=done,
        documents_written=documents,
        sentences=sentences,
        bad_lines=bad_count,
        earlier_bad_lines=earlier_bad,
        seconds=time.perf_counter() - started,
    )


def _write_chunk(chunk: Chunk, result: ChunkResult, output: TextIO, errors: TextIO, source: Path, stop: bool) -> int:
    """Append a chunk's bad lines to the errors file (and stderr), then its records to the output; returns the
    number of records written. Errors go first and are flushed: a record in the output then implies that its
    chunk's errors are on disk, which resuming relies on. With ``stop`` only the records before the first bad
    line are written, then ``DataError`` is raised (its message is the report)."""
    bad = chunk.bad[:1] if stop else chunk.bad
    if not stop:
        for item in bad:
            tqdm.write(f"{source}:{item.line}: {item.error}", file=sys.stderr)
    errors.write("".join(json.dumps(asdict(item)) + "\n" for item in bad))  # ASCII: one record is one line
    errors.flush()
    written = [line for number, line in result.lines if not (stop and bad and number > bad[0].line)]
    output.write("".join(written))
    output.flush()
    if stop and bad:
        raise DataError(f"{source}: line {bad[0].line}: {bad[0].error}")
    return len(written)


PredictFormat = Literal["auto", "text", "spert", "jsonl", "bekoulis", "brat", "doccano", "label-studio", "extraction"]


def read_prediction_input(
    source: Path | None, text: str | None, input_format: PredictFormat = "auto"
) -> list[tuple[int, str | None, Document]]:
    """What ``deeprel predict`` reads, as ``(line, id, document)``: one string (``--text``), raw text with one
    document per line (``-`` is standard input; a blank line is a document without sentences), or annotated
    data in a format the readers know (each record one document, ``line`` its number from 1)."""
    tokenizer = Tokenizer()
    if text is not None:
        return [(1, None, tokenizer.document(text, id="text"))]
    if source is None:
        raise ValueError("nothing to predict on: give a file or a text")
    stdin = str(source) == "-"
    plain = stdin or (source.is_file() and source.suffix in {".txt", ""} and not _bekoulis(source))
    if input_format == "text" or (input_format == "auto" and plain):
        raw = sys.stdin.buffer.read() if stdin else source.read_bytes()
        documents = []
        # Lines as `deeprel extract` reads them (split at newlines only, a byte-order mark dropped).
        for number, line in enumerate(io.BytesIO(raw), start=1):
            record = parse_line(number, line, "text")
            if isinstance(record, BadLine):
                raise DataError(f"{source}:{number}: {record.error}")
            documents.append((number, None, tokenizer.document(record.text or "", id=f"line{number}")))
        return documents
    return [(n, d.id, d) for n, d in enumerate(read_documents(source, fmt=input_format), start=1)]


def _bekoulis(path: Path) -> bool:
    """Bekoulis files are .txt too; they start with a `#doc` line."""
    with path.open(encoding="utf-8") as handle:
        return handle.readline().startswith("#doc")


def resolve_input_format(path: Path, input_format: InputFormat) -> Literal["text", "jsonl"]:
    if input_format == "auto":
        return "jsonl" if path.suffix.lower() in {".jsonl", ".json"} else "text"
    if input_format not in ("text", "jsonl"):
        raise ValueError(f"input format must be auto, text or jsonl, got {input_format!r}")
    return input_format


def _read_chunks(path: Path, fmt: Literal["text", "jsonl"], start_after: int, size: int) -> Iterator[Chunk]:
    """The input after line ``start_after``, ``size`` lines at a time; only one chunk is held at once."""
    with path.open("rb") as handle:
        numbered = itertools.islice(enumerate(handle, start=1), start_after, None)
        while raw := list(itertools.islice(numbered, size)):
            parsed = [parse_line(number, line, fmt) for number, line in raw]
            yield Chunk(
                good=tuple(p for p in parsed if isinstance(p, InputRecord)),
                bad=tuple(p for p in parsed if isinstance(p, BadLine)),
                size=len(raw),
            )


def extract_inputs(extractor: Extractor, records: Sequence[InputRecord]) -> list[Extraction]:
    """Run the model over good records, in order; texts and token lists each go through in shared batches."""
    texts = [r.text for r in records if r.text is not None]
    sentences = [r.tokens for r in records if r.tokens is not None]
    from_texts = iter(extractor.extract(texts) if texts else [])
    from_tokens = iter(extractor.extract_tokens(sentences) if sentences else [])
    return [next(from_texts) if r.text is not None else next(from_tokens) for r in records]


def extract_records(extractor: Extractor, records: Sequence[InputRecord]) -> ChunkResult:
    """A chunk's good records as output lines."""
    results = extract_inputs(extractor, records)
    return ChunkResult(
        lines=tuple(
            (r.line, json.dumps(extraction_record(r.line, r.id, e), ensure_ascii=False) + "\n")
            for r, e in zip(records, results, strict=True)
        ),
        sentences=sum(len(e.sentences) for e in results),
    )


@dataclass(frozen=True)
class _ModelOptions:
    model_dir: str
    batch_size: int
    threshold: float | None
    precision: Precision
    entity_scores: bool

    def load(self) -> Extractor:
        return load(
            self.model_dir,
            batch_size=self.batch_size,
            threshold=self.threshold,
            num_threads=1,
            precision=self.precision,
            entity_scores=self.entity_scores,
        )


def _default_workers() -> int:
    import torch

    if torch.cuda.is_available():
        return 1
    return usable_cores()


def _run_chunks(chunks: Iterator[Chunk], options: _ModelOptions, workers: int) -> Iterator[tuple[Chunk, ChunkResult]]:
    """Each chunk with its extraction, in input order.

    Several cores are used by worker processes with one torch thread each, not by torch's intra-op threads
    in one process: measured on this 2-core CPU with the frozen CoNLL04 model, with the cores to itself, two
    processes gave 122-124 sentences/s, two threads 116-117 (115-116 with spaCy tokenising overlapped in a
    background thread: it takes ~1% of the time); while other jobs shared the cores, two threads fell to 4-24
    sentences/s (their barriers wait on descheduled threads), two processes only to 44-77.
    """
    if workers == 1:
        extractor = options.load()
        for chunk in chunks:
            yield chunk, extract_records(extractor, chunk.good)
        return
    # spawn, not fork: forking a process whose OpenMP threads are running can deadlock the child.
    pool = ProcessPoolExecutor(
        workers, mp_context=get_context("spawn"), initializer=_exit_with_parent, initargs=(os.getpid(),)
    )
    try:
        pending: deque[tuple[Chunk, Future[ChunkResult]]] = deque()
        for chunk in chunks:
            pending.append((chunk, pool.submit(_extract_in_worker, options, chunk.good)))
            if len(pending) >= 2 * workers:  # bounded: enough queued to keep every worker busy, no more
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()
    finally:
        pool.shutdown(cancel_futures=True)


def _exit_with_parent(parent: int) -> None:
    """Runs first in each worker. A parent killed outright (SIGKILL, SIGTERM) cannot shut its pool down, and
    its workers would otherwise linger forever, each holding a model in memory."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


_worker_extractor: Extractor | None = None


def _extract_in_worker(options: _ModelOptions, records: Sequence[InputRecord]) -> ChunkResult:
    """Runs in a worker process. The model is loaded on the first chunk (not in a pool initializer) so that
    a load failure reaches the caller as the ``ModelLoadError`` itself, not as a broken pool."""
    global _worker_extractor
    if _worker_extractor is None:
        _worker_extractor = options.load()
    return extract_records(_worker_extractor, records)


def fingerprint_model(model_dir: Path) -> str:
    """SHA-256 over the model directory's required files: the same model gives the same hash wherever it is."""
    digest = hashlib.sha256()
    for name in REQUIRED_FILES:
        digest.update(name.encode() + b"\0")
        with (model_dir / name).open("rb") as handle:
            while block := handle.read(READ_BLOCK * 16):
                digest.update(block)
    return digest.hexdigest()


def _prepare_output(output: Path, state: ExtractState, overwrite: bool) -> tuple[int, int]:
    """Start the output afresh or get it ready to resume: returns (lines done, bad lines kept)."""
    sidecar = state_path(output)
    if overwrite or not output.exists():
        write_text_atomically(sidecar, json.dumps(asdict(state), indent=2) + "\n")
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_bytes(b"")
        errors_path(output).write_bytes(b"")
        return 0, 0
    restart = "rerun with --overwrite to start over, or choose another output"
    if not sidecar.is_file():
        raise DataError(f"{output} exists without {sidecar.name}: not written by deeprel extract; {restart}")
    try:
        earlier = ExtractState(**json.loads(sidecar.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError) as error:
        raise DataError(f"{sidecar}: unreadable ({error}); {restart}") from None
    differences = state.differences(earlier)
    if differences:
        raise DataError(f"{output} was made by an earlier run with other inputs ({'; '.join(differences)}); {restart}")
    done = _cut_to_last_record(output)
    return done, _keep_errors_up_to(errors_path(output), done)


def _cut_to_last_record(path: Path) -> int:
    """Cut off a torn last line (written in part when a run was killed); the ``line`` of the last record left."""
    with path.open("rb+") as handle:
        end = _after_last_newline(handle, handle.seek(0, os.SEEK_END))
        handle.truncate(end)
        if end == 0:
            return 0
        start = _after_last_newline(handle, end - 1)
        handle.seek(start)
        last = handle.read(end - start)
    try:
        return int(json.loads(last)["line"])
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise DataError(
            f"{path}: the last line is not a deeprel extract record; rerun with --overwrite to start over"
        ) from None


def _after_last_newline(handle: BinaryIO, end: int) -> int:
    """The position just after the last newline before ``end`` (0 if none), read backwards block by block."""
    position = end
    while position > 0:
        size = min(READ_BLOCK, position)
        handle.seek(position - size)
        found = handle.read(size).rfind(b"\n")
        if found >= 0:
            return position - size + found + 1
        position -= size
    return 0


def _keep_errors_up_to(path: Path, done: int) -> int:
    """Drop the error records after line ``done`` (that part of the input is read again); how many are kept."""
    kept: list[str] = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
            try:
                complete = line.endswith("\n") and json.loads(line)["line"] <= done
            except (json.JSONDecodeError, KeyError, TypeError):
                complete = False
            if complete:
                kept.append(line)
    write_atomically(path, lambda f: f.writelines(kept))
    return len(kept)
