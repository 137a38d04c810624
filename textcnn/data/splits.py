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

from textcnn.errors import DataError

SPLIT_NAMES = ("all", "train", "dev", "test")

# One row's label: a name, or (multi-label data) the tuple of its names.
Label = str | tuple[str, ...]


@dataclass(frozen=True)
class LabeledTexts:
    """Texts with their label names, and where each came from so later checks can point at a line.

    `skipped` holds the lines of `source` left out because their text was empty. It describes the
    file, not the rows held, so a subset (a fold, a held-out dev part) keeps it: an evaluation on a
    fold can still say that its file had rows nobody scored.
    """

    texts: tuple[str, ...]
    labels: tuple[Label, ...]  # all `str`, or all tuples of names (multi-label; `()` is a row with none)
    source: str
    lines: tuple[int, ...] = ()
    skipped: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        # Accept lists from callers but store tuples, so a frozen instance is really immutable.
        object.__setattr__(self, "texts", tuple(self.texts))
        object.__setattr__(self, "labels", tuple(tuple(y) if isinstance(y, list) else y for y in self.labels))
        object.__setattr__(self, "lines", tuple(self.lines))
        object.__setattr__(self, "skipped", tuple(self.skipped))
        if len(self.texts) != len(self.labels):
            raise ValueError(f"{len(self.texts)} texts but {len(self.labels)} labels")
        if self.lines and len(self.lines) != len(self.texts):
            raise ValueError(f"{len(self.texts)} texts but {len(self.lines)} line numbers")
        if len({isinstance(y, tuple) for y in self.labels}) > 1:
            # Every consumer branches once on `multi_label`; a mix would be read by the wrong branch.
            raise ValueError(f"{self.source}: labels mix single names and tuples of names")

    @property
    def multi_label(self) -> bool:
        """True when each row holds a tuple of labels (False for no rows: nothing says otherwise)."""
        return bool(self.labels) and isinstance(self.labels[0], tuple)

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
    return {name for label in labels for name in _row_labels(label)}


def _in_label_order(data: LabeledTexts, label_names: Sequence[str]) -> LabeledTexts:
    """Multi-label rows with their labels in `label_names`' order, so that equal label sets are
    equal tuples whichever layout (a list, a separated cell, 0/1 columns) the file used."""
    if not data.multi_label:
        return data
    rank = {name: i for i, name in enumerate(label_names)}
    ordered = tuple(tuple(sorted(row, key=lambda name: rank.get(name, len(rank)))) for row in data.labels)
    return LabeledTexts(data.texts, ordered, data.source, data.lines, data.skipped)


def _check_known_labels(data: LabeledTexts, known: Iterable[str], what: str) -> None:
    """Raise at the first row with a label not in `known`; `what` says where `known` came from."""
    allowed = set(known)
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
    seen = _label_set(splits["train"].labels)
    for name in ("dev", "test"):
        if name in splits:
            _check_known_labels(splits[name], seen, "the labels seen in train")
