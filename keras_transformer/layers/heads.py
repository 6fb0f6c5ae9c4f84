"""Small task heads of BERT: the `[CLS]` pooler and the output bias of tied logits."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_transformer")
class Pooler(keras.layers.Layer):
    """BERT's pooler: the first (`[CLS]`) position through `Dense(d_model, tanh)`.

    The sentence-pair (next sentence) classifier reads this vector.

    Args:
        d_model: width of the input and the pooled vector.

    Call arguments:
        inputs: `[batch, time, d_model]` encoder outputs.

    Example:

    >>> Pooler(16)(np.zeros((2, 5, 16))).shape
    (2, 16)
    """

    def __init__(self, d_model, **kwargs):
        super().__init__(**kwargs)
        self.d_model = d_model

    def build(self, input_shape):
        self.dense = keras.layers.Dense(
            self.d_model, activation="tanh", dtype=self.dtype_policy, name="dense"
        )
        self.dense.build((input_shape[0], input_shape[-1]))
        self.built = True

    def call(self, inputs):
        return self.dense(inputs[:, 0, :])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.d_model)

    def get_config(self):
        config = super().get_config()
        config.update(d_model=self.d_model)
        return config


@keras.saving.register_keras_serializable(package="keras_transformer")
class LogitBias(keras.layers.Layer):
    """Add one learned bias per vocabulary entry to float32 logits.

    BERT's masked-LM head projects with the (tied) input embedding matrix,
    which has no bias of its own; this layer is that bias.

    Example:

    >>> LogitBias()(np.zeros((1, 3, 10), "float32")).shape
    (1, 3, 10)
    """

    def build(self, input_shape):
        self.bias = self.add_weight(name="bias", shape=(input_shape[-1],), initializer="zeros")
        self.built = True

    def call(self, inputs):
        return ops.cast(inputs, "float32") + ops.cast(self.bias, "float32")

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape, dtype="float32")
