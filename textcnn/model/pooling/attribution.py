"""How much each window counts in each pooled value: the α of `textcnn.inference.explain`.

Every pooling of the catalog makes a pooled value a weighted sum of window activations,
pooled = Σ_p α_p · a_p, and the explanation splits a logit exactly through those α. A rule here
takes one filter width's activations (F, n) in float64 (n the real windows of the text) and, for
poolings that select windows, the model's own selected positions (F, m) (-1: an empty slot), and
returns one (part name or None, α (F, m, n)) per part of the pooled vector; column f * m + s of a
part is (filter f, slot s). The choice of windows always comes from the model's float32 forward,
so the n-grams named are the model's; only the arithmetic is redone in float64.

The rules, per pooling (the n-grams `explain` names follow from them):
- max: the window the model's max picked (the first on ties), α = 1: one winner per feature map.
- kmax: the k windows the model kept, α = 1 each, one per slot ("slot" 0..k-1, in sentence order);
  a sentence with fewer than k real windows leaves slots empty: they are 0 and give nothing.
- chunk-max (a local pooling): the winning window of each region, α = 1 ("slot" = the region);
  a region with no real window is empty (0).
- local-max (Zhang & Wallace's local max): the winning window of each region slot of `region`
  consecutive windows, α = 1 ("slot" = the region, counted from the sentence's first window; a
  sentence longer than the slots has its last slot's winner among all the remaining windows); an
  empty slot is 0 and gives nothing.
- local-avg: no winner, every real window of a slot at α = 1/n_slot, n_slot the slot's real
  windows as `local_avg_pool` counts them (the last slot: all the remaining windows); entries are
  (filter, slot, window), as for avg.
- avg: no winner: every real window of the map, α = 1/n, n the map's real windows as `avg_pool`
  counts them (in wide mode the edge windows that hold part of the sentence count too). The
  n-gram lists then hold (filter, window) entries, the `top` largest contributions each way.
- padded-avg: as avg, but at α = 1/max(n, slots): the padded length of `padded_avg_pool`, the
  padding taking the rest of the weight (it adds 0).
- max+avg: both halves: the max winner (entries with "part": "max") and every window at 1/n
  ("part": "avg").
- learned: a weighted mean, α_p = softmax(β·a)_p over the real windows with the map's own learned
  sharpness β (`TextCNN.pooling_sharpness`): the pooled value is exactly Σ_p α_p a_p, so the split is
  exact; it is not gradient × input (the weights move with the activations), but gradient × input
  with the weights held fixed. Entries are (filter, window) pairs as for avg.
- logsumexp: τ·log(mean_p exp(a_p/τ)) is not a weighted sum of the a_p, so it has no exact split.
  It is attributed by the softmax weights α_p = softmax(a/τ)_p over the real windows (the
  derivative of the pooled value in a_p): Σ_p α_p a_p = pooled - τ(H(α) - log n) >= pooled, and the
  difference, summed over features with their output weights, is the `residual` ("exact": False).
  Entries are (filter, window) pairs as for avg.
- no convolution (`config.convolution` False): a window is one token and the pooled value is the
  word vector's coordinate itself (no ReLU, no bias; it may be negative), traced as above.

A rule that is not an exact weighted sum (logsumexp) is registered with `exact=False`: what its α
leave out of the logit is reported as the explanation's residual.
"""

from __future__ import annotations

import torch

from textcnn.model.pooling.functions import sharpness

Part = tuple[str | None, torch.Tensor]  # (name of a part of the pooled vector, α (F, m, n))


def winners(activations: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """α (F, m, n) = 1 at each slot's selected window (max, kmax, chunk-max, local-max), 0 elsewhere;
    an empty slot (position -1) has no window and gives nothing."""
    maps, n = activations.shape
    alpha = torch.zeros((maps, positions.shape[1], n), dtype=torch.float64)
    f, s = torch.nonzero(positions >= 0, as_tuple=True)
    alpha[f, s, positions[f, s]] = 1.0
    return alpha


def spread(activations: torch.Tensor, length: int | None = None) -> torch.Tensor:
    """α (F, 1, n) = 1 / max(n, length) at every real window: the mean (length None), or the mean
    over a padded length whose padding adds 0 (padded-avg)."""
    maps, n = activations.shape
    return torch.full((maps, 1, n), 1.0 / max(n, length or 0), dtype=torch.float64)


def per_slot_mean(activations: torch.Tensor, region: int, slots: int) -> torch.Tensor:
    """α (F, slots, n) = 1/n_slot at each window of its slot (local-avg): window p is in slot
    min(p // region, slots - 1), as `local_avg_pool` folds a long sentence into its last slot."""
    maps, n = activations.shape
    slot = torch.clamp(torch.arange(n) // region, max=slots - 1)  # (n,): each window's slot
    members = (slot[None, :] == torch.arange(slots)[:, None]).to(torch.float64)  # (slots, n)
    per_slot = members / members.sum(dim=1, keepdim=True).clamp(min=1.0)
    return per_slot[None, :, :].expand(maps, slots, n)


def softmax_weights(activations: torch.Tensor, temperature: float) -> torch.Tensor:
    """α (F, 1, n) = softmax(a / τ) over the real windows: the derivative of logsumexp's pooled value
    in each a_p. Σ_p α_p a_p = pooled - τ(H(α) - log n) >= pooled, so the split is not exact."""
    return torch.softmax(activations / temperature, dim=1)[:, None, :]


def sharpened_weights(activations: torch.Tensor, log_sharpness: torch.Tensor) -> torch.Tensor:
    """α (F, 1, n) = softmax(β_f · a_f) over the real windows, β = `sharpness(θ)` per map (learned pooling):
    the weights `learned_pool` averages with, so Σ_p α_p a_p is the pooled value exactly."""
    beta = sharpness(log_sharpness.detach().cpu().double())[:, None]  # (F, 1)
    return torch.softmax(activations * beta, dim=1)[:, None, :]
