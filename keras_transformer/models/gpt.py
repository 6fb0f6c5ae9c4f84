"""The decoder-only language model (GPT): embeddings, causal blocks, logits.

Besides `build_gpt`, this module knows the model's layer names, so it also
provides the two functions a KV-cached decoder needs: `init_cache` (empty
keys/values for every block) and `call_with_cache` (run new tokens through
the same layers, reading and extending the cache).
"""

import keras
from keras import ops

from keras_transformer.config import TransformerConfig
from keras_transformer.errors import UserInputError
from keras_transformer.layers import PositionalEmbedding, TransformerBlock, make_norm
from keras_transformer.models.blocks import block_args


def build_gpt(config: TransformerConfig, name="gpt") -> keras.Model:
    """A functional GPT: int token ids `[batch, time]` -> logits `[batch, time, vocab]`.

    `time` may be anything up to `config.max_len`. The logits are float32
    even under a mixed-precision policy, so the loss is computed in float32.
    The config's modern options are all honoured: `position="rope"`,
    `num_kv_heads`, `norm="rms"`, `activation="swiglu"` and
    `attention="chunked"`.

    Example:

    >>> model = build_gpt(TransformerConfig(vocab_size=65, num_layers=2, d_model=32, num_heads=2))
    >>> model(np.zeros((1, 10), "int32")).shape
    (1, 10, 65)
    """
    if config.num_segments:
        raise UserInputError(
            f"num_segments={config.num_segments} does not apply to a GPT (segment "
            "embeddings are BERT's); use num_segments=0"
        )
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    embedding = PositionalEmbedding(
        config.vocab_size,
        config.d_model,
        config.max_len,
        position=config.position,
        name="embedding",
    )
    x = embedding(token_ids)
    x = keras.layers.Dropout(config.dropout, name="embedding_dropout")(x)
    for index in range(config.num_layers):
        x = TransformerBlock(
            **block_args(config),
            causal=True,
            name=f"block_{index}",
        )(x)
    if config.norm_first:
        # Pre-LN leaves the residual stream unnormalised: one last norm.
        x = make_norm(config.norm, config.layer_norm_epsilon, name="final_norm")(x)
    if config.tie_embeddings:
        logits = embedding(x, reverse=True)
    else:
        logits = keras.layers.Dense(
            config.vocab_size, use_bias=False, dtype="float32", name="lm_head"
        )(x)
    return keras.Model(token_ids, logits, name=name)


def _parts(model):
    """The embedding, the blocks (in order), the final norm and the lm head of a GPT."""
    layers = {layer.name: layer for layer in model.layers}
    embedding = layers.get("embedding")
    blocks = [layer for layer in model.layers if isinstance(layer, TransformerBlock)]
    if not isinstance(embedding, PositionalEmbedding) or not blocks:
        raise UserInputError(f"model {model.name!r} is not a GPT from build_gpt")
    return embedding, blocks, layers.get("final_norm"), layers.get("lm_head")


def supports_cache(model):
    """Whether `model` is a GPT built by `build_gpt` (so `call_with_cache` works)."""
    try:
        _parts(model)
    except UserInputError:
        return False
    return True


def init_cache(model, batch_size, slots):
    """An empty KV cache: per block a `(keys, values)` pair `[batch, slots, kv_heads, head_dim]`."""
    _, blocks, _, _ = _parts(model)
    cache = []
    for block in blocks:
        mha = block.self_attention.mha
        shape = (batch_size, slots, mha.num_kv_heads, mha.key_dim)
        dtype = block.compute_dtype
        cache.append((ops.zeros(shape, dtype), ops.zeros(shape, dtype)))
    return cache


def call_with_cache(model, token_ids, positions, cache, cache_index, attention_mask):
    """Logits of new tokens whose keys and values are appended to the cache.

    Runs exactly the layers of the model, but each block's self-attention
    writes the new keys/values at slots `cache_index ...` and attends to the
    cached ones.

    Args:
        model: a GPT from `build_gpt`.
        token_ids: int `[batch, time]`, the new tokens.
        positions: int `[batch, time]`, their positions in their rows.
        cache: from `init_cache` (or a previous call).
        cache_index: int scalar, the slot of the first new token.
        attention_mask: bool `[batch, time, slots]`: which cache slots each new
            token may attend to (itself and the real tokens before it).

    Returns:
        `(logits [batch, time, vocab] float32, new_cache)`.
    """
    embedding, blocks, final_norm, lm_head = _parts(model)
    x = embedding(token_ids, positions=positions)
    new_cache = []
    for block, block_cache in zip(blocks, cache, strict=True):
        x, block_cache = block(
            x,
            positions=positions,
            cache=block_cache,
            cache_index=cache_index,
            attention_mask=attention_mask,
            training=False,
        )
        new_cache.append(block_cache)
    if final_norm is not None:
        x = final_norm(x)
    logits = lm_head(x) if lm_head is not None else embedding(x, reverse=True)
    return ops.cast(logits, "float32"), new_cache
