"""Reading labelled sentences from JSON Lines, CSV and TSV files, and a corpus from user files.

Everything that reads labelled sentences goes through here, so that a bad row is reported the same
way wherever it comes from: one line naming the file and line (`train.csv:17: no column 'label'`).
Rows whose text is empty are the one exception: real copies of the benchmarks carry a few, so they
are skipped with one `DataWarning` per file, and refused only with `strict_rows=True`. (The
`datasets` paths in `textcnn.data.hub` collect their rows with the same `_Rows`, for the same rule.)
"""

from __future__ import annotations

import codecs
import csv
import json
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textcnn.data.splits import Corpus, LabeledTexts, _check_seen_in_train
from textcnn.data.tokenizers import DEFAULT_TOKENIZER
from textcnn.errors import DataError, DataWarning

SHOWN_SKIPPED = 5  # line numbers a skipped-rows warning lists; enough to find them, short enough for one line


def _decoded_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of each physical line, decoded strictly so a bad byte names its line.

    Reading bytes and decoding per line (rather than `open(encoding=...)`) is what lets the error
    say where the bad byte is instead of only that the file is not UTF-8.
    """
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not a file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]  # editors on Windows write one; it is not text
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(
                    f"{path}:{number}: not UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
                ) from None


def _is_blank(value: Any) -> bool:
    """Empty, whitespace-only or null text: the one kind of bad row that is skipped, not refused."""
    return value is None or (isinstance(value, str) and not value.strip())


def _text_of(value: Any, where: str) -> str:
    if _is_blank(value):
        raise DataError(f"{where}: empty text")
    if not isinstance(value, str):
        raise DataError(f"{where}: text must be a string, got {type(value).__name__}")
    return value


def _label_of(value: Any, where: str) -> str:
    """Label names are strings; integer labels (common in CSV exports) become their decimal string."""
    if isinstance(value, bool):  # bool is an int subclass; `true` is almost certainly a mistake
        raise DataError(f"{where}: label must be a string or an integer, got {value!r}")
    if isinstance(value, int):
        return str(value)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataError(f"{where}: empty label")
    if not isinstance(value, str):
        raise DataError(f"{where}: label must be a string or an integer, got {type(value).__name__}")
    return value.strip()


@dataclass
class _Rows:
    """What a reader collects, with the skip-or-refuse rule for empty text in one place for all readers."""

    strict: bool
    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)

    def add(self, text: Any, label: Any, number: int, where: str) -> None:
        # A skipped row's label is not checked: the row is not used, and the warning names its line.
        if not self.strict and _is_blank(text):
            self.skipped.append(number)
            return
        self.texts.append(_text_of(text, where))
        self.labels.append(_label_of(label, where))
        self.lines.append(number)

    def labeled(self, source: str) -> LabeledTexts:
        return LabeledTexts(
            tuple(self.texts), tuple(self.labels), source, tuple(self.lines), tuple(self.skipped)
        )


def _warn_skipped(data: LabeledTexts, unit: str = "line") -> None:
    """One warning per file (or split) that lost rows to empty text, naming the first few."""
    count = len(data.skipped)
    if not count:
        return
    shown = ", ".join(map(str, data.skipped[:SHOWN_SKIPPED])) + (", ..." if count > SHOWN_SKIPPED else "")
    rows, where = ("1 row", unit) if count == 1 else (f"{count} rows", f"{unit}s")
    warnings.warn(
        f"{data.source}: skipped {rows} with empty text ({where} {shown}); --strict-rows refuses them",
        DataWarning,
        stacklevel=3,  # past this helper and its caller: at the caller's caller (outside, when direct)
    )


def _read_jsonl(path: Path, text_column: str, label_column: str, strict_rows: bool) -> _Rows:
    rows = _Rows(strict_rows)
    for number, line in _decoded_lines(path):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(row, dict):
            raise DataError(
                f"{where}: not a JSON object (got {type(row).__name__}); expected one object a line (JSON Lines)"
            )
        for column in (text_column, label_column):
            if column not in row:
                raise DataError(f"{where}: no column {column!r} (columns: {', '.join(map(str, row))})")
        rows.add(row[text_column], row[label_column], number, where)
    return rows


class _LineTracker:
    """Feeds decoded lines to `csv` and remembers their numbers, so a row maps back to its first line.

    `csv.reader.line_num` counts lines consumed, which for a quoted multi-line field is the row's
    last line, and DictReader silently skips blank lines; tracking the lines ourselves gives the
    line a person sees the row start on.
    """

    def __init__(self, path: Path):
        self._lines = _decoded_lines(path)
        self.since_mark: list[tuple[int, bool]] = []  # (line number, blank) since the last mark

    def __iter__(self) -> Iterator[str]:
        for number, line in self._lines:
            self.since_mark.append((number, line in ("\n", "\r\n")))
            yield line

    def mark(self) -> None:
        self.since_mark.clear()

    def row_start(self) -> int:
        return next((n for n, blank in self.since_mark if not blank), self.since_mark[-1][0])


def _read_delimited(path: Path, text_column: str, label_column: str, tsv: bool, strict_rows: bool) -> _Rows:
    tracker = _LineTracker(path)
    # CSV follows RFC 4180 (quoted fields may hold commas, quotes, newlines); TSV as pandas and
    # spreadsheets write it has no quoting, so a quote character there is just text.
    reader = (
        csv.DictReader(tracker, delimiter="\t", quoting=csv.QUOTE_NONE) if tsv else csv.DictReader(tracker)
    )
    rows = _Rows(strict_rows)
    try:
        header = reader.fieldnames
        if header is None:
            raise DataError(f"{path}: empty file (no header, no rows)")
        header_line = tracker.row_start()
        for column in (text_column, label_column):
            if column not in header:
                columns = ", ".join(header) or "none"
                raise DataError(f"{path}:{header_line}: no column {column!r} (columns: {columns})")
        tracker.mark()
        for row in reader:
            number = tracker.row_start()
            where = f"{path}:{number}"
            tracker.mark()
            if None in row:  # DictReader's restkey: more fields than the header names
                count = len(header) + len(row[None])
                raise DataError(f"{where}: {count} fields, the header has {len(header)}")
            if any(value is None for value in row.values()):  # restval: fewer fields than the header
                count = sum(value is not None for value in row.values())
                # A quote opened and never closed swallows the rest of the file into one field.
                hint = " (an unclosed quote?)" if any("\n" in (v or "") for v in row.values()) else ""
                raise DataError(f"{where}: {count} of the header's {len(header)} fields{hint}")
            rows.add(row[text_column], row[label_column], number, where)
    except csv.Error as exc:
        number = tracker.since_mark[-1][0] if tracker.since_mark else 1
        raise DataError(f"{path}:{number}: malformed {'TSV' if tsv else 'CSV'} ({exc})") from None
    if not rows.texts and not rows.skipped:
        raise DataError(f"{path}:{header_line}: header only, no rows")
    return rows


_READERS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv"}


def read_labeled_file(
    path: str | os.PathLike,
    text_column: str = "text",
    label_column: str = "label",
    *,
    strict_rows: bool = False,
) -> LabeledTexts:
    """Read one labelled file, format by suffix: .jsonl/.json (JSON Lines), .csv, .tsv (with header).

    Rows with empty text are skipped with a `DataWarning` (recorded in `skipped`), or refused as a
    DataError naming their line with `strict_rows`; a file with no other rows is refused either way.
    """
    path = Path(path)
    kind = _READERS.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            f"{path}: unknown file type {path.suffix or '(no suffix)'!r}; use .jsonl, .json, .csv or .tsv"
        )
    if kind == "jsonl":
        rows = _read_jsonl(path, text_column, label_column, strict_rows)
    else:
        rows = _read_delimited(path, text_column, label_column, kind == "tsv", strict_rows)
    if not rows.texts:
        if rows.skipped:
            raise DataError(f"{path}: no rows with text (all {len(rows.skipped)} rows have empty text)")
        raise DataError(f"{path}: empty file (no rows)")
    data = rows.labeled(str(path))
    _warn_skipped(data)
    return data


def load_files(
    train: str | os.PathLike,
    dev: str | os.PathLike | None = None,
    test: str | os.PathLike | None = None,
    text_column: str = "text",
    label_column: str = "label",
    name: str | None = None,
    *,
    strict_rows: bool = False,
) -> Corpus:
    """A corpus from user files; a train file alone is cross-validated, as Kim did for MR and Subj."""
    given = {"train": train, "dev": dev, "test": test}
    splits = {
        split: read_labeled_file(path, text_column, label_column, strict_rows=strict_rows)
        for split, path in given.items()
        if path is not None
    }
    _check_seen_in_train(splits)
    label_names = tuple(sorted(set(splits["train"].labels)))
    if set(splits) == {"train"}:
        splits = {"all": splits["train"]}
    files = {split: str(path) for split, path in given.items() if path is not None}
    source = ", ".join(files.values())
    return Corpus(name or Path(train).stem, label_names, splits, DEFAULT_TOKENIZER, source, files)
