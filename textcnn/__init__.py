"""textcnn: Kim (2014)'s convolutional sentence classifier, with masked pooling of every common kind."""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Public names are imported on first use (PEP 562), so `import textcnn` and `textcnn --help` do
# not pay for importing torch.
_EXPORTS = {
    "Classifier": "textcnn.inference.bundle",
    "Prediction": "textcnn.inference.bundle",
    "ModelConfig": "textcnn.model.cnn",
    "TextCNN": "textcnn.model.cnn",
    "TrainConfig": "textcnn.train.loop",
    "BundleError": "textcnn.errors",
    "ConfigError": "textcnn.errors",
    "DataError": "textcnn.errors",
    "TextCNNError": "textcnn.errors",
    "VectorsError": "textcnn.errors",
}
__all__ = [  # noqa: RUF022 - public classes first, then errors
    "Classifier",
    "ModelConfig",
    "Prediction",
    "TextCNN",
    "TrainConfig",
    "BundleError",
    "ConfigError",
    "DataError",
    "TextCNNError",
    "VectorsError",
    "__version__",
]

if TYPE_CHECKING:
    from textcnn.errors import BundleError, ConfigError, DataError, TextCNNError, VectorsError
    from textcnn.inference.bundle import Classifier, Prediction
    from textcnn.model.cnn import ModelConfig, TextCNN
    from textcnn.train.loop import TrainConfig


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'textcnn' has no attribute {name!r}")
