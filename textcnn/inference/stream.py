"""Scoring files of any size as a stream: `textcnn predict BUNDLE --input FILE...`.

Chunks of rows (`textcnn.data.tables`) go to worker processes that tokenize them while the main
process runs the forward pass (`textcnn.inference.scoring`) and writes; at most a few chunks are
in flight, so memory stays flat whatever the input's size, and their order is kept.

The output is written beside its target, as `.NAME.partial` (CSV, TSV, JSON Lines: one file
appended to) or `.NAME.parts/` (Parquet: one part file per commit), with `.NAME.progress.json`
saying how far it is committed (rows done, the byte offset or the parts, and what it is an output
of: the bundle's config.json sha256, the inputs with their sizes and times, the options). After
every chunk the output is synced and the progress file rewritten atomically; at the end the output
is renamed onto the target, so an interrupted run (Ctrl-C, SIGTERM) leaves nothing at the target.
`resume` checks the progress file matches this run, truncates the output to its last commit,
skips the rows already done and goes on; chunks are cut the same way on every read, so the
result is byte for byte the uninterrupted run's. Without `resume` a leftover is replaced.

Several inputs are one output, their rows in the order given (they must have the same columns).
Without an output the rows go to stdout as JSON Lines, as they are scored (no resume).
"""

from __future__ import annotations

import collections
import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from textcnn.data.tables import (
    CHUNK_ROWS,
    FORMATS,
    Chunk,
    DelimitedWriter,
    JsonlWriter,
    ParquetPartsWriter,
    count_rows,
    expand_inputs,
    format_of,
    read_chunks,
)
from textcnn.errors import ConfigError, DataError
from textcnn.inference.scoring import (
    EncodedTexts,
    ScoreOptions,
    encode_texts,
    score_encoded,
    text_type,
    text_values,
)

if TYPE_CHECKING:
    from textcnn.data.text import TextEncoder
    from textcnn.inference.classifier import Classifier


def default_workers() -> int:
    # On 2 idle cores (models/single, 200k rows of benchmarks/batch.py's file) one worker gave
    # 7,550 rows/s against 7,080 in-process: a few % for a second process's start-up and memory
    # (and under load it was slower: 1,680 vs 1,790), so none there. Above 2 cores workers keep the
    # tokenizing off the forward pass's cores; how many pays is not measured here.
    return 0 if (os.cpu_count() or 1) <= 2 else min(4, (os.cpu_count() or 1) // 2)


@dataclass(frozen=True)
class StreamConfig:
    inputs: tuple[str, ...]
    output: str | None = None  # None: JSON Lines on stdout
    format: str | None = None  # default: from the output's suffix
    resume: bool = False
    workers: int | None = None  # tokenizing processes; None: default_workers(); 0: all in-process
    progress: bool = True  # a tqdm bar on stderr
    chunk_rows: int = CHUNK_ROWS
    options: ScoreOptions = field(default_factory=ScoreOptions)

    def __post_init__(self):
        if not self.inputs:
            raise ConfigError("--input needs at least one file")
        if self.format is not None and self.format not in FORMATS:
            raise ConfigError(f"unknown format {self.format!r}; one of {', '.join(FORMATS)}")
        if self.workers is not None and self.workers < 0:
            raise ConfigError(f"workers must be >= 0, got {self.workers}")
        if self.resume and self.output is None:
            raise ConfigError("--resume needs --output (stdout cannot be resumed)")
        if self.chunk_rows < 1:
            raise ConfigError(f"chunk_rows must be >= 1, got {self.chunk_rows}")


class Interrupted(Exception):
    """The run was stopped (Ctrl-C, SIGTERM) with `rows` committed; the message says how to go on."""

    def __init__(self, message: str, rows: int):
        super().__init__(message)
        self.rows = rows


# -- workers: tokenizing ------------------------------------------------------------------------

_ENCODER: TextEncoder | None = None


def _start_worker(encoder: TextEncoder) -> None:
    global _ENCODER
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides what Ctrl-C means
    _ENCODER = encoder


def _encode_in_worker(column, not_text: str | None) -> EncodedTexts:
    return encode_texts(_ENCODER, column.to_pylist(), not_text)


def _encoded_chunks(
    classifier: Classifier, chunks: Iterator[Chunk], text_column: str, workers: int
) -> Iterator[tuple[Chunk, EncodedTexts]]:
    """Each chunk with its texts encoded, in order; with workers, a few chunks ahead."""
    if workers == 0:
        # In turn with the model, not read ahead by a thread: on 2 cores a reading thread took
        # them from the forward pass (200k rows, models/single: 5,460 rows/s against 6,220).
        for chunk in chunks:
            values, not_text = _text_of(chunk, text_column)
            yield chunk, encode_texts(classifier.encoder, values, not_text)
        return
    # forkserver: the workers start from a clean interpreter, not a copy of the main process's
    # torch threads; the encoder is sent once to each.
    context = multiprocessing.get_context("forkserver")
    pool = context.Pool(workers, initializer=_start_worker, initargs=(classifier.encoder,))
    try:
        pending: collections.deque = collections.deque()
        for chunk in chunks:
            _, not_text = _text_of(chunk, text_column, values=False)
            column = chunk.table.column(text_column).combine_chunks()
            if column.type != pa.string() and not_text is None:  # dictionary, large or null: as text
                column = column.cast(pa.string())
            pending.append((chunk, pool.apply_async(_encode_in_worker, (column, not_text))))
            if len(pending) > 2 * workers:  # bounded: flat memory, workers never idle
                chunk, result = pending.popleft()
                yield chunk, result.get()
        while pending:
            chunk, result = pending.popleft()
            yield chunk, result.get()
        pool.close()
    finally:
        pool.terminate()
        pool.join()


def _text_of(chunk: Chunk, text_column: str, values: bool = True) -> tuple[list, str | None]:
    """The chunk's texts (`values`: else only the column's check), its file named if it has none."""
    try:
        if values:
            return text_values(chunk.table, text_column)
        return [], text_type(chunk.table.schema, text_column)
    except ConfigError as exc:
        raise ConfigError(f"{chunk.path}: {exc}") from None


# -- the run --------------------------------------------------------------------------------------


@dataclass
class _Leftover:
    partial: Path
    progress: Path

    def remove(self) -> None:
        if self.partial.is_dir():
            shutil.rmtree(self.partial)
        else:
            self.partial.unlink(missing_ok=True)
        self.progress.unlink(missing_ok=True)


def _identity(classifier: Classifier, paths: list[Path], config: StreamConfig, fmt: str) -> dict:
    bundle = hashlib.sha256((classifier.card.path / "config.json").read_bytes()).hexdigest()
    inputs = []
    for path in paths:
        stat = path.stat()
        inputs.append({"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    return {
        "bundle": bundle,
        "inputs": inputs,
        "options": asdict(config.options),
        "format": fmt,
        "chunk_rows": config.chunk_rows,
    }


def predict_files(classifier: Classifier, config: StreamConfig) -> dict:
    """Score `config.inputs` into `config.output`; returns rows done, rows with an error, seconds."""
    paths = expand_inputs(config.inputs)
    options = config.options
    if options.threshold is not None and not classifier.multi_label:
        raise ConfigError("--threshold is for multi-label bundles; this one gives one label per text")
    workers = default_workers() if config.workers is None else config.workers
    if config.output is None:
        return _run(classifier, paths, config, workers, None, "jsonl")
    target = Path(config.output)
    fmt = config.format or format_of(target)
    if fmt is None:
        raise ConfigError(
            f"{target}: cannot tell the format from the name; give --format ({', '.join(FORMATS)})"
        )
    if target.is_dir():
        raise ConfigError(f"{target}: is a folder; --output names a file")
    if not target.parent.is_dir():
        raise ConfigError(f"{target}: cannot write there (no folder {target.parent})")
    if not os.access(target.parent, os.W_OK):
        raise ConfigError(f"{target}: cannot write there (folder {target.parent} is not writable)")
    return _run(classifier, paths, config, workers, target, fmt)


def _run(
    classifier: Classifier,
    paths: list[Path],
    config: StreamConfig,
    workers: int,
    target: Path | None,
    fmt: str,
) -> dict:
    started = time.perf_counter()
    state = {"rows": 0, "offset": 0, "parts": 0}
    if target is not None:
        suffix = ".parts" if fmt == "parquet" else ".partial"
        leftover = _Leftover(
            target.with_name(f".{target.name}{suffix}"), target.with_name(f".{target.name}.progress.json")
        )
        identity = _identity(classifier, paths, config, fmt)
        if config.resume and leftover.progress.exists():
            saved = json.loads(leftover.progress.read_text(encoding="utf-8"))
            if saved.get("of") != identity:
                differs = [k for k in identity if saved.get("of", {}).get(k) != identity[k]]
                raise ConfigError(
                    f"{leftover.progress}: a leftover of another run (its {', '.join(differs)} differ); "
                    "run without --resume to start over"
                )
            state = {k: saved[k] for k in state}
        else:
            leftover.remove()
        writer = _writer(fmt, leftover.partial, state if config.resume and state["rows"] else None)
    else:
        writer = JsonlWriter.__new__(JsonlWriter)  # stdout: no file, no commits
        writer.handle, writer.fresh = sys.stdout.buffer, True
    from tqdm import tqdm

    bar = tqdm(
        total=count_rows(paths),
        initial=state["rows"],
        unit=" rows",
        disable=not config.progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    errors = 0
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        chunks = read_chunks(paths, config.options.text_column, config.chunk_rows, state["rows"])
        first_row = state["rows"]
        schema = None
        for chunk, encoded in _encoded_chunks(classifier, chunks, config.options.text_column, workers):
            table = score_encoded(classifier, chunk.table, encoded, config.options, first_row, chunk.errors)
            schema = schema or table.schema
            errors += table.num_rows - table.column(table.num_columns - 1).null_count
            writer.write(table)
            first_row += table.num_rows
            if target is None:
                sys.stdout.buffer.flush()
            else:
                mark = writer.commit()
                state = {
                    "rows": first_row,
                    "offset": mark if fmt != "parquet" else 0,
                    "parts": mark if fmt == "parquet" else 0,
                }
                _save_progress(leftover.progress, state, identity)
            bar.update(table.num_rows)
        if target is not None:
            writer.close()
            _finish(writer, leftover, target, fmt, schema)
    except KeyboardInterrupt:
        if target is None:
            raise Interrupted(f"interrupted after {state['rows']} rows", state["rows"]) from None
        writer.close()
        raise Interrupted(
            f"interrupted: {state['rows']} rows committed, nothing written to {target}; "
            "run the same command with --resume to continue",
            state["rows"],
        ) from None
    except BaseException:
        if target is not None:  # a failed run (not an interrupted one) leaves nothing to resume
            writer.close()
            leftover.remove()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        bar.close()
    return {"rows": first_row, "errors": errors, "seconds": time.perf_counter() - started}


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _writer(fmt: str, partial: Path, state: dict | None):
    try:
        if fmt == "parquet":
            return ParquetPartsWriter(partial, state["parts"] if state else 0)
        offset = state["offset"] if state else None
        if fmt == "jsonl":
            return JsonlWriter(partial, offset)
        return DelimitedWriter(partial, "\t" if fmt == "tsv" else ",", offset)
    except OSError as exc:
        raise DataError(f"{partial}: cannot write ({exc.strerror or exc})") from None


def _save_progress(path: Path, state: dict, identity: dict) -> None:
    from textcnn.runtime import atomic_write_bytes

    atomic_write_bytes(path, json.dumps({**state, "of": identity}, indent=1).encode("utf-8"))


def _finish(writer, leftover: _Leftover, target: Path, fmt: str, schema) -> None:
    if fmt == "parquet":
        joined = target.with_name(f".{target.name}.joined")
        writer.concatenate(joined, schema)
        os.replace(joined, target)
    else:
        os.replace(leftover.partial, target)
    leftover.remove()
