"""Extraction on Ray Data: the records ``deeprel extract`` writes, from an actor pool that a cluster scales.

Two entry points:

- :func:`extract_dataset` maps a Ray Dataset with a ``text`` (or ``tokens``) column and an optional ``id``
  through actors that each hold ``deeprel.load(model)``, and returns a Dataset of extraction rows under one
  explicit Arrow schema (:func:`output_schema`, derived from the extraction schema's models), so that a
  block with no entities or relations still writes to Parquet with the same types as any other.
- :func:`extract_files` (``deeprel extract --engine ray``) reads JSONL, text or Parquet files, folders, glob
  patterns or URLs (``s3://...``, passed to pyarrow's file systems as Ray's readers do) and writes shards to
  an output folder: ``SHARD.parquet`` or ``SHARD.jsonl``, bad rows in ``errors/SHARD.jsonl`` with their
  source file and row. A shard is a run of ``shard_rows`` input rows of one file, fixed before the job
  starts (local line files are scanned once for where each run starts; a remote or compressed line file is
  one shard), and read as one block that one actor turns into one file: temporary name, then rename, the
  errors file first. A rerun of the same command skips the shards whose file exists, and refuses when the
  model, its settings or the input content differ (``extract.state.json``), as ``deeprel extract`` does.

The model reaches the actors as a path (shared storage, or one machine) or through the object store: its
directory's files, made self-contained by :func:`~deeprel.model.files.copy_model_directory`, are put there
once and each actor writes them to a temporary folder and loads them. The torch module is never pickled.

Each CPU actor asks Ray for ``threads`` CPUs and runs that many torch threads (default one: processes beat
threads on a shared CPU, see :mod:`deeprel.extract`); a GPU actor asks for ``num_gpus``. Read tasks ask for
no CPU, so that actors filling every core cannot starve the reads that feed them (reading and parsing lines
costs ~1% of extraction).
"""

from __future__ import annotations

import dataclasses
import glob as globbing
import hashlib
import json
import os
import re
import tempfile
import time
import types
import typing
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import ray
from pydantic import BaseModel
from ray.data import ActorPoolStrategy, Dataset
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from deeprel.data.extraction import (
    ExtractedEntity,
    ExtractedSentence,
    Extraction,
    RelationRecord,
    extraction_record,
)
from deeprel.data.lines import BadLine, InputRecord, parse_line, parse_record, scan_input
from deeprel.data.types import DataError
from deeprel.runtime import DEFAULT_PRECISION, EXTRACT_BATCH_SIZE, Precision, pick_device, resolve_precision

# This module is imported by Ray's read tasks too, which need no model: torch and the model code are imported
# where they are used (the actors, and the driver's model checks).

OutputFormat = Literal["parquet", "jsonl"]
FileFormat = Literal["jsonl", "text", "parquet"]
ModelTransfer = Literal["object_store", "path"]
STATE_FILE = "extract.state.json"
STATE_VERSION = 1
ERRORS_DIR = "errors"
LINE_SUFFIXES = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".txt": "text", ".text": "text"}
COMPRESSED = (".gz", ".bz2", ".zst", ".lz4")
URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]+://)")  # a location with a scheme: s3://, gs://, file://


# --- The output schema, derived from the extraction schema's models (deeprel.data.extraction) ---------------


def _arrow_type(annotation: Any) -> pa.DataType:
    """The Arrow type of a field of the extraction models (str, int, float, optional, tuples, models)."""
    if annotation is str:
        return pa.string()
    if annotation is int:
        return pa.int64()
    if annotation is float:
        return pa.float64()
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in args if a is not type(None)]  # X | None: nullable, and every Arrow field is
        return _arrow_type(inner)
    if origin is tuple:  # tuple[X, ...], or a pair such as (start, end): a list either way
        return pa.list_(_arrow_type(args[0]))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return pa.struct([pa.field(name, _arrow_type(f.annotation)) for name, f in annotation.model_fields.items()])
    raise TypeError(f"no Arrow type for {annotation!r}")


# The written record's fields (Extraction.to_dict): relations name their head and tail by index (RelationRecord).
EXTRACTION_FIELDS = (
    pa.field("text", pa.string()),
    pa.field("sentences", pa.list_(_arrow_type(ExtractedSentence))),
    pa.field("entities", pa.list_(_arrow_type(ExtractedEntity))),
    pa.field("relations", pa.list_(_arrow_type(RelationRecord))),
)
assert [f.name for f in EXTRACTION_FIELDS] == list(Extraction.model_fields), "the extraction schema changed"


def output_schema(keep: Sequence[pa.Field] = (), located: bool = False) -> pa.Schema:
    """Rows of :func:`extract_dataset`: ``id`` (a string: Parquet needs one type, and JSON ids may be
    strings or integers), ``source`` and ``line`` when the rows come from files, the kept input columns,
    the extraction, and ``error`` (null for a good row; a bad row has empty sentences, entities, relations)."""
    fields = [pa.field("id", pa.string())]
    if located:
        fields += [pa.field("source", pa.string()), pa.field("line", pa.int64())]
    return pa.schema([*fields, *keep, *EXTRACTION_FIELDS, pa.field("error", pa.string())])


# --- The actors -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActorSettings:
    """What each actor needs besides the model (plain values: Ray sends them to the actors)."""

    text_column: str = "text"
    tokens_column: str = "tokens"
    id_column: str = "id"
    keep: tuple[str, ...] = ()
    batch_size: int = EXTRACT_BATCH_SIZE
    threshold: float | None = None
    precision: str = DEFAULT_PRECISION
    entity_scores: bool = True
    threads: int = 1
    device: str = "auto"
    sink: ShardSink | None = None  # extract_files: write each shard and return its counts


class ExtractActor:
    """Holds one loaded model; each call turns a batch (a pyarrow Table) into extraction rows, or, with a
    sink, writes the shard the batch is and returns a row of counts."""

    def __init__(self, model: str | ray.ObjectRef, settings: ActorSettings) -> None:
        self.settings = settings
        if isinstance(model, ray.ObjectRef):  # Ray Data hands constructor arguments over as they were given
            model = ray.get(model)
        if isinstance(model, dict):  # the model directory's files, from the object store
            self._folder = tempfile.TemporaryDirectory(prefix="deeprel-model-")
            for name, content in model.items():
                path = Path(self._folder.name, name)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content)
            model = self._folder.name
        from deeprel.api import load

        self.extractor = load(
            model,
            device=settings.device,
            batch_size=settings.batch_size,
            threshold=settings.threshold,
            num_threads=settings.threads,
            precision=settings.precision,  # type: ignore[arg-type]
            entity_scores=settings.entity_scores,
        )

    def __call__(self, batch: pa.Table) -> pa.Table:
        s = self.settings
        rows = batch.select([c for c in (s.text_column, s.tokens_column, s.id_column) if c in batch.column_names])
        parsed = [parse_record(i, row) for i, row in enumerate(rows.to_pylist())]
        if "error" in batch.column_names:  # rows a file reader already found bad
            errors = batch["error"].to_pylist()
            parsed = [BadLine(i, e) if e is not None else p for i, (p, e) in enumerate(zip(parsed, errors))]
        good = [p for p in parsed if isinstance(p, InputRecord)]
        from deeprel.extract import extract_inputs

        found = iter(extract_inputs(self.extractor, good))
        extractions = [next(found) if isinstance(p, InputRecord) else None for p in parsed]
        if s.sink is not None:
            return s.sink.write(batch, parsed, extractions)
        return _rows(batch, parsed, extractions, s)


def _extraction_table(extractions: Sequence[Extraction | None]) -> pa.Table:
    """The extraction fields of each row (a bad row's: no text, empty lists)."""
    empty = {"text": None, "sentences": [], "entities": [], "relations": []}
    records = [e.to_dict() if e is not None else empty for e in extractions]
    return pa.Table.from_pylist(records, schema=pa.schema(EXTRACTION_FIELDS))


def _rows(
    batch: pa.Table, parsed: Sequence[InputRecord | BadLine], extractions: Sequence[Extraction | None], s: ActorSettings
) -> pa.Table:
    n = batch.num_rows
    ids = pc.cast(batch[s.id_column], pa.string()) if s.id_column in batch.column_names else pa.nulls(n, pa.string())
    columns: dict[str, Any] = {"id": ids}
    for name in s.keep:
        columns[name] = batch[name]
    extraction = _extraction_table(extractions)
    columns.update({f.name: extraction[f.name] for f in EXTRACTION_FIELDS})
    columns["error"] = pa.array([p.error if isinstance(p, BadLine) else None for p in parsed], pa.string())
    keep = [batch.schema.field(name) for name in s.keep]
    return pa.Table.from_pydict(columns, schema=output_schema(keep))


def _actor_count(actors: int | None, threads: int, num_gpus: float, spare_cpus: int) -> int:
    """``actors``, else one per GPU share, or per ``threads`` of the cluster's CPUs less ``spare_cpus`` (left
    for the tasks that feed the actors: with every CPU held by an actor, a read task asking for one never
    starts and the job hangs)."""
    if actors is not None:
        if actors < 1:
            raise ValueError(f"actors must be at least 1, got {actors}")
        return actors
    resources = ray.cluster_resources()
    if num_gpus > 0:
        return max(1, int(resources.get("GPU", 0) // num_gpus))
    return max(1, int((resources.get("CPU", 1) - spare_cpus) // threads))


def _model_for_actors(model: str | Path, transfer: ModelTransfer) -> str | ray.ObjectRef:
    """The model as the actors get it: an absolute path, or its self-contained files in the object store."""
    from deeprel.model.files import copy_model_directory, model_directory

    directory = model_directory(model)
    if transfer == "path":
        return str(directory.resolve())
    if transfer != "object_store":
        raise ValueError(f"model_transfer must be 'object_store' or 'path', got {transfer!r}")
    with tempfile.TemporaryDirectory(prefix="deeprel-model-") as staging:
        copy = Path(staging) / "model"
        copy_model_directory(directory, copy)
        files = {p.relative_to(copy).as_posix(): p.read_bytes() for p in sorted(copy.rglob("*")) if p.is_file()}
    return ray.put(files)


def _map(
    dataset: Dataset,
    model: str | Path,
    settings: ActorSettings,
    count: int,
    num_gpus: float,
    model_transfer: ModelTransfer,
    batch_rows: int | None,
) -> Dataset:
    if settings.threads < 1 or settings.batch_size < 1:
        raise ValueError("threads and batch_size must be at least 1")
    settings = dataclasses.replace(settings, device=_device(num_gpus))
    return dataset.map_batches(
        ExtractActor,
        batch_size=batch_rows,
        batch_format="pyarrow",
        compute=ActorPoolStrategy(size=count),
        fn_constructor_args=(_model_for_actors(model, model_transfer), settings),
        num_cpus=settings.threads,
        num_gpus=num_gpus or None,
    )


def _device(num_gpus: float) -> str:
    """Where the actors run: GPU actors on CUDA, the others on CPU (never "auto": the driver may differ)."""
    return "cuda" if num_gpus > 0 else "cpu"


def extract_dataset(
    dataset: Dataset,
    model: str | Path,
    *,
    text_column: str = "text",
    tokens_column: str = "tokens",
    id_column: str = "id",
    keep: Sequence[str] = (),
    batch_size: int = EXTRACT_BATCH_SIZE,
    rows_per_call: int = 256,
    actors: int | None = None,
    threads: int = 1,
    num_gpus: float = 0,
    threshold: float | None = None,
    precision: Precision = DEFAULT_PRECISION,
    entity_scores: bool = True,
    model_transfer: ModelTransfer = "object_store",
) -> Dataset:
    """Extract from every row of ``dataset`` (a ``text`` string, or a ``tokens`` list of strings, and an
    optional ``id``) through a pool of ``actors``, each holding the model (default: one per ``num_gpus``
    GPUs, or per ``threads`` CPUs of the cluster less one, left for the dataset's own read tasks: pass
    ``actors`` to use every CPU when those ask for none). Returns a lazy Dataset of :func:`output_schema` rows, in
    Ray's order (not the input's: sort by a kept column if order matters); ``keep`` names input columns to
    carry over, types unchanged. A row with neither field, or a bad one, is not fatal: its ``error`` says
    why. ``batch_size`` is sentences per forward pass; ``rows_per_call`` rows go to an actor at a time.

    ``precision`` "auto" is resolved on this (the driver's) machine, so every actor runs the same one.
    """
    schema = dataset.schema()  # may run the dataset's first block: asked once
    names = schema.names if schema is not None else []
    if text_column not in names and tokens_column not in names:
        raise ValueError(f"the dataset has neither a {text_column!r} nor a {tokens_column!r} column (it has {names})")
    missing = [name for name in keep if name not in names]
    if missing:
        raise ValueError(f"keep: the dataset has no column {missing[0]!r} (it has {names})")
    clashes = [name for name in keep if name in output_schema().names]
    if clashes:
        raise ValueError(f"keep: {clashes[0]!r} is an output column already")
    settings = ActorSettings(
        text_column=text_column,
        tokens_column=tokens_column,
        id_column=id_column,
        keep=tuple(keep),
        batch_size=batch_size,
        threshold=threshold,
        precision=resolve_precision(precision, pick_device(_device(num_gpus))),
        entity_scores=entity_scores,
        threads=threads,
    )
    count = _actor_count(actors, threads, num_gpus, spare_cpus=1)
    return _map(dataset, model, settings, count, num_gpus, model_transfer, rows_per_call)


# --- Files in, shards out --------------------------------------------------------------------------------------


def _filesystem(location: str) -> tuple[pafs.FileSystem, str]:
    """pyarrow's file system for a path or URL (what Ray's readers use), and the path within it."""
    if URL.match(location):
        return pafs.FileSystem.from_uri(location)
    return pafs.LocalFileSystem(), str(Path(location).expanduser().resolve())


def _file_format(path: str, forced: str) -> FileFormat | None:
    if forced != "auto":
        return forced  # type: ignore[return-value]
    name = path.lower()
    for suffix in COMPRESSED:
        name = name.removesuffix(suffix)
    if name.endswith(".parquet"):
        return "parquet"
    return LINE_SUFFIXES.get(Path(name).suffix)  # type: ignore[return-value]


def resolve_inputs(inputs: Sequence[str], input_format: str = "auto") -> list[tuple[str, FileFormat]]:
    """Every input file with its format: a file as it is; a folder's files (recursively) whose names say a
    known format; a glob pattern's matches (local paths); a URL's object, or every known file under it."""
    found: list[tuple[str, FileFormat]] = []
    for location in inputs:
        if not URL.match(location) and globbing.has_magic(location):
            matches = sorted(globbing.glob(os.path.expanduser(location), recursive=True))
            if not matches:
                raise DataError(f"{location}: no file matches the pattern")
            found += resolve_inputs(matches, input_format)
            continue
        fs, path = _filesystem(location)
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            raise DataError(f"{location}: no such file or folder")
        if info.type == pafs.FileType.Directory:
            listed = fs.get_file_info(pafs.FileSelector(path, recursive=True))
            files = sorted(i.path for i in listed if i.type == pafs.FileType.File and not i.base_name.startswith("."))
            known = [(_url(location, f), _file_format(f, input_format)) for f in files]
            known = [(f, fmt) for f, fmt in known if fmt is not None]
            if not known:
                raise DataError(f"{location}: no .jsonl, .json, .txt or .parquet file in the folder")
            found += known  # type: ignore[arg-type]
            continue
        fmt = _file_format(path, input_format) or "text"  # a named file of no known suffix: text, as extract
        found.append((_url(location, path), fmt))
    if len({source for source, _ in found}) != len(found):
        raise DataError("an input file is named twice (by two of the inputs given)")
    return found


def _url(location: str, path: str) -> str:
    """A file system's path as a location like ``location``: a local absolute path, or with its URL scheme."""
    match = URL.match(location)
    return path if match is None else match.group(1) + path


@dataclass(frozen=True)
class Shard:
    """``count`` rows of ``source`` from row ``first`` (1-based); line files also give the bytes to read."""

    name: str
    source: str
    format: FileFormat
    first: int
    count: int | None  # None: the whole file (a remote or compressed line file)
    start: int = 0
    end: int | None = None


def shard_name(source: str, index: int) -> str:
    """A file name for a shard: the source's name, a hash of its full location (sources may share a name),
    the shard's number."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", source.rstrip("/").rsplit("/", 1)[-1])[:80]
    return f"{stem}-{hashlib.sha256(source.encode()).hexdigest()[:8]}-{index:05d}"


@dataclass(frozen=True)
class InputFile:
    """What the state records of an input: content hash when read locally, else its size."""

    source: str
    format: FileFormat
    size: int
    sha256: str | None


def plan_shards(files: Sequence[tuple[str, FileFormat]], shard_rows: int) -> tuple[list[Shard], list[InputFile]]:
    """Cut each input file into shards of ``shard_rows`` rows (see the module doc)."""
    shards: list[Shard] = []
    described: list[InputFile] = []
    for source, fmt in files:
        fs, path = _filesystem(source)
        local = isinstance(fs, pafs.LocalFileSystem)
        if fmt == "parquet":
            with fs.open_input_file(path) as handle:
                rows = pq.ParquetFile(handle).metadata.num_rows
            sha = scan_input(Path(path)).sha256 if local else None
            shards += [
                Shard(shard_name(source, k), source, fmt, first, min(shard_rows, rows - first + 1))
                for k, first in enumerate(range(1, rows + 1, shard_rows))
            ]
            described.append(InputFile(source, fmt, fs.get_file_info(path).size, sha))
        elif local and not path.lower().endswith(COMPRESSED):
            scan = scan_input(Path(path), every=shard_rows)
            ends = [*scan.starts[1:], scan.size]
            shards += [
                Shard(
                    shard_name(source, k),
                    source,
                    fmt,
                    k * shard_rows + 1,
                    min(shard_rows, scan.lines - k * shard_rows),
                    start,
                    end,
                )
                for k, (start, end) in enumerate(zip(scan.starts, ends))
            ]
            described.append(InputFile(source, fmt, scan.size, scan.sha256))
        else:
            shards.append(Shard(shard_name(source, 0), source, fmt, 1, None))
            described.append(InputFile(source, fmt, fs.get_file_info(path).size, None))
    return shards, described


# The rows a file reader hands the actors: where each row is from, its fields, or why it is bad.
INPUT_SCHEMA = pa.schema(
    [
        pa.field("shard", pa.string()),
        pa.field("source", pa.string()),
        pa.field("line", pa.int64()),
        pa.field("id_json", pa.string()),  # the id as JSON: a JSONL id keeps its type (string or integer)
        pa.field("text", pa.string()),
        pa.field("tokens", pa.list_(pa.string())),
        pa.field("error", pa.string()),
    ]
)


def read_shard(shard: Shard) -> pa.Table:
    """A shard's rows (:data:`INPUT_SCHEMA`); a bad row carries its error and nothing is dropped."""
    fs, path = _filesystem(shard.source)
    if shard.format == "parquet":
        records = _parquet_rows(fs, path, shard)
    else:
        if shard.count is None:
            with fs.open_input_stream(path, compression="detect") as handle:
                data = handle.readall()
        else:
            with fs.open_input_file(path) as handle:
                handle.seek(shard.start)
                data = handle.read((shard.end if shard.end is not None else handle.size()) - shard.start)
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()  # the newline that ends the last line
        records = [parse_line(shard.first + i, raw, shard.format) for i, raw in enumerate(lines)]  # type: ignore[arg-type]
    rows = []
    for record in records:
        row: dict[str, Any] = {"shard": shard.name, "source": shard.source, "line": record.line}
        if isinstance(record, BadLine):
            row["error"] = record.error
        else:
            row.update(id_json=json.dumps(record.id), text=record.text, tokens=record.tokens)
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=INPUT_SCHEMA)


def _parquet_rows(fs: pafs.FileSystem, path: str, shard: Shard) -> list[InputRecord | BadLine]:
    with fs.open_input_file(path) as handle:
        parquet = pq.ParquetFile(handle)
        names = [n for n in ("id", "text", "tokens") if n in parquet.schema_arrow.names]
        if "text" not in names and "tokens" not in names:
            raise DataError(f"{shard.source}: no 'text' or 'tokens' column (it has {parquet.schema_arrow.names})")
        # the row groups that hold rows [first, first + count), read and sliced
        offset, groups, skip = 0, [], None
        for g in range(parquet.num_row_groups):
            size = parquet.metadata.row_group(g).num_rows
            if offset + size >= shard.first and offset < shard.first - 1 + (shard.count or 0):
                groups.append(g)
                skip = shard.first - 1 - offset if skip is None else skip
            offset += size
        table = parquet.read_row_groups(groups, columns=names).slice(skip or 0, shard.count)
    return [parse_record(shard.first + i, row) for i, row in enumerate(table.to_pylist())]


class ShardInput(Datasource):
    """A Ray datasource of shards: one read task, and one block, per shard (so one actor call per shard)."""

    def __init__(self, shards: Sequence[Shard]) -> None:
        self.shards = list(shards)

    def estimate_inmemory_data_size(self) -> int | None:
        return sum((s.end or 0) - s.start for s in self.shards) or None

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None, data_context=None):
        def task(shard: Shard) -> ReadTask:
            metadata = BlockMetadata(
                num_rows=shard.count, size_bytes=None, exec_stats=None, input_files=(shard.source,)
            )
            return ReadTask(lambda: [read_shard(shard)], metadata, schema=INPUT_SCHEMA)

        return [task(shard) for shard in self.shards]


@dataclass(frozen=True)
class ShardSink:
    """Writes a shard (output and errors) under ``output`` and returns its counts (:data:`COUNTS_SCHEMA`)."""

    output: str
    format: OutputFormat

    def write(
        self, batch: pa.Table, parsed: Sequence[InputRecord | BadLine], extractions: Sequence[Extraction | None]
    ) -> pa.Table:
        names = set(batch["shard"].to_pylist())
        if len(names) != 1:
            raise RuntimeError(f"a batch held {len(names)} shards, expected one")  # Ray kept blocks whole so far
        name = names.pop()
        fs, root = _filesystem(self.output)
        sources, lines = batch["source"].to_pylist(), batch["line"].to_pylist()
        ids = [json.loads(i) if i is not None else None for i in batch["id_json"].to_pylist()]
        bad = [(s, n, p.error) for s, n, p in zip(sources, lines, parsed) if isinstance(p, BadLine)]
        if bad:
            errors = "".join(json.dumps({"source": s, "line": n, "error": e}) + "\n" for s, n, e in bad)
            _put(fs, f"{root}/{ERRORS_DIR}/{name}.jsonl", errors.encode("utf-8"))
        good = [(s, n, i, e) for s, n, i, e in zip(sources, lines, ids, extractions) if e is not None]
        target = f"{root}/{name}.{self.format}"
        if self.format == "jsonl":
            text = "".join(
                json.dumps({"source": s, **extraction_record(n, i, e)}, ensure_ascii=False) + "\n"
                for s, n, i, e in good
            )
            _put(fs, target, text.encode("utf-8"))
        else:
            extraction = _extraction_table([e for *_, e in good])
            columns = {
                "id": pa.array([None if i is None else str(i) for _, _, i, _ in good], pa.string()),
                "source": pa.array([s for s, *_ in good], pa.string()),
                "line": pa.array([n for _, n, _, _ in good], pa.int64()),
                **{f.name: extraction[f.name] for f in EXTRACTION_FIELDS},
            }
            table = pa.Table.from_pydict(columns, schema=SHARD_SCHEMA)
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink)
            _put(fs, target, sink.getvalue().to_pybytes())
        return pa.Table.from_pylist(
            [
                {
                    "shard": name,
                    "rows": batch.num_rows,
                    "documents": len(good),
                    "sentences": sum(len(e.sentences) for *_, e in good),
                    "errors": len(bad),
                    "error_lines": [f"{s}:{n}: {e}" for s, n, e in bad],
                }
            ],
            schema=COUNTS_SCHEMA,
        )


# A Parquet shard's rows: the good rows of output_schema(located=True), without the (always null) error.
SHARD_SCHEMA = output_schema(located=True).remove(output_schema(located=True).get_field_index("error"))
COUNTS_SCHEMA = pa.schema(
    [
        ("shard", pa.string()),
        ("rows", pa.int64()),
        ("documents", pa.int64()),
        ("sentences", pa.int64()),
        ("errors", pa.int64()),
        ("error_lines", pa.list_(pa.string())),
    ]
)


def _put(fs: pafs.FileSystem, path: str, content: bytes) -> None:
    """Write a file whole: a temporary name in the same folder, then a rename (a copy on object stores,
    where the object appears at once either way)."""
    folder, name = path.rsplit("/", 1)
    fs.create_dir(folder, recursive=True)
    temporary = f"{folder}/.{name}.tmp-{uuid.uuid4().hex}"
    with fs.open_output_stream(temporary) as handle:
        handle.write(content)
    fs.move(temporary, path)


@dataclass(frozen=True)
class ClusterState:
    """What a shard folder is made from (``extract.state.json``); a rerun resumes only when it matches."""

    version: int
    model: str
    model_sha256: str
    threshold: float | None
    precision: str
    entity_scores: bool
    output_format: str
    shard_rows: int
    inputs: list[dict[str, Any]] = field(default_factory=list)

    def differences(self, earlier: dict[str, Any]) -> list[str]:
        found = []
        for key, value in asdict(self).items():
            if key == "model":
                continue  # where the model is does not matter, its files do (model_sha256)
            if earlier.get(key) != value:
                shown = "different files" if key == "inputs" else f"{earlier.get(key)!r} before, {value!r} now"
                found.append(f"{key}: {shown}")
        return found


@dataclass(frozen=True)
class ClusterSummary:
    """What one :func:`extract_files` call did; counts cover this run's shards."""

    shards: int
    skipped_shards: int  # written completely by an earlier run
    rows: int
    documents: int
    sentences: int
    errors: int
    earlier_errors: int
    seconds: float

    @property
    def sentences_per_second(self) -> float:
        return self.sentences / self.seconds if self.seconds > 0 else 0.0

    def format(self) -> str:
        skipped = f", skipped {self.skipped_shards} shards done before" if self.skipped_shards else ""
        earlier = f" (and {self.earlier_errors} in earlier shards)" if self.earlier_errors else ""
        return (
            f"wrote {self.shards} shards{skipped}: {self.documents} documents ({self.sentences} sentences)"
            f" from {self.rows} rows, {self.errors} bad rows{earlier}, in {self.seconds:.1f} s:"
            f" {self.sentences_per_second:.1f} sentences/s"
        )


def _prepare_output(output: str, state: ClusterState, overwrite: bool) -> tuple[set[str], int]:
    """Ready the shard folder: the shards already written (and their error count), or a fresh start."""
    fs, root = _filesystem(output)
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.File:
        raise DataError(f"{output}: is a file; the Ray engine writes a folder of shards")
    listed = fs.get_file_info(pafs.FileSelector(root, recursive=True)) if info.type == pafs.FileType.Directory else []
    state_file = f"{root}/{STATE_FILE}"
    present = [i for i in listed if i.type == pafs.FileType.File]
    if overwrite or not present:
        for item in present:
            fs.delete_file(item.path)
        _put(fs, state_file, (json.dumps(asdict(state), indent=2) + "\n").encode("utf-8"))
        return set(), 0
    restart = "rerun with --overwrite to start over, or choose another output folder"
    if not any(i.path == state_file for i in present):
        raise DataError(f"{output}: not empty and holds no {STATE_FILE}: not written by deeprel; {restart}")
    with fs.open_input_stream(state_file) as handle:
        try:
            earlier = json.loads(handle.readall())
        except json.JSONDecodeError as error:
            raise DataError(f"{output}/{STATE_FILE}: unreadable ({error}); {restart}") from None
    differences = state.differences(earlier)
    if differences:
        raise DataError(f"{output} was made with other inputs or settings ({'; '.join(differences)}); {restart}")
    for item in present:
        if item.base_name.startswith(".") and ".tmp-" in item.base_name:
            fs.delete_file(item.path)  # a shard a killed run was writing
    # a shard is done when its output file is in the folder itself (errors/ holds files of the same suffix
    # for JSONL output, and an errors file is written before its shard's output)
    shards = [i for i in present if i.path == f"{root}/{i.base_name}" and i.extension == state.output_format]
    done = {i.base_name.removesuffix(f".{state.output_format}") for i in shards}
    earlier_errors = 0
    for item in present:
        if item.path.startswith(f"{root}/{ERRORS_DIR}/") and item.base_name.removesuffix(".jsonl") in done:
            with fs.open_input_stream(item.path) as handle:
                earlier_errors += handle.readall().count(b"\n")
    return done, earlier_errors


def extract_files(
    model: str | Path,
    inputs: Sequence[str],
    output: str,
    *,
    output_format: OutputFormat = "parquet",
    input_format: str = "auto",
    shard_rows: int = 1000,
    batch_size: int = EXTRACT_BATCH_SIZE,
    actors: int | None = None,
    threads: int = 1,
    num_gpus: float = 0,
    threshold: float | None = None,
    precision: Precision = DEFAULT_PRECISION,
    entity_scores: bool = True,
    model_transfer: ModelTransfer = "object_store",
    overwrite: bool = False,
    log: Callable[[str], None] = lambda _: None,
) -> ClusterSummary:
    """``deeprel extract --engine ray``: every input file's rows into shards under ``output`` (see the module
    doc). Needs a connected Ray (``ray.init``); returns the counts of the shards this run wrote. Each bad row
    goes to ``log`` as ``SOURCE:ROW: what is wrong`` as its shard finishes."""
    started = time.perf_counter()
    if output_format not in ("parquet", "jsonl"):
        raise ValueError(f"output format must be parquet or jsonl, got {output_format!r}")
    if shard_rows < 1:
        raise ValueError("shard_rows must be at least 1")
    files = resolve_inputs(inputs, input_format)
    shards, described = plan_shards(files, shard_rows)
    from deeprel.extract import fingerprint_model
    from deeprel.model.files import model_directory

    directory = model_directory(model)
    state = ClusterState(
        version=STATE_VERSION,
        model=str(directory.resolve()),
        model_sha256=fingerprint_model(directory),
        threshold=threshold,
        precision=resolve_precision(precision, pick_device(_device(num_gpus))),
        entity_scores=entity_scores,
        output_format=output_format,
        shard_rows=shard_rows,
        inputs=[asdict(f) for f in described],
    )
    done, earlier_errors = _prepare_output(output, state, overwrite)
    todo = [s for s in shards if s.name not in done]
    totals = {"shards": 0, "rows": 0, "documents": 0, "sentences": 0, "errors": 0}
    if todo:
        settings = ActorSettings(
            batch_size=batch_size,
            threshold=threshold,
            precision=state.precision,
            entity_scores=entity_scores,
            threads=threads,
            sink=ShardSink(output, output_format),
        )
        count = _actor_count(actors, threads, num_gpus, spare_cpus=0)  # the reads ask for no CPU
        # one read task per shard, as many at once as there are actors: enough to keep them fed, and each
        # task at no CPU would otherwise start a worker process of its own
        dataset = ray.data.read_datasource(
            ShardInput(todo), override_num_blocks=len(todo), num_cpus=0, concurrency=count
        )
        counts = _map(dataset, directory, settings, count, num_gpus, model_transfer, batch_rows=None)
        for batch in counts.iter_batches(batch_size=None, batch_format="pyarrow"):
            for row in batch.to_pylist():
                for line in row["error_lines"]:
                    log(line)
                totals["shards"] += 1
                for key in ("rows", "documents", "sentences", "errors"):
                    totals[key] += row[key]
    return ClusterSummary(
        skipped_shards=len(shards) - len(todo),
        earlier_errors=earlier_errors,
        seconds=time.perf_counter() - started,
        **totals,
    )


def connect(address: str | None) -> bool:
    """Join the Ray cluster at ``address`` ("auto": the one started on this machine by ``ray start``), or
    start a local one when None; returns whether this call started it (and should shut it down)."""
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, include_dashboard=False, logging_level="WARNING")
    except ConnectionError as error:
        raise DataError(f"cannot reach the Ray cluster at {address}: {error}") from None
    return True
