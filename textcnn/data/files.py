"""Reading labelled sentences from JSON Lines, CSV and TSV files, and a corpus from user files.

Everything that reads labelled sentences goes through here, so that a bad row is reported the same
way wherever it comes from: one line naming the file and line (`train.csv:17: no column 'label'`).
Rows whose text is empty are the one exception: real copies of the benchmarks carry a few, so they
are skipped with one `DataWarning` per file, and refused only with `strict_rows=True`. (The
`datasets` paths in `textcnn.data.hub` collect their rows with the same `_Rows`, for the same rule.)

Multi-label rows come in three layouts, read to the same tuples of labels: a JSON list in the label
field (`"label": ["joy", "love"]`), a label cell split on a separator (`joy|love`, with
`label_separator="|"`), or one 0/1 column per label (`label_columns=("joy", "love")`). A row with
no label is refused unless `allow_empty_labels`: in most multi-label sets an empty row is an
annotation slip, while in some ("none of these topics") it is data.
"""

from __future__ import annotations

import codecs
import csv
import json
import os
import warnings
from array import array
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from textcnn.data.columns import FileTexts, Ints, Label, LabelBuilder, TextSource
from textcnn.data.splits import Corpus, LabeledTexts, _check_seen_in_train, _in_label_order, _label_set
from textcnn.data.tokenizers import DEFAULT_TOKENIZER
from textcnn.errors import DataError, DataWarning

SHOWN_SKIPPED = 5  # line numbers a skipped-rows warning lists; enough to find them, short enough for one line


def _decoded_lines(path: Path) -> Iterator[tuple[int, str, int, int]]:
    """(line number, text, byte offset, byte end) of each physical line, decoded strictly so a bad
    byte names its line; the offsets (past a BOM) are where a text is read back from later.

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
        end = 0
        for number, raw in enumerate(handle, start=1):
            offset, end = end, end + len(raw)
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]  # editors on Windows write one; it is not text
                offset += len(codecs.BOM_UTF8)
            try:
                yield number, raw.decode("utf-8"), offset, end
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


def _labels_of(values: Sequence[Any], where: str, allow_empty: bool) -> tuple[str, ...]:
    """A multi-label row's labels, each checked as `_label_of` checks one, duplicates dropped."""
    names: dict[str, None] = {}  # a dict keeps the file's order, which a set would not
    for position, value in enumerate(values, start=1):
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            shown = repr(value) if isinstance(value, bool) else type(value).__name__
            raise DataError(
                f"{where}: label {position} of the list must be a string or an integer, got {shown}"
            )
        if isinstance(value, str) and not value.strip():
            raise DataError(f"{where}: label {position} of the list is empty")
        names[_label_of(value, where)] = None
    if not names and not allow_empty:
        raise DataError(
            f"{where}: no label (a row needs at least one; --allow-empty-labels accepts rows with none)"
        )
    return tuple(names)


_ZERO_ONE = {"0": False, "0.0": False, "false": False, "1": True, "1.0": True, "true": True}


def _flag_of(value: Any, column: str, where: str) -> bool:
    """A label column's cell: 0/1 (or false/true, as spreadsheets and pandas write them)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _ZERO_ONE:
        return _ZERO_ONE[value.strip().lower()]
    raise DataError(f"{where}: column {column!r} must be 0 or 1, got {value!r}")


@dataclass(frozen=True)
class _LabelLayout:
    """Where a row keeps its label: one column (a name, or a JSON list of names), one column split
    on `separator`, or one 0/1 column per label (`columns`)."""

    column: str = "label"
    separator: str | None = None
    columns: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.separator is not None and self.columns is not None:
            raise DataError("give either a label separator or label columns, not both")
        if self.separator == "":
            raise DataError("the label separator is empty; give the character(s) between labels, e.g. '|'")
        if self.columns is not None:
            if not self.columns or any(not c for c in self.columns):
                raise DataError(f"label columns must be non-empty names, got {list(self.columns)}")
            twice = sorted({c for c in self.columns if self.columns.count(c) > 1})
            if twice:
                raise DataError(f"label columns named twice: {', '.join(twice)}")

    @property
    def needed(self) -> tuple[str, ...]:
        """The columns a row must have besides the text."""
        return self.columns if self.columns is not None else (self.column,)

    def value(self, row: Mapping[str, Any], where: str) -> Any:
        """The row's label as `_Rows.add` takes it: a scalar (single-label) or a list of names."""
        if self.columns is not None:
            return [c for c in self.columns if _flag_of(row[c], c, where)]
        value = row[self.column]
        if self.separator is None or isinstance(value, list):
            return value
        if value is None or isinstance(value, str):
            return [part.strip() for part in (value or "").split(self.separator) if part.strip()]
        return [value]  # an integer, or something `_labels_of` refuses with the row's line


@dataclass
class _Rows:
    """What a reader collects, with the skip-or-refuse rule for empty text in one place for all readers.

    The first row kept decides the kind of the data: a list of labels makes it multi-label, and a
    later row of the other kind is refused, naming the line that decided.

    Rows from a file keep no text: each row's byte span (`span`) goes into growing arrays, and its
    label into codes, so reading 10M rows holds some 24 bytes a row, not a `str`, a label and a
    line `int` (`textcnn.data.columns`). Rows given in memory (the `datasets` paths) keep their texts.
    """

    strict: bool
    allow_empty_labels: bool = False
    unit: str = "line"  # what `number` counts, for the message naming the row that decided the kind
    texts: list[str] = field(default_factory=list)
    offsets: array = field(default_factory=lambda: array("q"))
    lengths: array = field(default_factory=lambda: array("i"))
    labels: LabelBuilder = field(default_factory=LabelBuilder)
    lines: array = field(default_factory=lambda: array("q"))
    skipped: list[int] = field(default_factory=list)
    multi: bool | None = None
    decided_at: int = 0

    def __len__(self) -> int:
        return len(self.lines)

    def add(
        self, text: Any, label: Any, number: int, where: str, span: tuple[int, int] | None = None
    ) -> None:
        # A skipped row's label is not checked: the row is not used, and the warning names its line.
        if not self.strict and _is_blank(text):
            self.skipped.append(number)
            return
        text = _text_of(text, where)
        self.labels.append(self._label(label, number, where))
        if span is None:
            self.texts.append(text)
        else:
            self.offsets.append(span[0])
            self.lengths.append(span[1] - span[0])
        self.lines.append(number)

    def _label(self, value: Any, number: int, where: str) -> Label:
        multi = isinstance(value, (list, tuple))
        if self.multi is None:
            self.multi, self.decided_at = multi, number
        elif multi != self.multi:
            here, there = ("a list", "a single label") if multi else ("a single label", "a list")
            raise DataError(f"{where}: label is {here} here but {there} on {self.unit} {self.decided_at}")
        return _labels_of(value, where, self.allow_empty_labels) if multi else _label_of(value, where)

    def labeled(self, source: str, read_from: TextSource | None = None) -> LabeledTexts:
        """The rows as `LabeledTexts`; `read_from` is the file the spans index (texts read back)."""
        lines = np.frombuffer(self.lines, dtype=np.int64).copy() if self.lines else ()
        if read_from is None:
            texts: Sequence[str] = tuple(self.texts)
        else:
            offsets = (
                np.frombuffer(self.offsets, dtype=np.int64).copy() if self.offsets else np.zeros(0, np.int64)
            )
            lengths = (
                np.frombuffer(self.lengths, dtype=np.int32).copy() if self.lengths else np.zeros(0, np.int32)
            )
            texts = FileTexts([read_from], offsets, lengths)
        return LabeledTexts(texts, self.labels.build(), source, Ints(lines), tuple(self.skipped))


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


def _read_jsonl(path: Path, text_column: str, layout: _LabelLayout, rows: _Rows) -> _Rows:
    for number, line, offset, end in _decoded_lines(path):
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
        for column in (text_column, *layout.needed):
            if column not in row:
                raise DataError(f"{where}: no column {column!r} (columns: {', '.join(map(str, row))})")
        if _is_blank(row[text_column]):
            rows.add(row[text_column], None, number, where)  # skipped (or refused, strict): label unread
            continue
        rows.add(row[text_column], layout.value(row, where), number, where, (offset, end))
    return rows


class _LineTracker:
    """Feeds decoded lines to `csv` and remembers their numbers, so a row maps back to its first line.

    `csv.reader.line_num` counts lines consumed, which for a quoted multi-line field is the row's
    last line, and DictReader silently skips blank lines; tracking the lines ourselves gives the
    line a person sees the row start on.
    """

    def __init__(self, path: Path):
        self._lines = _decoded_lines(path)
        # (line number, blank, byte offset, byte end) since the last mark
        self.since_mark: list[tuple[int, bool, int, int]] = []

    def __iter__(self) -> Iterator[str]:
        for number, line, offset, end in self._lines:
            self.since_mark.append((number, line in ("\n", "\r\n"), offset, end))
            yield line

    def mark(self) -> None:
        self.since_mark.clear()

    def _first(self) -> tuple[int, bool, int, int]:
        return next((line for line in self.since_mark if not line[1]), self.since_mark[-1])

    def row_start(self) -> int:
        return self._first()[0]

    def row_span(self) -> tuple[int, int]:
        """The bytes of the row just read: from its first line to the end of its last, which are
        the lines `csv` consumed for it (it reads no further than a row's end)."""
        return self._first()[2], self.since_mark[-1][3]


def _read_delimited(
    path: Path, text_column: str, layout: _LabelLayout, tsv: bool, rows: _Rows
) -> tuple[_Rows, int]:
    """The rows, and the text column's position in the header (where a text is read back from)."""
    tracker = _LineTracker(path)
    # CSV follows RFC 4180 (quoted fields may hold commas, quotes, newlines); TSV as pandas and
    # spreadsheets write it has no quoting, so a quote character there is just text.
    reader = (
        csv.DictReader(tracker, delimiter="\t", quoting=csv.QUOTE_NONE) if tsv else csv.DictReader(tracker)
    )
    try:
        header = reader.fieldnames
        if header is None:
            raise DataError(f"{path}: empty file (no header, no rows)")
        header_line = tracker.row_start()
        for column in (text_column, *layout.needed):
            if column not in header:
                columns = ", ".join(header) or "none"
                raise DataError(f"{path}:{header_line}: no column {column!r} (columns: {columns})")
        tracker.mark()
        for row in reader:
            number = tracker.row_start()
            span = tracker.row_span()
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
            if _is_blank(row[text_column]):
                rows.add(row[text_column], None, number, where)  # skipped (or refused, strict): label unread
                continue
            rows.add(row[text_column], layout.value(row, where), number, where, span)
    except csv.Error as exc:
        number = tracker.since_mark[-1][0] if tracker.since_mark else 1
        raise DataError(f"{path}:{number}: malformed {'TSV' if tsv else 'CSV'} ({exc})") from None
    if not len(rows) and not rows.skipped:
        raise DataError(f"{path}:{header_line}: header only, no rows")
    # DictReader gives a name written twice in the header its last column's value.
    return rows, len(header) - 1 - header[::-1].index(text_column)


_READERS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv"}


def read_labeled_file(
    path: str | os.PathLike,
    text_column: str = "text",
    label_column: str = "label",
    *,
    strict_rows: bool = False,
    label_separator: str | None = None,
    label_columns: Sequence[str] | None = None,
    allow_empty_labels: bool = False,
) -> LabeledTexts:
    """Read one labelled file, format by suffix: .jsonl/.json (JSON Lines), .csv, .tsv (with header).

    Rows with empty text are skipped with a `DataWarning` (recorded in `skipped`), or refused as a
    DataError naming their line with `strict_rows`; a file with no other rows is refused either way.
    Multi-label rows (a JSON list in `label_column`, a cell split on `label_separator`, or 0/1
    `label_columns` in place of `label_column`) give tuples of labels, each row's in the file's
    order, duplicates dropped; a row with none is refused unless `allow_empty_labels`.
    """
    path = Path(path)
    if isinstance(label_columns, str):  # tuple("joy") would be three one-letter columns
        raise DataError(f"label columns are a list of column names, got the string {label_columns!r}")
    layout = _LabelLayout(
        label_column, label_separator, tuple(label_columns) if label_columns is not None else None
    )
    rows = _Rows(strict_rows, allow_empty_labels)
    kind = _READERS.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            f"{path}: unknown file type {path.suffix or '(no suffix)'!r}; use .jsonl, .json, .csv or .tsv"
        )
    if kind == "jsonl":
        _read_jsonl(path, text_column, layout, rows)
        field_of_text: str | int = text_column
    else:
        _, field_of_text = _read_delimited(path, text_column, layout, kind == "tsv", rows)
    if not len(rows):
        if rows.skipped:
            raise DataError(f"{path}: no rows with text (all {len(rows.skipped)} rows have empty text)")
        raise DataError(f"{path}: empty file (no rows)")
    data = rows.labeled(str(path), TextSource.of(path, kind, field_of_text))
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
    label_separator: str | None = None,
    label_columns: Sequence[str] | None = None,
    allow_empty_labels: bool = False,
) -> Corpus:
    """A corpus from user files; a train file alone is cross-validated, as Kim did for MR and Subj.

    The label names are the sorted labels seen in train, or `label_columns` in their order; the
    multi-label options are `read_labeled_file`'s, and apply to every file.
    """
    given = {"train": train, "dev": dev, "test": test}
    splits = {
        split: read_labeled_file(
            path,
            text_column,
            label_column,
            strict_rows=strict_rows,
            label_separator=label_separator,
            label_columns=label_columns,
            allow_empty_labels=allow_empty_labels,
        )
        for split, path in given.items()
        if path is not None
    }
    _check_seen_in_train(splits)
    multi_label = splits["train"].multi_label
    if label_columns is not None:
        label_names = tuple(label_columns)
    else:
        label_names = tuple(sorted(_label_set(splits["train"].labels)))
    splits = {split: _in_label_order(data, label_names) for split, data in splits.items()}
    if set(splits) == {"train"}:
        splits = {"all": splits["train"]}
    files = {split: str(path) for split, path in given.items() if path is not None}
    source = ", ".join(files.values())
    return Corpus(
        name or Path(train).stem,
        label_names,
        splits,
        DEFAULT_TOKENIZER,
        source,
        files,
        multi_label=multi_label,
        reading={
            k: v
            for k, v in {
                "text_column": text_column if text_column != "text" else None,
                "label_column": label_column if label_column != "label" else None,
                "label_separator": label_separator,
                "label_columns": list(label_columns) if label_columns else None,
                "allow_empty_labels": allow_empty_labels or None,
            }.items()
            if v is not None
        }
        or None,
    )
