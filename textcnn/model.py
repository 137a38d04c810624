"""Kim (2014), "Convolutional Neural Networks for Sentence Classification", read top to bottom.

tokens -> embeddings -> one Conv1d per filter width -> ReLU -> pooling over time (masked)
       -> concatenate -> dropout -> linear -> class logits
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from textcnn.errors import ConfigError
from textcnn.names import VARIANTS
from textcnn.pooling import Pooled, output_multiplier, pool, validate_pooling
from textcnn.text import PAD_ID


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    num_classes: int
    embedding_dim: int = 300  # Kim: 300-d word2vec
    variant: str = "rand"  # rand | static | non-static | multichannel (Kim, Section 3.3)
    filter_widths: tuple[int, ...] = (3, 4, 5)  # Kim: "filter windows (h) of 3, 4, 5"
    num_filters: int = 100  # Kim: "100 feature maps each"
    # Wide convolution: every sentence gets (widest - 1) zero rows on each side, as Kim's code pads
    # (conv_net_sentence.py, `pad = filter_h - 1`), so an edge word is seen at every filter offset.
    # On MR (CNN-rand, folds 0-2, seed 0) it gave 75.4% against 74.8% for the narrow convolution.
    wide: bool = True
    # False: no convolution at all, the pooling runs straight over the word vectors (the ablation
    # "is the convolution needed before pooling?"); filter widths and counts are then unused.
    convolution: bool = True
    pooling: str = "max"  # see textcnn.pooling.POOLINGS
    kmax_k: int = 3
    chunks: int = 3
    temperature: float = 1.0
    dropout: float = 0.5  # Kim: "dropout rate (p) of 0.5"
    max_norm: float | None = 3.0  # Kim: "l2 constraint (s) of 3" on the output weight rows
    extra: dict = field(default_factory=dict, compare=False)  # free-form notes carried into bundles

    def __post_init__(self) -> None:
        for name in ("vocab_size", "num_classes", "embedding_dim", "num_filters", "kmax_k", "chunks"):
            if not _is_int(getattr(self, name)):
                raise ConfigError(f"{name} must be an integer, got {getattr(self, name)!r}")
        if isinstance(self.filter_widths, str) or not all(_is_int(w) for w in self.filter_widths):
            raise ConfigError(f"filter_widths must be a sequence of integers, got {self.filter_widths!r}")
        object.__setattr__(self, "filter_widths", tuple(int(w) for w in self.filter_widths))
        if self.vocab_size < 2:
            raise ConfigError(f"vocab_size must be >= 2 (<pad> and <unk>), got {self.vocab_size}")
        if self.num_classes < 2:
            raise ConfigError(f"num_classes must be >= 2, got {self.num_classes}")
        if self.embedding_dim < 1 or self.num_filters < 1:
            raise ConfigError("embedding_dim and num_filters must be >= 1")
        if self.variant not in VARIANTS:
            raise ConfigError(f"unknown variant {self.variant!r}; choose one of {', '.join(VARIANTS)}")
        if not self.filter_widths or min(self.filter_widths) < 1:
            raise ConfigError(f"filter_widths must be positive integers, got {self.filter_widths}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        for name in ("wide", "convolution"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.max_norm is not None and not self.max_norm > 0:
            raise ConfigError(f"max_norm must be positive or None, got {self.max_norm}")
        validate_pooling(self.pooling, self.kmax_k, self.chunks, self.temperature)

    @property
    def pretrained(self) -> bool:
        return self.variant != "rand"

    @property
    def map_widths(self) -> tuple[int, ...]:
        """Window width of each group of feature maps: the filter widths, or 1 for the word vectors."""
        return self.filter_widths if self.convolution else (1,)

    @property
    def maps_per_width(self) -> int:
        return self.num_filters if self.convolution else self.embedding_dim

    @property
    def pooled_size(self) -> int:
        per_map = output_multiplier(self.pooling, self.kmax_k, self.chunks)
        return len(self.map_widths) * self.maps_per_width * per_map

    def to_json(self) -> dict:
        return dataclasses.asdict(self) | {"filter_widths": list(self.filter_widths)}

    @classmethod
    def from_json(cls, data: dict) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown model config keys: {', '.join(unknown)}")
        return cls(**data)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def window_mask(lengths: torch.Tensor, width: int, num_windows: int) -> torch.Tensor:
    """True at windows that start inside the sentence and fit in it, plus window 0 always.

    A sentence shorter than the filter still gets its one window (its tokens, then <pad> rows,
    which embed to zeros), so it is classified the same however much padding the batch adds.
    """
    valid = torch.clamp(lengths - width + 1, min=1)  # (B,)
    return torch.arange(num_windows, device=lengths.device)[None, :] < valid[:, None]  # (B, T - w + 1)


class TextCNN(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        # Kim's code draws unknown/random word vectors from U[-0.25, 0.25]; <pad> stays zero.
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=PAD_ID)
        nn.init.uniform_(self.embedding.weight, -0.25, 0.25)
        with torch.no_grad():
            self.embedding.weight[PAD_ID].zero_()
        self.embedding.weight.requires_grad_(config.variant != "static")
        # multichannel: a second, frozen copy of the pretrained table (Kim, Section 2.1).
        self.static_embedding: nn.Embedding | None = None
        if config.variant == "multichannel":
            self.static_embedding = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=PAD_ID)
            self.static_embedding.weight.requires_grad_(False)
        self.convs = nn.ModuleList(
            nn.Conv1d(config.embedding_dim, config.num_filters, kernel_size=w)
            for w in (config.filter_widths if config.convolution else ())
        )
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.pooled_size, config.num_classes)

    def load_pretrained(self, vectors: torch.Tensor) -> None:
        """Copy a (vocab_size, embedding_dim) table into every embedding channel."""
        expected = (self.config.vocab_size, self.config.embedding_dim)
        if tuple(vectors.shape) != expected:
            raise ConfigError(f"pretrained table has shape {tuple(vectors.shape)}, model expects {expected}")
        with torch.no_grad():
            for table in (self.embedding, self.static_embedding):
                if table is not None:
                    table.weight.copy_(vectors)
                    table.weight[PAD_ID].zero_()

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embedding(ids)  # (B, T, D)
        if self.static_embedding is not None:
            # Kim applies each filter to both channels and adds the results. A convolution is linear,
            # so conv(static) + conv(tuned) = conv(static + tuned): summing first is the same model
            # at half the cost (the doubled bias is just a different bias).
            x = x + self.static_embedding(ids)
        return x.transpose(1, 2)  # (B, D, T): Conv1d slides over the last axis

    def feature_maps(
        self, ids: torch.Tensor, lengths: torch.Tensor
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per filter width: the ReLU feature maps (B, F, windows) and the mask of real windows.

        Window p of width w covers tokens p - (w - 1) .. p in wide mode, p .. p + w - 1 in narrow
        mode (`window_tokens` maps it back); tokens outside the sentence are zero rows.
        """
        cfg = self.config
        widest = max(cfg.map_widths)
        if ids.shape[1] < widest:  # too short for any window of the widest filter: pad with <pad>
            ids = F.pad(ids, (0, widest - ids.shape[1]), value=PAD_ID)
        x = self.embed(ids)  # (B, D, T)
        if not cfg.convolution:  # the word vectors themselves, one "window" per token
            return [(x, window_mask(lengths, 1, x.shape[2]))]
        if cfg.wide:  # <pad> rows embed to zeros, so zero columns are the same as <pad> tokens
            x = F.pad(x, (widest - 1, widest - 1))  # (B, D, T + 2 (widest - 1))
        out = []
        for conv, width in zip(self.convs, cfg.filter_widths, strict=True):
            if cfg.wide:
                # Start w - 1 columns before the first word: windows at offsets -(w-1) .. L-1, which
                # are the windows of a sentence of L + 2 (w - 1) tokens.
                maps = F.relu(conv(x[:, :, widest - width :]))  # (B, F, T + widest - 1)
                mask = window_mask(lengths + 2 * (width - 1), width, maps.shape[2])
            else:
                maps = F.relu(conv(x))  # (B, F, T - w + 1)
                mask = window_mask(lengths, width, maps.shape[2])  # (B, T - w + 1)
            out.append((maps, mask))
        return out

    def features(self, ids: torch.Tensor, lengths: torch.Tensor) -> list[Pooled]:
        """Pooled feature maps per filter width, with the positions they came from where defined."""
        cfg = self.config
        return [
            pool(cfg.pooling, maps, mask, cfg.kmax_k, cfg.chunks, cfg.temperature)
            for maps, mask in self.feature_maps(ids, lengths)
        ]

    def window_tokens(self, position: int, width: int, length: int) -> range:
        """Indices of the sentence's tokens (of `length`) that window `position` of `width` covers."""
        start = position - (width - 1) if self.config.wide else position
        return range(max(start, 0), min(start + width, length))

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([p.values for p in self.features(ids, lengths)], dim=1)  # (B, pooled_size)
        return self.classifier(self.dropout(pooled))  # (B, num_classes)

    @torch.no_grad()
    def apply_max_norm(self) -> None:
        """Kim's constraint: after each step, rescale any class weight row whose l2 norm exceeds s."""
        if self.config.max_norm is not None:
            weight = self.classifier.weight  # (num_classes, pooled_size)
            weight.copy_(torch.renorm(weight, p=2, dim=0, maxnorm=self.config.max_norm))
