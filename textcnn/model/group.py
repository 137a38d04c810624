"""K text CNNs of one shape as one module, so that training K models is one computation.

A pooling study is hundreds of small trainings; one model's step is a handful of small kernels
that leave a GPU idle (and a CPU's vector units half fed). `ModelGroup` stacks K models along
the channel axis of every layer, so one step of the group is one step of each model:

- the embedding tables are stacked as rows, (K * V, D): model k's word i is row k * V + i, so a
  lookup is one `F.embedding` and the gradient stays sparse (the lazy Adadelta still applies);
- each filter width is one grouped convolution, `Conv1d(K * D, K * F, w, groups=K)`: group k
  sees only model k's channels (`conv_mode="grouped"`, the default on a GPU). On a CPU, oneDNN's
  grouped convolution ran at about half the speed of K plain ones (22 against 11 ms per model for
  a width-5 bank, forward and backward, one thread, torch 2.13), so there the same weights are
  applied model by model (`conv_mode="looped"`): a kernel per model, each at its own batch's
  width (a grouped convolution must run every model at the longest of the K batches), everything
  else batched;
- the per-width convolution, mask and pooling are the single model's own functions;
- the output layer is a batched matrix product with weights (K * C, P).

Every parameter is laid out model-major along its first axis, so model k's slice is rows
k * n .. (k + 1) * n and, with K = 1, the group's state dict *is* the single model's (same names,
same shapes): checkpoints and optimizer states need no translation. Models whose vocabularies
differ in size (folds have their own) are padded to the largest; the padding rows are never
looked up and are dropped again by `export`.

The forward pass is the single model's own (`textcnn.model.cnn.width_maps`, `pool_maps`), run over
K models; `tests/test_group.py` checks that a group and its models agree to rounding for every
pooling, wide and narrow, with and without convolution, in both modes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import nn

from textcnn.data.text import PAD_ID
from textcnn.errors import ConfigError
from textcnn.model.cnn import (
    ModelConfig,
    TextCNN,
    apply_max_norm,
    banked_maps,
    cached_filter_bank,
    dropout_pooled,
    pad_for_windows,
    pad_ids,
    pool_maps,
    pooling_parameters,
    width_maps,
    width_parameters,
)

CONV_MODES = ("grouped", "looped")


def shared_config(configs: Sequence[ModelConfig]) -> ModelConfig:
    """The one shape of a group: every field but vocab_size must agree; vocab_size is the largest."""
    first = configs[0]
    for config in configs[1:]:
        differing = [
            f.name
            for f in dataclasses.fields(ModelConfig)
            if f.name not in ("vocab_size", "extra") and getattr(config, f.name) != getattr(first, f.name)
        ]
        if differing:
            raise ConfigError(
                f"models of one group must share their shape; they differ in {', '.join(differing)}"
            )
    return dataclasses.replace(first, vocab_size=max(c.vocab_size for c in configs))


class GroupedLinear(nn.Module):
    """K independent linear layers: weight (K * C, P), bias (K * C); input (K, B, P) -> (K, B, C)."""

    def __init__(self, models: int, in_features: int, out_features: int):
        super().__init__()
        self.models, self.out_features = models, out_features
        self.weight = nn.Parameter(torch.empty(models * out_features, in_features))
        self.bias = nn.Parameter(torch.empty(models * out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        K, C = self.models, self.out_features
        weight = self.weight.view(K, C, -1).transpose(1, 2)  # (K, P, C)
        return torch.baddbmm(self.bias.view(K, 1, C).to(x.dtype), x, weight.to(x.dtype))


class ModelGroup(nn.Module):
    def __init__(
        self,
        config: ModelConfig,
        models: int,
        vocab_sizes: Sequence[int] | None = None,
        conv_mode: str = "grouped",
    ):
        super().__init__()
        if models < 1:
            raise ConfigError("a group needs at least one model")
        if conv_mode not in CONV_MODES:
            raise ConfigError(f"unknown conv_mode {conv_mode!r}; choose one of {', '.join(CONV_MODES)}")
        self.config, self.models, self.conv_mode = config, models, conv_mode
        self.vocab_sizes = list(vocab_sizes) if vocab_sizes is not None else [config.vocab_size] * models
        K, V, D = models, config.vocab_size, config.embedding_dim
        self.embedding = nn.Embedding(K * V, D)
        self.embedding.weight.requires_grad_(config.variant != "static")
        self.static_embedding: nn.Embedding | None = None
        if config.variant == "multichannel":
            self.static_embedding = nn.Embedding(K * V, D)
            self.static_embedding.weight.requires_grad_(False)
        self.convs = nn.ModuleList(
            nn.Conv1d(K * D, K * config.num_filters, kernel_size=w, groups=K)
            for w in (config.filter_widths if config.convolution else ())
        )
        self.pooling_sharpness = pooling_parameters(config, K)  # the learned pooling's only
        self.classifier = GroupedLinear(K, config.pooled_size, config.num_classes)

    # -- from single models and back ---------------------------------------------------------

    @classmethod
    def from_models(cls, models: Sequence[TextCNN], conv_mode: str | None = None) -> ModelGroup:
        """A group holding copies of `models`' weights (on the first model's device); `conv_mode`
        None: grouped on a GPU, looped on a CPU."""
        config = shared_config([m.config for m in models])
        device = next(models[0].parameters()).device
        if conv_mode is None:
            conv_mode = "grouped" if device.type == "cuda" else "looped"
        group = cls(config, len(models), [m.config.vocab_size for m in models], conv_mode).to(device)
        group.load_models(models)
        return group

    def load_models(self, models: Sequence[TextCNN]) -> None:
        """Copy each model's weights into its slice, model k's into slice k (a smaller vocabulary
        fills the first rows of its table); `from_models` and `Ensemble.of` both fill a group so."""
        with torch.no_grad():
            for k, model in enumerate(models):
                for name, value in model.state_dict().items():
                    self.model_slice(self.get_parameter(name), k)[: value.shape[0]].copy_(value)

    def model_slice(self, tensor: torch.Tensor, k: int) -> torch.Tensor:
        """Model k's rows of a stacked tensor (a view)."""
        rows = tensor.shape[0] // self.models
        return tensor[k * rows : (k + 1) * rows]

    def model_state(self, k: int) -> dict[str, torch.Tensor]:
        """Model k's weights as a `TextCNN` state dict (views; copy them to keep them)."""
        return {
            name: self.model_slice(value, k)[: self.vocab_sizes[k]]
            if "embedding" in name
            else self.model_slice(value, k)
            for name, value in self.state_dict().items()
        }

    def export(self, k: int, model: TextCNN) -> None:
        """Copy model k's weights into `model` (a TextCNN of model k's own config)."""
        model.load_state_dict({name: value.detach().clone() for name, value in self.model_state(k).items()})

    def select(self, keep: Sequence[int]) -> ModelGroup:
        """A smaller group with the models `keep` (their weights copied); see `select_rows`."""
        group = ModelGroup(self.config, len(keep), [self.vocab_sizes[k] for k in keep], self.conv_mode)
        group.to(self.embedding.weight.device)
        with torch.no_grad():
            for name, value in self.state_dict().items():
                group.get_parameter(name).copy_(select_rows(value, self.models, keep))
        return group

    # -- the forward pass, in batched form --------------------------------------------------

    def _lookup(self, rows: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Vectors of table `rows` (model k's word i is row k * V + i), <pad> `ids` as zeros."""
        x = self.embedding(rows)
        if self.static_embedding is not None:
            x = x + self.static_embedding(rows)
        return x * (ids != PAD_ID).unsqueeze(-1).to(x.dtype)  # as padding_idx does for one model

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        """(K, B, T) ids -> (K, B, T, D) vectors."""
        offsets = torch.arange(ids.shape[0], device=ids.device).view(-1, 1, 1) * self.config.vocab_size
        return self._lookup(ids + offsets, ids)

    def pooled(
        self, ids: torch.Tensor, lengths: torch.Tensor, widths: Sequence[int] | None = None
    ) -> torch.Tensor:
        """ids (K, B, T), lengths (K, B) -> (K, B, P): each model's pooled vector, as
        `TextCNN.features` concatenates it, through the same `width_maps` and `pool_maps`.
        `widths` (looped mode): each model's own longest sentence in this batch, so it is not
        convolved at the longest of all K batches (the columns cut off are padding: only masked
        windows are skipped)."""
        cfg, K, B = self.config, self.models, ids.shape[1]
        ids = pad_ids(ids, cfg)
        if cfg.convolution and not torch.is_grad_enabled():  # evaluation, prediction: one product
            maps = banked_maps(self._embed(ids), lengths, cfg, *cached_filter_bank(self, K))
            pooled = [
                pool_maps(m, mask, cfg, width_parameters(self, i)).values for i, (m, mask) in enumerate(maps)
            ]
            return torch.cat(pooled, dim=1).view(K, B, -1)
        if not cfg.convolution:  # the word vectors themselves
            x = self._embed(ids).reshape(K * B, ids.shape[2], -1).transpose(1, 2)  # (K * B, D, T)
            maps = width_maps(x, lengths.reshape(K * B), cfg, 1)
            return pool_maps(*maps, cfg, width_parameters(self, 0)).values.view(K, B, -1)
        if self.conv_mode == "grouped":
            x = self._embed(ids).permute(1, 0, 3, 2).reshape(B, K * cfg.embedding_dim, -1)  # (B, K * D, T)
            x, flat_lengths = pad_for_windows(x, cfg), lengths.reshape(K * B)
            parts = [
                pool_maps(
                    *width_maps(x, flat_lengths, cfg, w, conv.weight, conv.bias, groups=K),
                    cfg,
                    width_parameters(self, i),
                )
                for i, (conv, w) in enumerate(zip(self.convs, cfg.filter_widths, strict=True))
            ]
            return torch.cat([p.values for p in parts], dim=1).view(K, B, -1)
        # Looped: each model's convolutions in turn, each at its own batch's width. The weights are
        # unbound once, not sliced per model: the backward of a slice fills a zero tensor of the
        # whole stacked weight per model, unbind's stacks the K gradients once. The words of all
        # models are looked up in one call (K lookups would give K sparse gradients of the whole
        # table to add up), and only each model's own columns are looked up at all.
        n, V, T, widest = cfg.num_filters, cfg.vocab_size, ids.shape[2], max(cfg.map_widths)
        weights = [conv.weight.view(K, n, *conv.weight.shape[1:]).unbind(0) for conv in self.convs]
        biases = [conv.bias.view(K, n).unbind(0) for conv in self.convs]
        learned = [width_parameters(self, i) for i in range(len(self.convs))]
        learned = [None if p is None else p.view(K, n).unbind(0) for p in learned]
        own = [T if widths is None else min(T, max(w, widest)) for w in widths or [T] * K]
        model_ids = [ids[k, :, : own[k]] for k in range(K)]
        vectors = self._lookup(
            torch.cat([(m + k * V).reshape(-1) for k, m in enumerate(model_ids)]),
            torch.cat([m.reshape(-1) for m in model_ids]),
        )
        pooled = []
        for k, x in enumerate(vectors.split([B * w for w in own])):
            x = pad_for_windows(x.view(B, own[k], -1).transpose(1, 2), cfg)  # (B, D, own width + padding)
            parts = [
                pool_maps(
                    *width_maps(x, lengths[k], cfg, w, weights[i][k], biases[i][k]),
                    cfg,
                    None if learned[i] is None else learned[i][k],
                )
                for i, w in enumerate(cfg.filter_widths)
            ]
            pooled.append(torch.cat([p.values for p in parts], dim=1))
        return torch.stack(pooled)

    def forward(
        self,
        ids: torch.Tensor,
        lengths: torch.Tensor,
        keep: torch.Tensor | None = None,
        widths: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """Logits (K, B, C). `keep` (K, B, P) is a dropout mask (True: kept), drawn by the caller so
        that each model has its own random stream, whatever group it trains in; `widths` see `pooled`."""
        pooled = self.pooled(ids, lengths, widths)
        if keep is not None:
            pooled = dropout_pooled(pooled, keep, self.config.dropout)
        return self.classifier(pooled)

    def apply_max_norm(self) -> None:
        apply_max_norm(self.classifier.weight, self.config.max_norm)  # rows: per model and class


def select_rows(tensor: torch.Tensor, models: int, keep: Sequence[int]) -> torch.Tensor:
    """The blocks of a model-major stacked tensor (first axis models * n) belonging to `keep`."""
    if tensor.dim() == 0:
        return tensor.clone()
    blocks = tensor.view(models, tensor.shape[0] // models, *tensor.shape[1:])
    index = torch.as_tensor(list(keep), device=tensor.device)
    return blocks.index_select(0, index).reshape(len(keep) * blocks.shape[1], *tensor.shape[1:])
