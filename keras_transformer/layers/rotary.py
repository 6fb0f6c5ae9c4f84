"""`RotaryEmbedding`: rotary position embeddings (RoPE, Su et al. 2021)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_transformer")
class RotaryEmbedding(keras.layers.Layer):
    """Rotate query or key vectors by angles proportional to their position.

    The head width `D` is split into two halves `x1, x2`; the pair
    `(x1[i], x2[i])` is rotated by the angle `position * theta_i` with
    `theta_i = max_wavelength ** (-2i / D)`. A rotation keeps the vector's
    norm, and because rotations compose, the dot product of a query rotated
    for position `m` with a key rotated for position `n` depends only on
    `m - n`: attention sees relative positions, and the model has no position
    parameters at all.

    Args:
        max_wavelength: the longest wavelength (10000, as the paper).

    Call arguments:
        inputs: `[batch, time, heads, head_dim]`, `head_dim` even.
        positions: optional int positions, `[time]` or `[batch, time]`;
            default `0 .. time-1`.

    Example:

    >>> rope = RotaryEmbedding()
    >>> rope(np.ones((1, 5, 2, 8))).shape
    (1, 5, 2, 8)
    """

    def __init__(self, max_wavelength=10000, **kwargs):
        super().__init__(**kwargs)
        self.max_wavelength = max_wavelength
        self.built = True

    def build(self, input_shape):
        self.built = True

    def angles(self, positions, head_dim):
        """float32 angles `[..., head_dim // 2]` for int `positions`."""
        exponents = ops.arange(0, head_dim, 2, dtype="float32") / float(head_dim)
        inverse_frequencies = ops.power(float(self.max_wavelength), -exponents)
        return ops.cast(positions, "float32")[..., None] * inverse_frequencies

    def call(self, inputs, positions=None):
        head_dim = inputs.shape[-1]
        if positions is None:
            positions = ops.arange(ops.shape(inputs)[1], dtype="int32")[None, :]
        elif len(positions.shape) == 1:
            positions = positions[None, :]
        angles = self.angles(positions, head_dim)[:, :, None, :]  # [batch, time, 1, D/2]
        cos, sin = ops.cos(angles), ops.sin(angles)
        x = ops.cast(inputs, "float32")
        x1, x2 = x[..., : head_dim // 2], x[..., head_dim // 2:]
        rotated = ops.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
        return ops.cast(rotated, inputs.dtype)

    def compute_output_shape(self, input_shape, *args, **kwargs):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(max_wavelength=self.max_wavelength)
        return config
