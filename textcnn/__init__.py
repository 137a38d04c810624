"""textcnn: Kim (2014)'s convolutional sentence classifier, with masked pooling of every common kind."""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Public names are imported on first use (PEP 562), so `import textcnn` and `textcnn --help` do
# not pay for importing torch.
_EXPORTS = {
    "Batch": "textcnn.data.text",
    "BundleCard": "textcnn.inference.bundle",
    "Classifier": "textcnn.inference.bundle",
    "Prediction": "textcnn.inference.bundle",
    "ModelConfig": "textcnn.model.cnn",
    "TextCNN": "textcnn.model.cnn",
    "TrainConfig": "textcnn.train.config",
    "explain_text": "textcnn.inference.explain",
    "package_versions": "textcnn.runtime",
    "resolve_device": "textcnn.runtime",
    "BundleError": "textcnn.errors",
    "ConfigError": "textcnn.errors",
    "DataError": "textcnn.errors",
    "TextCNNError": "textcnn.errors",
    "VectorsError": "textcnn.errors",
}
__all__ = [  # noqa: RUF022 - public classes first, then functions, then errors
    "Batch",
    "BundleCard",
    "Classifier",
    "ModelConfig",
    "Prediction",
    "TextCNN",
    "TrainConfig",
    "explain_text",
    "package_versions",
    "resolve_device",
    "BundleError",
    "ConfigError",
    "DataError",
    "TextCNNError",
    "VectorsError",
    "__version__",
]

if TYPE_CHECKING:
    from textcnn.data.text import Batch
    from textcnn.errors import BundleError, ConfigError, DataError, TextCNNError, VectorsError
    from textcnn.inference.bundle import BundleCard, Classifier, Prediction
    from textcnn.inference.explain import explain_text
    from textcnn.model.cnn import ModelConfig, TextCNN
    from textcnn.runtime import package_versions, resolve_device
    from textcnn.train.config import TrainConfig


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'textcnn' has no attribute {name!r}")
