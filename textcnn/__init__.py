"""textcnn: Kim (2014)'s convolutional sentence classifier, with masked pooling of every common kind.

This module is the public API: what a user imports, and all that `service/` may use (an
import-linter contract in pyproject.toml checks it). The parts behind it are described in
docs/architecture.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textcnn.lazy import lazy_getattr

__version__ = "0.1.0"

# Public names are imported on first use (PEP 562), so `import textcnn` and `textcnn --help` do
# not pay for importing torch.
_EXPORTS = {
    "Batch": "textcnn.data.text",
    "BundleCard": "textcnn.inference.bundle",
    "Classifier": "textcnn.inference.classifier",
    "Fold": "textcnn.data.splits",
    "ModelConfig": "textcnn.model.cnn",
    "Pooling": "textcnn.model.pooling.registry",
    "Prediction": "textcnn.inference.classifier",
    "RunSettings": "textcnn.train.runs",
    "TextCNN": "textcnn.model.cnn",
    "TokenizerConfig": "textcnn.data.tokenizers",
    "TrainConfig": "textcnn.train.config",
    "coverage": "textcnn.data.text",
    "explain_text": "textcnn.inference.explain",
    "load_corpus": "textcnn.data.corpus",
    "make_folds": "textcnn.data.folds",
    "package_versions": "textcnn.runtime",
    "register_pooling": "textcnn.model.pooling",
    "register_tokenizer": "textcnn.data.tokenizers",
    "resolve_device": "textcnn.runtime",
    "texts_fold": "textcnn.train.runs",
    "train_classifier": "textcnn.train.runs",
    "BundleError": "textcnn.errors",
    "ConfigError": "textcnn.errors",
    "DataError": "textcnn.errors",
    "TextCNNError": "textcnn.errors",
    "VectorsError": "textcnn.errors",
}
_RENAMED = {"register_pooling": "register", "register_tokenizer": "register"}  # the name in its module
__all__ = [  # noqa: RUF022 - public classes first, then functions, then errors
    "Batch",
    "BundleCard",
    "Classifier",
    "Fold",
    "ModelConfig",
    "Pooling",
    "Prediction",
    "RunSettings",
    "TextCNN",
    "TokenizerConfig",
    "TrainConfig",
    "coverage",
    "explain_text",
    "load_corpus",
    "make_folds",
    "package_versions",
    "register_pooling",
    "register_tokenizer",
    "resolve_device",
    "texts_fold",
    "train_classifier",
    "BundleError",
    "ConfigError",
    "DataError",
    "TextCNNError",
    "VectorsError",
    "__version__",
]

if TYPE_CHECKING:
    from textcnn.data.corpus import load_corpus
    from textcnn.data.folds import make_folds
    from textcnn.data.splits import Fold
    from textcnn.data.text import Batch, coverage
    from textcnn.data.tokenizers import TokenizerConfig
    from textcnn.data.tokenizers import register as register_tokenizer
    from textcnn.errors import BundleError, ConfigError, DataError, TextCNNError, VectorsError
    from textcnn.inference.bundle import BundleCard
    from textcnn.inference.classifier import Classifier, Prediction
    from textcnn.inference.explain import explain_text
    from textcnn.model.cnn import ModelConfig, TextCNN
    from textcnn.model.pooling import register as register_pooling
    from textcnn.model.pooling.registry import Pooling
    from textcnn.runtime import package_versions, resolve_device
    from textcnn.train.config import TrainConfig
    from textcnn.train.runs import RunSettings, texts_fold, train_classifier


__getattr__ = lazy_getattr(__name__, _EXPORTS, _RENAMED)
