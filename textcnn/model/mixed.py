"""Members that differ (pooling, filter widths, maps, variant) and a linear n-gram model, as one.

An `Ensemble` is K seeds of one shape. The pooling study found that max and average pooling win on
different datasets, and by their nature on different sentences (one decisive word against evidence
spread over the sentence); a linear n-gram model errs differently again. `MixedEnsemble` holds:

- `groups`: one `Ensemble` per CNN shape (members of one shape run as one grouped forward, so the
  forward is one call per shape, never a Python loop over members);
- `linear`: at most one `LinearMember` (`textcnn.model.linear_member`);
- `weights`: one per member (CNN members in group order, then the linear one), summing to 1.

`forward` returns log(Σ_m w_m p_m), the log of the weighted mean of the members' probabilities, as
`Ensemble.forward` returns the log of the plain mean: everything that reads a model's logits reads
it unchanged. All members share one vocabulary (the bundle's), so the ids are encoded once.

How the weights are chosen: the plain mean, or `dev_weights`, a grid over each part's share
(a part: the members of one group, or the linear member) that minimizes the log loss on dev.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

from textcnn.errors import ConfigError
from textcnn.model import output
from textcnn.model.ensemble import Ensemble
from textcnn.model.linear_member import LinearMember
from textcnn.model.members import Member


class MixedEnsemble(nn.Module):
    is_ensemble = True

    def __init__(
        self,
        groups: Sequence[Ensemble],
        linear: LinearMember | None = None,
        weights: Sequence[float] | None = None,
    ):
        super().__init__()
        if not groups and linear is None:
            raise ConfigError("a mixed ensemble needs at least one member")
        shapes = [(g.config.vocab_size, g.config.num_classes, g.config.multi_label) for g in groups]
        if linear is not None:
            shapes.append((linear.config.vocab_size, linear.config.num_classes, linear.config.multi_label))
        if len(set(shapes)) != 1:
            raise ConfigError(
                "members must share one vocabulary, label set and output (softmax or sigmoids); "
                f"(vocabulary, classes, multi-label): {shapes}"
            )
        self.vocab_size, self.num_classes, self.multi_label = shapes[0]
        self.groups = nn.ModuleList(groups)
        self.linear = linear
        self.size = sum(g.models for g in groups) + (linear is not None)
        self.register_buffer("weights", normalized_weights(weights, self.size), persistent=False)
        self._members: list[Member] | None = None

    @property
    def min_length(self) -> int:
        """The shortest padded input the CNN groups accept (their widest window)."""
        return max((max(g.config.map_widths) for g in self.groups), default=1)

    @property
    def group_sizes(self) -> list[int]:
        return [g.models for g in self.groups]

    def set_weights(self, weights: Sequence[float]) -> None:
        self.weights = normalized_weights(weights, self.size).to(self.weights.device)
        self._members = None

    def member_logits(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Every member's logits (M, B, C): one grouped forward per CNN group, then the linear member."""
        parts = [g.member_logits(ids, lengths).float() for g in self.groups]
        if self.linear is not None:
            parts.append(self.linear(ids, lengths).float()[None])
        return torch.cat(parts)

    def member_probabilities(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return output.probabilities(self.member_logits(ids, lengths), self.multi_label)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return output.combine(self.member_logits(ids, lengths), self.weights, self.multi_label)

    def members(self) -> list[Member]:
        """Every member, with its weight: the CNN members as single `TextCNN`s (copies, made once)."""
        if self._members is None:
            members, weights = [], self.weights.tolist()
            for g, group in enumerate(self.groups):
                for model in group.member_models():
                    members.append(Member(len(members), "cnn", model, weights[len(members)], g))
            if self.linear is not None:
                members.append(Member(len(members), self.linear.config.kind, self.linear, weights[-1], None))
            self._members = members
        return self._members

    def parts(self) -> list[list[int]]:
        """Member indices per part: each CNN group, then the linear member."""
        out, start = [], 0
        for size in self.group_sizes + ([1] if self.linear is not None else []):
            out.append(list(range(start, start + size)))
            start += size
        return out

    def _apply(self, fn, recurse=True):  # .to() and the like: the member copies would go stale
        self._members = None
        return super()._apply(fn, recurse)


def normalized_weights(weights: Sequence[float] | None, size: int) -> torch.Tensor:
    if weights is None:
        return torch.full((size,), 1.0 / size)
    values = torch.as_tensor(list(weights), dtype=torch.float32)
    if values.shape != (size,) or not torch.isfinite(values).all() or (values < 0).any() or values.sum() <= 0:
        raise ConfigError(
            f"combination weights must be {size} non-negative numbers, not all 0; got {list(weights)}"
        )
    return values / values.sum()


def dev_weights(
    probabilities: torch.Tensor,
    labels: torch.Tensor,
    parts: Sequence[Sequence[int]],
    step: float = 0.1,
    multi_label: bool = False,
) -> tuple[list[float], dict]:
    """Weights from a grid over each part's share (multiples of `step`, summing to 1; within a part
    the share is split evenly), the one with the lowest log loss on dev (ties: the earlier point of
    the grid, which starts at equal shares). `probabilities` (M, N, C) are the members' on dev.
    Returns the weights per member and what was chosen (shares, dev log loss and accuracy)."""
    M = probabilities.shape[0]
    steps = round(1 / step)
    grid = [c for c in itertools.product(range(steps + 1), repeat=len(parts)) if sum(c) == steps]
    even = [1.0 / len(parts)] * len(parts)
    candidates = [even] + [[c / steps for c in point] for point in grid]
    best = None
    for shares in candidates:
        weights = torch.zeros(M, dtype=torch.float64)
        for share, members in zip(shares, parts, strict=True):
            weights[list(members)] = share / len(members)
        mixed = torch.einsum("m,mnc->nc", weights, probabilities.double())
        loss = output.log_loss_of_probabilities(mixed, labels, multi_label)
        if best is None or loss < best[0] - 1e-12:
            accuracy = (
                output.macro_f1_at_best_cut(mixed, labels)  # multi-label: dev macro-F1
                if multi_label
                else float((mixed.argmax(dim=1) == labels).double().mean())
            )
            best = (loss, weights.tolist(), shares, accuracy)
    loss, weights, shares, accuracy = best
    score = "dev_macro_f1" if multi_label else "dev_accuracy"
    return weights, {"shares": [round(s, 6) for s in shares], "dev_log_loss": loss, score: accuracy}


DEV_COMBINE = (
    "weighted mean of the members' probabilities; each part's share (its members evenly) from a grid "
    "of steps of 0.1, the lowest log loss on dev"
)


def weigh_on_dev(model: MixedEnsemble, batches, labels: torch.Tensor) -> dict:
    """Set `model`'s weights by `dev_weights` from its members' probabilities on the dev `batches`
    ((ids, lengths) pairs, in the order of `labels`); what was chosen, for the bundle's config."""
    with torch.inference_mode():
        probabilities = torch.cat(
            [model.member_probabilities(ids, lengths) for ids, lengths in batches], dim=1
        )
    weights, chosen = dev_weights(probabilities, labels, model.parts(), multi_label=model.multi_label)
    model.set_weights(weights)
    return {"combine": DEV_COMBINE, **chosen}
