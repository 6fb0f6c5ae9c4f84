"""`PaddingMask`: which positions of a batch of token ids are real tokens."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_transformer")
class PaddingMask(keras.layers.Layer):
    """Boolean `[batch, time]` mask, `True` where the id is not `pad_id`.

    Encoders and encoder-decoders pass it explicitly as `padding_mask=` /
    `context_mask=` to their blocks, so padded positions are never attended
    to (Keras polarity: `True` = may attend).

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
