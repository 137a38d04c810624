"""What the library needs from the machine it runs on: files written atomically, the device to
compute on, the versions to record. Bundles, checkpoints and studies all write through here, so
training never has to reach into the bundle format for a file helper.
"""

from __future__ import annotations

import os
import platform
import tempfile
from pathlib import Path

import torch

from textcnn.errors import TextCNNError


def _current_umask() -> int:
    umask = os.umask(0)  # the only way to read it; done once, at import, before any threads
    os.umask(umask)
    return umask


_UMASK = _current_umask()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over the target.

    A reader (or a run killed half-way) sees either the old file or the new one, never a mix.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide the bundle from a service user
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise TextCNNError(f"unknown device {device!r}; use auto, cpu or cuda") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise TextCNNError("device cuda was asked for, but torch sees no CUDA device here")
    return resolved


def package_versions() -> dict:
    from textcnn import __version__

    return {"textcnn": __version__, "torch": torch.__version__, "python": platform.python_version()}
