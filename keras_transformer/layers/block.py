"""`TransformerBlock`: attention and feed-forward, each wrapped in residual + norm."""

import keras

from keras_transformer.errors import UserInputError, recompute_dropout_message
from keras_transformer.layers.attention import CrossAttention, GroupedQueryAttention
from keras_transformer.layers.feedforward import FeedForward
from keras_transformer.layers.normalization import make_norm


@keras.saving.register_keras_serializable(package="keras_transformer")
class TransformerBlock(keras.layers.Layer):
    """One Transformer layer: self-attention, optional cross-attention, FFN.

    Every sub-layer `f` is wrapped the same way, in one of two orders:

    - pre-LN (`norm_first=True`, GPT-2 and later): `x + dropout(f(norm(x)))`;
      the residual stream is never normalised, which trains stably without
      long warmups. The model adds one final norm after the last block.
    - post-LN (`norm_first=False`, Vaswani et al. and BERT):
      `norm(x + dropout(f(x)))`.

    The same class makes all three families' blocks: a GPT block
    (`causal=True`), a BERT/encoder block (`causal=False`) and an
    encoder-decoder's decoder block (`causal=True, cross_attention=True`,
    called with `context=` the encoder output).

    Args:
        d_model: width of the residual stream.
        num_heads: attention heads; must divide `d_model`.
        d_ff: feed-forward hidden width (`None`: `4 * d_model`).
        dropout: rate for attention weights and each residual branch.
        norm_first: pre-LN (`True`) or post-LN (`False`).
        activation: feed-forward activation (see `FeedForward`).
        causal: self-attention sees only earlier positions.
        cross_attention: add a cross-attention sub-layer over `context`.
        use_bias: biases in the attention and feed-forward projections.
        layer_norm_epsilon: epsilon of the normalization layers.
        num_kv_heads: key/value heads of the attention (`None`: `num_heads`).
        rotary: rotary position embeddings in the self-attention (RoPE).
        rotary_max_wavelength: the RoPE base (10,000; Llama 3 uses 500,000).
        norm: `"layer"` (LayerNormalization) or `"rms"` (RMSNormalization).
        attention: `"standard"` or `"chunked"` (memory-efficient, exact).
        attention_block_size: key block length of chunked attention.
        key_dim: width of each attention head (`None`: `d_model // num_heads`;
            T5 v1.1 has `key_dim * num_heads != d_model`).
        scale_attention: scale the attention scores by `1/sqrt(key_dim)`
            (`False`: T5).
        recompute: gradient checkpointing: in training, keep only the
            block's inputs for the backward pass and recompute everything
            inside the block there (`keras.remat`, i.e. `tf.recompute_grad`
            on TensorFlow). Outputs and gradients are unchanged; activation
            memory drops from all blocks' to one block's at the price of a
            second forward pass. It needs `dropout=0` (the second pass would
            draw other dropout masks).

    Call arguments:
        inputs: `[batch, time, d_model]`.
        padding_mask: optional `[batch, time]`, `True` for real tokens (a
            Keras mask on `inputs` is used when this is not given).
        context: encoder outputs, needed when `cross_attention=True`.
        context_mask: optional `[batch, source_time]` mask of `context`.
        attention_bias: optional float `[batch or 1, heads, time, keys]` added
            to the self-attention scores (T5's relative position bias, made
            once per stack by `RelativePositionBias` and shared by its blocks).
        context_key_value: the cross-attention's `(keys, values)` of the
            context, from `cross_key_value(context)`: in generation the
            encoder output is projected once, not at every step (`context`
            is then not needed).
        training: enables dropout.
        positions, cache, cache_index, attention_mask: KV-cached decoding
            of a causal block (see `GroupedQueryAttention`); with a `cache` the
            call returns `(outputs, new_cache)`.
        fold_biases: with a cache, the self-attention's and the feed-forward
            network's products run with their biases folded in
            (`matmul_folded_bias`): for an XLA-compiled decoding loop.
        return_attention_scores: also return the attention weights, as
            `(outputs, scores)` with `scores["self_attention"]`
            `[batch, heads, time, time]` and, with cross-attention,
            `scores["cross_attention"]` `[batch, heads, time, source_time]`
            (what the notebooks draw; not with a cache or chunked attention).

    Example:

    >>> block = TransformerBlock(d_model=16, num_heads=2)
    >>> block(np.zeros((2, 5, 16))).shape
    (2, 5, 16)
    """

    def __init__(
        self,
        d_model,
        num_heads,
        d_ff=None,
        dropout=0.0,
        norm_first=True,
        activation="gelu",
        causal=True,
        cross_attention=False,
        use_bias=True,
        layer_norm_epsilon=1e-5,
        num_kv_heads=None,
        rotary=False,
        rotary_max_wavelength=10000,
        norm="layer",
        attention="standard",
        attention_block_size=128,
        recompute=False,
        key_dim=None,
        scale_attention=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if recompute and dropout:
            raise UserInputError(recompute_dropout_message(dropout))
        self.d_model = d_model
        self.num_heads = num_heads
        self.d_ff = d_ff or 4 * d_model
        self.dropout = dropout
        self.norm_first = norm_first
        self.activation = activation
        self.causal = causal
        self.cross_attention = cross_attention
        self.use_bias = use_bias
        self.layer_norm_epsilon = layer_norm_epsilon
        self.num_kv_heads = num_kv_heads or num_heads
        self.rotary = rotary
        self.rotary_max_wavelength = rotary_max_wavelength
        self.norm = norm
        self.attention = attention
        self.attention_block_size = attention_block_size
        self.recompute = recompute
        self.key_dim = key_dim or d_model // num_heads
        self.scale_attention = scale_attention
        self.supports_masking = True

    def _norm(self, name, input_shape):
        norm = make_norm(self.norm, self.layer_norm_epsilon, dtype=self.dtype_policy, name=name)
        norm.build(input_shape)
        return norm

    def build(self, inputs_shape, context_shape=None):
        input_shape = inputs_shape
        attention_args = dict(
            num_heads=self.num_heads,
            key_dim=self.key_dim,
            num_kv_heads=self.num_kv_heads,
            dropout=self.dropout,
            use_bias=self.use_bias,
            attention=self.attention,
            attention_block_size=self.attention_block_size,
            scale_attention=self.scale_attention,
            dtype=self.dtype_policy,
        )
        self.self_attention = GroupedQueryAttention(
            causal=self.causal, rotary=self.rotary,
            rotary_max_wavelength=self.rotary_max_wavelength, name="self_attention",
            **attention_args,
        )
        self.self_attention.build(input_shape)
        self.self_attention_norm = self._norm("self_attention_norm", input_shape)
        if self.cross_attention:
            self.cross_attention_layer = CrossAttention(name="cross_attention", **attention_args)
            self.cross_attention_layer.build(input_shape, context_shape or input_shape)
            self.cross_attention_norm = self._norm("cross_attention_norm", input_shape)
        self.feed_forward = FeedForward(
            self.d_model,
            self.d_ff,
            activation=self.activation,
            dropout=self.dropout,
            use_bias=self.use_bias,
            dtype=self.dtype_policy,
            name="feed_forward",
        )
        self.feed_forward.build(input_shape)
        self.feed_forward_norm = self._norm("feed_forward_norm", input_shape)
        self.residual_dropout = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.built = True

    def _residual(self, x, norm, sublayer, dropout, training):
        """`x + f(norm(x))` (pre-LN) or `norm(x + f(x))` (post-LN)."""
        if self.norm_first:
            y = sublayer(norm(x))
            return x + (self.residual_dropout(y, training=training) if dropout else y)
        y = sublayer(x)
        return norm(x + (self.residual_dropout(y, training=training) if dropout else y))

    def call(
        self,
        inputs,
        padding_mask=None,
        context=None,
        context_mask=None,
        training=None,
        mask=None,
        positions=None,
        cache=None,
        cache_index=None,
        attention_mask=None,
        return_attention_scores=False,
        attention_bias=None,
        context_key_value=None,
        fold_biases=False,
    ):
        padding_mask = mask if padding_mask is None else padding_mask
        if self.recompute and training and cache is None and not return_attention_scores \
                and context_key_value is None:
            return self._recomputed(inputs, padding_mask, context, context_mask, positions,
                                    attention_bias)
        return self._forward(
            inputs, padding_mask, context, context_mask, training, positions, cache,
            cache_index, attention_mask, return_attention_scores, attention_bias,
            context_key_value, fold_biases and cache is not None,
        )

    def cross_key_value(self, context):
        """The cross-attention's `(keys, values)` of `context`, for `context_key_value=`."""
        if not self.cross_attention:
            raise ValueError("this block has no cross-attention")
        return self.cross_attention_layer.project_key_value(context)

    def _recomputed(self, inputs, padding_mask, context, context_mask, positions,
                    attention_bias=None):
        """The training forward pass under `keras.remat`: its inner activations are
        not kept but recomputed when the gradient is taken."""
        names = ("padding_mask", "context", "context_mask", "positions", "attention_bias")
        given = {name: value for name, value in zip(names, (padding_mask, context, context_mask,
                                                             positions, attention_bias),
                                                    strict=True)
                 if value is not None}

        def forward(x, *tensors):
            return self._forward(x, training=True, **dict(zip(given, tensors, strict=True)))

        return keras.remat(forward)(inputs, *given.values())

    def _forward(
        self,
        inputs,
        padding_mask=None,
        context=None,
        context_mask=None,
        training=None,
        positions=None,
        cache=None,
        cache_index=None,
        attention_mask=None,
        return_attention_scores=False,
        attention_bias=None,
        context_key_value=None,
        fold_biases=False,
    ):
        """The block itself: residual sub-layers in the order `norm_first` says."""
        if return_attention_scores and cache is not None:
            raise ValueError("a cached call cannot return attention scores")
        extras = {}  # what attention returns besides its output: the scores or the new cache

        def self_attention(h):
            result = self.self_attention(
                h, key_mask=padding_mask, positions=positions, cache=cache,
                cache_index=cache_index, attention_mask=attention_mask, training=training,
                attention_bias=attention_bias, return_attention_scores=return_attention_scores,
                fold_biases=fold_biases,
            )
            if cache is None and not return_attention_scores:
                return result
            output, extras["self_attention"] = result
            return output

        def cross_attention(h):
            result = self.cross_attention_layer(
                h, context, key_mask=context_mask, training=training,
                key_value=context_key_value, return_attention_scores=return_attention_scores,
            )
            if not return_attention_scores:
                return result
            output, extras["cross_attention"] = result
            return output

        x = self._residual(inputs, self.self_attention_norm, self_attention, True, training)
        if self.cross_attention:
            if context is None and context_key_value is None:
                raise ValueError("a block with cross_attention=True needs `context`")
            x = self._residual(x, self.cross_attention_norm, cross_attention, True, training)
        # FeedForward applies its own output dropout.
        x = self._residual(x, self.feed_forward_norm,
                           lambda h: self.feed_forward(h, training=training,
                                                       fold_biases=fold_biases),
                           False, training)
        if cache is not None:
            return x, extras["self_attention"]
        return (x, extras) if return_attention_scores else x

    def compute_output_shape(self, input_shape, *args, **kwargs):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            d_model=self.d_model,
            num_heads=self.num_heads,
            d_ff=self.d_ff,
            dropout=self.dropout,
            norm_first=self.norm_first,
            activation=self.activation,
            causal=self.causal,
            cross_attention=self.cross_attention,
            use_bias=self.use_bias,
            layer_norm_epsilon=self.layer_norm_epsilon,
            num_kv_heads=self.num_kv_heads,
            rotary=self.rotary,
            rotary_max_wavelength=self.rotary_max_wavelength,
            norm=self.norm,
            attention=self.attention,
            attention_block_size=self.attention_block_size,
            recompute=self.recompute,
            key_dim=self.key_dim,
            scale_attention=self.scale_attention,
        )
        return config
