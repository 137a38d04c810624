"""The poolings' forward functions, always masked: padding never wins a max and never counts in a mean.

Each is registered, with its parameters, width and explanation rule, in `textcnn.model.pooling.catalog`;
this module is only the tensor arithmetic.

Every function takes feature maps `x` of shape (B, C, T) and a boolean `mask` (B, T) that is True
at real (non-padding) window positions; every row of `mask` has at least one True. Each returns
`Pooled(values, positions)`: values (B, C * m) where m is the pooling's size multiplier, and, for
poolings that select positions, the selected positions (B, C, m) with -1 for empty slots.

Local max and local average (Zhang & Wallace 2015, Tables 19 and 17) pool regions of `region`
consecutive windows. They padded every sentence to one length, so every map had the same number
of regions; here the masks stay, and the layout is fixed per model instead:

- region j holds the real windows of rank j·r .. j·r + r − 1, counted from the sentence's first
  real window (rank = index among the row's real windows; the model's masks are prefixes, so
  rank // r is window index // r);
- the number of region slots is fixed per model (`ModelConfig.region_slots`; `runs.prepare_run`
  sets it to ceil(windows of the longest training sentence at the widest filter / r));
- a region with no real window (a short sentence) gives 0 at position −1, as kmax and chunk-max do;
- a sentence longer than the slots at prediction time puts every window beyond the last slot INTO
  the last slot: nothing is dropped, the last slot is the max / mean over all remaining windows.

The pooled vector then has C × slots values per width; local-max gives each slot's winning window
as its position (−1 when empty), local-avg gives none (like avg).

Padded average (`padded-avg`) is the one pooling here that lets padding count, on purpose: it is the
global average as zero-padded code computes it (every sentence padded to the longest training
sentence, the mean taken over the padded length), kept to test whether that dilution, and not
averaging itself, is why Zhang & Wallace found average pooling far worse than 1-max. It divides the
masked sum by max(real windows, `region_slots`), where the slots are the windows of the longest
training sentence at the widest filter (the same for every width): padding adds 0, a short sentence's
average shrinks in proportion to its shortness, and a sentence longer than any in training (at
prediction time) is averaged over its own windows, as the padded code would have to pad further.
The value still does not depend on how much padding a batch adds. (In Kim's code an all-padding
window holds relu(bias), not 0; with biases near 0 the two dilute alike.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Pooled:
    values: torch.Tensor  # (B, C * m)
    positions: torch.Tensor | None = None  # (B, C, m) int64, -1 where a slot is empty


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


def padded_avg_pool(x: torch.Tensor, mask: torch.Tensor, slots: int) -> Pooled:
    """The average over a fixed padded length of `slots` windows, padding counting 0 (module docstring):
    Zhang & Wallace's global average, not ours; an arm to test why theirs lost to 1-max."""
    total = x.masked_fill(~mask[:, None, :], 0.0).sum(dim=2)  # (B, C)
    length = mask.sum(dim=1, keepdim=True).clamp(min=slots).to(x.dtype)  # (B, 1)
    return Pooled(total / length)


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
    """Max over `chunks` equal regions of each sentence's own length: local pooling with a fixed
    number of regions (Zhang & Wallace 2015 fixed the region size instead: `local_max_pool`).

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


def _local_regions(x: torch.Tensor, mask: torch.Tensor, region: int, slots: int):
    """The real windows moved to the front in sentence order, cut into slots.

    Returns (head (B, C, slots - 1, region), head_real (B, slots - 1, region), tail (B, C, W),
    tail_real (B, W), order (B, W')): the first slots - 1 regions of `region` windows each, then
    the last slot, which takes every remaining window; `order` maps a compacted column back to
    its column of `x`. Padding columns (real False) are left for the caller to mask.
    """
    B, C, T = x.shape
    columns = torch.arange(T, device=x.device)
    if torch.equal(mask, columns < mask.sum(dim=1, keepdim=True)):
        # Already compacted (a batch padded at the end only, as in training): skip the gather,
        # whose backward costs as much again as the pooling; the result is the same.
        order, real = columns.expand(B, T), mask
    else:
        order = (~mask).to(torch.uint8).argsort(dim=1, stable=True)  # (B, T): real windows first, in order
        real = mask.gather(1, order)  # (B, T): a prefix mask
        x = x.gather(2, order[:, None, :].expand(B, C, T))
    head = (slots - 1) * region
    missing = head + 1 - T  # at least one column for the last slot
    if missing > 0:
        x = torch.cat([x, x.new_zeros(B, C, missing)], dim=2)
        real = torch.cat([real, real.new_zeros(B, missing)], dim=1)
        order = torch.cat([order, order.new_zeros(B, missing)], dim=1)
    return (
        x[:, :, :head].reshape(B, C, slots - 1, region),
        real[:, :head].reshape(B, slots - 1, region),
        x[:, :, head:],
        real[:, head:],
        order,
    )


def local_max_pool(x: torch.Tensor, mask: torch.Tensor, region: int, slots: int) -> Pooled:
    """Max over each region of `region` consecutive real windows (Zhang & Wallace 2015, Table 19);
    see the module docstring for the slots, the folding of long sentences and empty regions."""
    B, C, _ = x.shape
    head, head_real, tail, tail_real, order = _local_regions(x, mask, region, slots)
    head_values, head_positions = head.masked_fill(~head_real[:, None], float("-inf")).max(dim=3)
    tail_values, tail_positions = tail.masked_fill(~tail_real[:, None], float("-inf")).max(
        dim=2, keepdim=True
    )
    starts = torch.arange(slots, device=x.device) * region  # (slots,): a slot's first compacted column
    values = torch.cat([head_values, tail_values], dim=2)  # (B, C, slots)
    compacted = torch.cat([head_positions, tail_positions], dim=2) + starts  # (B, C, slots)
    positions = order.gather(1, compacted.reshape(B, C * slots)).view(B, C, slots)
    empty = torch.isinf(values)
    return Pooled(values.masked_fill(empty, 0.0).reshape(B, C * slots), positions.masked_fill(empty, -1))


def local_avg_pool(x: torch.Tensor, mask: torch.Tensor, region: int, slots: int) -> Pooled:
    """Mean over each region's real windows (Zhang & Wallace 2015, Table 17); an empty region is 0."""
    B, C, _ = x.shape
    head, head_real, tail, tail_real, _ = _local_regions(x, mask, region, slots)
    # masked_fill, not x * 0: inf * 0 is NaN
    sums = torch.cat(
        [
            head.masked_fill(~head_real[:, None], 0.0).sum(dim=3),
            tail.masked_fill(~tail_real[:, None], 0.0).sum(dim=2, keepdim=True),
        ],
        dim=2,
    )  # (B, C, slots)
    counts = torch.cat([head_real.sum(dim=2), tail_real.sum(dim=1, keepdim=True)], dim=1)  # (B, slots)
    return Pooled((sums / counts.clamp(min=1)[:, None, :].to(x.dtype)).reshape(B, C * slots))


def logsumexp_pool(x: torch.Tensor, mask: torch.Tensor, temperature: float) -> Pooled:
    """A smooth maximum: τ·log(mean(exp(x/τ))) over real positions.

    Subtracting log(n) makes it a mean in log space: it tends to the max as τ → 0 and to the
    average as τ → ∞, so one knob spans the two poolings this project compares.
    """
    lengths = mask.sum(dim=1).to(x.dtype)[:, None]  # (B, 1)
    lse = torch.logsumexp(_masked_fill_neg_inf(x, mask) / temperature, dim=2)  # (B, C)
    return Pooled(temperature * (lse - torch.log(lengths)))


# β = exp(SHARPNESS_RATE · θ): the rate lets the optimizer move β across its range in one training.
# Adadelta's first steps are ~1e-3 in any parameter; with β = exp(θ), 4 epochs of TREC moved β from 1
# to at most 1.3 (median 1.03), still next to the mean; the map must be able to reach the max
# (β in the tens, for activations of order 1) inside a training.
SHARPNESS_RATE = 5.0


def sharpness(log_sharpness: torch.Tensor) -> torch.Tensor:
    """The learned pooling's β per map from its stored parameter θ: exp(SHARPNESS_RATE · θ)."""
    return (SHARPNESS_RATE * log_sharpness).exp()


def learned_pool(
    x: torch.Tensor, mask: torch.Tensor, log_sharpness: torch.Tensor, hold_weights: bool = False
) -> Pooled:
    """A mean weighted by softmax(β·a) over each map's real windows, β = exp(θ) one learned
    sharpness per map (β = `sharpness(θ)`, θ = `log_sharpness`, (C,) for one model or (K * C,) for a group whose rows
    are model-major, as `width_maps` lays them out).

    At β = 0 every window weighs 1/n: the average. As β grows the weight moves onto the largest
    activations: the max in the limit. So one parameter per map lets training choose where on that
    line each map sits. It stays a weighted average of the window values (weights summing to 1),
    which is why its explanation is exact. `hold_weights` detaches the weights: the gradient of the
    pooled value in the activations is then the weights themselves, the explanation's linear map
    (tests compare the two).
    """
    B, C, T = x.shape
    beta = sharpness(log_sharpness).to(x.dtype).view(-1, 1, C, 1)  # (K, 1, C, 1)
    K = beta.shape[0]
    values = x.masked_fill(~mask[:, None, :], 0.0)  # 0, not the padding's value: inf * 0 is NaN
    scores = (values.view(K, B // K, C, T) * beta).view(B, C, T)
    weights = torch.softmax(scores.masked_fill(~mask[:, None, :], float("-inf")), dim=2)
    if hold_weights:
        weights = weights.detach()
    return Pooled((weights * values).sum(dim=2))


def max_avg_pool(x: torch.Tensor, mask: torch.Tensor) -> Pooled:
    """Both summaries side by side: [max features | mean features]."""
    maxed = max_pool(x, mask)
    return Pooled(torch.cat([maxed.values, avg_pool(x, mask).values], dim=1), maxed.positions)
