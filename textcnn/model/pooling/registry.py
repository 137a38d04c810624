"""The pooling registry: one entry per pooling, and nothing else keeps a list of poolings.

An entry (`Pooling`) holds all that the rest of the project needs to know of a pooling: its name
and one-line summary (`--help`, the page's /info, the study report), the model-config fields it
reads, its forward, how many values each feature map gives, whether it has a fixed number of
slots set from the training data, and its explanation rule with whether that rule is exact. The
model, the CLI's choices, the study's arm names and `explain` all read the registry, so a new
pooling is one `register(Pooling(...))` (see `textcnn.model.pooling.catalog`) plus its tests.

Importing this module does not import torch: the CLI builds its choices and `--help` from it, and
`textcnn --help` answers at once. The forwards import their tensor code on first call.

A pooling's parameters are fields of `ModelConfig` (`kmax_k`, `chunks`, `temperature`, `region`,
`region_slots`): every config carries them all, so each is checked whatever the pooling
(`PARAMETERS`), and an entry names the ones it reads.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from textcnn.errors import ConfigError

if TYPE_CHECKING:
    from textcnn.model.pooling.attribution import Part
    from textcnn.model.pooling.functions import Pooled


@dataclass(frozen=True)
class Parameter:
    """A config field some poolings read: its check, and its meaning in messages and arm names."""

    field: str
    meaning: str  # "k", "the region": `arm 'kmax:0': k must be a positive integer`
    letter: str  # K, R: `kmax:K` in the arm grammar
    valid: Callable[[Any], bool]
    problem: str  # the error, formatted with {value}


PARAMETERS = {
    p.field: p
    for p in (
        Parameter("kmax_k", "k", "K", lambda v: v >= 1, "k-max pooling needs k >= 1, got {value}"),
        Parameter(
            "chunks", "chunks", "C", lambda v: v >= 1, "chunk-max pooling needs chunks >= 1, got {value}"
        ),
        Parameter(
            "temperature",
            "the temperature",
            "T",
            lambda v: v > 0 and math.isfinite(v),
            "logsumexp pooling needs a positive finite temperature, got {value}",
        ),
        Parameter(
            "region",
            "the region",
            "R",
            lambda v: v >= 1,
            "local pooling needs region >= 1 (windows per region), got {value}",
        ),
        Parameter(
            "region_slots",
            "the slots",
            "S",
            lambda v: v >= 0,
            "region_slots must be >= 0 (0: not set), got {value}",
        ),
    )
}


@dataclass(frozen=True)
class Slots:
    """A pooling whose vector has a fixed number of slots per model, set from the training data
    (`ModelConfig.region_slots`: `textcnn.train.runs.prepare_run` sets it from the longest
    training sentence): what a slot is, and how many windows it takes."""

    unit: str  # "regions", "windows": for the message when region_slots is not set
    windows: Callable[[Any], int]  # windows per slot, from the config


@dataclass(frozen=True)
class Pooling:
    """One pooling over time. `config` below is a `ModelConfig` or any object with its pooling
    fields (`PoolingParams`)."""

    name: str
    summary: str  # one line: --help, the page's /info, the study report
    # (maps (B, C, T), mask (B, T), config[, the width's learned parameters when `learned`])
    forward: Callable[..., Pooled]
    # The explanation's α (`textcnn.model.pooling.attribution`): (config, activations (F, n), the
    # model's selected positions (F, m)) -> [(part name or None, α (F, m, n))]; `explained` says it
    # in words, `exact` False when the α do not sum to the pooled value (a residual is reported).
    attribution: Callable[..., list[Part]]  # (config, activations, positions[, learned parameters])
    explained: str
    exact: bool = True
    reads: tuple[str, ...] = ()  # fields of `PARAMETERS`
    width: Callable[[Any], int] = lambda config: 1  # values per feature map in the pooled vector
    number: str | None = None  # the field a study arm `NAME:N` sets (kmax:5 -> kmax_k = 5)
    slots: Slots | None = None
    # One learned parameter per feature map (`TextCNN.pooling_sharpness`, one (maps,) tensor per map
    # width): the forward and the attribution rule then take that width's tensor as a last argument.
    learned: bool = False

    def __post_init__(self) -> None:
        unknown = [f for f in (*self.reads, *([self.number] if self.number else [])) if f not in PARAMETERS]
        if unknown:
            raise ValueError(
                f"pooling {self.name!r} reads unknown parameters {unknown}; known: {list(PARAMETERS)}"
            )
        if self.number is not None and self.number not in self.reads:
            raise ValueError(f"pooling {self.name!r}: its arm number {self.number!r} must be one it reads")


@dataclass(frozen=True)
class PoolingParams:
    """The pooling fields of a `ModelConfig`, with its defaults, for calling a pooling without a model."""

    kmax_k: int = 3
    chunks: int = 3
    temperature: float = 1.0
    region: int = 3
    region_slots: int = 0


_REGISTRY: dict[str, Pooling] = {}


def register(pooling: Pooling) -> Pooling:
    """Add a pooling; every list of poolings (CLI choices, arms, explain) sees it from then on."""
    if pooling.name in _REGISTRY:
        raise ValueError(f"a pooling named {pooling.name!r} is already registered")
    _REGISTRY[pooling.name] = pooling
    return pooling


def unregister(name: str) -> None:
    """Remove a pooling (tests register throw-away ones); bundles that use it no longer load."""
    del _REGISTRY[name]


def get_pooling(name: str) -> Pooling:
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown pooling {name!r}; choose one of {', '.join(_REGISTRY)}") from None


class _Names(Sequence[str]):
    """The registered names (those `where` keeps), read at each use, in registration order:
    a pooling registered later shows up in every loop and `in` test over it."""

    def __init__(self, where: Callable[[Pooling], bool] = lambda pooling: True):
        self._where = where

    def _names(self) -> tuple[str, ...]:
        return tuple(name for name, pooling in _REGISTRY.items() if self._where(pooling))

    def __getitem__(self, index):
        return self._names()[index]

    def __len__(self) -> int:
        return len(self._names())

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __repr__(self) -> str:
        return repr(self._names())


POOLINGS: Sequence[str] = _Names()
SLOT_POOLINGS: Sequence[str] = _Names(lambda pooling: pooling.slots is not None)
NUMBERED_POOLINGS: Sequence[str] = _Names(lambda pooling: pooling.number is not None)


def validate(name: str, config: Any) -> None:
    """Every pooling parameter of `config` is valid, the pooling is known, and its slots are set
    when it has slots. The parameters are checked whatever the pooling: a config carries them all."""
    pooling = get_pooling(name)
    for parameter in PARAMETERS.values():
        value = getattr(config, parameter.field)
        if not parameter.valid(value):
            raise ConfigError(parameter.problem.format(value=value))
    if pooling.slots is not None and config.region_slots < 1:
        raise ConfigError(
            f"{name} pooling needs region_slots >= 1 (the number of {pooling.slots.unit} of the longest "
            f"training sentence; textcnn.train.runs.prepare_run sets it), got {config.region_slots}"
        )


def describe() -> str:
    """Every pooling with its summary, for `--help`."""
    return "; ".join(f"{name}: {pooling.summary}" for name, pooling in _REGISTRY.items())
