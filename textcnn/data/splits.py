"""The data types every loader returns and every protocol produces: `LabeledTexts`, `Corpus`, `Fold`.

They live apart from the loaders so that the file readers, the `datasets` paths and the protocols
can all build them without importing one another. The label checks are here too, since every
loader applies them to its splits the same way: a bad label is reported at its row
(`train.csv:17: label 'x' is not among ...`) wherever the rows came from.

A row's label is a `str` (single-label data) or a `tuple[str, ...]` of its labels, possibly empty
(multi-label data, such as GoEmotions); one `LabeledTexts` holds one kind, and so does a `Corpus`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from textcnn.data.columns import Ints, Label, Labels, _Column, take_texts
from textcnn.errors import DataError

SPLIT_NAMES = ("all", "train", "dev", "test")


@dataclass(frozen=True)
class LabeledTexts:
    """Texts with their label names, and where each came from so later checks can point at a line.

    `skipped` holds the lines of `source` left out because their text was empty. It describes the
    file, not the rows held, so a subset (a fold, a held-out dev part) keeps it: an evaluation on a
    fold can still say that its file had rows nobody scored.

    The columns are compact (`textcnn.data.columns`): texts read from a file are read back from it
    on access (`FileTexts`), labels are codes (`Labels`), line numbers an int array (`Ints`); each
    is a `Sequence` equal to the tuple it stands for. Texts given in memory stay a tuple.
    """

    texts: Sequence[str]
    labels: Labels  # a Sequence of `str`, or of tuples of names (multi-label; `()` is a row with none)
    source: str
    lines: Sequence[int] = ()  # stored as `Ints`
    skipped: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        # Accept lists from callers but store tuples or read-only columns, so a frozen instance is
        # really immutable.
        if not isinstance(self.texts, _Column):
            object.__setattr__(self, "texts", tuple(self.texts))
        if not isinstance(self.labels, Labels):
            labels = tuple(tuple(y) if isinstance(y, list) else y for y in self.labels)
            if len({isinstance(y, tuple) for y in labels}) > 1:
                # Every consumer branches once on `multi_label`; a mix would be read by the wrong branch.
                raise ValueError(f"{self.source}: labels mix single names and tuples of names")
            object.__setattr__(self, "labels", Labels.of(labels))
        if not isinstance(self.lines, Ints):
            object.__setattr__(self, "lines", Ints(self.lines))
        object.__setattr__(self, "skipped", tuple(self.skipped))
        if len(self.texts) != len(self.labels):
            raise ValueError(f"{len(self.texts)} texts but {len(self.labels)} labels")
        if self.lines and len(self.lines) != len(self.texts):
            raise ValueError(f"{len(self.texts)} texts but {len(self.lines)} line numbers")

    @property
    def multi_label(self) -> bool:
        """True when each row holds a tuple of labels (False for no rows: nothing says otherwise)."""
        return bool(len(self.labels)) and self.labels.multi

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Sequence[int] | np.ndarray) -> LabeledTexts:
        """The rows `indices`, in that order: index arrays taken, no text copied."""
        index = np.asarray(indices if isinstance(indices, np.ndarray) else list(indices), dtype=np.intp)
        source = self.source if self.source.endswith(" (subset)") else f"{self.source} (subset)"
        return LabeledTexts(
            texts=take_texts(self.texts, index),
            labels=self.labels.take(index),
            source=source,
            lines=self.lines.take(index) if self.lines else Ints(),
            skipped=self.skipped,
        )

    def label_set(self) -> set[str]:
        """Every label name the rows hold."""
        return self.labels.label_set()

    def label_array(self, label_names: Sequence[str]) -> np.ndarray:
        """The rows' labels as model targets over `label_names`: (N,) int64 class ids, or for
        multi-label rows (N, C) float32 0/1 rows; a label not among the names is a ConfigError."""
        return self.labels.label_array(label_names)

    def where(self, index: int) -> str:
        """`source:line` of one row, the prefix of every message about it."""
        return f"{self.source}:{self.lines[index]}" if self.lines else f"{self.source}: row {index + 1}"


def _protocol(splits: Sequence[str]) -> str:
    if tuple(splits) == ("all",):
        return "cross-validation"
    return "train/dev/test" if "dev" in splits else "train/test (dev held out)"


@dataclass(frozen=True)
class Corpus:
    """What was loaded, before any protocol: either one "all" split, or "train" with dev/test."""

    name: str
    label_names: tuple[str, ...]
    splits: dict[str, LabeledTexts]
    tokenizer: str  # the tokenizer the data suggests, as --tokenizer takes it (RunSettings chooses)
    source: str
    # User files by split ("train", "dev", "test"), as given: a bundle records them, so that
    # `textcnn evaluate BUNDLE` finds its test data again. None for registered and Hub datasets.
    files: dict[str, str] | None = None
    # Rows hold tuples of labels (`LabeledTexts.multi_label`); label_names are then every label a
    # row may hold, not classes that exclude one another.
    multi_label: bool = False
    # How user files' labels were read, where it differs from one label a row in "label":
    # the columns and flags (`label_column`, `label_separator`, `label_columns`,
    # `allow_empty_labels`, `text_column`); a bundle records them beside `files`.
    reading: dict | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "label_names", tuple(self.label_names))
        for name, split in self.splits.items():
            if split.labels and split.multi_label != self.multi_label:
                kind = "multi-label" if split.multi_label else "single-label"
                raise ValueError(f"split {name!r} is {kind}, the corpus says multi_label={self.multi_label}")
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


def _row_labels(label: Label) -> tuple[str, ...]:
    return label if isinstance(label, tuple) else (label,)


def _label_set(labels: Iterable[Label]) -> set[str]:
    """Every label name the rows hold, whether a row holds one or several."""
    if isinstance(labels, Labels):
        return labels.label_set()
    return {name for label in labels for name in _row_labels(label)}


def _in_label_order(data: LabeledTexts, label_names: Sequence[str]) -> LabeledTexts:
    """Multi-label rows with their labels in `label_names`' order, so that equal label sets are
    equal tuples whichever layout (a list, a separated cell, 0/1 columns) the file used."""
    if not data.multi_label:
        return data
    return LabeledTexts(data.texts, data.labels.in_order(label_names), data.source, data.lines, data.skipped)


def _check_known_labels(data: LabeledTexts, known: Iterable[str], what: str) -> None:
    """Raise at the first row with a label not in `known`; `what` says where `known` came from."""
    allowed = set(known)
    if data.label_set() <= allowed:
        return  # the common case, from the codes alone; the loop below finds the first bad row
    for index, label in enumerate(data.labels):
        for name in _row_labels(label):
            if name not in allowed:
                listed = sorted(allowed)
                shown = ", ".join(listed[:12]) + (f", ... ({len(listed)} in all)" if len(listed) > 12 else "")
                raise DataError(f"{data.where(index)}: label {name!r} is not among {what} ({shown})")


def _check_same_kind(splits: Mapping[str, LabeledTexts]) -> None:
    """Single-label and multi-label splits cannot make one corpus: name the split that differs."""
    first_name = "train" if "train" in splits else next(iter(splits), None)
    if first_name is None:
        return
    first = splits[first_name]
    for data in splits.values():
        if data.labels and first.labels and data.multi_label != first.multi_label:
            kinds = ("multi-label (lists of labels)", "single-label")
            this, that = kinds if data.multi_label else kinds[::-1]
            raise DataError(
                f"{data.source}: {this}, but {first.source} is {that}; all splits must be one kind"
            )


def _check_seen_in_train(splits: Mapping[str, LabeledTexts]) -> None:
    """A dev/test label the model never trained on cannot be predicted; flag it at load time."""
    _check_same_kind(splits)
    if "train" not in splits:
        return
    seen = splits["train"].label_set()
    for name in ("dev", "test"):
        if name in splits:
            _check_known_labels(splits[name], seen, "the labels seen in train")
