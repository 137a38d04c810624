"""The data a training step consumes: encoded splits, their batches, and each model's dropout masks.

Everything random in an epoch (the batch order, the dropout masks) is drawn here, before the
epoch's first step, from the model's own seed and the epoch's number: a model draws the same
batches and masks alone or in any group, and a resumed run the same as an uninterrupted one.
The loop that consumes them is `textcnn.train.loop`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from textcnn.data.text import TextEncoder
from textcnn.model import output
from textcnn.train.config import TrainConfig


@dataclass(frozen=True)
class EncodedSplit:
    """A split as padded id rows; a batch is a slice cut to its own longest sentence."""

    ids: torch.Tensor  # (N, T_max) int64, PAD_ID beyond each length
    lengths: torch.Tensor  # (N,) int64
    labels: torch.Tensor  # (N,) int64 class ids, or (N, C) float 0/1 rows for multi-label data

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def multi_label(self) -> bool:
        return self.labels.dim() == 2

    @classmethod
    def encode(
        cls, encoder: TextEncoder, texts: Sequence[str], labels: Sequence, min_length: int
    ) -> EncodedSplit:
        """`labels`: class ids, or (multi-label) one 0/1 row per text."""
        batch = encoder.pad(encoder.encode_many(texts), min_length)
        rows = list(labels)
        multi = bool(rows) and isinstance(rows[0], list | tuple)
        return cls(
            batch.ids, batch.lengths, torch.as_tensor(rows, dtype=torch.float32 if multi else torch.long)
        )

    def to(self, device: torch.device) -> EncodedSplit:
        return EncodedSplit(self.ids.to(device), self.lengths.to(device), self.labels.to(device))


def length_bucketed_batches(
    lengths: torch.Tensor, batch_size: int, bucket_batches: int, generator
) -> list[torch.Tensor]:
    """Shuffle, sort each pool of `bucket_batches` batches by length, cut, shuffle the batches.

    Sentences in a batch have similar lengths, so little compute goes to padding, while the
    order still changes every epoch.
    """
    permutation = torch.randperm(len(lengths), generator=generator)
    pool = batch_size * bucket_batches
    batches: list[torch.Tensor] = []
    for start in range(0, len(permutation), pool):
        chunk = permutation[start : start + pool]
        chunk = chunk[torch.argsort(lengths[chunk], stable=True)]
        batches.extend(chunk.split(batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def epoch_seed(seed: int, epoch: int) -> int:
    # One seed per (run, epoch): a resumed run draws the same batches and dropout masks as an
    # uninterrupted one, without having to store RNG states.
    return (seed * 1_000_003 + epoch * 7919) % (2**63)


@dataclass
class StackedSplits:
    """K splits as one tensor each, padded to the largest: row `filler` (the last) is all <pad>,
    for the empty slots of a batch (a model whose epoch has fewer or smaller batches)."""

    ids: torch.Tensor  # (K, N_max + 1, T_max)
    lengths: torch.Tensor  # (K, N_max + 1)
    labels: torch.Tensor  # (K, N_max + 1), or (K, N_max + 1, C) for multi-label data
    sizes: list[int]
    host_lengths: list[torch.Tensor]  # each model's own lengths (N_k,), on the CPU: epochs are planned there

    @property
    def filler(self) -> int:
        return self.ids.shape[1] - 1

    @classmethod
    def stack(cls, splits: Sequence[EncodedSplit], device: torch.device) -> StackedSplits:
        rows = max(len(s) for s in splits) + 1
        width = max(s.ids.shape[1] for s in splits)
        ids = torch.zeros((len(splits), rows, width), dtype=torch.long)
        lengths = torch.zeros((len(splits), rows), dtype=torch.long)
        extra = tuple(splits[0].labels.shape[1:])  # (C,) for multi-label data
        labels = torch.zeros((len(splits), rows, *extra), dtype=splits[0].labels.dtype)
        for k, split in enumerate(splits):
            ids[k, : len(split), : split.ids.shape[1]] = split.ids.cpu()
            lengths[k, : len(split)] = split.lengths.cpu()
            labels[k, : len(split)] = split.labels.cpu()
        sizes = [len(s) for s in splits]
        host_lengths = [split.lengths.cpu() for split in splits]
        return cls(ids.to(device), lengths.to(device), labels.to(device), sizes, host_lengths)

    def select(self, keep: Sequence[int]) -> StackedSplits:
        index = torch.as_tensor(list(keep), device=self.ids.device)
        return StackedSplits(
            self.ids.index_select(0, index),
            self.lengths.index_select(0, index),
            self.labels.index_select(0, index),
            [self.sizes[k] for k in keep],
            [self.host_lengths[k] for k in keep],
        )

    @property
    def multi_label(self) -> bool:
        return self.labels.dim() == 3

    def accuracies(self, predictions: torch.Tensor) -> list[float]:
        """Each model's accuracy, from predictions (K, N_max) on the CPU as `evaluate_group` gives
        (multi-label: probabilities (K, N_max, C), and the share of texts with every label right at 0.5)."""
        labels = self.labels.cpu()
        if self.multi_label:
            return [
                float(((predictions[k, :n] >= 0.5) == labels[k, :n].bool()).all(dim=1).float().mean())
                for k, n in enumerate(self.sizes)
            ]
        return [float((predictions[k, :n] == labels[k, :n]).float().mean()) for k, n in enumerate(self.sizes)]

    def macro_f1s(self, probabilities: torch.Tensor) -> list[float]:
        """Multi-label: each model's macro-F1 at its best shared threshold (what early stopping selects on)."""
        labels = self.labels.cpu()
        return [
            output.macro_f1_at_best_cut(probabilities[k, :n], labels[k, :n]) for k, n in enumerate(self.sizes)
        ]


@dataclass
class EpochPlan:
    """One epoch of a group, decided up front on the CPU so the steps never wait for the device."""

    index: torch.Tensor  # (S, K, B) row of each batch slot (the filler row for empty slots)
    steps: list[int]  # per model: its own number of batches this epoch
    weight: torch.Tensor  # (S, K, B) 1 / (model's batch size) for real rows, 0 for empty slots
    widths: list[list[int]]  # per step and model: its batch's longest sentence (at least the widest filter)


def plan_epoch(
    lengths: Sequence[torch.Tensor],
    seeds: Sequence[int],
    epoch: int,
    config: TrainConfig,
    filler: int,
    widest: int,
) -> EpochPlan:
    per_model = [
        length_bucketed_batches(
            model_lengths,
            config.batch_size,
            config.bucket_batches,
            torch.Generator().manual_seed(epoch_seed(seed, epoch)),
        )
        for model_lengths, seed in zip(lengths, seeds, strict=True)
    ]
    steps, K, B = max(len(b) for b in per_model), len(per_model), config.batch_size
    index = torch.full((steps, K, B), filler, dtype=torch.long)
    weight = torch.zeros((steps, K, B))
    widths = [[widest] * K for _ in range(steps)]
    for k, batches in enumerate(per_model):
        for s, batch in enumerate(batches):
            index[s, k, : len(batch)] = batch
            weight[s, k, : len(batch)] = 1.0 / len(batch)
            widths[s][k] = max(widest, int(lengths[k][batch].max()))
    return EpochPlan(index, [len(b) for b in per_model], weight, widths)


def dropout_masks(
    seeds: Sequence[int],
    epoch: int,
    steps: Sequence[int],
    batch: int,
    width: int,
    p: float,
    device: torch.device,
) -> torch.Tensor | None:
    """(S, K, B, P) keep-masks, each model's from its own generator and for its own number of
    steps: a model draws the same masks in any group, so in a group or alone it trains the same."""
    if p == 0:
        return None
    masks = torch.ones((max(steps), len(seeds), batch, width), dtype=torch.bool, device=device)
    for k, (seed, count) in enumerate(zip(seeds, steps, strict=True)):
        generator = torch.Generator(device=device).manual_seed(epoch_seed(seed, epoch) + 1)
        masks[:count, k] = torch.rand((count, batch, width), generator=generator, device=device) >= p
    return masks
