"""Exact attention in key blocks: FlashAttention's idea written in TensorFlow ops.

Standard attention materialises the `[batch, heads, queries, keys]` score
matrix (and, for the backward pass, the softmax of it), so its memory grows
with the square of the sequence length. `chunked_attention` visits the keys
one block at a time and keeps, for every query, a running maximum `m` of the
scores seen so far, the running sum of `exp(score - m)` and the running
weighted sum of values. When a block raises the maximum, the old sums are
rescaled by `exp(m_old - m_new)`, so the result is exactly the softmax
average (Milakov & Gimelshein 2018; Dao et al. 2022).

The backward pass is written by hand (`tf.custom_gradient`): the forward pass
keeps only the output and the log-sum-exp of each query's scores, and the
backward pass recomputes each block's probabilities from them. Nothing of
size `queries x keys` is ever stored: peak memory is `O(queries x block)`.
"""

import tensorflow as tf

from keras_transformer.layers.masking import attention_mask

# The score given to masked keys, as keras' Softmax: a row whose keys are all
# masked averages all of them instead of producing NaN.
MASKED_SCORE = -1e9


def _block_scores(q, k_block, start, block_size, num_keys, key_mask, causal):
    """Masked float32 scores `[B, H, Tq, block]` of one key block, and its mask."""
    scores = tf.einsum("bhqd,bhkd->bhqk", q, k_block)
    key_index = start + tf.range(block_size)
    real = (key_index < num_keys)[None, :]  # the last block is padded past the end
    if key_mask is not None:
        real = tf.logical_and(real, tf.gather(key_mask, tf.minimum(key_index, num_keys - 1), axis=1))
    allowed = attention_mask(tf.range(tf.shape(q)[2]), key_index, real, causal)[:, None]
    scores = tf.where(allowed, scores, MASKED_SCORE)
    # Keys past the end (the last block's padding) get exactly zero weight.
    scores = tf.where((key_index < num_keys)[None, None, None, :], scores, -float("inf"))
    return scores, allowed


def chunked_attention(query, key, value, key_mask=None, causal=False, block_size=128):
    """Softmax attention computed over key blocks of `block_size`.

    Args:
        query: `[batch, queries, heads, head_dim]`, already scaled by
            `1/sqrt(head_dim)`.
        key, value: `[batch, keys, heads, head_dim]` (as many heads as
            `query`: repeat grouped kv heads first).
        key_mask: optional bool `[batch, keys]`, `True` = may attend.
        causal: query `i` sees keys `<= i` (needs queries == keys).
        block_size: keys per block.

    Returns:
        `[batch, queries, heads, head_dim]` in the dtype of `query`; equal to
        `softmax(q k^T + mask) v` up to float rounding, gradients included.
    """
    dtype = query.dtype
    q = tf.transpose(tf.cast(query, tf.float32), [0, 2, 1, 3])
    k = tf.transpose(tf.cast(key, tf.float32), [0, 2, 1, 3])
    v = tf.transpose(tf.cast(value, tf.float32), [0, 2, 1, 3])
    if key_mask is not None:
        key_mask = tf.cast(key_mask, tf.bool)
    num_keys = tf.shape(k)[2]
    num_blocks = (num_keys + block_size - 1) // block_size
    padding = num_blocks * block_size - num_keys
    k = tf.pad(k, [[0, 0], [0, 0], [0, padding], [0, 0]])
    v = tf.pad(v, [[0, 0], [0, 0], [0, padding], [0, 0]])

    def key_block(tensor, j):
        # A slice of static size, so XLA knows the block's shape.
        return tf.slice(tensor, [0, 0, j * block_size, 0], [-1, -1, block_size, -1])

    @tf.custom_gradient
    def attend(q, k, v):
        stats_shape = tf.concat([tf.shape(q)[:3], [1]], axis=0)

        def forward_step(j, m, total, acc):
            scores, _ = _block_scores(
                q, key_block(k, j), j * block_size, block_size, num_keys, key_mask, causal
            )
            m_new = tf.maximum(m, tf.reduce_max(scores, axis=-1, keepdims=True))
            p = tf.exp(scores - m_new)
            rescale = tf.exp(m - m_new)
            total = rescale * total + tf.reduce_sum(p, axis=-1, keepdims=True)
            acc = rescale * acc + tf.einsum("bhqk,bhkd->bhqd", p, key_block(v, j))
            return j + 1, m_new, total, acc

        _, m, total, acc = tf.while_loop(
            lambda j, *_: j < num_blocks,
            forward_step,
            (
                tf.constant(0),
                tf.fill(stats_shape, -float("inf")),
                tf.zeros(stats_shape),
                tf.zeros_like(q),
            ),
            parallel_iterations=1,  # one block's temporaries alive at a time
        )
        out = acc / total
        log_sum_exp = m + tf.math.log(total)

        def grad(d_out):
            d_out = tf.cast(d_out, tf.float32)
            delta = tf.reduce_sum(d_out * out, axis=-1, keepdims=True)  # rowsum(dO * O)

            def backward_step(j, d_q, d_k, d_v):
                k_j, v_j = key_block(k, j), key_block(v, j)
                scores, allowed = _block_scores(
                    q, k_j, j * block_size, block_size, num_keys, key_mask, causal
                )
                p = tf.exp(scores - log_sum_exp)
                d_v = d_v.write(j, tf.einsum("bhqk,bhqd->bhkd", p, d_out))
                d_p = tf.einsum("bhqd,bhkd->bhqk", d_out, v_j)
                d_s = tf.where(allowed, p * (d_p - delta), 0.0)
                d_q = d_q + tf.einsum("bhqk,bhkd->bhqd", d_s, k_j)
                d_k = d_k.write(j, tf.einsum("bhqk,bhqd->bhkd", d_s, q))
                return j + 1, d_q, d_k, d_v

            def blocks():
                return tf.TensorArray(tf.float32, size=num_blocks, infer_shape=False)

            _, d_q, d_k, d_v = tf.while_loop(
                lambda j, *_: j < num_blocks,
                backward_step,
                (tf.constant(0), tf.zeros_like(q), blocks(), blocks()),
                parallel_iterations=1,
            )
            return d_q, _stack(d_k), _stack(d_v)

        def _stack(array):
            # [blocks, B, H, block, D] -> [B, H, blocks * block, D]
            stacked = array.stack()
            stacked = tf.transpose(stacked, [1, 2, 0, 3, 4])
            shape = tf.shape(stacked)
            return tf.reshape(stacked, [shape[0], shape[1], shape[2] * shape[3], shape[4]])

        return out, grad

    out = attend(q, k, v)
    return tf.cast(tf.transpose(out, [0, 2, 1, 3]), dtype)
