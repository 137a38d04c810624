"""Per-epoch checkpoints: one safetensors file, the tensors in it and the JSON state in its metadata.

A checkpoint holds everything an interrupted training needs to go on exactly as if it had never
stopped: the weights, the optimizer's state, the best weights so far and the progress (epoch,
history, best epoch, patience used), plus a fingerprint of the settings and data, so that
`--resume` refuses a checkpoint made by another run. It is written atomically: a run killed
half-way through writing leaves the previous epoch's checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from textcnn.errors import TextCNNError
from textcnn.runtime import atomic_write_bytes

CHECKPOINT_FILE = "checkpoint.safetensors"


def save_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    best_state: dict[str, torch.Tensor] | None,
    fingerprint: dict,
    progress: dict,
) -> None:
    """`progress` is JSON-ready (epoch, history, ...); it comes back from `load_checkpoint` as is."""
    from safetensors.torch import save

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if best_state is not None:
        tensors |= {f"best.{k}": v.contiguous() for k, v in best_state.items()}
    optimizer_tensors, optimizer_meta = _flatten_optimizer(optimizer)
    tensors |= optimizer_tensors
    meta = {"fingerprint": fingerprint, "optimizer": optimizer_meta, **progress}
    atomic_write_bytes(path, save(tensors, metadata={"state": json.dumps(meta)}))


def load_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, fingerprint: dict
) -> dict:
    """Restore `model` and `optimizer` in place; return the progress with `best_state` added."""
    from safetensors import SafetensorError, safe_open

    if not path.exists():
        raise TextCNNError(f"{path}: no checkpoint to resume from (start without --resume)")
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads(handle.metadata()["state"])
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, KeyError, ValueError) as exc:
        raise TextCNNError(f"{path}: unreadable checkpoint ({exc})") from None
    if json.loads(json.dumps(fingerprint)) != meta["fingerprint"]:
        raise TextCNNError(f"{path}: the checkpoint was made with other settings or data; cannot resume")
    device = next(model.parameters()).device
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    optimizer.load_state_dict(_unflatten_optimizer(tensors, meta["optimizer"]))
    for state in optimizer.state.values():  # load_state_dict casts to the params' device already
        for key, value in state.items():
            if torch.is_tensor(value):
                state[key] = value.to(device)
    best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")} or None
    return {**meta, "best_state": best}


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    state_dict = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, entry in state_dict["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    for name, value in meta["scalars"].items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}
