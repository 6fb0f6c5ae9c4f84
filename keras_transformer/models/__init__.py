"""Functional Keras models built from `keras_transformer.layers`."""

from keras_transformer.models.charrnn import build_charrnn
from keras_transformer.models.gpt import build_gpt, call_with_cache, init_cache, supports_cache

__all__ = ["build_charrnn", "build_gpt", "call_with_cache", "init_cache", "supports_cache"]
