"""One shape for every member of a bundle, and for every model a bundle holds.

A bundle's model is a `TextCNN`, an `Ensemble` (K CNNs of one shape) or a `MixedEnsemble` (groups
of CNNs and at most one linear n-gram member). Whatever it is, code above the model reads it
through one interface (`MemberModel`), so serving, explaining, composing and saving never ask
which of the three it holds:

- `members()`: every member as a `Member` (its index, kind, model, weight in the combination,
  and the CNN group it sits in), CNN members first, in group order;
- `num_classes`, `vocab_size`, `multi_label`, `min_length` (the shortest padded input it takes),
  `is_ensemble`;
- `forward(ids, lengths)`: one model's logits (B, C), an ensemble's being its combined
  probabilities as logits (`textcnn.model.output.combine`).

And every member's model (a `TextCNN` or a `LinearMember`) has `kind`, `forward(ids, lengths)`
(its own logits) and `card_fields(group)` (what `/info` and the bundle's card say of it). Its
explanation split is the explainer's (`textcnn.inference.explain`), by its kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch

if TYPE_CHECKING:
    from textcnn.model.cnn import TextCNN
    from textcnn.model.linear_member import LinearMember


@dataclass(frozen=True)
class Member:
    """One member as explanations and cards see it: what it is, its model, its weight in the mix."""

    index: int  # its position among all members (CNN members first, in group order)
    kind: str  # "cnn", or the linear member's kind ("nbsvm", "tfidf-lr", "char-lr")
    model: TextCNN | LinearMember
    weight: float
    group: int | None  # the CNN group it belongs to (0 in a plain ensemble); None alone or linear

    @property
    def card(self) -> dict:
        """What /info and the bundle's card say of this member."""
        return {"member": self.index, "kind": self.kind, "weight": self.weight} | self.model.card_fields(
            self.group
        )


class ShapedByConfig:
    """`MemberModel`'s sizes read from a `ModelConfig` (`self.config`): a CNN's and an ensemble's."""

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    @property
    def multi_label(self) -> bool:
        return self.config.multi_label

    @property
    def min_length(self) -> int:
        return max(self.config.map_widths)  # the widest window: shorter inputs are padded to it


class MemberModel(Protocol):
    """What a bundle's model offers, whichever it is (see the module docstring)."""

    num_classes: int
    vocab_size: int
    multi_label: bool
    min_length: int
    is_ensemble: bool

    def members(self) -> list[Member]: ...

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor: ...
