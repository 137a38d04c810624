"""Rows of any file as a stream of Arrow tables, and Arrow tables back to a file: what
`textcnn predict --input` reads and writes. Pure file I/O, no model.

Inputs: CSV, TSV, JSON Lines (`.jsonl`, `.json`, `.ndjson`), each maybe gzip'd (`.gz`), and
Parquet; read in chunks of `chunk_rows` rows, so memory stays flat whatever a file's size. Chunks
are cut the same way on every read (every `chunk_rows` rows of a file, the last one shorter), which
is what lets an interrupted run skip the chunks it committed and write the rest exactly as an
uninterrupted run would.

- CSV/TSV keep every column as a string exactly as written (the `csv` module: quotes, embedded
  newlines, commas); the first row is the header. A row that is not UTF-8 or has more fields than
  the header is still a row: its cells are kept (bad bytes as U+FFFD) and its error names the
  file and line.
- JSON Lines keep each object's fields: strings as they are, other values (numbers, lists,
  objects) as their JSON text, since a field's type may change from row to row. The columns are
  the fields of the first chunk, in the order met; a later row with another field, a line that is
  not JSON or not UTF-8, is a row with that error. A non-string text (`text_column`) is an error too.
- Parquet keeps its columns and types (`ParquetFile.iter_batches`).

Several inputs are one stream, in the order given, and must have the same columns.
A file that cannot be read at all is a DataError (one line).
"""

from __future__ import annotations

import csv
import glob
import gzip
import io
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from textcnn.errors import DataError

CHUNK_ROWS = 4096  # rows per chunk: big enough that per-chunk costs vanish, small enough for flat memory
FORMATS = ("csv", "tsv", "jsonl", "parquet")
_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


def format_of(path: str | Path) -> str | None:
    """The format a file's suffix names (a `.gz` after it ignored), or None."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return _SUFFIXES.get(suffixes[-1]) if suffixes else None


def expand_inputs(patterns: Sequence[str]) -> list[Path]:
    """Paths and globs as files, in the order given (a glob's matches sorted)."""
    paths: list[Path] = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern, recursive=True))
            if not matches:
                raise DataError(f"{pattern}: no file matches")
            paths += [Path(m) for m in matches]
        else:
            paths.append(Path(pattern))
    for path in paths:
        if not path.exists():
            raise DataError(f"{path}: file not found")
        if path.is_dir():
            raise DataError(f"{path}: is a folder, not a file")
        if format_of(path) is None:
            raise DataError(
                f"{path}: unknown format; name it .csv, .tsv, .jsonl, .json or .parquet (maybe .gz)"
            )
    return paths


@dataclass(frozen=True)
class Chunk:
    """Consecutive rows of one file: the table and, where a row could not be read as it should, why
    (`errors[i]` names the file and line; None when every row was fine)."""

    table: pa.Table
    errors: list[str | None] | None
    path: Path

    @property
    def num_rows(self) -> int:
        return self.table.num_rows


def read_chunks(
    paths: Sequence[Path], text_column: str | None = None, chunk_rows: int = CHUNK_ROWS, skip_rows: int = 0
) -> Iterator[Chunk]:
    """Every row of `paths`, in order, as chunks; the first `skip_rows` rows (a multiple of the
    chunks already read, when resuming) are read past and not yielded."""
    columns: list[str] | None = None
    for path in paths:
        for chunk in _read_file(path, text_column, chunk_rows, columns):
            names = chunk.table.schema.names
            if columns is None:
                columns = names
            elif names != columns:
                raise DataError(
                    f"{path}: columns {', '.join(names)} differ from the first input's ({', '.join(columns)})"
                )
            if skip_rows >= chunk.num_rows:
                skip_rows -= chunk.num_rows
                continue
            if skip_rows:
                errors = chunk.errors[skip_rows:] if chunk.errors else None
                chunk = Chunk(chunk.table.slice(skip_rows), errors, path)
                skip_rows = 0
            yield chunk


def count_rows(paths: Sequence[Path]) -> int | None:
    """Rows in all `paths` if every one is Parquet (its metadata says), else None (unknown)."""
    if not all(format_of(p) == "parquet" for p in paths):
        return None
    import pyarrow.parquet as pq

    try:
        return sum(pq.ParquetFile(p).metadata.num_rows for p in paths)
    except (pa.ArrowException, OSError):
        return None  # unreadable: said in one line when it is read


def _open_text(path: Path):
    try:
        raw = gzip.open(path, "rb") if path.suffix.lower() == ".gz" else path.open("rb")  # noqa: SIM115 (the caller closes the wrapper)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    # surrogateescape: a bad byte becomes a lone surrogate, found per row so its line is named
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")


def _clean(value: str) -> tuple[str, bool]:
    """`value` with undecodable bytes as U+FFFD, and whether it had any."""
    try:
        value.encode("utf-8")
        return value, False
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace"), True


def _read_file(
    path: Path, text_column: str | None, chunk_rows: int, columns: list[str] | None
) -> Iterator[Chunk]:
    kind = format_of(path)
    try:
        if kind == "parquet":
            yield from _read_parquet(path, chunk_rows)
        elif kind == "jsonl":
            yield from _read_jsonl(path, text_column, chunk_rows, columns)
        else:
            yield from _read_delimited(path, "\t" if kind == "tsv" else ",", chunk_rows)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None


def _read_parquet(path: Path, chunk_rows: int) -> Iterator[Chunk]:
    import pyarrow.parquet as pq

    try:
        source = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    pending: list[pa.RecordBatch] = []
    held = 0
    try:
        for batch in source.iter_batches(batch_size=chunk_rows):
            pending.append(batch)
            held += batch.num_rows
            while held >= chunk_rows:  # row groups may cut batches short: re-cut to exact chunks
                table = pa.Table.from_batches(pending, source.schema_arrow)
                yield Chunk(table.slice(0, chunk_rows), None, path)
                rest = table.slice(chunk_rows)
                pending, held = rest.to_batches(), rest.num_rows
    except pa.ArrowException as exc:
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    if held or source.metadata.num_rows == 0:
        yield Chunk(pa.Table.from_batches(pending, source.schema_arrow), None, path)


def _read_delimited(path: Path, delimiter: str, chunk_rows: int) -> Iterator[Chunk]:
    with _open_text(path) as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(f"{path}: empty file, no header row") from None
        except csv.Error as exc:
            raise DataError(f"{path}:1: {exc}") from None
        header = [_clean(name)[0] for name in header]
        if len(set(header)) != len(header):
            raise DataError(f"{path}:1: the header names a column twice ({', '.join(header)})")
        width = len(header)
        cells: list[list[str | None]] = [[] for _ in header]
        errors: list[str | None] = []
        yielded = False
        line = reader.line_num + 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:  # e.g. a NUL byte or an unterminated quote at the end
                row, error = [], f"{path}:{line}: {exc}"
            else:
                error = None
            if not row and error is None:  # a blank line is no row (as the csv module's DictReader)
                line = reader.line_num + 1
                continue
            try:  # one check a row, not a cell: most rows are clean
                "\n".join(row).encode("utf-8")
                bad = False
            except UnicodeEncodeError:
                row, bad = [_clean(value)[0] for value in row], True
            if error is None and bad:
                error = f"{path}:{line}: not UTF-8 (undecodable bytes shown as U+FFFD)"
            if error is None and len(row) > width:
                error = f"{path}:{line}: {len(row)} fields, the header has {width}"
            for i in range(width):
                cells[i].append(row[i] if i < len(row) else None)
            errors.append(error)
            line = reader.line_num + 1
            if len(errors) == chunk_rows:
                yield _chunk(path, header, cells, errors)
                cells, errors, yielded = [[] for _ in header], [], True
        if errors or not yielded:  # the last rows; a file of only a header still has its columns
            yield _chunk(path, header, cells, errors)


def _chunk(path: Path, names: list[str], cells: list[list], errors: list[str | None]) -> Chunk:
    table = pa.table([pa.array(column, type=pa.string()) for column in cells], names=names)
    return Chunk(table, errors if any(e is not None for e in errors) else None, path)


def _read_jsonl(
    path: Path, text_column: str | None, chunk_rows: int, columns: list[str] | None
) -> Iterator[Chunk]:
    with _open_text(path) as handle:
        rows: list[dict | None] = []
        found: list[tuple[str | None, int]] = []  # each row's error and line
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            text, bad = _clean(line)
            error = f"{path}:{number}: not UTF-8" if bad else None
            record = None
            if error is None:
                try:
                    record = json.loads(text)
                except ValueError as exc:
                    error = f"{path}:{number}: not JSON ({exc})"
                else:
                    if not isinstance(record, dict):
                        record, error = None, f"{path}:{number}: not a JSON object"
            if record is not None and text_column is not None:
                value = record.get(text_column)
                if value is not None and not isinstance(value, str):
                    error = f"{path}:{number}: text is not a string ({type(value).__name__})"
            rows.append(record)
            found.append((error, number))
            if len(rows) == chunk_rows:
                columns = columns or _fields(rows)
                yield _json_chunk(path, columns, rows, found)
                rows, found = [], []
        if rows or columns is None:
            yield _json_chunk(path, columns or _fields(rows), rows, found)


def _fields(rows: list[dict | None]) -> list[str]:
    return list(dict.fromkeys(key for row in rows if row is not None for key in row))


def _json_chunk(path: Path, columns: list[str], rows: list[dict | None], found: list) -> Chunk:
    known = set(columns)
    cells: list[list[str | None]] = [[] for _ in columns]
    errors: list[str | None] = []
    for row, (error, number) in zip(rows, found, strict=True):
        row = row or {}
        extra = [key for key in row if key not in known]
        if error is None and extra:
            error = f"{path}:{number}: field {extra[0]!r} is not among the columns ({', '.join(columns)})"
        for i, name in enumerate(columns):
            value = row.get(name)
            cells[i].append(
                value if value is None or isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            )
        errors.append(error)
    return _chunk(path, columns, cells, errors)


# -- writers ------------------------------------------------------------------------------------


class TableWriter:
    """Appends tables to one file of a format; `commit` makes what was written durable and says
    how far it goes (the byte offset a resumed run truncates to, or the parts written)."""

    def write(self, table: pa.Table) -> None:
        raise NotImplementedError

    def commit(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _TextWriter(TableWriter):
    def __init__(self, path: Path, offset: int | None):
        # offset None: a new file; else continue a committed one from that byte
        if offset is None:
            self.handle = path.open("wb")
        else:
            self.handle = path.open("r+b")
            self.handle.truncate(offset)
            self.handle.seek(offset)
        self.fresh = offset is None or offset == 0

    def commit(self) -> int:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        return self.handle.tell()

    def close(self) -> None:
        self.handle.close()


class DelimitedWriter(_TextWriter):
    """CSV/TSV, the header once; text cells exactly as they are, quoted only where needed."""

    def __init__(self, path: Path, delimiter: str, offset: int | None = None):
        super().__init__(path, offset)
        self.delimiter = delimiter

    def write(self, table: pa.Table) -> None:
        import pyarrow.csv as pcsv

        table = pa.table([_as_text(c) for c in table.columns], names=table.schema.names)
        options = pcsv.WriteOptions(
            include_header=self.fresh, delimiter=self.delimiter, quoting_style="needed"
        )
        pcsv.write_csv(table, self.handle, options)
        self.fresh = False


def _as_text(column: pa.ChunkedArray) -> pa.ChunkedArray | pa.Array:
    """A column CSV can hold: nested values as their JSON text, the rest as they are."""
    kind = column.type
    if pa.types.is_nested(kind) or pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        values = column.to_pylist()
        return pa.array(
            [None if v is None else json.dumps(v, ensure_ascii=False, default=repr) for v in values],
            pa.string(),
        )
    return column


class JsonlWriter(_TextWriter):
    """One JSON object a row, its fields in column order."""

    def write(self, table: pa.Table) -> None:
        lines = [json.dumps(row, ensure_ascii=False, default=str) for row in table.to_pylist()]
        if lines:
            self.handle.write(("\n".join(lines) + "\n").encode("utf-8"))


class ParquetPartsWriter(TableWriter):
    """Parquet can only be appended while its writer is open, so a resumable run writes each
    committed span as its own part file in `folder` and `concatenate` joins them at the end."""

    def __init__(self, folder: Path, parts: int = 0):
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("part-*.parquet"):  # parts written after the last commit
            if int(stale.stem.split("-")[1]) >= parts:
                stale.unlink()
        self.folder, self.parts = folder, parts
        self.pending: list[pa.Table] = []

    def write(self, table: pa.Table) -> None:
        self.pending.append(table)

    def commit(self) -> int:
        import pyarrow.parquet as pq

        if self.pending:
            target = self.folder / f"part-{self.parts:06d}.parquet"
            pq.write_table(pa.concat_tables(self.pending), target)
            with target.open("rb") as handle:
                os.fsync(handle.fileno())
            self.parts += 1
            self.pending = []
        return self.parts

    def close(self) -> None:
        self.pending = []

    def concatenate(self, target: Path, schema: pa.Schema | None) -> None:
        """The parts, in order, as one Parquet file at `target` (one part in memory at a time)."""
        import pyarrow.parquet as pq

        writer = None
        for i in range(self.parts):
            table = pq.read_table(self.folder / f"part-{i:06d}.parquet")
            if writer is None:
                writer = pq.ParquetWriter(target, table.schema)
            writer.write_table(table)
        if writer is None:
            pq.write_table((schema or pa.schema([])).empty_table(), target)
        else:
            writer.close()
