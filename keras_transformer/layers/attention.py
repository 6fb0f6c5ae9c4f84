"""Attention layers on top of `keras.layers.MultiHeadAttention`.

Three flavours share one base class, as in the TensorFlow "Transformer with
Keras" tutorial:

- `CausalSelfAttention`: each position attends to itself and earlier
  positions only (decoders, GPT).
- `GlobalSelfAttention`: each position attends to every position (encoders,
  BERT).
- `CrossAttention`: decoder positions attend to encoder outputs.

Masks use Keras polarity everywhere: `1`/`True` means "may attend".
"""

import keras
from keras import ops


def _key_padding_mask(padding_mask, query_length):
    """Turn a `[batch, keys]` padding mask into a `[batch, queries, keys]` mask."""
    mask = ops.cast(padding_mask, "bool")[:, None, :]
    return ops.repeat(mask, query_length, axis=1)


class BaseAttention(keras.layers.Layer):
    """Multi-head attention with a residual-ready output of width `d_model`.

    Subclasses choose what attends to what; this base builds the
    `keras.layers.MultiHeadAttention` that does the work.

    Args:
        num_heads: number of attention heads.
        key_dim: width of each head (`d_model // num_heads` in the usual case).
        dropout: dropout rate on the attention weights.
        use_bias: biases in the query, key, value and output projections.
        kernel_initializer: initializer of the projection kernels.
    """

    def __init__(
        self,
        num_heads,
        key_dim,
        dropout=0.0,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.dropout = dropout
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.supports_masking = True

    def _build_mha(self, query_shape, value_shape):
        self.mha = keras.layers.MultiHeadAttention(
            num_heads=self.num_heads,
            key_dim=self.key_dim,
            dropout=self.dropout,
            use_bias=self.use_bias,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="mha",
        )
        self.mha.build(query_shape, value_shape)
        self.built = True

    def build(self, input_shape):
        self._build_mha(input_shape, input_shape)

    def compute_output_shape(self, input_shape, *args, **kwargs):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            key_dim=self.key_dim,
            dropout=self.dropout,
            use_bias=self.use_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config


@keras.saving.register_keras_serializable(package="keras_transformer")
class CausalSelfAttention(BaseAttention):
    """Self-attention where position `t` sees only positions `<= t`.

    The look-ahead mask is what makes a decoder a language model: the output
    at `t` cannot depend on tokens after `t`, so it can be trained to predict
    token `t + 1` on every position at once.

    Call arguments:
        inputs: `[batch, time, d_model]`.
        padding_mask: optional `[batch, time]`, `True` for real tokens; padded
            keys get no attention. A Keras mask on `inputs` is used when this
            is not given.
        training: enables attention dropout.
        return_attention_scores: also return `[batch, heads, time, time]`.

    Example:

    >>> layer = CausalSelfAttention(num_heads=2, key_dim=8)
    >>> layer(np.zeros((1, 5, 16))).shape
    (1, 5, 16)
    """

    def call(
        self,
        inputs,
        padding_mask=None,
        training=None,
        return_attention_scores=False,
        mask=None,
    ):
        padding_mask = mask if padding_mask is None else padding_mask
        attention_mask = None
        if padding_mask is not None:
            attention_mask = _key_padding_mask(padding_mask, ops.shape(inputs)[1])
        return self.mha(
            query=inputs,
            value=inputs,
            key=inputs,
            attention_mask=attention_mask,
            use_causal_mask=True,
            training=training,
            return_attention_scores=return_attention_scores,
        )


@keras.saving.register_keras_serializable(package="keras_transformer")
class GlobalSelfAttention(BaseAttention):
    """Self-attention where every position sees every (non-padding) position.

    Call arguments are those of `CausalSelfAttention`; only the look-ahead
    mask is missing, so the output at `t` depends on the whole sequence.

    Example:

    >>> layer = GlobalSelfAttention(num_heads=2, key_dim=8)
    >>> layer(np.zeros((1, 5, 16))).shape
    (1, 5, 16)
    """

    def call(
        self,
        inputs,
        padding_mask=None,
        training=None,
        return_attention_scores=False,
        mask=None,
    ):
        padding_mask = mask if padding_mask is None else padding_mask
        attention_mask = None
        if padding_mask is not None:
            attention_mask = _key_padding_mask(padding_mask, ops.shape(inputs)[1])
        return self.mha(
            query=inputs,
            value=inputs,
            key=inputs,
            attention_mask=attention_mask,
            training=training,
            return_attention_scores=return_attention_scores,
        )


@keras.saving.register_keras_serializable(package="keras_transformer")
class CrossAttention(BaseAttention):
    """Decoder queries attending to encoder outputs (the "context").

    Call arguments:
        inputs: decoder states `[batch, target_time, d_model]`.
        context: encoder outputs `[batch, source_time, d_model]`.
        context_mask: optional `[batch, source_time]`, `True` for real
            source tokens; padded source positions get no attention.
        training: enables attention dropout.
        return_attention_scores: also return
            `[batch, heads, target_time, source_time]`.

    Example:

    >>> layer = CrossAttention(num_heads=2, key_dim=8)
    >>> layer(np.zeros((1, 3, 16)), context=np.zeros((1, 7, 16))).shape
    (1, 3, 16)
    """

    def build(self, inputs_shape, context_shape=None):
        self._build_mha(inputs_shape, context_shape or inputs_shape)

    def call(
        self,
        inputs,
        context,
        context_mask=None,
        training=None,
        return_attention_scores=False,
    ):
        attention_mask = None
        if context_mask is not None:
            attention_mask = _key_padding_mask(context_mask, ops.shape(inputs)[1])
        return self.mha(
            query=inputs,
            value=context,
            key=context,
            attention_mask=attention_mask,
            training=training,
            return_attention_scores=return_attention_scores,
        )
