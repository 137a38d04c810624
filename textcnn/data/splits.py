"""The data types every loader returns and every protocol produces: `LabeledTexts`, `Corpus`, `Fold`.

They live apart from the loaders so that the file readers, the `datasets` paths and the protocols
can all build them without importing one another. The label checks are here too, since every
loader applies them to its splits the same way: a bad label is reported at its row
(`train.csv:17: label 'x' is not among ...`) wherever the rows came from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from textcnn.errors import DataError

SPLIT_NAMES = ("all", "train", "dev", "test")


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
