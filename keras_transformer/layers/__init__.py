"""Keras layers that make up a Transformer, one concept per module.

Every layer is registered with `keras.saving.register_keras_serializable`
(package `keras_transformer`), so a saved `.keras` model loads with
`keras.saving.load_model(path)` in safe mode and without `custom_objects`.
"""

from keras_transformer.layers.attention import (
    BaseAttention,
    CausalSelfAttention,
    CrossAttention,
    GlobalSelfAttention,
)
from keras_transformer.layers.block import TransformerBlock
from keras_transformer.layers.embedding import PositionalEmbedding, sinusoidal_positions
from keras_transformer.layers.feedforward import FeedForward
from keras_transformer.layers.heads import LogitBias, Pooler
from keras_transformer.layers.masking import PaddingMask

__all__ = [
    "BaseAttention",
    "CausalSelfAttention",
    "CrossAttention",
    "FeedForward",
    "GlobalSelfAttention",
    "LogitBias",
    "PaddingMask",
    "Pooler",
    "PositionalEmbedding",
    "TransformerBlock",
    "sinusoidal_positions",
]
