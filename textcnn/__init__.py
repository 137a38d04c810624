"""textcnn: Kim (2014)'s convolutional sentence classifier, with masked pooling of every common kind."""

__version__ = "0.1.0"

from textcnn.bundle import Classifier, Prediction
from textcnn.errors import BundleError, ConfigError, DataError, TextCNNError, VectorsError
from textcnn.model import ModelConfig, TextCNN

__all__ = [
    "BundleError",
    "Classifier",
    "ConfigError",
    "DataError",
    "ModelConfig",
    "Prediction",
    "TextCNN",
    "TextCNNError",
    "VectorsError",
    "__version__",
]
