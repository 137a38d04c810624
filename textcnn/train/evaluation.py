"""Predictions and loss on a dev or test split: of one model (`evaluate_split`), or of a group.

Kept apart from the loop because more than the loop evaluates: the loop scores each epoch on dev
with `evaluate_group`, and `textcnn.train.runs` scores the trained model (or ensemble) on dev and
test with `evaluate_split`. Rows go shortest first, in chunks cut to their own longest sentence.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from textcnn.model import output
from textcnn.model.cnn import TextCNN
from textcnn.model.group import ModelGroup
from textcnn.model.mixed import MixedEnsemble
from textcnn.train.batches import EncodedSplit, StackedSplits


@torch.inference_mode()
def evaluate_split(model: TextCNN, split: EncodedSplit, batch_size: int = 1000) -> tuple[torch.Tensor, float]:
    """Predicted class ids (N,) on the CPU and the mean cross-entropy, in the split's order;
    for multi-label data each label's probability (N, C) and the mean binary cross-entropy."""
    was_training = model.training
    model.eval()
    order = torch.argsort(split.lengths.cpu(), stable=True)
    lengths_cpu = split.lengths.cpu()
    multi = split.multi_label
    predictions = torch.empty(split.labels.shape) if multi else torch.empty(len(split), dtype=torch.long)
    loss_sum = torch.zeros((), device=split.device)
    widest = model.min_length if isinstance(model, MixedEnsemble) else max(model.config.filter_widths)
    for chunk in order.split(batch_size):
        width = max(int(lengths_cpu[chunk].max()), widest)
        index = chunk.to(split.device)
        logits = model(*split.padded(index, width)).float()
        if multi:
            loss_sum += output.loss(logits, split.labels[index], True).sum()
        else:
            loss_sum += F.cross_entropy(logits, split.labels[index], reduction="sum")
        predictions[chunk] = (torch.sigmoid(logits) if multi else logits.argmax(dim=1)).cpu()
    model.train(was_training)
    return predictions, float(loss_sum) / max(len(split), 1)


@torch.inference_mode()
def evaluate_group(
    group: ModelGroup, splits: StackedSplits, batch_size: int = 1000
) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted class ids (K, N_max) on the CPU and each model's mean cross-entropy (K,)
    (multi-label: each label's probability (K, N_max, C) and the mean binary cross-entropy)."""
    was_training = group.training
    group.eval()
    K, device = group.models, splits.device
    lengths_cpu = splits.lengths[:, :-1].cpu()
    real = torch.arange(lengths_cpu.shape[1])[None, :] < torch.as_tensor(splits.sizes)[:, None]
    # Each model's rows shortest first, so a chunk of positions holds similar lengths in every model.
    order = torch.argsort(lengths_cpu.masked_fill(~real, 10**9), dim=1, stable=True)
    multi = splits.multi_label
    predictions = (
        torch.zeros(splits.labels[:, :-1].shape)
        if multi
        else torch.zeros(lengths_cpu.shape, dtype=torch.long)
    )
    loss_sum = torch.zeros(K, device=device)
    rows = torch.arange(K)[:, None]
    device_rows = rows.to(device)
    widest = max(group.config.map_widths)
    for start in range(0, order.shape[1], batch_size):
        chunk = order[:, start : start + batch_size]  # (K, b)
        # Each model at its own chunk's width (looped mode), as it would be evaluated alone.
        widths = [max(int(lengths_cpu[k, chunk[k]].max()), widest) for k in range(K)]
        index = chunk.to(device)
        logits = group(
            splits.ids(device_rows, index, max(widths)),
            splits.lengths[device_rows, index],
            widths=widths,
        ).float()
        ce = output.loss(logits, splits.labels[device_rows, index], multi)  # (K, b)
        loss_sum += (ce.view(K, -1) * real[rows, chunk].to(device)).sum(dim=1)
        predictions[rows, chunk] = (torch.sigmoid(logits) if multi else logits.argmax(dim=2)).cpu()
    group.train(was_training)
    return predictions, loss_sum / torch.as_tensor(splits.sizes, device=device).clamp_min(1)
