"""Datasets: the registry of Kim (2014)'s benchmarks, file and Hub loaders, and evaluation protocols.

Everything that reads labelled sentences goes through here, so that a bad row is reported the same
way wherever it comes from: one line naming the file and line (`train.csv:17: no column 'label'`).
Rows whose text is empty are the one exception: real copies of the benchmarks carry a few, so they
are skipped with one `DataWarning` per file, and refused only with `strict_rows=True`.
Loading returns a `Corpus` (what is on disk); `make_folds` turns it into the train/dev/test
arrangements to run, following Kim's protocols: 10-fold cross-validation for sets released as a
single file (MR, Subj), the fixed splits otherwise, with 10% of train held out as dev where no dev
split exists (Kim 2014, section 3.1 and 3.3).

The benchmark files are never copied into this repository: they are read from a data folder given
at run time (`--data-dir` or `TEXTCNN_DATA_DIR`), or fetched from the Hugging Face Hub.
"""

from __future__ import annotations

import codecs
import csv
import json
import os
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from textcnn.errors import DataError, DataWarning

DATA_DIR_ENV = "TEXTCNN_DATA_DIR"
SPLIT_NAMES = ("all", "train", "dev", "test")
DEFAULT_FOLDS = 10  # Kim (2014), Table 1: "CV" means 10-fold cross-validation
SHOWN_SKIPPED = 5  # line numbers a skipped-rows warning lists; enough to find them, short enough for one line


@dataclass(frozen=True)
class LabeledTexts:
    """Texts with their label names, and where each came from so later checks can point at a line.

    `skipped` holds the lines of `source` left out because their text was empty. It describes the
    file, not the rows held, so a subset (a fold, a held-out dev part) keeps it: an evaluation on a
    fold can still say that its file had rows nobody scored.
    """

    texts: tuple[str, ...]
    labels: tuple[str, ...]
    source: str
    lines: tuple[int, ...] = ()
    skipped: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        # Accept lists from callers but store tuples, so a frozen instance is really immutable.
        object.__setattr__(self, "texts", tuple(self.texts))
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "lines", tuple(self.lines))
        object.__setattr__(self, "skipped", tuple(self.skipped))
        if len(self.texts) != len(self.labels):
            raise ValueError(f"{len(self.texts)} texts but {len(self.labels)} labels")
        if self.lines and len(self.lines) != len(self.texts):
            raise ValueError(f"{len(self.texts)} texts but {len(self.lines)} line numbers")

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Sequence[int]) -> LabeledTexts:
        source = self.source if self.source.endswith(" (subset)") else f"{self.source} (subset)"
        return LabeledTexts(
            texts=tuple(self.texts[i] for i in indices),
            labels=tuple(self.labels[i] for i in indices),
            source=source,
            lines=tuple(self.lines[i] for i in indices) if self.lines else (),
            skipped=self.skipped,
        )

    def where(self, index: int) -> str:
        """`source:line` of one row, the prefix of every message about it."""
        return f"{self.source}:{self.lines[index]}" if self.lines else f"{self.source}: row {index + 1}"


@dataclass(frozen=True)
class DatasetSpec:
    """One registry entry; the values mirror the dataset's `dataset.json` card (tests check that)."""

    name: str
    labels: tuple[str, ...]
    splits: tuple[str, ...]
    lowercase: bool
    hub_id: str | None
    about: str
    kim2014: dict[str, float] = field(default_factory=dict)

    @property
    def protocol(self) -> str:
        return _protocol(self.splits)


def _protocol(splits: Sequence[str]) -> str:
    if tuple(splits) == ("all",):
        return "cross-validation"
    return "train/dev/test" if "dev" in splits else "train/test (dev held out)"


# Hub ids name public copies of the same corpora for machines with internet. They are not
# exercised by the tests (which run offline), and their column names and label encodings differ
# from the files here (e.g. CogComp/trec keeps its labels in `coarse_label`), so pass
# --text-column/--label-column as the Hub card says.
REGISTRY: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="mr",
            labels=("negative", "positive"),
            splits=("all",),
            lowercase=True,
            hub_id="cornell-movie-review-data/rotten_tomatoes",
            about="Movie-review snippets, one sentence each, positive or negative (Pang and Lee, 2005).",
            kim2014={"rand": 76.1, "static": 81.0, "non-static": 81.5, "multichannel": 81.1},
        ),
        DatasetSpec(
            name="sst1",
            labels=("very negative", "negative", "neutral", "positive", "very positive"),
            splits=("train", "dev", "test"),
            lowercase=True,
            hub_id="SetFit/sst5",
            about=(
                "Stanford Sentiment Treebank, sentences only, five classes (Socher et al., 2013). "
                "Kim also trained on phrases; these files hold sentences only."
            ),
            kim2014={"rand": 45.0, "static": 45.5, "non-static": 48.0, "multichannel": 47.4},
        ),
        DatasetSpec(
            name="sst2",
            labels=("negative", "positive"),
            splits=("train", "dev", "test"),
            lowercase=True,
            hub_id="SetFit/sst2",
            about=(
                "SST with neutral sentences removed, binary labels. "
                "Sentences only (Kim also trained on phrases)."
            ),
            kim2014={"rand": 82.7, "static": 86.8, "non-static": 87.2, "multichannel": 88.1},
        ),
        DatasetSpec(
            name="subj",
            labels=("subjective", "objective"),
            splits=("all",),
            lowercase=True,
            hub_id="SetFit/subj",
            about="Subjectivity: is a sentence subjective or objective (Pang and Lee, 2004).",
            kim2014={"rand": 89.6, "static": 93.0, "non-static": 93.4, "multichannel": 93.2},
        ),
        DatasetSpec(
            name="trec",
            labels=("DESC", "ENTY", "ABBR", "HUM", "LOC", "NUM"),
            splits=("train", "test"),
            lowercase=False,  # Kim's clean_str(TREC=True): question words' case is kept
            hub_id="CogComp/trec",
            about="TREC question types, six coarse classes (Li and Roth, 2002).",
            kim2014={"rand": 91.2, "static": 92.8, "non-static": 93.6, "multichannel": 92.2},
        ),
    )
}


@dataclass(frozen=True)
class Corpus:
    """What was loaded, before any protocol: either one "all" split, or "train" with dev/test."""

    name: str
    label_names: tuple[str, ...]
    splits: dict[str, LabeledTexts]
    lowercase: bool
    source: str
    # User files by split ("train", "dev", "test"), as given: a bundle records them, so that
    # `textcnn evaluate BUNDLE` finds its test data again. None for registered and Hub datasets.
    files: dict[str, str] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "label_names", tuple(self.label_names))
        unknown = sorted(set(self.splits) - set(SPLIT_NAMES))
        if unknown:
            raise ValueError(f"unknown split names {unknown}; expected some of {SPLIT_NAMES}")
        if ("all" in self.splits) == ("train" in self.splits):
            raise ValueError(f"a corpus has either an 'all' or a 'train' split, got {sorted(self.splits)}")
        if "all" in self.splits and len(self.splits) > 1:
            raise ValueError(f"an 'all' split stands alone, got {sorted(self.splits)}")

    @property
    def protocol(self) -> str:
        return _protocol([s for s in SPLIT_NAMES if s in self.splits])


@dataclass(frozen=True)
class Fold:
    """One arrangement to train and evaluate on; `dev` drives early stopping, `test` is reported."""

    name: str
    index: int | None
    train: LabeledTexts
    dev: LabeledTexts
    test: LabeledTexts | None
    dev_source: str
    of: int | None = None  # how many folds the cross-validation has; None for fixed splits


# --------------------------------------------------------------------------------------------
# Reading files


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


def _check_known_labels(data: LabeledTexts, known: Sequence[str], what: str) -> None:
    """Raise at the first row whose label is not in `known`; `what` says where `known` came from."""
    allowed = set(known)
    for index, label in enumerate(data.labels):
        if label not in allowed:
            listed = sorted(allowed)
            shown = ", ".join(listed[:12]) + (f", ... ({len(listed)} in all)" if len(listed) > 12 else "")
            raise DataError(f"{data.where(index)}: label {label!r} is not among {what} ({shown})")


def _check_seen_in_train(splits: Mapping[str, LabeledTexts]) -> None:
    """A dev/test label the model never trained on cannot be predicted; flag it at load time."""
    if "train" not in splits:
        return
    for name in ("dev", "test"):
        if name in splits:
            _check_known_labels(splits[name], splits["train"].labels, "the labels seen in train")


# --------------------------------------------------------------------------------------------
# Loaders


def resolve_data_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """The benchmark data folder: an explicit path wins, then $TEXTCNN_DATA_DIR; None if neither."""
    if explicit is not None and str(explicit):
        return Path(explicit).expanduser()
    from_env = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(from_env).expanduser() if from_env else None


def _known_names() -> str:
    return ", ".join(REGISTRY)


def _spec(name: str) -> DatasetSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r} (known: {_known_names()})") from None


def _dataset_folder(spec: DatasetSpec, data_dir: str | os.PathLike | None) -> Path:
    root = resolve_data_dir(data_dir)
    if root is None:
        hint = f", or on a machine with internet use the Hub copy {spec.hub_id!r}" if spec.hub_id else ""
        raise DataError(
            f"{spec.name}: no data folder; give --data-dir or set {DATA_DIR_ENV} "
            f"(the folder holding {spec.name}/{spec.splits[0]}.jsonl){hint}"
        )
    if not root.is_dir():
        raise DataError(f"{root}: data folder not found; give --data-dir or set {DATA_DIR_ENV}")
    return _folder_in(root, spec)


def _folder_in(root: Path, spec: DatasetSpec) -> Path:
    folder = root / spec.name
    # Also accept the dataset's own folder (`--data-dir data/mr`), an easy slip to forgive.
    return root if not folder.is_dir() and root.name == spec.name else folder


def load_registered(
    name: str, data_dir: str | os.PathLike | None = None, *, strict_rows: bool = False
) -> Corpus:
    """Read `<data_dir>/<name>/<split>.jsonl` for every split the registry lists."""
    spec = _spec(name)
    folder = _dataset_folder(spec, data_dir)
    splits: dict[str, LabeledTexts] = {}
    for split in spec.splits:
        path = folder / f"{split}.jsonl"
        if not path.is_file():
            expected = ", ".join(f"{s}.jsonl" for s in spec.splits)
            raise DataError(f"{path}: file not found (dataset {name} expects {expected} in {folder})")
        data = read_labeled_file(path, strict_rows=strict_rows)
        _check_known_labels(data, spec.labels, f"{name}'s labels")
        splits[split] = data
    _check_seen_in_train(splits)
    return Corpus(name, spec.labels, splits, spec.lowercase, str(folder))


def _hf_rows(
    texts: list, labels: list, names: Sequence[str] | None, where: str, strict_rows: bool
) -> LabeledTexts:
    """One Hugging Face split's rows; ClassLabel ids become their names."""
    rows = _Rows(strict_rows)
    for row, (text, value) in enumerate(zip(texts, labels, strict=True), start=1):
        at = f"{where}:{row}"
        if names and isinstance(value, int) and not isinstance(value, bool):
            if not 0 <= value < len(names):
                raise DataError(f"{at}: label {value} is outside the ClassLabel's {len(names)} names")
            value = names[value]
        rows.add(text, value, row, at)
    if rows.skipped and not rows.texts:
        raise DataError(f"{where}: no rows with text (all {len(rows.skipped)} rows have empty text)")
    return rows.labeled(where)


def corpus_from_hf(
    name: str,
    dataset_dict: Any,
    text_column: str = "text",
    label_column: str = "label",
    *,
    strict_rows: bool = False,
    source: str | None = None,
) -> Corpus:
    """Convert a `datasets.DatasetDict` (train / validation / test) to a Corpus.

    A `ClassLabel` label column gives the label names and their order; otherwise labels are the
    sorted distinct training values. A test split labelled -1 throughout (GLUE-style hidden test
    labels) is dropped, since it cannot be scored. Rows with empty text are skipped (one warning
    per split) as in files; their numbers are rows of the split, from 1. `source` prefixes every
    message (default `hub:NAME`).
    """
    renames = {"train": "train", "validation": "dev", "valid": "dev", "dev": "dev", "test": "test"}
    source = source or f"hub:{name}"
    if "train" not in dataset_dict:
        raise DataError(f"{source}: no 'train' split (splits: {', '.join(dataset_dict)})")
    label_names: tuple[str, ...] | None = None
    splits: dict[str, LabeledTexts] = {}
    for hf_split, ours in renames.items():
        if hf_split not in dataset_dict or ours in splits:
            continue
        part = dataset_dict[hf_split]
        where = f"{source}/{hf_split}"
        for column in (text_column, label_column):
            if column not in part.column_names:
                raise DataError(f"{where}: no column {column!r} (columns: {', '.join(part.column_names)})")
        feature = part.features[label_column]
        names = getattr(feature, "names", None)  # a ClassLabel: ints in the data, names in the schema
        if names and label_names is None:
            label_names = tuple(str(n) for n in names)
        raw_labels = list(part[label_column])
        if names and ours != "train" and raw_labels and all(value == -1 for value in raw_labels):
            continue
        splits[ours] = _hf_rows(list(part[text_column]), raw_labels, names, where, strict_rows)
    if not splits["train"]:
        raise DataError(f"{source}/train: no rows")
    if label_names is None:
        label_names = tuple(sorted(set(splits["train"].labels)))
    else:
        for data in splits.values():
            _check_known_labels(data, label_names, "the ClassLabel names")
    _check_seen_in_train(splits)
    for data in splits.values():
        _warn_skipped(data, unit="row")  # after the checks, so a refused dataset does not also warn
    if set(splits) == {"train"}:
        splits = {"all": splits["train"]}
    registered = next((s for s in REGISTRY.values() if s.hub_id == name), None)
    lowercase = registered.lowercase if registered else True
    return Corpus(name, label_names, splits, lowercase, source)


def load_hub(
    hub_id: str, text_column: str = "text", label_column: str = "label", *, strict_rows: bool = False
) -> Corpus:
    """Fetch a corpus from the Hugging Face Hub through `datasets` (online machines only)."""
    try:
        import datasets
    except ImportError:
        raise DataError(
            f"hub:{hub_id}: loading from the Hub needs the `datasets` package (pip install datasets)"
        ) from None
    try:
        dataset_dict = datasets.load_dataset(hub_id)
    except Exception as exc:
        first_line = (str(exc).strip().splitlines() or [""])[0][:200]
        raise DataError(
            f"hub:{hub_id}: cannot load from the Hugging Face Hub ({type(exc).__name__}: {first_line}); "
            f"check the id and the network, or use local files"
        ) from None
    if not isinstance(dataset_dict, Mapping):
        raise DataError(f"hub:{hub_id}: expected a dataset with named splits")
    return corpus_from_hf(hub_id, dataset_dict, text_column, label_column, strict_rows=strict_rows)


# `datasets`' packaged builders for a single data file given as --dataset (a folder is left to
# `load_dataset` itself, which picks the builder from the files and the splits from their names).
_HF_BUILDERS: dict[str, tuple[str, dict[str, str]]] = {
    ".jsonl": ("json", {}),
    ".json": ("json", {}),
    ".ndjson": ("json", {}),
    ".csv": ("csv", {}),
    ".tsv": ("csv", {"delimiter": "\t"}),
    ".parquet": ("parquet", {}),
}


def _first_lines(exc: BaseException) -> str:
    """`Type: first line` of an exception and of its root cause, which says what was wrong.

    `datasets` wraps a file it cannot parse in `DatasetGenerationError: An error occurred while
    generating the dataset`; only the cause (from pyarrow or pandas) names the problem.
    """
    root = exc
    while root.__cause__ is not None:
        root = root.__cause__
    parts = [exc] if root is exc else [exc, root]
    return "; ".join(f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:200]}" for e in parts)


def load_local(
    path: str | os.PathLike,
    text_column: str = "text",
    label_column: str = "label",
    *,
    strict_rows: bool = False,
) -> Corpus:
    """A dataset on this machine, read through `datasets` and converted as a Hub one is.

    `path` is a folder written by `save_to_disk` (read with `load_from_disk`), a folder of data
    files (`load_dataset(folder)`: `train`/`validation`/`dev`/`test` in the file names give the
    splits), or one data file (a single split, so cross-validated). `datasets`' progress bars are
    off while loading, since the library does not print: the CLI's own lines would drown in them.
    """
    path = Path(path).expanduser()
    source = f"local:{path}"
    try:
        import datasets
    except ImportError:
        raise DataError(
            f"{source}: a local dataset is read with the `datasets` package (pip install datasets); "
            "or give a JSON Lines, CSV or TSV file with --train"
        ) from None
    saved = (path / datasets.config.DATASETDICT_JSON_FILENAME).is_file() or (
        (path / datasets.config.DATASET_INFO_FILENAME).is_file()
        and (path / datasets.config.DATASET_STATE_JSON_FILENAME).is_file()
    )
    if path.is_file() and path.suffix.lower() not in _HF_BUILDERS:
        known = ", ".join(_HF_BUILDERS)
        raise DataError(f"{source}: unknown data file type {path.suffix or '(no suffix)'!r}; use {known}")
    bars_were_on = not datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        if saved:
            loaded = datasets.load_from_disk(str(path))
        elif path.is_file():
            builder, options = _HF_BUILDERS[path.suffix.lower()]
            loaded = datasets.load_dataset(builder, data_files={"train": str(path)}, **options)
        else:
            loaded = datasets.load_dataset(str(path))
    except datasets.data_files.EmptyDatasetError:
        raise DataError(
            f"{source}: not a dataset folder (no `save_to_disk` files, and no data files `datasets` reads)"
        ) from None
    except Exception as exc:  # `datasets` raises many kinds; the user needs the first line of any
        raise DataError(f"{source}: cannot load with `datasets` ({_first_lines(exc)})") from None
    finally:
        if bars_were_on:
            datasets.enable_progress_bars()
    if not isinstance(loaded, Mapping):  # a single `Dataset` saved to disk: one split, like one file
        loaded = {"train": loaded}
    return corpus_from_hf(
        str(path), loaded, text_column, label_column, strict_rows=strict_rows, source=source
    )


def load_files(
    train: str | os.PathLike,
    dev: str | os.PathLike | None = None,
    test: str | os.PathLike | None = None,
    text_column: str = "text",
    label_column: str = "label",
    lowercase: bool = True,
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
    return Corpus(name or Path(train).stem, label_names, splits, lowercase, ", ".join(files.values()), files)


def load_corpus(
    dataset: str | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    train: str | os.PathLike | None = None,
    dev: str | os.PathLike | None = None,
    test: str | os.PathLike | None = None,
    text_column: str = "text",
    label_column: str = "label",
    lowercase: bool | None = None,
    strict_rows: bool = False,
) -> Corpus:
    """One entry point for the CLI: a registry name, a local dataset, a Hub id (`owner/name`), or files.

    An existing path wins over a Hub id of the same spelling, as in `datasets.load_dataset`; a
    registered dataset's own folder (`../shared/data/trec`) is read as that dataset, so it keeps the
    registry's casing rule and label order. `lowercase=None` keeps the source's default (the
    registry's, or True for files, local and Hub sets). `strict_rows` refuses rows with empty text
    instead of skipping them.
    """
    if dataset and train is not None:
        raise DataError(f"give either a dataset ({dataset!r}) or --train files, not both")
    if dataset is None and (dev is not None or test is not None) and train is None:
        raise DataError("--dev/--test need a --train file")
    if dataset in REGISTRY:
        corpus = load_registered(dataset, data_dir, strict_rows=strict_rows)
    elif dataset and Path(dataset).expanduser().exists():
        registered = _registered_folder(Path(dataset).expanduser())
        if registered:
            corpus = load_registered(registered, Path(dataset).expanduser(), strict_rows=strict_rows)
        else:
            corpus = load_local(dataset, text_column, label_column, strict_rows=strict_rows)
    elif dataset and _looks_like_a_path(dataset):
        raise DataError(f"{dataset}: no such file or folder (a local dataset is a folder or a data file)")
    elif dataset and "/" in dataset:
        corpus = load_hub(dataset, text_column, label_column, strict_rows=strict_rows)
    elif dataset:
        raise DataError(
            f"unknown dataset {dataset!r} (known: {_known_names()}; or a local dataset folder, "
            "a Hub id owner/name, or --train FILE)"
        )
    elif train is not None:
        return load_files(
            train,
            dev,
            test,
            text_column,
            label_column,
            True if lowercase is None else lowercase,
            strict_rows=strict_rows,
        )
    else:
        raise DataError(f"no data: give a dataset ({_known_names()}) or --train FILE")
    return corpus if lowercase is None else replace(corpus, lowercase=lowercase)


def _registered_folder(path: Path) -> str | None:
    """The registered name when `path` is that dataset's own folder (its card beside its files)."""
    return path.name if path.name in REGISTRY and (path / "dataset.json").is_file() else None


def _looks_like_a_path(dataset: str) -> bool:
    """Hub ids are `owner/name`; anything else with a slash, or rooted, was meant as a path."""
    return dataset.startswith(("/", ".", "~")) or dataset.count("/") > 1


# --------------------------------------------------------------------------------------------
# Protocols


def _hold_out(data: LabeledTexts, fraction: float, seed: int) -> tuple[list[int], list[int], bool]:
    """Split row indices into (train, dev), stratified where every class allows it.

    Stratification needs two rows of each class and at least one dev row per class; when that
    fails the split is seeded but unstratified, and classes with a single row stay in train (a
    dev-only class would never be learned, only mis-scored).
    """
    from sklearn.model_selection import train_test_split

    indices = list(range(len(data)))
    try:
        train_idx, dev_idx = train_test_split(
            indices, test_size=fraction, stratify=list(data.labels), random_state=seed
        )
        return sorted(train_idx), sorted(dev_idx), True
    except ValueError:
        pass
    counts = Counter(data.labels)
    splittable = [i for i in indices if counts[data.labels[i]] >= 2]
    kept = [i for i in indices if counts[data.labels[i]] < 2]
    try:
        train_idx, dev_idx = train_test_split(splittable, test_size=fraction, random_state=seed)
    except ValueError:
        raise DataError(
            f"{data.source}: {len(data)} rows are too few to hold out {fraction:.0%} as dev; "
            "give a --dev file or more data"
        ) from None
    return sorted([*train_idx, *kept]), sorted(dev_idx), False


def _dev_source(fraction: float, seed: int, stratified: bool) -> str:
    return f"{fraction * 100:g}% of train, {'stratified, ' if stratified else ''}seed {seed}"


def make_folds(
    corpus: Corpus,
    folds: int | None = None,
    fold: int | None = None,
    seed: int = 0,
    dev_fraction: float = 0.1,
) -> list[Fold]:
    """The train/dev/test arrangements to run for a corpus.

    A corpus with only an "all" split is cross-validated (stratified k-fold, shuffled with `seed`).
    The default for a cross-validated dataset is one fold of ten (fold 0), so a plain run costs one
    training; `folds=k` runs all k, `fold=K` runs fold K of `folds` (10 if not given). In each fold,
    as in Kim (2014), `dev_fraction` of the training part is held out as dev for early stopping.
    A corpus with fixed splits uses its dev split, or holds out `dev_fraction` of train.
    Same corpus and seed always give the same folds.
    """
    if not 0.0 < dev_fraction < 1.0:
        raise DataError(f"dev fraction must be between 0 and 1, got {dev_fraction}")
    if "all" not in corpus.splits:
        return [_fixed_split_fold(corpus, folds, fold, seed, dev_fraction)]

    data = corpus.splits["all"]
    n_folds = DEFAULT_FOLDS if folds is None else folds
    if n_folds < 2:
        raise DataError(f"--folds must be at least 2, got {n_folds}")
    if fold is not None and not 0 <= fold < n_folds:
        raise DataError(f"--fold must be between 0 and {n_folds - 1} (folds are numbered from 0), got {fold}")
    counts = Counter(data.labels)
    if len(counts) < 2:
        raise DataError(
            f"{data.source}: only one label ({next(iter(counts))!r}); a classifier needs two or more"
        )
    rarest, rarest_count = min(counts.items(), key=lambda item: (item[1], item[0]))
    if rarest_count < n_folds:
        raise DataError(
            f"{data.source}: label {rarest!r} has {rarest_count} rows, too few for {n_folds}-fold "
            "stratified cross-validation (each class needs one row per fold); use fewer --folds or more data"
        )

    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    wanted = {0} if folds is None and fold is None else set(range(n_folds)) if fold is None else {fold}
    result: list[Fold] = []
    # The splitter must run through every fold even when one is wanted: fold K's rows depend on
    # the one shuffle, so fold 3 alone is exactly fold 3 of a full run.
    for index, (train_part, test_part) in enumerate(splitter.split(list(data.texts), list(data.labels))):
        if index not in wanted:
            continue
        train_data = data.subset(sorted(int(i) for i in train_part))
        train_idx, dev_idx, stratified = _hold_out(train_data, dev_fraction, seed)
        result.append(
            Fold(
                name=f"fold-{index}",
                index=index,
                train=train_data.subset(train_idx),
                dev=train_data.subset(dev_idx),
                test=data.subset(sorted(int(i) for i in test_part)),
                dev_source=_dev_source(dev_fraction, seed, stratified),
                of=n_folds,
            )
        )
    return result


def _fixed_split_fold(
    corpus: Corpus, folds: int | None, fold: int | None, seed: int, dev_fraction: float
) -> Fold:
    if folds is not None or fold is not None:
        flag = "--folds" if folds is not None else "--fold"
        having = "a test split" if "test" in corpus.splits else "fixed splits"
        raise DataError(f"{corpus.name} has {having}; {flag} is for datasets without one")
    train = corpus.splits["train"]
    labels = set(train.labels)
    if len(labels) < 2:
        raise DataError(
            f"{train.source}: only one label ({next(iter(labels))!r}); a classifier needs two or more"
        )
    _check_seen_in_train(corpus.splits)
    if "dev" in corpus.splits:
        dev, dev_source = corpus.splits["dev"], "dev split"
    else:
        train_idx, dev_idx, stratified = _hold_out(train, dev_fraction, seed)
        train, dev = train.subset(train_idx), train.subset(dev_idx)
        dev_source = _dev_source(dev_fraction, seed, stratified)
    return Fold("split", None, train, dev, corpus.splits.get("test"), dev_source)


# --------------------------------------------------------------------------------------------
# Status


def _count_rows(path: Path) -> int:
    """Non-blank lines: cheap enough for a status listing, without parsing every row."""
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def dataset_status(data_dir: str | os.PathLike | None = None) -> list[dict]:
    """One row per registered dataset for `textcnn datasets`: what it is and whether it is here."""
    root = resolve_data_dir(data_dir)
    rows = []
    for spec in REGISTRY.values():
        folder = _folder_in(root, spec) if root is not None else None
        found = {s: folder / f"{s}.jsonl" for s in spec.splits} if folder is not None else {}
        present = {s: p for s, p in found.items() if p.is_file()}
        complete = folder is not None and len(present) == len(spec.splits)
        rows.append(
            {
                "name": spec.name,
                "classes": len(spec.labels),
                "labels": list(spec.labels),
                "protocol": spec.protocol,
                "rows": {s: _count_rows(p) for s, p in present.items()},
                "location": str(folder) if complete else "not found",
                "hub_id": spec.hub_id,
                "kim2014": dict(spec.kim2014),
            }
        )
    return rows
