"""The multi-label decision rule: which labels a text gets from its label probabilities.

A label is given when its probability reaches its threshold; with `at_least_one`, a text that
reaches none still gets its most probable label (for data where every row has a label, as
GoEmotions, where "neutral" is one). Thresholds are chosen on dev (`choose_thresholds`) and stored
in the bundle (`Decision.to_json`); `--threshold` and the request's `threshold` override them.

Why choose them at all: a sigmoid's 0.5 is the right cut only for a calibrated model and the
accuracy of one label; macro-F1 over rare labels wants lower cuts (a label seen in 1% of rows is
rarely above 0.5). One threshold for all labels is chosen on dev macro-F1; a label with at least
`min_support` dev rows then gets its own (the cut that maximizes its dev F1), a rarer one keeps
the shared one, since its F1 on a handful of rows would pick a cut by noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from textcnn.errors import ConfigError
from textcnn.model.variants import MIN_SUPPORT, THRESHOLD_MODES

GRID = np.round(np.arange(0.02, 0.96, 0.01), 2)  # the cuts tried


@dataclass(frozen=True)
class Decision:
    thresholds: tuple[float, ...]  # one per label, in the model's output order
    at_least_one: bool = False  # a text gets its top label when none reaches its threshold
    chosen: str = "0.5 for every label"  # how the thresholds were chosen, in words

    def __post_init__(self) -> None:
        object.__setattr__(self, "thresholds", tuple(float(t) for t in self.thresholds))
        if not self.thresholds or not all(0.0 < t < 1.0 for t in self.thresholds):
            raise ConfigError(f"thresholds must lie strictly between 0 and 1, got {list(self.thresholds)}")

    def with_threshold(self, threshold: float | None) -> Decision:
        """This decision with one threshold for every label (`--threshold`), or itself for None."""
        if threshold is None:
            return self
        return Decision((check_threshold(threshold),) * len(self.thresholds), self.at_least_one, "given")

    def decide(self, probabilities: np.ndarray) -> np.ndarray:
        """(N, C) 0/1 predictions from (N, C) probabilities."""
        return decide(probabilities, np.asarray(self.thresholds), self.at_least_one)

    def to_json(self) -> dict:
        return {"thresholds": list(self.thresholds), "at_least_one": self.at_least_one, "chosen": self.chosen}

    @classmethod
    def from_json(cls, data: dict, labels: int) -> Decision:
        decision = cls(
            tuple(data["thresholds"]), bool(data.get("at_least_one", False)), str(data.get("chosen", ""))
        )
        if len(decision.thresholds) != labels:
            raise ConfigError(f"{len(decision.thresholds)} thresholds for {labels} labels")
        return decision

    @classmethod
    def default(cls, labels: int) -> Decision:
        return cls((0.5,) * labels)


def check_threshold(value: float) -> float:
    if not (isinstance(value, int | float) and 0.0 < float(value) < 1.0):
        raise ConfigError(f"a threshold must lie strictly between 0 and 1, got {value!r}")
    return float(value)


def decide(probabilities: np.ndarray, thresholds: np.ndarray, at_least_one: bool) -> np.ndarray:
    predicted = (probabilities >= thresholds[None, :]).astype(np.int8)
    if at_least_one and len(predicted):
        none = predicted.sum(axis=1) == 0
        predicted[none, probabilities[none].argmax(axis=1)] = 1
    return predicted


def _f1_per_label(predicted: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """F1 of each label (C,), 0 where a label is neither predicted nor true (scikit-learn's zero_division=0)."""
    tp = (predicted & targets).sum(axis=0)
    denominator = predicted.sum(axis=0) + targets.sum(axis=0)
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def choose_thresholds(
    probabilities: np.ndarray,
    targets: np.ndarray,
    mode: str = "per-label",
    at_least_one: bool = False,
    min_support: int = MIN_SUPPORT,
) -> tuple[Decision, dict]:
    """The decision that maximizes dev macro-F1: a shared cut from `GRID`, then (`per-label`) a cut
    of its own for each label with at least `min_support` dev rows. Returns it and what was chosen."""
    if mode not in THRESHOLD_MODES:
        raise ConfigError(f"unknown threshold mode {mode!r}; choose {' or '.join(THRESHOLD_MODES)}")
    targets = np.asarray(targets, dtype=np.int8)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    C = targets.shape[1]

    def macro(thresholds: np.ndarray) -> float:
        return float(_f1_per_label(decide(probabilities, thresholds, at_least_one), targets).mean())

    scores = [macro(np.full(C, cut)) for cut in GRID]
    shared = float(GRID[int(np.argmax(scores))])  # ties: the lowest cut
    thresholds = np.full(C, shared)
    support = targets.sum(axis=0)
    own = 0
    if mode == "per-label":
        for c in np.flatnonzero(support >= min_support):
            column = probabilities[:, c][:, None] >= GRID[None, :]  # (N, cuts)
            tp = (column & (targets[:, c][:, None] == 1)).sum(axis=0)
            f1 = 2 * tp / (column.sum(axis=0) + support[c])
            thresholds[c] = float(GRID[int(np.argmax(f1))])
            own += 1
        # `at_least_one` couples the labels; the per-label cuts were chosen without it, so keep them
        # only if they still beat the shared cut on dev with the rule applied.
        if macro(thresholds) < max(scores):
            thresholds, own = np.full(C, shared), 0
    words = f"chosen on dev macro-F1: {shared:.2f} for every label"
    if own:
        words += f", then its own for each of the {own} labels with at least {min_support} dev rows"
    info = {"shared": shared, "own": own, "min_support": min_support, "dev_macro_f1": macro(thresholds)}
    return Decision(tuple(thresholds.tolist()), at_least_one, words), info
