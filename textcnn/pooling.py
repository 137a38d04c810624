"""Pooling over time, always masked: padding never wins a max and never counts in a mean.

Every function takes feature maps `x` of shape (B, C, T) and a boolean `mask` (B, T) that is True
at real (non-padding) window positions; every row of `mask` has at least one True. Each returns
`Pooled(values, positions)`: values (B, C * m) where m is the pooling's size multiplier, and, for
poolings that select positions, the selected positions (B, C, m) with -1 for empty slots.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from textcnn.errors import ConfigError
from textcnn.names import POOLINGS


@dataclass(frozen=True)
class Pooled:
    values: torch.Tensor  # (B, C * m)
    positions: torch.Tensor | None = None  # (B, C, m) int64, -1 where a slot is empty


def output_multiplier(name: str, k: int = 3, chunks: int = 3) -> int:
    """How many values each feature map contributes to the pooled vector."""
    return {"max": 1, "avg": 1, "kmax": k, "chunk-max": chunks, "logsumexp": 1, "max+avg": 2}[name]


def _masked_fill_neg_inf(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return x.masked_fill(~mask[:, None, :], float("-inf"))


def max_pool(x: torch.Tensor, mask: torch.Tensor) -> Pooled:
    """Max-over-time (Collobert et al. 2011; Kim 2014): the strongest evidence anywhere."""
    values, positions = _masked_fill_neg_inf(x, mask).max(dim=2)  # (B, C)
    return Pooled(values, positions[:, :, None])


def avg_pool(x: torch.Tensor, mask: torch.Tensor) -> Pooled:
    """Mean over real positions only: dividing by the padded length would measure padding."""
    total = x.masked_fill(~mask[:, None, :], 0.0).sum(dim=2)  # (B, C); masked_fill, not x * 0: inf * 0 is NaN
    return Pooled(total / mask.sum(dim=1, keepdim=True).to(x.dtype))


def kmax_pool(x: torch.Tensor, mask: torch.Tensor, k: int) -> Pooled:
    """The k largest values in their original order (Kalchbrenner et al. 2014).

    A sentence with fewer than k positions fills its last slots with 0 (position -1): after the
    ReLU, 0 is "no evidence", and the value cannot depend on how much padding the batch added.
    """
    B, C, T = x.shape
    masked = _masked_fill_neg_inf(x, mask)
    if k > T:  # k slots need k columns; the extra columns are padding and can never be chosen
        masked = torch.nn.functional.pad(masked, (0, k - T), value=float("-inf"))
    # A stable sort (not topk) so ties go to the earliest positions: after a ReLU many values tie
    # at 0, and which of them fill the slots must not depend on the batch's padded length.
    sorted_values, sorted_positions = masked.sort(dim=2, descending=True, stable=True)
    top_values, top_positions = sorted_values[:, :, :k], sorted_positions[:, :, :k]  # (B, C, k)
    empty = torch.isinf(top_values)
    order_key = top_positions.masked_fill(empty, masked.shape[2])  # empty slots sort last
    order = order_key.argsort(dim=2)
    values = top_values.gather(2, order).masked_fill(empty.gather(2, order), 0.0)
    positions = top_positions.gather(2, order).masked_fill(empty.gather(2, order), -1)
    return Pooled(values.reshape(B, C * k), positions)


def chunk_max_pool(x: torch.Tensor, mask: torch.Tensor, chunks: int) -> Pooled:
    """Max over `chunks` equal regions of each sentence's own length (Zhang & Wallace 2015, local pooling).

    Regions follow the real length, not the padded one, so the answer does not depend on the batch.
    A sentence shorter than `chunks` leaves some regions empty: they give 0 at position -1.
    """
    B, C, _ = x.shape
    lengths = mask.sum(dim=1, keepdim=True)  # (B, 1)
    rank = mask.long().cumsum(dim=1) - 1  # (B, T): index among the row's real positions
    region = torch.div(
        rank * chunks, lengths, rounding_mode="floor"
    )  # (B, T), in [0, chunks) at real positions
    in_region = (region[:, None, :] == torch.arange(chunks, device=x.device)[None, :, None]) & mask[
        :, None, :
    ]
    per_region = x[:, :, None, :].masked_fill(~in_region[:, None, :, :], float("-inf"))  # (B, C, chunks, T)
    values, positions = per_region.max(dim=3)  # (B, C, chunks)
    empty = torch.isinf(values)
    values = values.masked_fill(empty, 0.0)
    positions = positions.masked_fill(empty, -1)
    return Pooled(values.reshape(B, C * chunks), positions)


def logsumexp_pool(x: torch.Tensor, mask: torch.Tensor, temperature: float) -> Pooled:
    """A smooth maximum: τ·log(mean(exp(x/τ))) over real positions.

    Subtracting log(n) makes it a mean in log space: it tends to the max as τ → 0 and to the
    average as τ → ∞, so one knob spans the two poolings this project compares.
    """
    lengths = mask.sum(dim=1).to(x.dtype)[:, None]  # (B, 1)
    lse = torch.logsumexp(_masked_fill_neg_inf(x, mask) / temperature, dim=2)  # (B, C)
    return Pooled(temperature * (lse - torch.log(lengths)))


def max_avg_pool(x: torch.Tensor, mask: torch.Tensor) -> Pooled:
    """Both summaries side by side: [max features | mean features]."""
    maxed = max_pool(x, mask)
    return Pooled(torch.cat([maxed.values, avg_pool(x, mask).values], dim=1), maxed.positions)


def pool(
    name: str, x: torch.Tensor, mask: torch.Tensor, k: int = 3, chunks: int = 3, temperature: float = 1.0
) -> Pooled:
    if name == "max":
        return max_pool(x, mask)
    if name == "avg":
        return avg_pool(x, mask)
    if name == "kmax":
        return kmax_pool(x, mask, k)
    if name == "chunk-max":
        return chunk_max_pool(x, mask, chunks)
    if name == "logsumexp":
        return logsumexp_pool(x, mask, temperature)
    if name == "max+avg":
        return max_avg_pool(x, mask)
    raise ConfigError(f"unknown pooling {name!r}; choose one of {', '.join(POOLINGS)}")


def validate_pooling(name: str, k: int, chunks: int, temperature: float) -> None:
    if name not in POOLINGS:
        raise ConfigError(f"unknown pooling {name!r}; choose one of {', '.join(POOLINGS)}")
    if k < 1:
        raise ConfigError(f"k-max pooling needs k >= 1, got {k}")
    if chunks < 1:
        raise ConfigError(f"chunk-max pooling needs chunks >= 1, got {chunks}")
    if not (temperature > 0 and math.isfinite(temperature)):
        raise ConfigError(f"logsumexp pooling needs a positive finite temperature, got {temperature}")
