"""The output layer's activation: one softmax over classes, or one sigmoid per label (multi-label).

Everything that turns a model's logits into probabilities, a loss, or a combination of members goes
through here, so a single-label and a multi-label model differ in this module and in the decision
rule (`textcnn.inference.decisions`), nowhere else.

- Single-label: probabilities are softmax(logits); the loss is the cross-entropy; members are
  combined as log(Σ w_m softmax(z_m)), which a softmax turns back into the weighted mean.
- Multi-label (one sigmoid per label, binary cross-entropy summed over labels, as fastText's
  one-vs-all loss and the "change the softmax to sigmoids" answer on Kim's repository): members are
  combined as logit(Σ w_m sigmoid(z_m)), which a sigmoid turns back into each label's mean
  probability. Averaging probabilities, not logits, as for single-label ensembles (a member that is
  confidently wrong is outvoted rather than dominating a sum).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_TINY = torch.finfo(torch.float32).tiny
_EPS = 1e-7  # keeps logit(p) finite in float32 where every member rules a label in or out


def probabilities(logits: torch.Tensor, multi_label: bool) -> torch.Tensor:
    """(..., C) probabilities: each label's own (sigmoid) or a distribution over classes (softmax)."""
    return torch.sigmoid(logits) if multi_label else torch.softmax(logits, dim=-1)


def from_probabilities(probabilities: torch.Tensor, multi_label: bool) -> torch.Tensor:
    """Logits whose `probabilities` are the given ones (the inverse, up to the clamp)."""
    if multi_label:
        p = probabilities.clamp(_EPS, 1 - _EPS)
        return torch.log(p) - torch.log1p(-p)
    return probabilities.clamp_min(_TINY).log()


def combine(member_logits: torch.Tensor, weights: torch.Tensor | None, multi_label: bool) -> torch.Tensor:
    """Members' logits (M, B, C) as one model's logits (B, C): the weighted mean of their
    probabilities (the plain mean when `weights` is None), mapped back to logits."""
    p = probabilities(member_logits.float(), multi_label)
    mean = p.mean(dim=0) if weights is None else torch.einsum("m,mbc->bc", weights, p)
    return from_probabilities(mean, multi_label)


def loss(logits: torch.Tensor, targets: torch.Tensor, multi_label: bool) -> torch.Tensor:
    """Per-row loss (...,) of logits (..., C): cross-entropy against class ids (...,), or binary
    cross-entropy summed over labels against 0/1 targets (..., C)."""
    if multi_label:
        return F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), reduction="none").sum(-1)
    return F.cross_entropy(logits.flatten(0, -2), targets.flatten(), reduction="none").view(targets.shape)


def log_loss_of_probabilities(probabilities: torch.Tensor, targets: torch.Tensor, multi_label: bool) -> float:
    """Mean log loss of probabilities (N, C): what dev weights and temperatures minimize."""
    p = probabilities.double()
    if multi_label:
        p = p.clamp(1e-12, 1 - 1e-12)
        t = targets.double()
        return float(-(t * p.log() + (1 - t) * (1 - p).log()).sum(dim=1).mean())
    return float(F.nll_loss(p.clamp_min(1e-12).log(), targets))


CUTS = torch.arange(2, 96) / 100  # the shared thresholds tried (0.02 .. 0.95)


def macro_f1_at_best_cut(probabilities: torch.Tensor, targets: torch.Tensor) -> float:
    """Multi-label macro-F1 (N, C) at the one threshold for all labels that maximizes it: what early
    stopping, a linear member's C and `tune` select on for multi-label data (the bundle's own
    thresholds are chosen after training, `textcnn.inference.decisions`)."""
    p, t = probabilities.float().cpu(), targets.cpu().bool()
    predicted = p[None, :, :] >= CUTS[:, None, None]  # (cuts, N, C)
    tp = (predicted & t[None]).sum(dim=1).double()
    denominator = predicted.sum(dim=1).double() + t.sum(dim=0).double()[None]
    f1 = torch.where(denominator > 0, 2 * tp / denominator.clamp_min(1), torch.zeros_like(tp))
    return float(f1.mean(dim=1).max())
