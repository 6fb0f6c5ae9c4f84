"""Training: the optimizer recipe, the run directory, and `train()` itself."""

from keras_transformer.training.schedules import make_optimizer, warmup_cosine
from keras_transformer.training.trainer import ARCH_DEFAULTS, ARCHS, TrainSettings, train

__all__ = ["ARCH_DEFAULTS", "ARCHS", "TrainSettings", "make_optimizer", "train", "warmup_cosine"]
