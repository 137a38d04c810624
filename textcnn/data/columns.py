"""Compact columns behind `LabeledTexts`: texts read back from their file, labels as codes, line numbers.

One Python `str` per row, a label `str` or tuple per row and a line `int` per row cost about 4,600
bytes a row while training on a 500k-row CSV (2.3 GB peak); a row here costs its byte offset and
length in the file, a label code and a line number (about 24 bytes), and a text is read back from
the file when asked for. Each column is a read-only `Sequence` with the equality of the tuple it
replaces (`data.texts == ("a", "b")` holds as before), so code that reads `.texts`, `.labels` or
`.lines` as sequences keeps working.

A text is read back by parsing its row's bytes exactly as the first read did (the same JSON
field, the same `csv` dialect over the same physical lines), so it is the same string; the file's
size and modification time are checked when it is opened again, so a file changed since it was
read is refused rather than read as other texts.
"""

from __future__ import annotations

import csv
import io
import json
import os
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain, pairwise
from typing import Any, overload

import numpy as np

from textcnn.errors import ConfigError, DataError

# One row's label: a name, or (multi-label data) the tuple of its names.
Label = str | tuple[str, ...]


def _index_array(indices: Iterable[int] | np.ndarray) -> np.ndarray:
    if isinstance(indices, range):
        return np.arange(indices.start, indices.stop, indices.step, dtype=np.intp)
    return np.asarray(indices if isinstance(indices, np.ndarray) else list(indices), dtype=np.intp)


def _position(index: int, length: int) -> int:
    position = index + length if index < 0 else index
    if not 0 <= position < length:
        raise IndexError(f"row {index} out of range for {length} rows")
    return position


class _Column(Sequence):
    """Tuple-like behaviour shared by the columns: slices, equality with any sequence, `+`."""

    def take(self, indices: Iterable[int] | np.ndarray) -> _Column:
        raise NotImplementedError

    def _one(self, position: int) -> Any:
        raise NotImplementedError

    @overload
    def __getitem__(self, index: int) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> _Column: ...
    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.take(range(*index.indices(len(self))))
        return self._one(_position(int(index), len(self)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __add__(self, other: Sequence) -> tuple:
        return (*self, *other)

    def __radd__(self, other: Sequence) -> tuple:
        return (*other, *self)

    def __repr__(self) -> str:
        shown = ", ".join(repr(x) for x in self[:3]) + (", ..." if len(self) > 3 else "")
        return f"{type(self).__name__}({len(self)} rows: {shown})"


class Ints(_Column):
    """Line numbers: an int64 array that compares, indexes and iterates like a tuple of ints."""

    def __init__(self, values: Iterable[int] | np.ndarray = ()):
        self.array = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=np.int64)
        self.array.flags.writeable = False

    def __len__(self) -> int:
        return len(self.array)

    def _one(self, position: int) -> int:
        return int(self.array[position])

    def __iter__(self) -> Iterator[int]:
        return iter(self.array.tolist())

    def take(self, indices: Iterable[int] | np.ndarray) -> Ints:
        return Ints(self.array[_index_array(indices)])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Ints):
            return np.array_equal(self.array, other.array)
        return super().__eq__(other)

    __hash__ = _Column.__hash__


# ---- texts ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextSource:
    """Where texts were read from and how a row's bytes give its text: a JSON Lines field, or a
    CSV/TSV column (its position in the header: DictReader keeps a repeated name's last one)."""

    path: str
    kind: str  # "jsonl", "csv" or "tsv"
    field: str | int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str | os.PathLike, kind: str, field: str | int) -> TextSource:
        stat = os.stat(path)
        return cls(str(path), kind, field, stat.st_size, stat.st_mtime_ns)

    def open(self, buffering: int = -1) -> io.BufferedReader | io.FileIO:
        try:
            handle = open(self.path, "rb", buffering=buffering)  # noqa: SIM115 - closed by its owner
            stat = os.fstat(handle.fileno())
        except OSError as exc:
            raise DataError(f"{self.path}: cannot read its texts again ({exc.strerror or exc})") from None
        if (stat.st_size, stat.st_mtime_ns) != (self.size, self.mtime_ns):
            handle.close()
            raise DataError(f"{self.path}: changed since it was read; load the data again")
        return handle

    def parse(self, raw: bytes) -> str:
        text = raw.decode("utf-8")
        if self.kind == "jsonl":
            return json.loads(text)[self.field]
        # The same physical lines the first read gave `csv` (split on b"\n" only, as a binary file
        # iterates; `str.splitlines` would also split on \r, \v, \x1c, U+2028 and change the row).
        pieces = text.split("\n")
        lines = [piece + "\n" for piece in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])
        reader = (
            csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
            if self.kind == "tsv"
            else csv.reader(lines)
        )
        return next(reader)[self.field]


class FileTexts(_Column):
    """Texts held as (file, byte offset, byte length) a row, read back from the file on access.

    Iterating reads forward through each file while the offsets increase (a whole split, or a
    fold's sorted indices) and seeks otherwise; one text alone is one `os.pread`.
    """

    def __init__(
        self,
        sources: Sequence[TextSource],
        offsets: np.ndarray,
        lengths: np.ndarray,
        which: np.ndarray | None = None,  # a row's source, where there are several (joined datasets)
    ):
        self.sources = tuple(sources)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.lengths = np.asarray(lengths, dtype=np.int32)
        self.which = None if which is None or len(self.sources) == 1 else np.asarray(which, dtype=np.int16)
        if len(self.offsets) != len(self.lengths) or (
            self.which is not None and len(self.which) != len(self.offsets)
        ):
            raise ValueError("offsets, lengths and sources differ in length")
        self._handles: dict[int, io.FileIO] = {}

    def __len__(self) -> int:
        return len(self.offsets)

    def _source_of(self, position: int) -> int:
        return 0 if self.which is None else int(self.which[position])

    def _one(self, position: int) -> str:
        source = self._source_of(position)
        handle = self._handles.get(source)
        if handle is None:
            handle = self._handles[source] = self.sources[source].open(buffering=0)
        raw = os.pread(handle.fileno(), int(self.lengths[position]), int(self.offsets[position]))
        return self.sources[source].parse(raw)

    def __iter__(self) -> Iterator[str]:
        handles: dict[int, Any] = {}
        ends: dict[int, int] = {}
        which = self.which.tolist() if self.which is not None else None
        try:
            # Chunks of rows: `tolist` of all 10M offsets at once would be 10M Python ints.
            for start in range(0, len(self), 65536):
                offsets = self.offsets[start : start + 65536].tolist()
                lengths = self.lengths[start : start + 65536].tolist()
                for row, (offset, length) in enumerate(zip(offsets, lengths, strict=True)):
                    source = 0 if which is None else which[start + row]
                    handle = handles.get(source)
                    if handle is None:
                        handle = handles[source] = self.sources[source].open(buffering=1 << 16)
                        ends[source] = 0
                    if ends[source] != offset:
                        handle.seek(offset)  # within the buffer when rows were skipped: no read
                    ends[source] = offset + length
                    yield self.sources[source].parse(handle.read(length))
        finally:
            for handle in handles.values():
                handle.close()

    def take(self, indices: Iterable[int] | np.ndarray) -> FileTexts:
        index = _index_array(indices)
        which = self.which[index] if self.which is not None else None
        return FileTexts(self.sources, self.offsets[index], self.lengths[index], which)

    @classmethod
    def concat(cls, parts: Sequence[FileTexts]) -> FileTexts:
        sources: list[TextSource] = []
        whiches = []
        for part in parts:
            numbers = {i: _intern(sources, s) for i, s in enumerate(part.sources)}
            local = part.which if part.which is not None else np.zeros(len(part), dtype=np.int16)
            whiches.append(np.array([numbers[i] for i in range(len(part.sources))], dtype=np.int16)[local])
        return cls(
            sources,
            np.concatenate([p.offsets for p in parts]) if parts else np.zeros(0, np.int64),
            np.concatenate([p.lengths for p in parts]) if parts else np.zeros(0, np.int32),
            np.concatenate(whiches) if whiches else None,
        )

    def __eq__(self, other: object) -> bool:
        if (
            isinstance(other, FileTexts)
            and self.sources == other.sources
            and np.array_equal(self.offsets, other.offsets)
            and (self.which is None) == (other.which is None)
            and (self.which is None or np.array_equal(self.which, other.which))
        ):
            return True
        return super().__eq__(other)

    __hash__ = _Column.__hash__

    def __add__(self, other: Sequence) -> FileTexts | tuple:
        if isinstance(other, FileTexts):
            return FileTexts.concat([self, other])
        return super().__add__(other)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_handles": {}}  # open files stay with the process that opened them

    def __reduce__(self):
        # A copy sent elsewhere (Ray's object store, a worker process) may run where the file is
        # not: it travels as the texts themselves, packed as UTF-8 (the bytes and an offset a row).
        return (PackedTexts.pack, (list(self),))


def _intern(values: list, value: Any) -> int:
    if value not in values:
        values.append(value)
    return values.index(value)


class PackedTexts(_Column):
    """Texts held in memory as one UTF-8 buffer and each row's end offset (no `str` a row)."""

    def __init__(self, buffer: bytes, ends: np.ndarray):
        self.buffer = buffer
        self.ends = np.asarray(ends, dtype=np.int64)

    @classmethod
    def pack(cls, texts: Iterable[str]) -> PackedTexts:
        ends = array("q")
        out = io.BytesIO()
        for text in texts:
            ends.append(out.tell() + out.write(text.encode("utf-8")))
        return cls(out.getvalue(), np.frombuffer(ends, dtype=np.int64) if ends else np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.ends)

    def _one(self, position: int) -> str:
        start = int(self.ends[position - 1]) if position else 0
        return self.buffer[start : int(self.ends[position])].decode("utf-8")

    def __iter__(self) -> Iterator[str]:
        start = 0
        for end in self.ends.tolist():
            yield self.buffer[start:end].decode("utf-8")
            start = end

    def take(self, indices: Iterable[int] | np.ndarray) -> PackedTexts:
        return PackedTexts.pack(self._one(int(i)) for i in _index_array(indices))

    __hash__ = _Column.__hash__


def take_texts(texts: Sequence[str], indices: np.ndarray) -> Sequence[str]:
    """The rows `indices` of a text column: index arrays for the compact columns, a tuple otherwise."""
    if isinstance(texts, _Column):
        return texts.take(indices)
    return tuple(texts[i] for i in indices.tolist())


def concat_texts(parts: Sequence[Sequence[str]]) -> Sequence[str]:
    if parts and all(isinstance(part, FileTexts) for part in parts):
        return FileTexts.concat(parts)  # type: ignore[arg-type]
    return tuple(chain.from_iterable(parts))


# ---- labels --------------------------------------------------------------------------------------


class Labels(_Column):
    """Labels as codes into `names`: (N,) int32 for single-label rows; for multi-label rows each
    row's codes in its own order (CSR: `codes` flat, `starts` (N + 1,)), so a row reads back as the
    tuple it was given (the file's order, or `in_order`'s) at 4 bytes a label and 8 a row."""

    def __init__(self, names: Sequence[str], codes: np.ndarray, starts: np.ndarray | None = None):
        self.names = tuple(names)
        self.codes = np.asarray(codes, dtype=np.int32)
        self.starts = None if starts is None else np.asarray(starts, dtype=np.int64)
        self.codes.flags.writeable = False

    @property
    def multi(self) -> bool:
        return self.starts is not None

    @classmethod
    def of(cls, labels: Iterable[Label]) -> Labels:
        builder = LabelBuilder()
        for label in labels:
            builder.append(label)
        return builder.build()

    def __len__(self) -> int:
        return len(self.starts) - 1 if self.starts is not None else len(self.codes)

    def _row_codes(self, position: int) -> np.ndarray:
        return self.codes[self.starts[position] : self.starts[position + 1]]

    def _one(self, position: int) -> Label:
        if self.starts is None:
            return self.names[self.codes[position]]
        return tuple(self.names[c] for c in self._row_codes(position).tolist())

    def __iter__(self) -> Iterator[Label]:
        names = self.names
        if self.starts is None:
            return map(names.__getitem__, self.codes.tolist())
        codes, starts = self.codes.tolist(), self.starts.tolist()
        return (tuple(names[c] for c in codes[a:b]) for a, b in pairwise(starts))

    def take(self, indices: Iterable[int] | np.ndarray) -> Labels:
        index = _index_array(indices)
        if self.starts is None:
            return Labels(self.names, self.codes[index])
        lengths = (self.starts[1:] - self.starts[:-1])[index]
        starts = np.zeros(len(index) + 1, dtype=np.int64)
        np.cumsum(lengths, out=starts[1:])
        # Position k of the new flat codes comes from old position starts[row] + (k - new start).
        flat = np.repeat(self.starts[:-1][index] - starts[:-1], lengths) + np.arange(starts[-1])
        return Labels(self.names, self.codes[flat], starts)

    def _row_ids(self) -> np.ndarray:
        return np.repeat(np.arange(len(self)), np.diff(self.starts))

    def label_set(self) -> set[str]:
        return {self.names[c] for c in np.unique(self.codes).tolist()}

    def counts(self) -> dict[str, int]:
        """Rows per label name held (single-label rows)."""
        counted = np.bincount(self.codes, minlength=len(self.names))
        return {name: int(n) for name, n in zip(self.names, counted.tolist(), strict=True) if n}

    def sort_keys(self) -> np.ndarray:
        """(N,) ints ordered as the names are as strings: scikit-learn's stratified splitters order
        classes by `np.unique`, so these give the same splits as the label strings themselves."""
        rank = np.empty(len(self.names), dtype=np.int32)
        rank[sorted(range(len(self.names)), key=self.names.__getitem__)] = np.arange(len(self.names))
        return rank[self.codes]

    def _mapping(self, label_names: Sequence[str]) -> np.ndarray:
        index = {name: i for i, name in enumerate(label_names)}
        return np.array([index.get(name, -1) for name in self.names], dtype=np.int64)

    def label_array(self, label_names: Sequence[str]) -> np.ndarray:
        unknown = sorted(self.label_set() - set(label_names))
        if unknown:
            raise ConfigError(f"labels not among the label names: {', '.join(map(repr, unknown[:5]))}")
        mapped = self._mapping(label_names)[self.codes] if len(self.names) else self.codes.astype(np.int64)
        if self.starts is None:
            return mapped.astype(np.int64)
        matrix = np.zeros((len(self), len(label_names)), dtype=np.float32)
        matrix[self._row_ids(), mapped] = 1.0
        return matrix

    def in_order(self, label_names: Sequence[str]) -> Labels:
        """Multi-label rows with their labels in `label_names`' order (names not among them last,
        in their own order), as `sorted(row, key=rank)` gives."""
        if self.starts is None:
            return self
        mapped = self._mapping(label_names)
        keys = np.where(mapped < 0, len(label_names), mapped)[self.codes]
        order = np.lexsort((keys, self._row_ids()))  # stable: unknown names keep their order
        return Labels(self.names, self.codes[order], self.starts)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Labels) and (self.multi, len(self), self.names) == (
            other.multi,
            len(other),
            other.names,
        ):
            same_rows = self.starts is None or np.array_equal(self.starts, other.starts)
            return same_rows and np.array_equal(self.codes, other.codes)
        return super().__eq__(other)

    __hash__ = _Column.__hash__

    @classmethod
    def concat(cls, parts: Sequence[Labels]) -> Labels:
        names: list[str] = []
        for part in parts:
            names.extend(n for n in part.names if n not in names)
        index = {name: i for i, name in enumerate(names)}
        codes = [np.array([index[n] for n in p.names], dtype=np.int32)[p.codes] for p in parts]
        flat = np.concatenate(codes) if codes else np.zeros(0, np.int32)
        if not parts or parts[0].starts is None:
            return cls(names, flat)
        starts, base = [np.zeros(1, np.int64)], 0
        for part in parts:
            starts.append(part.starts[1:] + base)
            base += int(part.starts[-1])
        return cls(names, flat, np.concatenate(starts))


@dataclass
class LabelBuilder:
    """Labels appended one row at a time as codes into growing arrays (no Python object a row)."""

    names: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    codes: array = field(default_factory=lambda: array("i"))
    starts: array | None = None  # set by the first multi-label row

    def _code(self, name: str) -> int:
        code = self.index.get(name)
        if code is None:
            code = self.index[name] = len(self.names)
            self.names.append(name)
        return code

    def append(self, label: Label) -> None:
        if isinstance(label, (tuple, list)):
            if self.starts is None:
                if self.codes:
                    raise ValueError("labels mix single names and tuples of names")
                self.starts = array("q", [0])
            self.codes.extend(self._code(name) for name in label)
            self.starts.append(len(self.codes))
        else:
            if self.starts is not None:
                raise ValueError("labels mix single names and tuples of names")
            self.codes.append(self._code(label))

    def build(self) -> Labels:
        codes = np.frombuffer(self.codes, dtype=np.int32).copy() if self.codes else np.zeros(0, np.int32)
        if self.starts is None:
            return Labels(self.names, codes)
        return Labels(self.names, codes, np.frombuffer(self.starts, dtype=np.int64).copy())
