"""Pooling over time, always masked, one registry entry per pooling.

- `registry`: the `Pooling` entry and the registry every list of poolings reads (torch-free);
- `catalog`: the poolings shipped, one `register(...)` each;
- `functions`: their forwards (the tensor arithmetic);
- `attribution`: their explanation rules (how much each window counts in each pooled value).

To add a pooling: write its forward (and, unless it selects windows or averages them, its α rule),
`register(Pooling(...))` it, and test it with the invariance and exactness tests that run over every
registered pooling (tests/test_pooling_registry.py). `textcnn train --pooling`, the study's arms
and `explain` then take it with no other edit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textcnn.errors import ConfigError
from textcnn.model.pooling import catalog  # noqa: F401 - registers the shipped poolings
from textcnn.model.pooling.registry import (
    NUMBERED_POOLINGS,
    PARAMETERS,
    POOLINGS,
    SLOT_POOLINGS,
    Parameter,
    Pooling,
    PoolingParams,
    Slots,
    describe,
    get_pooling,
    register,
    unregister,
    validate,
)

if TYPE_CHECKING:
    import torch

    from textcnn.model.pooling.functions import Pooled

__all__ = [
    "NUMBERED_POOLINGS",
    "PARAMETERS",
    "POOLINGS",
    "SLOT_POOLINGS",
    "Parameter",
    "Pooling",
    "PoolingParams",
    "Slots",
    "describe",
    "get_pooling",
    "output_multiplier",
    "pool",
    "register",
    "unregister",
    "validate",
    "validate_pooling",
]


def pool(
    name: str,
    x: torch.Tensor,
    mask: torch.Tensor,
    k: int = 3,
    chunks: int = 3,
    temperature: float = 1.0,
    region: int = 3,
    slots: int = 0,
    log_sharpness: torch.Tensor | None = None,
) -> Pooled:
    """Pool maps x (B, C, T) with a boolean mask (B, T) of real windows by the pooling `name`;
    a learned pooling takes its per-map parameters as `log_sharpness` (C,) (None: 0 for every map)."""
    pooling = get_pooling(name)
    if pooling.slots is not None and slots < 1:
        raise ConfigError(f"{name} pooling needs region_slots >= 1, got {slots}")
    params = PoolingParams(
        kmax_k=k, chunks=chunks, temperature=temperature, region=region, region_slots=slots
    )
    if pooling.learned:
        if log_sharpness is None:
            log_sharpness = x.new_zeros(x.shape[1])
        return pooling.forward(x, mask, params, log_sharpness)
    return pooling.forward(x, mask, params)


def output_multiplier(name: str, k: int = 3, chunks: int = 3, slots: int = 0) -> int:
    """How many values each feature map contributes to the pooled vector."""
    return get_pooling(name).width(PoolingParams(kmax_k=k, chunks=chunks, region_slots=slots))


def validate_pooling(
    name: str, k: int, chunks: int, temperature: float, region: int = 3, region_slots: int = 0
) -> None:
    validate(
        name,
        PoolingParams(
            kmax_k=k, chunks=chunks, temperature=temperature, region=region, region_slots=region_slots
        ),
    )
