"""Scoring files on a Ray cluster (`textcnn predict BUNDLE --ray [ADDRESS] --input GLOB --output DIR`).

A Ray Data pipeline: the inputs are read by Ray's read tasks (CSV, JSON Lines, Parquet: see
`_RowsDatasource`), a pool of actors (`_Scorer`, the bundle loaded once per actor) appends the
model's answer to each batch with `scoring.score_table`, the same code as a local `predict`, and
Ray's write tasks write one file per output block into a folder beside `out_dir`, renamed to
`out_dir` only once every block is written: a reader sees all of the output or none of it.

Every output row carries where it came from: `input_file` (the path as the workers read it) and
`input_row` (its number among the file's data rows, from 1: a CSV's header is not a row, a JSON
Lines file's blank lines are not rows), so the output, written in whatever order the blocks finish,
can be joined back to its input, and "each input row exactly once" can be checked.

Faults: an actor that dies (killed, out of memory, its node lost) is restarted by Ray and its
unfinished batch sent again (`max_restarts`, `max_task_retries` on the pool); a write task retried
writes the same file name again, so no row is written twice. An exception raised by the scoring
itself (a TextCNNError: a missing text column, a CSV that does not parse) is not retried: it would
fail again, and it ends the run with one line, leaving no `out_dir`.

The cluster is joined by `textcnn.ray_cluster.connect` (`--ray` alone: start a local one). Input
and output paths must be readable and writable by every node under the same name (one machine, or
a shared file system); the final rename is done by this process.

Ray is an optional extra: this module imports it only when it runs (through `ray_cluster`, whose
ImportError is the one-line "--ray needs the ray extra").
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from textcnn.errors import ConfigError, DataError, TextCNNError
from textcnn.inference.scoring import ScoreOptions, score_table

FILE_COLUMN = "input_file"
ROW_COLUMN = "input_row"
# A reader's finding about one row (a JSON Lines line that is not a JSON object), carried to the
# actor beside the row and handed to `score_table` as its `row_errors`; never written out.
_READER_ERROR = "__textcnn_reader_error"
FORMATS = ("parquet", "csv", "jsonl")
_KINDS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}


@dataclass(frozen=True)
class RayScoring:
    """How the pipeline runs; the CLI's `--ray-*` flags take these defaults."""

    workers: int = 2  # actors, each holding one copy of the bundle
    output_format: str = "parquet"
    # Rows per actor call. Small enough that a killed actor loses little work and the pool stays
    # busy; large enough to amortise Ray's per-call cost (~1 ms) over `score_table`'s ~2-5 ms per
    # 1000 short texts (measured here, 1 thread, models/single).
    batch_rows: int = 1024
    block_rows: int = 4096  # rows per table a read task yields
    # Ray CPUs each actor holds (its torch threads: the whole part, at least 1). None: 1, or less
    # where the cluster is small, so that one CPU stays free: Ray Data's read and write tasks ask
    # for one, and with every CPU held by actors the pipeline waits forever (seen here: 2 actors of
    # 1 CPU on a 2-CPU cluster never read a row).
    cpus_per_worker: float | None = None
    progress: bool = False  # Ray Data's progress bars

    def __post_init__(self):
        if self.workers < 1:
            raise ConfigError(f"--ray-workers must be >= 1, got {self.workers}")
        if self.output_format not in FORMATS:
            raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {self.output_format!r}")
        if self.batch_rows < 1 or self.block_rows < 1:
            raise ConfigError("batch_rows and block_rows must be >= 1")
        if self.cpus_per_worker is not None and self.cpus_per_worker <= 0:
            raise ConfigError(f"cpus per worker must be > 0, got {self.cpus_per_worker}")


def input_files(inputs: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """The files `inputs` names (paths or globs, in that order, each glob sorted), absolute, once
    each; DataError for a name that matches nothing or a file of a kind that cannot be read."""
    names = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    found: dict[Path, None] = {}
    for name in names:
        matches = sorted(glob.glob(os.path.expanduser(str(name)), recursive=True))
        files = [Path(m).resolve() for m in matches if Path(m).is_file()]
        if not files:
            raise DataError(f"--input {name}: no file matches")
        for file in files:
            if _kind(file) is None:
                raise DataError(
                    f"{file}: cannot read a {file.suffix or 'suffix-less'} file; use .csv, .tsv, .jsonl or .parquet"
                )
            found.setdefault(file)
    return list(found)


def _kind(path: Path | str) -> str | None:
    return _KINDS.get(Path(path).suffix.lower())


# -- reading: one datasource for every kind, adding the row ids ------------------------------------


def _with_ids(table: pa.Table, path: str, first: int, errors: list | None = None) -> pa.Table:
    for name in (FILE_COLUMN, ROW_COLUMN):
        if name in table.schema.names:
            raise DataError(f"{path}: has a column {name!r}, the name the output gives each row's origin")
    n = table.num_rows
    table = table.append_column(FILE_COLUMN, pa.array([path] * n, pa.string()))
    table = table.append_column(ROW_COLUMN, pa.array(range(first, first + n), pa.int64()))
    return table.append_column(_READER_ERROR, pa.array(errors or [None] * n, pa.string()))


def _read_delimited(data: pa.Buffer, path: str, block_rows: int, delimiter: str) -> Iterator[pa.Table]:
    """Every column as a string, as written ("007" stays "007", "" stays ""): pyarrow would infer
    numbers otherwise, and Ray's read_csv gives no way to say "all strings" without the names, so
    the header is read first. Quoted cells may hold newlines (`newlines_in_values`; off by default
    in pyarrow, whose rows would then break at them)."""
    from pyarrow import csv

    parse = csv.ParseOptions(delimiter=delimiter, newlines_in_values=True)
    read = csv.ReadOptions(use_threads=False, block_size=1 << 20)
    try:
        names = csv.open_csv(pa.BufferReader(data), read_options=read, parse_options=parse).schema.names
        convert = csv.ConvertOptions(column_types={name: pa.string() for name in names})
        reader = csv.open_csv(
            pa.BufferReader(data), read_options=read, parse_options=parse, convert_options=convert
        )
        pending: list[pa.RecordBatch] = []
        rows = 1
        for batch in reader:
            pending.append(batch)
            if sum(b.num_rows for b in pending) >= block_rows:
                table = pa.Table.from_batches(pending)
                yield _with_ids(table, path, rows)
                rows, pending = rows + table.num_rows, []
        if pending:
            yield _with_ids(pa.Table.from_batches(pending), path, rows)
    except pa.ArrowInvalid as exc:
        kind = "CSV" if delimiter == "," else "TSV"
        raise DataError(f"{path}: not a readable {kind} file ({exc})") from None


def _jsonl_table(rows: list[dict]) -> pa.Table:
    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # A column holding numbers in some rows and strings in others: each non-string cell as
        # its JSON text, so no row is refused for its neighbours' types.
        return pa.Table.from_pylist(
            [{k: v if v is None or isinstance(v, str) else json.dumps(v) for k, v in r.items()} for r in rows]
        )


def _read_jsonl(data: pa.Buffer, path: str, block_rows: int) -> Iterator[pa.Table]:
    """One JSON object a line. A line that is not one (broken JSON, a list, bytes not UTF-8) stays a
    row, empty but for its ids, with the reader's error naming `path:line`: no row is dropped."""
    rows: list[dict] = []
    errors: list[str | None] = []
    first = 1
    for line_number, raw in enumerate(memoryview(data).tobytes().split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw.decode("utf-8"))
            problem = None if isinstance(value, dict) else f"a JSON {type(value).__name__}, not an object"
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            value, problem = None, f"not JSON ({exc})"
        rows.append(value if problem is None else {})
        errors.append(None if problem is None else f"{path}:{line_number}: {problem}")
        if len(rows) >= block_rows:
            yield _with_ids(_jsonl_table(rows), path, first, errors)
            first, rows, errors = first + len(rows), [], []
    if rows:
        yield _with_ids(_jsonl_table(rows), path, first, errors)


def _read_parquet(data: pa.Buffer, path: str, block_rows: int) -> Iterator[pa.Table]:
    import pyarrow.parquet as pq

    first = 1
    for batch in pq.ParquetFile(pa.BufferReader(data)).iter_batches(batch_size=block_rows):
        yield _with_ids(pa.Table.from_batches([batch]), path, first)
        first += batch.num_rows


def _datasource(paths: list[str], kind: str, block_rows: int):
    from ray.data.datasource import FileBasedDatasource

    class _RowsDatasource(FileBasedDatasource):
        """Ray's file listing and read tasks, with our readers: a file is read whole into one
        buffer (pyarrow's, not Python objects) because a CSV's header is read before its rows and a
        Parquet file's footer before its row groups; split inputs too large for a worker's memory."""

        def _read_stream(self, f: pa.NativeFile, path: str) -> Iterator[pa.Table]:
            data = f.read_buffer()
            if kind in ("csv", "tsv"):
                yield from _read_delimited(data, path, block_rows, "," if kind == "csv" else "\t")
            elif kind == "jsonl":
                yield from _read_jsonl(data, path, block_rows)
            else:
                yield from _read_parquet(data, path, block_rows)

    return _RowsDatasource(paths)


# -- scoring: one actor per worker, the bundle loaded once ------------------------------------------


def _runs(files: list[str], rows: list[int]) -> Iterator[tuple[int, int]]:
    """[start, stop) of each stretch of consecutive rows of one file (a batch may join blocks)."""
    start = 0
    for i in range(1, len(files) + 1):
        if i == len(files) or files[i] != files[i - 1] or rows[i] != rows[i - 1] + 1:
            yield start, i
            start = i


class _Scorer:
    def __init__(self, bundle: str, options: ScoreOptions, threads: int):
        import torch

        from textcnn.inference.classifier import Classifier

        torch.set_num_threads(threads)  # the CPUs the actor holds, not all the node's cores
        self.classifier = Classifier.load(bundle, device="cpu")
        self.options = options

    def __call__(self, batch: pa.Table) -> pa.Table:
        files = batch.column(FILE_COLUMN).to_pylist()
        rows = batch.column(ROW_COLUMN).to_pylist()
        found = batch.column(_READER_ERROR).to_pylist()
        batch = batch.drop_columns([_READER_ERROR])
        text = self.options.text_column
        if text not in batch.schema.names:
            if all(error is not None for error in found):  # unreadable lines only: no column to miss
                batch = batch.append_column(text, pa.nulls(batch.num_rows, pa.string()))
            else:
                names = [name for name in batch.schema.names if name not in (FILE_COLUMN, ROW_COLUMN)]
                raise ConfigError(f"{files[0]}: no column {text!r}; the columns are: {', '.join(names)}")
        return pa.concat_tables(
            score_table(
                self.classifier,
                batch.slice(start, stop - start),
                self.options,
                first_row=rows[start],
                row_errors=found[start:stop],
            )
            for start, stop in _runs(files, rows)
        )


# -- the pipeline -----------------------------------------------------------------------------------


def _user_error(exc: BaseException) -> TextCNNError | None:
    """The TextCNNError a worker raised, for a person: Ray hands it back wrapped (a RayTaskError of
    a UserCodeException, the original kept as `cause` or only as text in the worker's traceback),
    so it is looked for in the chain, then as a `textcnn.errors.X: message` line."""
    import textcnn.errors

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TextCNNError) and type(seen).__module__ == "textcnn.errors":
            return type(seen)(str(seen).strip().splitlines()[-1])
        seen = getattr(seen, "cause", None) or seen.__cause__ or seen.__context__
    for line in reversed(str(exc).splitlines()):
        name, colon, message = line.strip().partition(": ")
        kind = getattr(textcnn.errors, name.removeprefix("textcnn.errors."), None) if colon else None
        if name.startswith("textcnn.errors.") and isinstance(kind, type) and issubclass(kind, TextCNNError):
            return kind(message)
    return None


def _cpus_per_worker(config: RayScoring, cluster_cpus: float) -> float:
    """The CPUs each actor asks for, leaving one of the cluster's free to read and write with."""
    spare = cluster_cpus - 1
    if config.cpus_per_worker is None:
        if spare <= 0:
            raise ConfigError(f"the Ray cluster has {cluster_cpus:g} CPU; scoring needs at least 2")
        return min(1.0, spare / config.workers)
    if config.workers * config.cpus_per_worker > spare:
        raise ConfigError(
            f"{config.workers} workers of {config.cpus_per_worker:g} CPU leave none of the Ray cluster's "
            f"{cluster_cpus:g} CPUs to read and write with; ask for fewer workers or CPUs per worker"
        )
    return config.cpus_per_worker


def _write(dataset, folder: Path, output_format: str, workers: int) -> None:
    io = {"concurrency": workers}
    if output_format == "parquet":
        dataset.write_parquet(str(folder), **io)
    elif output_format == "csv":
        dataset.write_csv(str(folder), **io)
    else:
        dataset.write_json(str(folder), force_ascii=False, **io)


def _count(folder: Path, output_format: str) -> tuple[int, int, list[str]]:
    """Rows, rows with an error (the last column: `score_table` writes `error` last) and the files."""
    import pyarrow.compute as pc

    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    rows = errors = 0
    for file in files:
        if output_format == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(file)
        elif output_format == "csv":
            from pyarrow import csv

            parse = csv.ParseOptions(newlines_in_values=True)
            table = csv.read_csv(file, parse_options=parse)
        else:
            from pyarrow import json as pa_json

            table = pa_json.read_json(file)
        rows += table.num_rows
        if table.num_columns:
            errors += table.num_rows - pc.sum(pc.is_null(table.column(table.num_columns - 1))).as_py() or 0
    return rows, errors, [f.name for f in files]


def score_files_on_ray(
    bundle: str | os.PathLike,
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    options: ScoreOptions = ScoreOptions(),  # noqa: B008 (frozen)
    address: str | None = None,
    workers: int | None = None,
    config: RayScoring = RayScoring(),
) -> dict[str, Any]:
    """Score every row of `inputs` (paths or globs of .csv/.tsv/.jsonl/.parquet files) with the
    bundle on the Ray cluster at `address` (None: start or join a local one), `workers` actors
    (default `config.workers`), into a new folder `out_dir` of `config.output_format` files; the
    summary: files, rows, rows with an error, seconds and rows per second."""
    if workers is not None:
        config = RayScoring(**{**config.__dict__, "workers": workers})
    files = input_files(inputs)
    out_dir = Path(out_dir).resolve()
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ConfigError(f"--output {out_dir}: exists and is not an empty folder; name a new one")
    from textcnn.inference.classifier import Classifier

    Classifier.load(bundle, device="cpu")  # a broken bundle: one line here, not one per actor
    bundle = str(Path(bundle).resolve())
    from textcnn.ray_cluster import connect

    connect(address, flag="--ray")
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = config.progress
    started = time.perf_counter()
    by_kind: dict[str, list[str]] = {}
    for file in files:
        by_kind.setdefault(_kind(file), []).append(str(file))
    datasets = [
        ray.data.read_datasource(_datasource(paths, kind, config.block_rows))
        for kind, paths in by_kind.items()
    ]
    dataset = datasets[0].union(*datasets[1:]) if len(datasets) > 1 else datasets[0]
    cpus = _cpus_per_worker(config, ray.cluster_resources().get("CPU", 0.0))
    threads = max(1, int(cpus))
    scored = dataset.map_batches(
        _Scorer,
        fn_constructor_args=(bundle, options, threads),
        batch_size=config.batch_rows,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=config.workers),
        num_cpus=cpus,
    )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    partial = out_dir.parent / f".{out_dir.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        _write(scored, partial, config.output_format, config.workers)
        seconds = time.perf_counter() - started
        rows, errors, written = _count(partial, config.output_format)
        if out_dir.exists():
            out_dir.rmdir()  # empty (checked above); rename does not replace a folder
        partial.rename(out_dir)
    except Exception as exc:
        shutil.rmtree(partial, ignore_errors=True)
        error = _user_error(exc)
        if error is not None:
            raise error from None  # one line; the worker's traceback is in Ray's logs
        raise
    return {
        "output": str(out_dir),
        "format": config.output_format,
        "input_files": len(files),
        "output_files": len(written),
        "rows": rows,
        "errors": errors,
        "workers": config.workers,
        "cpus_per_worker": cpus,
        "seconds": round(seconds, 3),
        "rows_per_second": round(rows / seconds, 1) if seconds > 0 else None,
    }
