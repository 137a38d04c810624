"""The data a training step consumes: encoded splits, their batches, and each model's dropout masks.

Everything random in an epoch (the batch order, the dropout masks) is drawn here, before the
epoch's first step, from the model's own seed and the epoch's number: a model draws the same
batches and masks alone or in any group, and a resumed run the same as an uninterrupted one.
The loop that consumes them is `textcnn.train.loop`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from textcnn.data.text import PAD_ID, FlatIds, TextEncoder
from textcnn.model import output
from textcnn.train.config import TrainConfig


@dataclass(frozen=True)
class EncodedSplit:
    """A split as flat arrays: row i's ids are `tokens[starts[i] : starts[i] + lengths[i]]`.

    No padded (N, T_max) tensor: one long text would make every row as wide as itself, and an
    int64 per padded position cost ~20x the ids themselves on SST-2. A batch is padded when it is
    gathered (`padded`, `gather`), exactly as the padded tensor's slice gave it. `width` is that
    tensor's width (the longest row, at least the `min_length` it was encoded for): a batch is
    never wider, as a slice of it never was."""

    tokens: torch.Tensor  # (T,) int32, every row's ids one after another (maybe a memory map)
    starts: torch.Tensor  # (N,) int64
    lengths: torch.Tensor  # (N,) int64, each >= 1
    labels: torch.Tensor  # (N,) int64 class ids, or (N, C) float 0/1 rows for multi-label data
    width: int

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def multi_label(self) -> bool:
        return self.labels.dim() == 2

    @property
    def device(self) -> torch.device:
        return self.tokens.device

    @classmethod
    def of(cls, flat: FlatIds, labels: Sequence, min_length: int = 1) -> EncodedSplit:
        """`flat`'s rows with their `labels` (class ids, or (multi-label) one 0/1 row per text)."""
        if isinstance(labels, torch.Tensor):
            targets = labels
        else:
            rows = list(labels)
            multi = bool(rows) and isinstance(rows[0], list | tuple)
            targets = torch.as_tensor(rows, dtype=torch.float32 if multi else torch.long)
        lengths = torch.from_numpy(flat.lengths)
        longest = int(lengths.max()) if len(lengths) else 0
        return cls(
            torch.from_numpy(flat.tokens),
            torch.from_numpy(flat.starts),
            lengths,
            targets,
            max(longest, min_length),
        )

    @classmethod
    def encode(
        cls, encoder: TextEncoder, texts: Iterable[str], labels: Sequence, min_length: int
    ) -> EncodedSplit:
        """`labels`: class ids, or (multi-label) one 0/1 row per text."""
        return cls.of(encoder.encode_flat(texts), labels, min_length)

    @classmethod
    def from_padded(cls, ids: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor) -> EncodedSplit:
        """From padded rows (N, T) as a batch holds them: each row's first `lengths` ids."""
        inside = torch.arange(ids.shape[1])[None, :] < lengths[:, None]
        starts = torch.cumsum(lengths, 0) - lengths
        return cls(ids[inside].to(torch.int32), starts, lengths.clone(), labels, ids.shape[1])

    def to(self, device: torch.device | str) -> EncodedSplit:
        return dataclasses.replace(
            self,
            tokens=self.tokens.to(device),
            starts=self.starts.to(device),
            lengths=self.lengths.to(device),
            labels=self.labels.to(device),
        )

    def row(self, i: int) -> torch.Tensor:
        start = int(self.starts[i])
        return self.tokens[start : start + int(self.lengths[i])]

    def padded(self, rows: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids (B, W) int64, lengths (B,)) of `rows` (on the split's device), W = min(width, self.width)."""
        starts, lengths = self.starts[rows], self.lengths[rows]
        return gather(self.tokens, starts, lengths, min(width, self.width)), lengths


def gather(tokens: torch.Tensor, starts: torch.Tensor, lengths: torch.Tensor, width: int) -> torch.Tensor:
    """Padded rows (..., width) int64 of the flat `tokens`: each row's ids, then PAD_ID."""
    offsets = torch.arange(width, device=tokens.device)
    index = starts[..., None] + offsets  # (..., width)
    ids = tokens[index.clamp_max(tokens.numel() - 1)].long()
    return ids.masked_fill_(offsets >= lengths[..., None], PAD_ID)


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
    """K splits' rows as (K, N_max + 1) starts and lengths into one flat tensor of tokens, shared by
    the models that train on one split (an ensemble's members); row `filler` (the last) is empty,
    all <pad>, for the empty slots of a batch (a model whose epoch has fewer or smaller batches)."""

    tokens: torch.Tensor  # (T,) int32: each distinct split's tokens, one split after another
    starts: torch.Tensor  # (K, N_max + 1) int64
    lengths: torch.Tensor  # (K, N_max + 1)
    labels: torch.Tensor  # (K, N_max + 1), or (K, N_max + 1, C) for multi-label data
    sizes: list[int]
    host_lengths: list[torch.Tensor]  # each model's own lengths (N_k,), on the CPU: epochs are planned there
    width: int  # the widest split's `width`: no batch is wider

    @property
    def filler(self) -> int:
        return self.starts.shape[1] - 1

    @property
    def device(self) -> torch.device:
        return self.tokens.device

    @classmethod
    def stack(cls, splits: Sequence[EncodedSplit], device: torch.device) -> StackedSplits:
        rows = max(len(s) for s in splits) + 1
        distinct: dict[int, int] = {}  # id(split.tokens) -> its offset in the joined tokens
        parts: list[torch.Tensor] = []
        for split in splits:
            if id(split.tokens) not in distinct:
                distinct[id(split.tokens)] = sum(len(p) for p in parts)
                parts.append(split.tokens)
        tokens = parts[0] if len(parts) == 1 else torch.cat([p.cpu() for p in parts])
        starts = torch.zeros((len(splits), rows), dtype=torch.long)
        lengths = torch.zeros((len(splits), rows), dtype=torch.long)
        extra = tuple(splits[0].labels.shape[1:])  # (C,) for multi-label data
        labels = torch.zeros((len(splits), rows, *extra), dtype=splits[0].labels.dtype)
        for k, split in enumerate(splits):
            starts[k, : len(split)] = split.starts.cpu() + distinct[id(split.tokens)]
            lengths[k, : len(split)] = split.lengths.cpu()
            labels[k, : len(split)] = split.labels.cpu()
        sizes = [len(s) for s in splits]
        host_lengths = [split.lengths.cpu() for split in splits]
        width = max(s.width for s in splits)
        return cls(
            tokens.to(device),
            starts.to(device),
            lengths.to(device),
            labels.to(device),
            sizes,
            host_lengths,
            width,
        )

    def ids(self, rows: torch.Tensor, batch: torch.Tensor, width: int) -> torch.Tensor:
        """(K, B, W) padded ids of each model's `batch` (rows (K, 1), batch (K, B), on the device),
        W = min(width, self.width): what slicing the padded (K, N_max + 1, T_max) tensor gave."""
        return gather(
            self.tokens, self.starts[rows, batch], self.lengths[rows, batch], min(width, self.width)
        )

    def select(self, keep: Sequence[int]) -> StackedSplits:
        index = torch.as_tensor(list(keep), device=self.device)
        return StackedSplits(
            self.tokens,
            self.starts.index_select(0, index),
            self.lengths.index_select(0, index),
            self.labels.index_select(0, index),
            [self.sizes[k] for k in keep],
            [self.host_lengths[k] for k in keep],
            self.width,
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


MASK_BLOCK = 64  # steps of masks drawn at a time: (64, K, B, P), a few MB, whatever the epoch's length


class DropoutMasks:
    """An epoch's keep-masks, (K, B, P) per step, each model's from its own generator and for its
    own number of steps: a model draws the same masks in any group, so in a group or alone it
    trains the same.

    Drawn `MASK_BLOCK` steps at a time as the steps ask for them, not the whole epoch at once: an
    epoch's masks are P booleans per training row (300 bytes a row for Kim's 3 x 100 maps, and
    4 bytes a value more while they are drawn: 1.5 KB a row, the largest per-row cost of training
    before). On the CPU a generator gives the same numbers drawn in blocks as in one draw (a serial
    stream; checked in tests/test_compact_training.py), so the masks are those of one draw."""

    def __init__(
        self,
        seeds: Sequence[int],
        epoch: int,
        steps: Sequence[int],
        batch: int,
        width: int,
        p: float,
        device: torch.device,
    ):
        self.steps, self.batch, self.width, self.p, self.device = list(steps), batch, width, p, device
        self.generators = [
            torch.Generator(device=device).manual_seed(epoch_seed(seed, epoch) + 1) for seed in seeds
        ]
        self.first = 0  # the first step of the block held
        self.block: torch.Tensor | None = None  # (n, K, B, P) bool

    def __getitem__(self, step: int) -> torch.Tensor:
        """(K, B, P) keep-masks of `step`; steps are asked for in order (a generator only goes forward)."""
        if self.block is not None and step < self.first:
            raise IndexError(f"dropout masks are drawn in step order: step {step} was passed")
        if self.block is None or step >= self.first + len(self.block):
            if step != (0 if self.block is None else self.first + len(self.block)):
                raise IndexError(f"dropout masks are drawn in step order: step {step} asked out of turn")
            self._draw(step)
        return self.block[step - self.first]

    def _draw(self, first: int) -> None:
        n = min(MASK_BLOCK, max(self.steps) - first)
        block = torch.ones((n, len(self.steps), self.batch, self.width), dtype=torch.bool, device=self.device)
        for k, (generator, count) in enumerate(zip(self.generators, self.steps, strict=True)):
            mine = min(n, count - first)  # this model's own steps in the block
            if mine > 0:
                shape = (mine, self.batch, self.width)
                block[:mine, k] = torch.rand(shape, generator=generator, device=self.device) >= self.p
        self.first, self.block = first, block
