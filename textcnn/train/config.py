"""How a model is trained (`TrainConfig`) and the names it accepts, importable without torch.

The CLI reads these defaults (and the choices of `--optimizer` and `--amp`) to print `--help`, so
nothing here may import torch; the loop that uses the settings is `textcnn.train.loop`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from textcnn.errors import ConfigError

OPTIMIZERS = ("adadelta", "adam")
AMP_MODES = ("auto", "bf16", "off")  # auto: bf16 mixed precision on CUDA, fp32 on the CPU


@dataclass(frozen=True)
class TrainConfig:
    optimizer: str = "adadelta"  # Kim: Adadelta (Zeiler 2012)
    lr: float | None = None  # None: 1.0 for Adadelta, 1e-3 for Adam
    rho: float = 0.95  # Kim's Adadelta decay
    eps: float = 1e-6  # Kim's Adadelta epsilon
    batch_size: int = 50  # Kim: mini-batch size 50
    epochs: int = 25  # Kim's code: 25 epochs
    patience: int | None = 5  # stop after this many epochs without a better dev accuracy; None: never
    seed: int = 0
    device: str = "auto"  # auto: CUDA when present
    amp: str = "auto"  # bf16 autocast: "auto" on CUDA only, "bf16" on any device, "off" never
    bucket_batches: int = 50  # sort this many batches' worth of sentences by length, then cut batches
    # A budget of optimizer steps across epochs (None: none). Reached mid-epoch, that epoch stops
    # there, is evaluated on dev like any other, and is the run's last: on data too large for many
    # epochs a step budget bounds the time where an epoch count cannot. Its epoch record says how
    # many steps ran ("steps"), which is how a resumed run knows the budget is spent.
    max_steps: int | None = None

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if self.batch_size < 1 or self.epochs < 1 or self.bucket_batches < 1:
            raise ConfigError("batch_size, epochs and bucket_batches must be >= 1")
        if self.amp not in AMP_MODES:
            raise ConfigError(f"unknown amp mode {self.amp!r}; choose one of {', '.join(AMP_MODES)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"max_steps must be >= 1 or None, got {self.max_steps}")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"patience must be >= 1 or None, got {self.patience}")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else (1.0 if self.optimizer == "adadelta" else 1e-3)

    def to_json(self) -> dict:
        # Without max_steps when unset: the bundles and checkpoints written before it read the same.
        data = dataclasses.asdict(self)
        if data["max_steps"] is None:
            del data["max_steps"]
        return data

    @classmethod
    def from_json(cls, data: dict) -> TrainConfig:
        return cls(**data)
