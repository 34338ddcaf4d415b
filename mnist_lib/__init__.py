"""mnist_lib: data, models and one training engine for the MNIST-Classification report."""

from mnist_lib.config import TrainConfig, PRESETS
from mnist_lib.errors import MnistLibError

__all__ = ["TrainConfig", "PRESETS", "MnistLibError"]
__version__ = "0.1.0"
