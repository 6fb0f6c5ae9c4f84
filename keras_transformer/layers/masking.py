"""Masks, in Keras polarity everywhere: `True` means "may attend".

`PaddingMask` says which token ids are real; `attention_mask` turns a key
mask and causality into the `[batch, queries, keys]` mask of one attention
call. Every mask of the package (standard and chunked attention, the KV
cache of generation) is made by `attention_mask`.
"""

import keras
from keras import ops


def attention_mask(query_positions, key_positions, key_mask=None, causal=False):
    """Which keys each query may attend to: bool `[batch or 1, queries, keys]`.

    Args:
        query_positions: int `[queries]` or `[batch, queries]`: where each
            query sits (its own slot of a KV cache; `0 .. time-1` without one).
        key_positions: int `[keys]`: where each key sits.
        key_mask: optional bool `[batch, keys]`, `False` for padding keys.
        causal: a query sees only keys at or before its own position.

    Example:

    >>> attention_mask(np.arange(3), np.arange(3), causal=True)[0]
    array([[ True, False, False],
           [ True,  True, False],
           [ True,  True,  True]])
    """
    query_positions = ops.convert_to_tensor(query_positions)
    if len(query_positions.shape) == 1:
        query_positions = query_positions[None]
    mask = None
    if causal:
        mask = ops.less_equal(key_positions[None, None, :], query_positions[:, :, None])
    if key_mask is not None:
        keys = ops.cast(key_mask, "bool")[:, None, :]
        mask = keys if mask is None else ops.logical_and(mask, keys)
    return mask


@keras.saving.register_keras_serializable(package="keras_transformer")
class PaddingMask(keras.layers.Layer):
    """Boolean `[batch, time]` mask, `True` where the id is not `pad_id`.

    Encoders and encoder-decoders pass it explicitly as `padding_mask=` /
    `context_mask=` to their blocks, so padded positions are never attended
    to.

    Args:
        pad_id: the padding id (0 for every tokenizer of this package).

    Example:

    >>> PaddingMask()(np.array([[5, 7, 0]]))
    array([[ True,  True, False]])
    """

    def __init__(self, pad_id=0, **kwargs):
        super().__init__(**kwargs)
        self.pad_id = pad_id

    def build(self, input_shape):
        self.built = True

    def call(self, inputs):
        return ops.not_equal(inputs, self.pad_id)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape, dtype="bool")

    def get_config(self):
        config = super().get_config()
        config.update(pad_id=self.pad_id)
        return config
