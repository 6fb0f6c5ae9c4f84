"""The position-wise feed-forward network of a Transformer block (plain or gated)."""

import keras

from keras_transformer.errors import UserInputError
from keras_transformer.layers.activations import gelu_erf, gelu_tanh, silu
from keras_transformer.layers.folded_bias import matmul_folded_bias

# Each activation is one XLA-fused kernel forward and one backward (`layers/activations.py`).
ACTIVATIONS = {
    "relu": keras.activations.relu,
    "gelu_tanh": gelu_tanh,
    "gelu_erf": gelu_erf,
    # "gelu" is the name older configs use: the tanh approximation, as "gelu_tanh".
    "gelu": gelu_tanh,
    # Gated: act(x W_gate) * (x W_hidden), Shazeer 2020. SwiGLU (PaLM, LLaMA) gates
    # with silu; T5 v1.1's "gated-gelu" with the tanh GELU.
    "swiglu": silu,
    "gated-gelu": gelu_tanh,
}
GATED = ("swiglu", "gated-gelu")


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
    layers have width `swiglu_width(d_ff) = 2 * d_ff // 3`. `"gated-gelu"`
    (T5 v1.1) gates the same way with the tanh GELU, at the full width `d_ff`
    (T5 states its gated width directly).

    Args:
        d_model: input and output width.
        d_ff: hidden width; `None` means `4 * d_model`.
        activation: `"gelu_tanh"` (the tanh approximation, GPT-2's),
            `"gelu_erf"` (exact, BERT's), `"relu"`, or a gated kind:
            `"swiglu"` (silu gate, LLaMA) or `"gated-gelu"` (tanh-GELU gate,
            T5 v1.1). `"gelu"`, the name of older configs, is `"gelu_tanh"`.
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
        if self.activation in GATED:
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

    def call(self, inputs, training=None, fold_biases=False):
        """`fold_biases=True`: the products run with their biases folded in
        (`matmul_folded_bias`), for the one-token calls of an XLA-compiled
        decoding loop."""
        if fold_biases:
            def dense(layer, x):
                return matmul_folded_bias(x, layer.kernel, layer.bias)
        else:
            def dense(layer, x):
                return layer(x)
        if self.activation in GATED:
            x = ACTIVATIONS[self.activation](dense(self.gate, inputs)) * dense(self.hidden, inputs)
        else:
            x = ACTIVATIONS[self.activation](dense(self.hidden, inputs))
        return self.dropout_layer(dense(self.output_dense, x), training=training)

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
