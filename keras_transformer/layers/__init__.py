"""Keras layers that make up a Transformer, one concept per module.

Every layer is registered with `keras.saving.register_keras_serializable`
(package `keras_transformer`), so a saved `.keras` model loads with
`keras.saving.load_model(path)` in safe mode and without `custom_objects`.
"""

from keras_transformer.layers.attention import (
    CausalSelfAttention,
    CrossAttention,
    GlobalSelfAttention,
    GroupedQueryAttention,
)
from keras_transformer.layers.batched_matmul import batched_matmul
from keras_transformer.layers.block import TransformerBlock
from keras_transformer.layers.chunked_attention import chunked_attention
from keras_transformer.layers.embedding import PositionalEmbedding, sinusoidal_positions
from keras_transformer.layers.feedforward import FeedForward, swiglu_width
from keras_transformer.layers.heads import LogitBias, Pooler
from keras_transformer.layers.masking import PaddingMask, attention_mask
from keras_transformer.layers.normalization import RMSNormalization, make_norm
from keras_transformer.layers.relative_position import (
    RelativePositionBias,
    relative_position_bucket,
)
from keras_transformer.layers.rotary import RotaryEmbedding

__all__ = [
    "CausalSelfAttention",
    "CrossAttention",
    "FeedForward",
    "GlobalSelfAttention",
    "GroupedQueryAttention",
    "LogitBias",
    "PaddingMask",
    "Pooler",
    "PositionalEmbedding",
    "RMSNormalization",
    "RelativePositionBias",
    "RotaryEmbedding",
    "TransformerBlock",
    "attention_mask",
    "batched_matmul",
    "chunked_attention",
    "make_norm",
    "relative_position_bucket",
    "sinusoidal_positions",
    "swiglu_width",
]
