"""Normalization layers: `RMSNormalization` and the `make_norm` factory."""

import keras
from keras import ops

from keras_transformer.errors import UserInputError


@keras.saving.register_keras_serializable(package="keras_transformer")
class RMSNormalization(keras.layers.Layer):
    """Root-mean-square normalization (Zhang & Sennrich 2019).

    `y = x / sqrt(mean(x**2) + epsilon) * scale`: LayerNormalization without
    the mean subtraction and the bias. It is cheaper and works as well in
    pre-LN Transformers (LLaMA, T5). Computed in float32.

    Args:
        epsilon: added to the mean square.

    Example:

    >>> RMSNormalization()(np.ones((2, 3, 8))).shape
    (2, 3, 8)
    """

    def __init__(self, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon
        self.supports_masking = True

    def build(self, input_shape):
        self.scale = self.add_weight(name="scale", shape=(input_shape[-1],), initializer="ones")
        self.built = True

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        x = x * ops.rsqrt(ops.mean(ops.square(x), axis=-1, keepdims=True) + self.epsilon)
        return ops.cast(x * ops.cast(self.scale, "float32"), inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(epsilon=self.epsilon)
        return config


def make_norm(kind, epsilon, dtype=None, name=None):
    """A `"layer"` (LayerNormalization) or `"rms"` (RMSNormalization) layer."""
    if kind == "layer":
        return keras.layers.LayerNormalization(epsilon=epsilon, dtype=dtype, name=name)
    if kind == "rms":
        return RMSNormalization(epsilon=epsilon, dtype=dtype, name=name)
    raise UserInputError(f"norm must be 'layer' or 'rms', got {kind!r}")
