"""Evaluation protocols: the train/dev/test arrangements (`Fold`s) to run for a loaded `Corpus`.

Loading returns a `Corpus` (what is on disk); `make_folds` turns it into the train/dev/test
arrangements to run, following Kim's protocols: 10-fold cross-validation for sets released as a
single file (MR, Subj), the fixed splits otherwise, with 10% of train held out as dev where no dev
split exists (Kim 2014, section 3.1 and 3.3).

Multi-label data (rows holding tuples of labels) is split seeded but unstratified, for both the
held-out dev part and the k folds: a row's label set is no class to stratify on (GoEmotions' 28
labels make hundreds of sets, most of a few rows), and iterative stratification (Sechidis et al.,
2011) is a dependency and a second code path for a small gain on sets this size.
"""

from __future__ import annotations

import numpy as np

from textcnn.data.splits import Corpus, Fold, LabeledTexts, _check_seen_in_train
from textcnn.errors import DataError

DEFAULT_FOLDS = 10  # Kim (2014), Table 1: "CV" means 10-fold cross-validation


def _hold_out(data: LabeledTexts, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Split row indices into (train, dev), stratified where every class allows it.

    Stratification needs two rows of each class and at least one dev row per class; when that
    fails the split is seeded but unstratified, and classes with a single row stay in train (a
    dev-only class would never be learned, only mis-scored).
    """
    from sklearn.model_selection import train_test_split

    # Index arrays and label codes ordered as the label strings (`Labels.sort_keys`) give the
    # splitters exactly the draws that lists of indices and of label strings gave (the fold
    # digests in tests/test_compact_data.py were recorded from that code).
    indices = np.arange(len(data))
    splittable, kept = indices, indices[:0]  # multi-label rows: seeded, unstratified
    if not data.multi_label:
        keys = data.labels.sort_keys()
        try:
            train_idx, dev_idx = train_test_split(
                indices, test_size=fraction, stratify=keys, random_state=seed
            )
            return np.sort(train_idx), np.sort(dev_idx), True
        except ValueError:
            pass
        enough = np.bincount(keys)[keys] >= 2
        splittable, kept = indices[enough], indices[~enough]
    try:
        train_idx, dev_idx = train_test_split(splittable, test_size=fraction, random_state=seed)
    except ValueError:
        raise DataError(
            f"{data.source}: {len(data)} rows are too few to hold out {fraction:.0%} as dev; "
            "give a --dev file or more data"
        ) from None
    return np.sort(np.concatenate([train_idx, kept])), np.sort(dev_idx), False


def _dev_source(fraction: float, seed: int, stratified: bool, multi_label: bool = False) -> str:
    how = "unstratified (multi-label), " if multi_label else "stratified, " if stratified else ""
    return f"{fraction * 100:g}% of train, {how}seed {seed}"


def _only_one_label(data: LabeledTexts) -> None:
    """A classifier needs two labels or more; for multi-label rows, two across all rows."""
    names = data.label_set()
    if len(names) < 2:
        shown = repr(next(iter(names))) if names else "none"
        raise DataError(f"{data.source}: only one label ({shown}); a classifier needs two or more")


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
    if data.multi_label:
        return _multi_label_folds(data, n_folds, folds, fold, seed, dev_fraction)
    counts = data.labels.counts()
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
    return _cross_folds(
        data,
        splitter.split(_no_features(data), data.labels.sort_keys()),
        n_folds,
        folds,
        fold,
        seed,
        dev_fraction,
    )


def _multi_label_folds(
    data: LabeledTexts, n_folds: int, folds: int | None, fold: int | None, seed: int, dev_fraction: float
) -> list[Fold]:
    """`make_folds`' cross-validation for multi-label rows: shuffled k-fold, unstratified."""
    _only_one_label(data)
    if len(data) < n_folds:
        raise DataError(
            f"{data.source}: {len(data)} rows are too few for {n_folds}-fold cross-validation; "
            "use fewer --folds or more data"
        )

    from sklearn.model_selection import KFold

    splitter = KFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return _cross_folds(data, splitter.split(_no_features(data)), n_folds, folds, fold, seed, dev_fraction)


def _no_features(data: LabeledTexts) -> np.ndarray:
    """The splitters read only the number of rows from X: a (N, 0) array holds no text."""
    return np.empty((len(data), 0))


def _cross_folds(
    data: LabeledTexts, parts, n_folds: int, folds, fold, seed: int, dev_fraction: float
) -> list[Fold]:
    """The wanted folds of a splitter's (train, test) index pairs, each with dev held out of its train part."""
    wanted = {0} if folds is None and fold is None else set(range(n_folds)) if fold is None else {fold}
    result: list[Fold] = []
    # The splitter must run through every fold even when one is wanted: fold K's rows depend on
    # the one shuffle, so fold 3 alone is exactly fold 3 of a full run.
    for index, (train_part, test_part) in enumerate(parts):
        if index not in wanted:
            continue
        train_data = data.subset(np.sort(train_part))
        train_idx, dev_idx, stratified = _hold_out(train_data, dev_fraction, seed)
        result.append(
            Fold(
                name=f"fold-{index}",
                index=index,
                train=train_data.subset(train_idx),
                dev=train_data.subset(dev_idx),
                test=data.subset(np.sort(test_part)),
                dev_source=_dev_source(dev_fraction, seed, stratified, multi_label=data.multi_label),
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
    _only_one_label(train)
    _check_seen_in_train(corpus.splits)
    if "dev" in corpus.splits:
        dev, dev_source = corpus.splits["dev"], "dev split"
    else:
        train_idx, dev_idx, stratified = _hold_out(train, dev_fraction, seed)
        train, dev = train.subset(train_idx), train.subset(dev_idx)
        dev_source = _dev_source(dev_fraction, seed, stratified, multi_label=train.multi_label)
    return Fold("split", None, train, dev, corpus.splits.get("test"), dev_source)
