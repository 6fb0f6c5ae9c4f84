"""Attention layers on top of `keras.layers.MultiHeadAttention`.

`GroupedQueryAttention` is a `keras.layers.MultiHeadAttention` with the
modern options: fewer key/value heads than query heads (grouped-query and
multi-query attention), rotary position embeddings on queries and keys, a
key/value cache for generation, and exact memory-efficient ("chunked")
attention. With its defaults it computes exactly what its parent does.

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

from keras_transformer.errors import UserInputError
from keras_transformer.layers.chunked_attention import MASKED_SCORE, chunked_attention
from keras_transformer.layers.rotary import RotaryEmbedding

IMPLEMENTATIONS = ("standard", "chunked")


def _dense_mask(key_mask, causal, query_length, key_length):
    """The `[batch or 1, queries, keys]` bool mask of a key padding mask and/or causality."""
    mask = None
    if key_mask is not None:
        mask = ops.cast(key_mask, "bool")[:, None, :]
    if causal:
        rows = ops.arange(query_length)[:, None]
        cols = ops.arange(key_length)[None, :]
        lower = (cols <= rows)[None]
        mask = lower if mask is None else ops.logical_and(mask, lower)
    return mask


@keras.saving.register_keras_serializable(package="keras_transformer")
class GroupedQueryAttention(keras.layers.MultiHeadAttention):
    """`keras.layers.MultiHeadAttention` with kv heads, RoPE, a KV cache and chunking.

    The projections, the output layer, the scaling, the attention dropout and
    the weight names are the parent's; only the key and value projections
    may have fewer heads (`num_kv_heads`) and `call` is rewritten so that
    each group of `num_heads // num_kv_heads` query heads shares one kv head.

    Args:
        num_heads: query heads.
        key_dim: width of each head.
        num_kv_heads: key/value heads (`None`: `num_heads`, standard
            multi-head attention; 1: multi-query attention). Must divide
            `num_heads`.
        rotary: rotate queries and keys by their positions (RoPE).
        rotary_max_wavelength: the RoPE base.
        implementation: `"standard"` or `"chunked"` (exact attention over key
            blocks of `block_size` with linear memory; see
            `chunked_attention`). Chunked attention has no dropout and
            cannot return attention scores.
        block_size: key block length of the chunked implementation.
        **kwargs: the other arguments of `keras.layers.MultiHeadAttention`.

    Call arguments:
        query: `[batch, time, d]`.
        value, key: `[batch, source, d]` (default: `query`).
        key_mask: optional bool `[batch, source]`, `True` = may attend.
        attention_mask: optional bool `[batch, time, source]` (overrides
            `key_mask` and `use_causal_mask`; with a cache it must cover the
            cache's slots).
        use_causal_mask: query `t` sees keys `<= t`.
        positions: int `[time]` or `[batch, time]` positions for RoPE
            (default `0 .. time-1`).
        cache: optional `(keys, values)`, each `[batch, slots, kv_heads,
            key_dim]`; this call's keys and values are written at slot
            `cache_index` and the queries attend to the whole cache (masked
            by `attention_mask`). The call then returns `(output, cache)`.
        cache_index: int scalar, the first slot written.
        return_attention_scores: also return `[batch, heads, time, source]`.
        training: enables attention dropout.

    Example:

    >>> layer = GroupedQueryAttention(num_heads=4, key_dim=8, num_kv_heads=2)
    >>> layer(np.zeros((1, 5, 32)), np.zeros((1, 5, 32))).shape
    (1, 5, 32)
    """

    def __init__(
        self,
        num_heads,
        key_dim,
        num_kv_heads=None,
        rotary=False,
        rotary_max_wavelength=10000,
        implementation="standard",
        block_size=128,
        **kwargs,
    ):
        super().__init__(num_heads=num_heads, key_dim=key_dim, **kwargs)
        self.num_kv_heads = num_kv_heads or num_heads
        if num_heads % self.num_kv_heads:
            raise UserInputError(
                f"num_kv_heads ({self.num_kv_heads}) must divide num_heads ({num_heads})"
            )
        if implementation not in IMPLEMENTATIONS:
            raise UserInputError(
                f"implementation must be one of {', '.join(IMPLEMENTATIONS)}, got {implementation!r}"
            )
        if implementation == "chunked" and self._dropout:
            raise UserInputError("chunked attention has no attention dropout; use dropout=0")
        if rotary and key_dim % 2:
            raise UserInputError(f"rotary embeddings need an even key_dim, got {key_dim}")
        self.rotary = rotary
        self.rotary_max_wavelength = rotary_max_wavelength
        self.implementation = implementation
        self.block_size = block_size
        self._rotary_layer = (
            RotaryEmbedding(rotary_max_wavelength, dtype=self.dtype_policy, name="rotary")
            if rotary
            else None
        )

    def _projection(self, heads, dim, name, input_shape):
        layer = keras.layers.EinsumDense(
            "abc,cde->abde",
            output_shape=(None, heads, dim),
            bias_axes="de" if self._use_bias else None,
            name=name,
            **self._get_common_kwargs_for_sublayer(),
        )
        layer.build(input_shape)
        return layer

    def build(self, query_shape, value_shape=None, key_shape=None):
        value_shape = query_shape if value_shape is None else value_shape
        key_shape = value_shape if key_shape is None else key_shape
        if len(query_shape) != 3 or len(value_shape) != 3:
            raise ValueError("GroupedQueryAttention expects [batch, time, features] inputs")
        self._query_dense = self._projection(self._num_heads, self._key_dim, "query", query_shape)
        self._key_dense = self._projection(self.num_kv_heads, self._key_dim, "key", key_shape)
        self._value_dense = self._projection(
            self.num_kv_heads, self._value_dim, "value", value_shape
        )
        self._build_attention(4)
        self._output_dense = self._make_output_dense(
            query_shape, self._get_common_kwargs_for_sublayer(), "attention_output"
        )
        self._output_dense.build(
            (query_shape[0], query_shape[1], self._num_heads, self._value_dim)
        )
        self.built = True

    def _project(self, query, value, key):
        """Queries `[b, t, heads, d]`, keys and values `[b, s, kv_heads, d]`.

        In self-attention the three projections read the same input, so they
        run as one matmul against the three kernels side by side (one large
        matmul is faster than three small ones); the weights are still the
        parent's `query`, `key` and `value` layers.
        """
        if not (query is value and value is key and self._key_dim == self._value_dim):
            return self._query_dense(query), self._key_dense(key), self._value_dense(value)
        layers = (self._query_dense, self._key_dense, self._value_dense)
        kernel = ops.concatenate([ops.cast(layer.kernel, query.dtype) for layer in layers], axis=1)
        qkv = ops.einsum("btc,cnd->btnd", query, kernel)
        if self._use_bias:
            qkv = qkv + ops.concatenate([ops.cast(layer.bias, query.dtype) for layer in layers],
                                        axis=0)
        heads, kv_heads = self._num_heads, self.num_kv_heads
        return ops.split(qkv, [heads, heads + kv_heads], axis=2)

    def _grouped_attention(self, query, key, value, attention_mask, training):
        """Standard attention; query head `h` uses kv head `h // (num_heads // num_kv_heads)`."""
        batch, time = ops.shape(query)[0], ops.shape(query)[1]
        source = ops.shape(key)[1]
        groups = self._num_heads // self.num_kv_heads
        if groups == 1:  # multi-head attention: one kv head per query head
            scores = ops.einsum("btnd,bsnd->bnts", query, key)
        else:
            grouped = ops.reshape(query, (batch, time, self.num_kv_heads, groups, self._key_dim))
            scores = ops.einsum("btkgd,bskd->bkgts", grouped, key)
            scores = ops.reshape(scores, (batch, self._num_heads, time, source))
        scores = ops.cast(scores, "float32")
        if attention_mask is not None:
            scores = ops.where(attention_mask[:, None], scores, MASKED_SCORE)
        probabilities = ops.softmax(scores, axis=-1)
        dropped = self._dropout_layer(ops.cast(probabilities, query.dtype), training=training)
        if groups == 1:
            return ops.einsum("bnts,bsnd->btnd", dropped, value), probabilities
        dropped = ops.reshape(dropped, (batch, self.num_kv_heads, groups, time, source))
        output = ops.einsum("bkgts,bskd->btkgd", dropped, value)
        output = ops.reshape(output, (batch, time, self._num_heads, self._value_dim))
        return output, probabilities

    def call(
        self,
        query,
        value=None,
        key=None,
        key_mask=None,
        attention_mask=None,
        use_causal_mask=False,
        positions=None,
        cache=None,
        cache_index=None,
        return_attention_scores=False,
        training=None,
    ):
        value = query if value is None else value
        key = value if key is None else key
        q, k, v = self._project(query, value, key)
        if self.rotary:
            q = self._rotary_layer(q, positions=positions)
            k = self._rotary_layer(k, positions=positions)
        q = ops.multiply(q, ops.cast(self._inverse_sqrt_key_dim, q.dtype))
        if cache is not None:
            start = (0, cache_index, 0, 0)
            k = ops.slice_update(cache[0], start, ops.cast(k, cache[0].dtype))
            v = ops.slice_update(cache[1], start, ops.cast(v, cache[1].dtype))
            cache = (k, v)
        use_chunked = self.implementation == "chunked" and cache is None and attention_mask is None
        if use_chunked:
            if return_attention_scores:
                raise UserInputError("chunked attention cannot return attention scores")
            groups = self._num_heads // self.num_kv_heads
            output = chunked_attention(
                q,
                ops.repeat(k, groups, axis=2),
                ops.repeat(v, groups, axis=2),
                key_mask=key_mask,
                causal=use_causal_mask,
                block_size=self.block_size,
            )
            scores = None
        else:
            if attention_mask is None:
                attention_mask = _dense_mask(
                    key_mask, use_causal_mask, ops.shape(q)[1], ops.shape(k)[1]
                )
            else:
                attention_mask = ops.cast(attention_mask, "bool")
            output, scores = self._grouped_attention(q, k, v, attention_mask, training)
        output = self._output_dense(output)
        if cache is not None:
            return output, cache
        if return_attention_scores:
            return output, scores
        return output

    def compute_output_spec(self, query, value=None, key=None, return_attention_scores=False,
                            cache=None, **kwargs):
        width = self._output_shape or query.shape[-1]
        width = width[-1] if isinstance(width, (tuple, list)) else width
        output = keras.KerasTensor(tuple(query.shape[:-1]) + (width,), dtype=self.compute_dtype)
        if return_attention_scores:
            source = (value if value is not None else query).shape[1]
            scores = keras.KerasTensor(
                (query.shape[0], self._num_heads, query.shape[1], source), dtype="float32"
            )
            return output, scores
        return output

    def get_config(self):
        config = super().get_config()
        config.update(
            num_kv_heads=self.num_kv_heads,
            rotary=self.rotary,
            rotary_max_wavelength=self.rotary_max_wavelength,
            implementation=self.implementation,
            block_size=self.block_size,
        )
        return config


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
        num_kv_heads: key/value heads (`None`: `num_heads`); see
            `GroupedQueryAttention`.
        rotary: rotary position embeddings on queries and keys (RoPE).
        attention: `"standard"` or `"chunked"` (memory-efficient, exact).
        block_size: key block length of chunked attention.
    """

    def __init__(
        self,
        num_heads,
        key_dim,
        dropout=0.0,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        num_kv_heads=None,
        rotary=False,
        attention="standard",
        block_size=128,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_kv_heads = num_kv_heads or num_heads
        self.rotary = rotary
        self.attention = attention
        self.block_size = block_size
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.dropout = dropout
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.supports_masking = True

    def _build_mha(self, query_shape, value_shape):
        self.mha = GroupedQueryAttention(
            num_heads=self.num_heads,
            key_dim=self.key_dim,
            num_kv_heads=self.num_kv_heads,
            rotary=self.rotary,
            implementation=self.attention,
            block_size=self.block_size,
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
            num_kv_heads=self.num_kv_heads,
            rotary=self.rotary,
            attention=self.attention,
            block_size=self.block_size,
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
        positions: int positions of `inputs` for RoPE (`[time]` or
            `[batch, time]`; default `0 .. time-1`).
        cache: optional `(keys, values)` cache, `[batch, slots, kv_heads,
            key_dim]` each: `inputs`' keys and values are written at slot
            `cache_index`, the queries attend to the cache slots allowed by
            `attention_mask` (`[batch, time, slots]`, required with a cache),
            and the call returns `(output, new_cache)`.

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
        positions=None,
        cache=None,
        cache_index=None,
        attention_mask=None,
    ):
        padding_mask = mask if padding_mask is None else padding_mask
        if cache is not None and attention_mask is None:
            raise ValueError("a cached call needs the attention_mask over the cache slots")
        return self.mha(
            query=inputs,
            value=inputs,
            key=inputs,
            key_mask=padding_mask,
            attention_mask=attention_mask,
            use_causal_mask=True,
            positions=positions,
            cache=cache,
            cache_index=cache_index,
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
        positions=None,
    ):
        padding_mask = mask if padding_mask is None else padding_mask
        return self.mha(
            query=inputs,
            value=inputs,
            key=inputs,
            key_mask=padding_mask,
            positions=positions,
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

    def __init__(self, num_heads, key_dim, **kwargs):
        super().__init__(num_heads, key_dim, **kwargs)
        if self.rotary:
            raise UserInputError("cross-attention has no shared positions: rotary must be False")

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
        return self.mha(
            query=inputs,
            value=context,
            key=context,
            key_mask=context_mask,
            training=training,
            return_attention_scores=return_attention_scores,
        )
