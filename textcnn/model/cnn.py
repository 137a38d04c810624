"""Kim (2014), "Convolutional Neural Networks for Sentence Classification", read top to bottom.

tokens -> embeddings -> one Conv1d per filter width -> ReLU -> pooling over time (masked)
       -> concatenate -> dropout (a keep-mask drawn per model, see `TextCNN.forward`) -> linear -> logits

The forward pass is a handful of functions of the weights (`width_maps`, `pool_maps`, ...):
`TextCNN` runs them for one model, `textcnn.model.group.ModelGroup` for K models stacked as one, which
is how the trainer runs every training (one model is a group of one).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from textcnn.data.text import PAD_ID
from textcnn.errors import ConfigError
from textcnn.model.members import Member, ShapedByConfig
from textcnn.model.pooling import get_pooling, validate
from textcnn.model.pooling.functions import Pooled
from textcnn.model.variants import VARIANTS


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
    pooling: str = "max"  # a name of the pooling registry, textcnn.model.pooling
    kmax_k: int = 3
    chunks: int = 3
    temperature: float = 1.0
    # local-max / local-avg (Zhang & Wallace 2015): windows per region, and the number of region
    # slots, fixed per model (0: not set; `textcnn.train.runs.prepare_run` sets it from the longest
    # training sentence, see `region_slots_for`). Longer sentences fold into the last slot.
    # padded-avg reads region_slots as its padded length in windows (regions of one window).
    region: int = 3
    region_slots: int = 0
    dropout: float = 0.5  # Kim: "dropout rate (p) of 0.5"
    max_norm: float | None = 3.0  # Kim: "l2 constraint (s) of 3" on the output weight rows
    # One sigmoid per label instead of a softmax over classes (textcnn.model.output): the network
    # is the same, its logits are read, trained and combined as independent labels.
    multi_label: bool = False
    extra: dict = field(default_factory=dict, compare=False)  # free-form notes carried into bundles

    def __post_init__(self) -> None:
        for name in (
            "vocab_size",
            "num_classes",
            "embedding_dim",
            "num_filters",
            "kmax_k",
            "chunks",
            "region",
            "region_slots",
        ):
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
        for name in ("wide", "convolution", "multi_label"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.max_norm is not None and not self.max_norm > 0:
            raise ConfigError(f"max_norm must be positive or None, got {self.max_norm}")
        validate(self.pooling, self)  # the pooling's name and its parameters, textcnn.model.pooling

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

    def windows(self, length: int) -> int:
        """Real windows of a sentence of `length` tokens at the widest map width (`width_maps`)."""
        widest = max(self.map_widths)
        if self.convolution and self.wide:
            return length + widest - 1
        return max(length - widest + 1, 1)

    def region_slots_for(self, longest: int) -> int:
        """Local pooling's slots for a longest training sentence of `longest` tokens:
        ceil(its windows at the widest filter / region); padded-avg's padded length: its windows."""
        slots = get_pooling(self.pooling).slots
        region = slots.windows(self) if slots is not None else self.region
        return -(-self.windows(longest) // region)

    @property
    def pooled_size(self) -> int:
        per_map = get_pooling(self.pooling).width(self)
        return len(self.map_widths) * self.maps_per_width * per_map

    def to_json(self) -> dict:
        data = dataclasses.asdict(self) | {"filter_widths": list(self.filter_widths)}
        if not self.multi_label:  # a single-label config is written as before multi-label existed
            del data["multi_label"]
        return data

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


# The forward pass below is written once, as functions of the weights, so that `TextCNN` (one
# model) and `textcnn.model.group.ModelGroup` (K models trained as one computation) run the same code.


def pad_ids(ids: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """Ids (..., T) with <pad> up to the widest window: an input shorter than every filter still
    gets its one window, so it is classified the same however much padding a batch adds."""
    widest = max(config.map_widths)
    return F.pad(ids, (0, widest - ids.shape[-1]), value=PAD_ID) if ids.shape[-1] < widest else ids


def pad_for_windows(x: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """Word vectors (B, D, T) as the convolutions read them: in wide mode with (widest - 1) zero
    columns on each side. <pad> rows embed to zeros, so zero columns are the same as <pad> tokens."""
    if config.convolution and config.wide:
        widest = max(config.filter_widths)
        return F.pad(x, (widest - 1, widest - 1))  # (B, D, T + 2 (widest - 1))
    return x


def width_maps(
    x: torch.Tensor,
    lengths: torch.Tensor,
    config: ModelConfig,
    width: int,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    groups: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One filter width: convolve -> ReLU -> the mask of real windows. x from `pad_for_windows`.

    Returns maps (B, F, windows) and mask (B, windows). Window p of width w covers tokens
    p - (w - 1) .. p in wide mode, p .. p + w - 1 in narrow mode; tokens outside the sentence are
    zero rows. `weight` None (no convolution): the word vectors themselves, one window per token.
    `groups` = K (`ModelGroup`'s grouped mode): x is (B, K * D, T), `weight` holds the K models'
    filters model-major, `lengths` is (K * B,), and the maps come back as (K * B, F, windows).
    """
    if weight is None:
        return x, window_mask(lengths, 1, x.shape[2])
    if config.wide:
        # Start w - 1 columns before the first word: windows at offsets -(w-1) .. L-1, which are
        # the windows of a sentence of L + 2 (w - 1) tokens.
        x = x[:, :, max(config.filter_widths) - width :]
    maps = F.relu(F.conv1d(x, weight, bias, groups=groups))  # (B, groups * F, windows)
    if groups > 1:  # model-major channels -> model-major rows
        B, windows = maps.shape[0], maps.shape[2]
        maps = maps.view(B, groups, -1, windows).transpose(0, 1).reshape(groups * B, -1, windows)
    real_lengths = lengths + 2 * (width - 1) if config.wide else lengths
    return maps, window_mask(real_lengths, width, maps.shape[2])


def filter_bank(
    weights: list[torch.Tensor], biases: list[torch.Tensor], config: ModelConfig, models: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every filter width as one matrix, for prediction: (K, widest * D, widths * F) and bias (K, widths * F).

    Each width-w filter is zero-padded to the widest width, on the left in wide mode (its window
    then ends where the widest window ends, and both have L + widest - 1 windows), on the right in
    narrow mode (it starts where the widest starts). The zero taps multiply zero, so a window's
    activation is the same as its own convolution's; `banked_maps` then needs one matrix product
    for all widths (and all K models) instead of one convolution call per width. Rows are
    offset-major (row o * D + d), as `banked_maps` lays out its windows.
    """
    widest, D = max(config.filter_widths), config.embedding_dim
    padded = [
        F.pad(
            w.view(models, -1, D, w.shape[-1]),
            (widest - w.shape[-1], 0) if config.wide else (0, widest - w.shape[-1]),
        )
        for w in weights
    ]
    bank = torch.cat(padded, dim=1)  # (K, widths * F, D, widest)
    matrix = bank.permute(0, 3, 2, 1).reshape(models, widest * D, -1)
    return matrix, torch.cat([b.view(models, -1) for b in biases], dim=1)


def banked_maps(
    x: torch.Tensor, lengths: torch.Tensor, config: ModelConfig, matrix: torch.Tensor, bias: torch.Tensor
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`width_maps` of every width at once, from word vectors x (K, B, T, D) (T >= widest, as after
    `pad_ids`) and a `filter_bank`: per width, maps (K * B, F, windows) and mask (K * B, windows),
    equal to `width_maps`' to rounding. The windows are cut out as one (K, B * n, widest * D) tensor
    (im2col) and multiplied by the bank in one batched product: on a CPU that is 2-3x faster than
    one convolution call per width for a short text, where fixed per-call costs dominate."""
    K, B, T, D = x.shape
    widest, widths = max(config.filter_widths), config.filter_widths
    x = F.pad(x, (0, 0, widest - 1, widest - 1) if config.wide else (0, 0, 0, widest - min(widths)))
    columns = x.unfold(2, widest, 1)  # (K, B, n, D, widest)
    n = columns.shape[2]
    columns = columns.transpose(3, 4).reshape(K, B * n, widest * D)
    bias, matrix = bias.to(x.dtype), matrix.to(x.dtype)
    if K == 1:  # a plain product: baddbmm would loop over its one batch entry
        maps = torch.addmm(bias[0], columns[0], matrix[0]).clamp_min_(0)
    else:
        maps = torch.baddbmm(bias[:, None, :], columns, matrix).clamp_min_(0)
    maps = maps.view(K * B, n, len(widths), -1).permute(0, 2, 3, 1)  # (K * B, widths, F, n)
    flat_lengths = lengths.reshape(K * B)
    out = []
    for i, width in enumerate(widths):
        windows = n if config.wide else T - width + 1
        real_lengths = flat_lengths + 2 * (width - 1) if config.wide else flat_lengths
        out.append((maps[:, i, :, :windows], window_mask(real_lengths, width, windows)))
    return out


def cached_filter_bank(module: nn.Module, models: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """`filter_bank` of a module's `convs`, rebuilt only when a weight has changed (an optimizer
    step or `load_state_dict` bumps the tensor's version, `.to()` gives new storage)."""
    tensors = [t for conv in module.convs for t in (conv.weight, conv.bias)]
    key = tuple((t.data_ptr(), t._version, t.dtype) for t in tensors)
    cached = module.__dict__.get("_filter_bank")
    if cached is None or cached[0] != key:
        with torch.no_grad():
            bank = filter_bank(tensors[0::2], tensors[1::2], module.config, models)
        module.__dict__["_filter_bank"] = cached = (key, bank)
    return cached[1]


def pool_maps(
    maps: torch.Tensor, mask: torch.Tensor, config: ModelConfig, learned: torch.Tensor | None = None
) -> Pooled:
    """One width's maps pooled by the config's pooling; a learned pooling needs that width's
    parameters `learned` (`TextCNN.pooling_sharpness[i]`, (F,) or a group's (K * F,))."""
    pooling = get_pooling(config.pooling)
    if not pooling.learned:
        return pooling.forward(maps, mask, config)
    if learned is None:
        raise ConfigError(f"{config.pooling} pooling needs the model's learned parameters")
    return pooling.forward(maps, mask, config, learned)


def pooling_parameters(config: ModelConfig, models: int = 1) -> nn.ParameterList | None:
    """A learned pooling's parameters: per map width, one log-sharpness per feature map (of each of
    `models` models, model-major), starting at 0 (sharpness 1); None for every other pooling."""
    if not get_pooling(config.pooling).learned:
        return None
    return nn.ParameterList(
        nn.Parameter(torch.zeros(models * config.maps_per_width)) for _ in config.map_widths
    )


def width_parameters(module: nn.Module, i: int) -> torch.Tensor | None:
    """Map width i's learned pooling parameters of a model or group, None without them."""
    learned = module.pooling_sharpness
    return None if learned is None else learned[i]


def dropout_pooled(pooled: torch.Tensor, keep: torch.Tensor, p: float) -> torch.Tensor:
    """Inverted dropout with a mask drawn by the caller (True: kept), as `F.dropout` scales."""
    return pooled * keep.to(pooled.dtype) / (1.0 - p)


@torch.no_grad()
def apply_max_norm(weight: torch.Tensor, max_norm: float | None) -> None:
    """Kim's constraint: after each step, rescale any class weight row whose l2 norm exceeds s.

    Rows are (model and) class: the same call serves one model's (C, P) and a group's (K * C, P).
    """
    if max_norm is not None:
        weight.copy_(torch.renorm(weight, p=2, dim=0, maxnorm=max_norm))


class TextCNN(ShapedByConfig, nn.Module):
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
        self.pooling_sharpness = pooling_parameters(config)  # the learned pooling's only
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

    def word_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, D) vectors."""
        x = self.embedding(ids)
        if self.static_embedding is not None:
            # Kim applies each filter to both channels and adds the results. A convolution is linear,
            # so conv(static) + conv(tuned) = conv(static + tuned): summing first is the same model
            # at half the cost (the doubled bias is just a different bias).
            x = x + self.static_embedding(ids)
        return x

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.word_vectors(ids).transpose(1, 2)  # (B, D, T): Conv1d slides over the last axis

    def feature_maps(
        self, ids: torch.Tensor, lengths: torch.Tensor
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per filter width: the ReLU feature maps (B, F, windows) and the mask of real windows
        (`width_maps`; `window_tokens` maps a window back to its tokens).

        Without gradients (prediction, evaluation, explanations) the convolutions run as one
        `filter_bank` product (`banked_maps`): the same maps, to rounding, in fewer and larger
        kernels; training keeps one convolution per width. Every no-gradient caller takes this one
        path, because rounding decides near-ties (a repeated n-gram gives two windows equal in exact
        arithmetic), and which tied window k-max or local pooling keeps moves the logit: an
        explanation must explain the maps the served prediction used."""
        cfg = self.config
        if cfg.convolution and not torch.is_grad_enabled():
            x = self.word_vectors(pad_ids(ids, cfg))[None]  # (1, B, T, D)
            return banked_maps(x, lengths, cfg, *cached_filter_bank(self))
        x = pad_for_windows(self.embed(pad_ids(ids, cfg)), cfg)  # (B, D, T')
        if not cfg.convolution:
            return [width_maps(x, lengths, cfg, 1)]
        return [
            width_maps(x, lengths, cfg, width, conv.weight, conv.bias)
            for conv, width in zip(self.convs, cfg.filter_widths, strict=True)
        ]

    def features(self, ids: torch.Tensor, lengths: torch.Tensor) -> list[Pooled]:
        """Pooled feature maps per filter width, with the positions they came from where defined."""
        return [
            pool_maps(maps, mask, self.config, width_parameters(self, i))
            for i, (maps, mask) in enumerate(self.feature_maps(ids, lengths))
        ]

    def pooled(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The pooled vector (B, pooled_size), from `features` (banked without gradients)."""
        return torch.cat([p.values for p in self.features(ids, lengths)], dim=1)

    def window_tokens(self, position: int, width: int, length: int) -> range:
        """Indices of the sentence's tokens (of `length`) that window `position` of `width` covers."""
        start = position - (width - 1) if self.config.wide else position
        return range(max(start, 0), min(start + width, length))

    def forward(
        self, ids: torch.Tensor, lengths: torch.Tensor, keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits (B, num_classes). Dropout (Kim: p = 0.5 on the pooled vector) is a mask `keep`
        (B, pooled_size) drawn by the caller: the library's trainer draws each model's masks from
        its own seed, so a model trains the same alone or in a group. Without a mask, a model in
        training mode draws its own (`F.dropout`), so it also trains in a plain PyTorch loop."""
        pooled = self.pooled(ids, lengths)
        if keep is not None:
            pooled = dropout_pooled(pooled, keep, self.config.dropout)
        elif self.training:
            pooled = F.dropout(pooled, self.config.dropout)
        return self.classifier(pooled)  # (B, num_classes)

    def apply_max_norm(self) -> None:
        apply_max_norm(self.classifier.weight, self.config.max_norm)

    # -- as a bundle's model and as a member (one interface for all: textcnn.model.members) ------

    kind = "cnn"
    is_ensemble = False

    def members(self) -> list[Member]:
        return [Member(0, "cnn", self, 1.0, None)]

    def card_fields(self, group: int | None) -> dict:
        config = self.config
        return {
            "group": group,
            "pooling": config.pooling,
            "variant": config.variant,
            "filter_widths": list(config.filter_widths),
            "num_filters": config.num_filters,
        }
