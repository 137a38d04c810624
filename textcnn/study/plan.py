"""What a study trains: its settings (`StudyConfig`), its runs and their order, and its folds.

A run is one (dataset, fold, seed, pooling). Which runs exist, in which order, and how they group
into batched trainings follows from the config and the folds alone (the folds from the split
seed), so a study stopped and started again (or grown by datasets, arms, seeds or folds) plans
the same runs and trains only the missing ones. No training code is imported here (`run` imports
it when a run trains): `textcnn compare --help` reads `StudyConfig`'s defaults from this module.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from textcnn.data.corpus import load_registered
from textcnn.data.folds import make_folds
from textcnn.data.registry import REGISTRY
from textcnn.data.splits import Fold, LabeledTexts
from textcnn.data.tokenizers import DEFAULT_TOKENIZER, TokenizerConfig
from textcnn.errors import ConfigError
from textcnn.study.arms import arm_options


@dataclass(frozen=True)
class StudyConfig:
    datasets: tuple[str, ...]
    poolings: tuple[str, ...]
    seeds: int = 3
    # Seeds on a dataset with one fixed split (SST, TREC), where seeds are the only replications;
    # None: `seeds`. Zhang & Wallace-style studies want more there (10) than per fold (3).
    fixed_split_seeds: int | None = None
    folds: int = 10  # cross-validated datasets: stratified k-fold
    max_folds: int | None = None  # run only the first N folds of a cross-validated dataset
    variant: str = "rand"
    vectors: str | None = None
    epochs: int = 25
    patience: int | None = 5
    split_seed: int = 0  # fixes the folds and held-out dev parts for every run
    max_train: int | None = None  # keep at most this many training sentences (quick budgets)
    model_options: dict = field(default_factory=dict)  # other ModelConfig fields, e.g. embedding_dim
    tokenizer: str | None = None  # as --tokenizer takes it; None: each dataset's (`study_tokenizer`)

    def __post_init__(self) -> None:
        for name in ("datasets", "poolings"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
            if not getattr(self, name):
                raise ConfigError(f"a study needs at least one of {name}")
        at_least_one = (self.max_folds, self.fixed_split_seeds)
        if self.seeds < 1 or self.folds < 2 or any(n is not None and n < 1 for n in at_least_one):
            raise ConfigError("seeds, fixed_split_seeds and max_folds must be >= 1, folds >= 2")
        if len(set(self.poolings)) != len(self.poolings):
            raise ConfigError(f"a pooling is listed twice: {', '.join(self.poolings)}")
        for arm in self.poolings:
            arm_options(arm)  # a bad arm fails here, before any training
        if self.tokenizer is not None:
            TokenizerConfig.parse(self.tokenizer)  # an unknown tokenizer or option fails here too

    def to_json(self) -> dict:
        return dataclasses.asdict(self) | {"datasets": list(self.datasets), "poolings": list(self.poolings)}

    def run_settings(self) -> dict:
        """What every run's training depends on. Datasets, poolings, seeds and the number of folds
        run only choose which runs exist, so a study can grow by them and keep its finished runs."""
        grows_by = {"datasets", "poolings", "seeds", "fixed_split_seeds", "max_folds"}
        return {k: v for k, v in self.to_json().items() if k not in grows_by}

    def seeds_for(self, fold: Fold) -> int:
        """Seeds per arm on this fold: `fixed_split_seeds` on a fixed split, else `seeds`."""
        if fold.index is None and self.fixed_split_seeds is not None:
            return self.fixed_split_seeds
        return self.seeds

    def seeds_text(self) -> str:
        if self.fixed_split_seeds is None or self.fixed_split_seeds == self.seeds:
            return f"{self.seeds} seed(s)"
        return f"{self.seeds} seed(s) per fold, {self.fixed_split_seeds} on fixed splits"


@dataclass(frozen=True)
class Run:
    dataset: str
    fold: int | None  # None: the dataset's fixed split
    seed: int
    pooling: str

    @property
    def key(self) -> tuple:
        return (self.dataset, self.fold, self.seed, self.pooling)


def plan_runs(config: StudyConfig, folds_by_dataset: dict[str, list[Fold]]) -> list[Run]:
    """Dataset by dataset, fold by fold, seed by seed, every pooling in turn: a study stopped
    early still holds complete pairs."""
    return [
        Run(dataset, fold.index, seed, pooling)
        for dataset in config.datasets
        for fold in folds_by_dataset[dataset]
        for seed in range(config.seeds_for(fold))
        for pooling in config.poolings
    ]


def _subsample(texts: LabeledTexts, limit: int | None, seed: int) -> LabeledTexts:
    if limit is None or len(texts.texts) <= limit:
        return texts
    return texts.subset(sorted(random.Random(seed).sample(range(len(texts)), limit)))


def training_fold(fold: Fold, config: StudyConfig) -> Fold:
    """The fold as every run of the study (and its baselines) trains on it: train cut to max_train."""
    return dataclasses.replace(fold, train=_subsample(fold.train, config.max_train, config.split_seed))


def study_tokenizer(config: StudyConfig, dataset: str) -> TokenizerConfig:
    """The tokenizer every run (and baseline) of `dataset` reads with: the study's, else the one the
    registry suggests for the dataset. Kim's rules always lowercase here, TREC included (whose
    registry entry keeps case): the study has always tokenized so, and keeps it so that a study
    grows on the settings its committed runs were trained with."""
    if config.tokenizer is not None:
        return TokenizerConfig.parse(config.tokenizer)
    suggested = TokenizerConfig.parse(
        REGISTRY[dataset].tokenizer if dataset in REGISTRY else DEFAULT_TOKENIZER
    )
    return suggested.replace(lowercase=True) if suggested.name == "kim" else suggested


def group_runs(runs: Sequence[Run], size: int) -> list[list[Run]]:
    """Runs sharing a model shape (dataset and pooling), in chunks of at most `size`.

    Within a dataset the chunks take turns: the first chunk of every pooling, then the second of
    every pooling, and so on, so that a study stopped (or cut by its budget) in the middle of a
    cross-validated dataset holds every arm on the same first folds, which is what pairs them.
    Datasets, and poolings within a turn, keep the order their first run has in the plan.
    """
    by_shape: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        by_shape.setdefault((run.dataset, run.pooling), []).append(run)
    by_dataset: dict[str, list[list[list[Run]]]] = {}
    for (dataset, _), shape_runs in by_shape.items():
        chunks = [shape_runs[i : i + size] for i in range(0, len(shape_runs), size)]
        by_dataset.setdefault(dataset, []).append(chunks)
    groups = []
    for shapes in by_dataset.values():
        for turn in range(max(len(chunks) for chunks in shapes)):
            groups += [chunks[turn] for chunks in shapes if turn < len(chunks)]
    return groups


def study_folds(config: StudyConfig, data_dir: str | None = None) -> tuple[dict, dict[str, list[Fold]]]:
    """(corpora, folds) by dataset: fixed splits as one fold, cross-validated ones cut to max_folds."""
    corpora = {name: load_registered(name, data_dir) for name in config.datasets}
    multi = [name for name, corpus in corpora.items() if corpus.multi_label]
    if multi:  # its statistics pair per-sentence correctness (McNemar): one label a sentence
        raise ConfigError(
            f"{', '.join(multi)}: multi-label; the pooling study compares single-label classifiers "
            "(textcnn train and textcnn tune take multi-label data)"
        )
    folds = {}
    for name, corpus in corpora.items():
        cross_validated = "all" in corpus.splits
        folds[name] = make_folds(
            corpus, folds=config.folds if cross_validated else None, seed=config.split_seed
        )
        if cross_validated and config.max_folds:
            folds[name] = folds[name][: config.max_folds]
    return corpora, folds


def planned_runs(config: StudyConfig, dataset: str) -> int | None:
    """Runs one arm of `dataset` has in the full plan; None for a dataset outside the registry."""
    spec = REGISTRY.get(dataset)
    if spec is None:
        return None
    if tuple(spec.splits) == ("all",):  # cross-validated
        return (config.max_folds or config.folds) * config.seeds
    return config.fixed_split_seeds or config.seeds
