"""Attention: one layer on top of `keras.layers.MultiHeadAttention`.

`GroupedQueryAttention` is a `keras.layers.MultiHeadAttention` with the
modern options: fewer key/value heads than query heads (grouped-query and
multi-query attention), rotary position embeddings on queries and keys, a
key/value cache for generation, and exact memory-efficient ("chunked")
attention. With its defaults it computes exactly what its parent does.

What attends to what is a flag, `causal`, and the inputs it is called on.
The TensorFlow "Transformer with Keras" tutorial's three flavours are that
layer with a default changed:

- `CausalSelfAttention`: each position attends to itself and earlier
  positions only (decoders, GPT): `causal=True`.
- `GlobalSelfAttention`: each position attends to every position (encoders,
  BERT): `causal=False`.
- `CrossAttention`: decoder positions (the query) attend to encoder outputs
  (the value), with no rotation: they share no positions.

Masks use Keras polarity everywhere: `1`/`True` means "may attend".
"""

import keras
from keras import ops

from keras_transformer.errors import UserInputError
from keras_transformer.layers.batched_matmul import batched_matmul
from keras_transformer.layers.chunked_attention import MASKED_SCORE, chunked_attention
from keras_transformer.layers.folded_bias import matmul_with_bias
from keras_transformer.layers.masking import attention_mask as make_attention_mask
from keras_transformer.layers.rotary import RotaryEmbedding

ATTENTIONS = ("standard", "chunked")


def empty_kv_cache(batch_size, slots, kv_heads, head_dim, dtype):
    """An empty KV cache of one attention layer: `(keys, values)`, each `[batch, kv_heads,
    slots, head_dim]` (heads first: each head's keys are one contiguous matrix)."""
    shape = (batch_size, kv_heads, slots, head_dim)
    return ops.zeros(shape, dtype), ops.zeros(shape, dtype)


def _attention_weights(scores, mask, bias):
    """Softmax weights `[batch, heads, time, source]` in float32 from raw scores: `bias`
    added, then keys outside `mask` (`[batch or 1, time, source]`) masked."""
    scores = ops.cast(scores, "float32")
    if bias is not None:
        scores = scores + ops.cast(bias, "float32")
    if mask is not None:
        scores = ops.where(mask[:, None], scores, MASKED_SCORE)
    return ops.softmax(scores, axis=-1)


def commit_recent(cache, recent, start):
    """The long cache `(keys, values)` with a recent cache's pair written at slot `start`.

    A decoding loop can leave the long cache untouched for many steps: each
    step writes its key and value into a short recent cache (`[batch,
    kv_heads, recent_slots, head_dim]`), and every `recent_slots` steps the
    loop commits it to the long cache here, in one write. Under XLA a cache
    written at every step is copied, or read by slow reductions, at every step;
    one left untouched is read by matmuls (`benchmarks/decode_attention.py`).
    `start + recent_slots` must not pass the long cache's slots.
    """
    at = (0, 0, start, 0)
    return tuple(ops.slice_update(long, at, short) for long, short in zip(cache, recent,
                                                                           strict=True))


def two_part_cache(cache, recent):
    """The layers' view of a long cache `(keys, values)` and a recent one, for a
    decoding step: `(keys transposed to [batch, kv_heads, head_dim, slots], values,
    recent keys, recent values)`.

    The transposed keys are what a matmul of the scores reads without a copy; a
    loop makes them once per chunk of steps, not at every step.
    """
    return (ops.swapaxes(cache[0], 2, 3), cache[1], *recent)


def _attention_over_parts(query, keys, values, mask, bias):
    """`grouped_attention` over a two-part cache (`two_part_cache`): the long part's
    keys transposed, then the recent part.

    Each part's scores come from its own matmul, so no part is concatenated
    (copied); one softmax runs over all the scores, and the parts' outputs
    are summed. `mask` and `bias` cover the long part's slots, then the
    recent part's.
    """
    batch, time, heads, head_dim = ops.shape(query)
    (long_keys, recent_keys), kv_heads = keys, keys[1].shape[1]
    grouped = ops.reshape(query, (batch, time, kv_heads, heads // kv_heads, head_dim))
    scores = ops.concatenate([ops.einsum("btkgd,bkds->bkgts", grouped, long_keys),
                              ops.einsum("btkgd,bksd->bkgts", grouped, recent_keys)], axis=-1)
    weights = _attention_weights(ops.reshape(scores, (batch, heads, time, -1)), mask, bias)
    grouped = ops.reshape(ops.cast(weights, query.dtype),
                          (batch, kv_heads, heads // kv_heads, time, -1))
    split = ops.shape(values[0])[2]  # the long part's slots (may be known only at run time)
    output = (ops.einsum("bkgts,bksd->btkgd", grouped[..., :split], values[0])
              + ops.einsum("bkgts,bksd->btkgd", grouped[..., split:], values[1]))
    return ops.reshape(output, (batch, time, heads, head_dim)), weights


def _one_query_attention(query, key, value, mask, bias):
    """`grouped_attention` of one new token over a heads-first cache, as products and sums.

    The attention of a one-token step that writes the cache it reads (the
    encoder-decoder's step, a one-token prefill); the GPT decoding loop reads a
    two-part cache instead (`_attention_over_parts`). As two batched matmuls,
    XLA (at batch 1) copies the whole cache at every step, or transposes the
    keys; products summed over the last axis (scores) and over the slots
    (output) read the cache where it is.
    """
    batch, _, heads, head_dim = ops.shape(query)
    kv_heads = key.shape[1]
    grouped = ops.reshape(query, (batch, kv_heads, heads // kv_heads, 1, head_dim))
    scores = ops.sum(grouped * key[:, :, None], axis=-1)  # [batch, kv_heads, groups, source]
    weights = _attention_weights(ops.reshape(scores, (batch, heads, 1, -1)), mask, bias)
    grouped = ops.reshape(ops.cast(weights, query.dtype), (batch, kv_heads, heads // kv_heads, -1, 1))
    output = ops.sum(grouped * value[:, :, None], axis=-2)  # [batch, kv_heads, groups, head_dim]
    return ops.reshape(output, (batch, 1, heads, head_dim)), weights


def grouped_attention(query, key, value, mask=None, dropout=None, training=None, bias=None,
                      heads_first=False):
    """Softmax attention where query head `h` uses kv head `h // groups`.

    Args:
        query: `[batch, time, heads, head_dim]`, already scaled by `1/sqrt(head_dim)`
            (if the attention scales at all).
        key, value: `[batch, source, kv_heads, head_dim]`; `kv_heads` divides `heads`.
            With `heads_first`, `[batch, kv_heads, source, head_dim]` (the KV
            cache's layout).
        mask: optional bool `[batch or 1, time, source]`, `True` = may attend.
        dropout: optional dropout layer applied to the attention weights.
        bias: optional float `[batch or 1, heads, time, source]` added to the
            float32 scores before the mask and the softmax (T5's relative
            position bias); masked keys stay masked.

    Returns:
        `(output [batch, time, heads, head_dim], weights [batch, heads, time, source])`,
        the weights in float32.
    """
    if heads_first and query.shape[1] == 1:
        return _one_query_attention(query, key, value, mask, bias)
    batch, time, heads, head_dim = ops.shape(query)
    if not heads_first:  # [batch, kv_heads, source, head_dim]
        key, value = ops.swapaxes(key, 1, 2), ops.swapaxes(value, 1, 2)
    source, kv_heads = ops.shape(key)[2], key.shape[1]
    groups = query.shape[2] // kv_heads
    # Each kv head's queries as one matrix: [batch, kv_heads, groups * time, head_dim].
    grouped = ops.transpose(query, (0, 2, 1, 3))
    if groups > 1:
        grouped = ops.reshape(grouped, (batch, kv_heads, -1, head_dim))
    scores = batched_matmul(grouped, ops.swapaxes(key, 2, 3))
    if groups > 1:
        scores = ops.reshape(scores, (batch, heads, time, source))
    weights = _attention_weights(scores, mask, bias)
    dropped = ops.cast(weights, query.dtype)
    if dropout is not None:
        dropped = dropout(dropped, training=training)
    if groups > 1:
        dropped = ops.reshape(dropped, (batch, kv_heads, -1, source))
    output = batched_matmul(dropped, value)
    if groups > 1:
        output = ops.reshape(output, (batch, heads, time, value.shape[-1]))
    return ops.transpose(output, (0, 2, 1, 3)), weights


@keras.saving.register_keras_serializable(package="keras_transformer")
class GroupedQueryAttention(keras.layers.MultiHeadAttention):
    """`keras.layers.MultiHeadAttention` with kv heads, RoPE, a KV cache and chunking.

    The projections, the output layer, the scaling, the attention dropout and
    the weight names are the parent's; only the key and value projections
    may have fewer heads (`num_kv_heads`) and `call` is rewritten so that
    each group of `num_heads // num_kv_heads` query heads shares one kv head.
    T5's options are here too: no `1/sqrt(key_dim)` scaling
    (`scale_attention=False`), an additive bias on the scores
    (`attention_bias=`) and keys and values of a fixed context projected
    once (`project_key_value`, then `key_value=`).

    Args:
        num_heads: query heads.
        key_dim: width of each head.
        num_kv_heads: key/value heads (`None`: `num_heads`, standard
            multi-head attention; 1: multi-query attention). Must divide
            `num_heads`.
        causal: query `t` sees keys `<= t` only (self-attention of a decoder).
        rotary: rotate queries and keys by their positions (RoPE).
        rotary_max_wavelength: the RoPE base.
        attention: `"standard"` or `"chunked"` (exact attention over key
            blocks of `attention_block_size` with linear memory; see
            `chunked_attention`). Chunked attention has no dropout and
            cannot return attention scores.
        attention_block_size: key block length of chunked attention.
        scale_attention: scale the scores by `1/sqrt(key_dim)` (`False`: T5,
            whose initialisation absorbs the scale).
        **kwargs: the other arguments of `keras.layers.MultiHeadAttention`
            (`dropout`, `use_bias`, `kernel_initializer`, ...).

    Call arguments:
        query: `[batch, time, d]`.
        value, key: `[batch, source, d]` (default: `query`, self-attention).
        key_mask: optional bool `[batch, source]`, `True` = may attend.
        attention_mask: optional bool `[batch, time, source]` (overrides
            `key_mask` and `causal`; with a cache it must cover the cache's
            slots, see `masking.attention_mask`).
        positions: int `[time]` or `[batch, time]` positions for RoPE
            (default `0 .. time-1`).
        cache: optional `(keys, values)`, each `[batch, kv_heads, slots,
            key_dim]` (`empty_kv_cache`); this call's keys and values are written at slot
            `cache_index` and the queries attend to the whole cache (masked
            by `attention_mask`, which a cached call needs). The call then
            returns `(output, cache)`. A two-part cache (`two_part_cache`)
            is read as is and this call's keys and values go into its recent
            part, at `cache_index` there; `attention_mask` then covers the
            long part's slots followed by the recent part's.
        cache_index: int scalar, the first slot written.
        attention_bias: optional float `[batch or 1, heads, time, source]`
            added to the scores before the softmax (with a cache: `source` is
            the cache's slots). Not with chunked attention.
        key_value: optional `(keys, values)` of `project_key_value(value)`:
            the key and value projections are not run again (cross-attention
            over an encoder output that stays the same for a whole
            generation); `value` and `key` are then ignored.
        return_attention_scores: also return `[batch, heads, time, source]`.
        training: enables attention dropout.
        fold_biases: with a cache, run the projections with their biases
            folded into the matmuls (`matmul_folded_bias`): for the one-token
            calls of an XLA-compiled decoding loop.

    Example:

    >>> layer = GroupedQueryAttention(num_heads=4, key_dim=8, num_kv_heads=2, causal=True)
    >>> layer(np.zeros((1, 5, 32))).shape
    (1, 5, 32)
    """

    def __init__(
        self,
        num_heads,
        key_dim,
        num_kv_heads=None,
        causal=False,
        rotary=False,
        rotary_max_wavelength=10000,
        attention="standard",
        attention_block_size=128,
        scale_attention=True,
        **kwargs,
    ):
        super().__init__(num_heads=num_heads, key_dim=key_dim, **kwargs)
        self.num_kv_heads = num_kv_heads or num_heads
        if num_heads % self.num_kv_heads:
            raise UserInputError(
                f"num_kv_heads ({self.num_kv_heads}) must divide num_heads ({num_heads})"
            )
        if attention not in ATTENTIONS:
            raise UserInputError(
                f"attention must be one of {', '.join(ATTENTIONS)}, got {attention!r}"
            )
        if attention == "chunked" and self._dropout:
            raise UserInputError("chunked attention has no attention dropout; use dropout=0")
        if rotary and key_dim % 2:
            raise UserInputError(f"rotary embeddings need an even key_dim, got {key_dim}")
        self.causal = causal
        self.rotary = rotary
        self.rotary_max_wavelength = rotary_max_wavelength
        self.attention = attention
        self.attention_block_size = attention_block_size
        self.scale_attention = scale_attention
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

    def _project(self, query, value, key, fold_biases=False):
        """Queries `[b, t, heads, d]`, keys and values `[b, s, kv_heads, d]`.

        In self-attention the three projections read the same input, so they
        run as one matmul against the three kernels side by side (one large
        matmul is faster than three small ones); the weights are still the
        parent's `query`, `key` and `value` layers. With `fold_biases` the
        bias is folded into that matmul (`matmul_folded_bias`).
        """
        if not (query is value and value is key and self._key_dim == self._value_dim):
            return self._query_dense(query), self._key_dense(key), self._value_dense(value)
        layers = (self._query_dense, self._key_dense, self._value_dense)
        # The kernels as one [width, (heads + 2 kv_heads) * head_dim] matrix, made by the
        # concatenation itself (XLA runs a one-token matmul whose kernel is a reshape of a
        # 3-D tensor as a slow fused loop; a 2-D kernel goes to the fast matmul).
        width = query.shape[-1]
        kernel = ops.concatenate([ops.reshape(layer.kernel, (width, -1)) for layer in layers],
                                 axis=1)
        bias = ops.concatenate([ops.reshape(layer.bias, (-1,)) for layer in layers], axis=0) \
            if self._use_bias else None
        qkv = matmul_with_bias(query, kernel, bias, fold=fold_biases)
        heads, kv_heads = self._num_heads, self.num_kv_heads
        batch, time = ops.shape(query)[0], ops.shape(query)[1]
        qkv = ops.reshape(qkv, (batch, time, heads + 2 * kv_heads, self._key_dim))
        return ops.split(qkv, [heads, heads + kv_heads], axis=2)

    def project_key_value(self, value, key=None):
        """`(keys, values)` `[batch, source, kv_heads, key_dim]` of a context, for `key_value=`.

        Cross-attention of a decoder over a fixed encoder output computes these
        once per generation instead of once per new token.
        """
        key = value if key is None else key
        return self._key_dense(key), self._value_dense(value)

    def call(
        self,
        query,
        value=None,
        key=None,
        key_mask=None,
        attention_mask=None,
        positions=None,
        cache=None,
        cache_index=None,
        attention_bias=None,
        key_value=None,
        return_attention_scores=False,
        training=None,
        fold_biases=False,
    ):
        fold_biases = fold_biases and cache is not None
        if key_value is not None:
            if self.rotary:
                raise ValueError("precomputed keys (key_value=) are never rotated; rotary=False")
            q, (k, v) = self._query_dense(query), key_value
        else:
            value = query if value is None else value
            key = value if key is None else key
            q, k, v = self._project(query, value, key, fold_biases)
        if self.rotary:
            q = self._rotary_layer(q, positions=positions)
            k = self._rotary_layer(k, positions=positions)
        if self.scale_attention:
            q = ops.multiply(q, ops.cast(self._inverse_sqrt_key_dim, q.dtype))
        two_part = cache is not None and len(cache) == 4  # `two_part_cache`: writes its recent part
        if cache is not None:
            if attention_mask is None:
                raise ValueError("a cached call needs the attention_mask over the cache slots")
            # Heads first: the new keys and values are written in place, and each head's
            # cached keys and values are one matrix that the attention reads as it is.
            start = (0, 0, cache_index, 0)
            written = 2 if two_part else 0
            k = ops.slice_update(cache[written], start,
                                 ops.cast(ops.swapaxes(k, 1, 2), cache[written].dtype))
            v = ops.slice_update(cache[written + 1], start,
                                 ops.cast(ops.swapaxes(v, 1, 2), cache[written + 1].dtype))
            cache = (*cache[:written], k, v)
        scores = None
        if self.attention == "chunked" and cache is None and attention_mask is None:
            if return_attention_scores:
                raise UserInputError("chunked attention cannot return attention scores")
            if attention_bias is not None:
                raise UserInputError("chunked attention takes no attention bias; use "
                                     "attention='standard'")
            groups = self._num_heads // self.num_kv_heads
            output = chunked_attention(
                q, ops.repeat(k, groups, axis=2), ops.repeat(v, groups, axis=2),
                key_mask=key_mask, causal=self.causal, block_size=self.attention_block_size,
            )
        else:
            if attention_mask is None:
                attention_mask = make_attention_mask(
                    ops.arange(ops.shape(q)[1]), ops.arange(ops.shape(k)[1]), key_mask,
                    self.causal,
                )
            else:
                attention_mask = ops.cast(attention_mask, "bool")
            if two_part:
                output, scores = _attention_over_parts(q, cache[0::2], cache[1::2],
                                                       attention_mask, attention_bias)
            else:
                output, scores = grouped_attention(
                    q, k, v, attention_mask, self._dropout_layer, training, attention_bias,
                    heads_first=cache is not None,
                )
        if cache is not None:
            return self._cached_output(output, fold_biases), cache
        output = self._output_dense(output)
        return (output, scores) if return_attention_scores else output

    def _cached_output(self, output, fold_biases):
        """`self._output_dense(output)` for a cached call: one matmul of the heads'
        outputs side by side with the kernel as a `[heads * head_dim, d_model]` matrix
        (XLA runs a one-token einsum with the 3-D kernel as a slow loop), its bias folded
        in with `fold_biases` (`matmul_folded_bias`)."""
        dense = self._output_dense
        kernel = ops.reshape(dense.kernel, (-1, dense.kernel.shape[-1]))
        batch, time = ops.shape(output)[0], ops.shape(output)[1]
        return matmul_with_bias(ops.reshape(output, (batch, time, -1)), kernel, dense.bias,
                                fold=fold_biases)

    def compute_output_spec(self, query, value=None, key=None, return_attention_scores=False,
                            cache=None, key_value=None, **kwargs):
        width = self._output_shape or query.shape[-1]
        width = width[-1] if isinstance(width, (tuple, list)) else width
        output = keras.KerasTensor(tuple(query.shape[:-1]) + (width,), dtype=self.compute_dtype)
        if return_attention_scores:
            source = (key_value[0] if key_value is not None else
                      value if value is not None else query).shape[1]
            scores = keras.KerasTensor(
                (query.shape[0], self._num_heads, query.shape[1], source), dtype="float32"
            )
            return output, scores
        return output

    def get_config(self):
        config = super().get_config()
        config.update(
            num_kv_heads=self.num_kv_heads,
            causal=self.causal,
            rotary=self.rotary,
            rotary_max_wavelength=self.rotary_max_wavelength,
            attention=self.attention,
            attention_block_size=self.attention_block_size,
            scale_attention=self.scale_attention,
        )
        return config


@keras.saving.register_keras_serializable(package="keras_transformer")
class CausalSelfAttention(GroupedQueryAttention):
    """`GroupedQueryAttention` with `causal=True`: position `t` sees only positions `<= t`.

    The look-ahead mask is what makes a decoder a language model: the output
    at `t` cannot depend on tokens after `t`, so it can be trained to predict
    token `t + 1` on every position at once.

    Example:

    >>> layer = CausalSelfAttention(num_heads=2, key_dim=8)
    >>> layer(np.zeros((1, 5, 16))).shape
    (1, 5, 16)
    """

    def __init__(self, num_heads, key_dim, causal=True, **kwargs):
        super().__init__(num_heads, key_dim, causal=causal, **kwargs)


@keras.saving.register_keras_serializable(package="keras_transformer")
class GlobalSelfAttention(GroupedQueryAttention):
    """`GroupedQueryAttention` with `causal=False`: every position sees every
    (non-padding) position, so the output at `t` depends on the whole sequence.

    Example:

    >>> layer = GlobalSelfAttention(num_heads=2, key_dim=8)
    >>> layer(np.zeros((1, 5, 16)), key_mask=np.array([[1, 1, 1, 0, 0]], bool)).shape
    (1, 5, 16)
    """

    def __init__(self, num_heads, key_dim, causal=False, **kwargs):
        super().__init__(num_heads, key_dim, causal=causal, **kwargs)


@keras.saving.register_keras_serializable(package="keras_transformer")
class CrossAttention(GroupedQueryAttention):
    """`GroupedQueryAttention` of decoder queries over encoder outputs (the "context").

    Called as `layer(decoder_states, context, key_mask=context_mask)`. Queries
    and keys come from different sequences, so there is no causal mask and
    no rotation (`causal` and `rotary` must stay `False`). In generation the
    context stays the same for every new token: `project_key_value(context)`
    once, then `layer(decoder_states, key_value=..., key_mask=context_mask)`.

    Example:

    >>> layer = CrossAttention(num_heads=2, key_dim=8)
    >>> layer(np.zeros((1, 3, 16)), np.zeros((1, 7, 16))).shape
    (1, 3, 16)
    """

    def __init__(self, num_heads, key_dim, **kwargs):
        if kwargs.get("rotary") or kwargs.get("causal"):
            raise UserInputError("cross-attention has no shared positions: rotary and causal "
                                 "must be False")
        super().__init__(num_heads, key_dim, **kwargs)
