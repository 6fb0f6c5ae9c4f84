"""The position-wise feed-forward network of a Transformer block (plain or gated)."""

import keras

from keras_transformer.errors import UserInputError

ACTIVATIONS = {
    "relu": keras.activations.relu,
    # GPT-2 and BERT use the tanh approximation of GELU.
    "gelu": lambda x: keras.activations.gelu(x, approximate=True),
    # Gated: silu(x W_gate) * (x W_hidden), Shazeer 2020 (PaLM, LLaMA).
    "swiglu": keras.activations.silu,
}


def swiglu_width(d_ff):
    """Hidden width of a SwiGLU FFN standing in for a plain one of width `d_ff`.

    A gated FFN has three matrices instead of two; `2 * d_ff // 3` keeps the
    parameter count about the same (the LLaMA sizing).
    """
    return max(1, (2 * d_ff) // 3)


@keras.saving.register_keras_serializable(package="keras_transformer")
class FeedForward(keras.layers.Layer):
    """Two dense layers applied to every position: `d_model -> d_ff -> d_model`.

    `Dense(d_ff, activation) -> Dense(d_model) -> Dropout`, the "FFN" of
    Vaswani et al. It mixes features within a position; attention is what
    mixes positions. With `activation="swiglu"` it is the gated variant
    `Dense(d_model)(silu(gate(x)) * hidden(x))`, whose `gate` and `hidden`
    layers have width `swiglu_width(d_ff) = 2 * d_ff // 3`.

    Args:
        d_model: input and output width.
        d_ff: hidden width; `None` means `4 * d_model`.
        activation: `"gelu"` (tanh approximation, as GPT-2), `"relu"` or
            `"swiglu"` (gated).
        dropout: dropout rate on the output.
        use_bias: biases in both dense layers.
        kernel_initializer: initializer of both kernels.

    Example:

    >>> ffn = FeedForward(d_model=16)
    >>> ffn(np.zeros((2, 5, 16))).shape
    (2, 5, 16)
    """

    def __init__(
        self,
        d_model,
        d_ff=None,
        activation="gelu",
        dropout=0.0,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if activation not in ACTIVATIONS:
            raise UserInputError(
                f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}"
            )
        self.d_model = d_model
        self.d_ff = d_ff or 4 * d_model
        self.activation = activation
        self.dropout = dropout
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.supports_masking = True

    @property
    def hidden_width(self):
        """Width of the hidden layer (`d_ff`, or `2 * d_ff // 3` for SwiGLU)."""
        return swiglu_width(self.d_ff) if self.activation == "swiglu" else self.d_ff

    def build(self, input_shape):
        if self.activation == "swiglu":
            self.gate = keras.layers.Dense(
                self.hidden_width,
                use_bias=self.use_bias,
                kernel_initializer=self.kernel_initializer,
                dtype=self.dtype_policy,
                name="gate",
            )
            self.gate.build(input_shape)
        self.hidden = keras.layers.Dense(
            self.hidden_width,
            use_bias=self.use_bias,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="hidden",
        )
        self.hidden.build(input_shape)
        self.output_dense = keras.layers.Dense(
            self.d_model,
            use_bias=self.use_bias,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="output",
        )
        self.output_dense.build(tuple(input_shape[:-1]) + (self.hidden_width,))
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.built = True

    def call(self, inputs, training=None):
        if self.activation == "swiglu":
            x = keras.activations.silu(self.gate(inputs)) * self.hidden(inputs)
        else:
            x = ACTIVATIONS[self.activation](self.hidden(inputs))
        return self.dropout_layer(self.output_dense(x), training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.d_model,)

    def get_config(self):
        config = super().get_config()
        config.update(
            d_model=self.d_model,
            d_ff=self.d_ff,
            activation=self.activation,
            dropout=self.dropout,
            use_bias=self.use_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config
