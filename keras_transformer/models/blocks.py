"""What every model family shares: the `TransformerBlock` arguments of a config, and the
dtype policy a model is built under."""

import contextlib

import keras


def block_args(config):
    """Keyword arguments of `TransformerBlock` shared by GPT, BERT and seq2seq blocks.

    Every architecture option of `TransformerConfig` that a block honours is
    here, so GPT, BERT and both stacks of the encoder-decoder take the same
    ones: `position="rope"` rotates the queries and keys of self-attention
    (cross-attention has no shared positions and never rotates),
    `num_kv_heads` sets the key/value heads of self- and cross-attention, and
    `attention` / `attention_block_size` choose the attention kernel of both.
    """
    return dict(
        d_model=config.d_model,
        num_heads=config.num_heads,
        d_ff=config.d_ff,
        dropout=config.dropout,
        norm_first=config.norm_first,
        activation=config.activation,
        use_bias=config.use_bias,
        layer_norm_epsilon=config.layer_norm_epsilon,
        norm=config.norm,
        recompute=config.recompute,
        num_kv_heads=config.num_kv_heads,
        rotary=config.position == "rope",
        attention=config.attention,
        attention_block_size=config.attention_block_size,
    )


@contextlib.contextmanager
def dtype_policy_scope(dtype):
    """Build a model's layers under the dtype policy `dtype` (`None`: the global one).

    Yields the policy's name, which the model keeps in its config, so a model
    trained under `mixed_bfloat16` reloads with the same policy whatever the
    global policy is at load time.
    """
    previous = keras.config.dtype_policy()
    if dtype is not None:
        keras.config.set_dtype_policy(dtype)
    try:
        yield keras.config.dtype_policy().name
    finally:
        keras.config.set_dtype_policy(previous)
