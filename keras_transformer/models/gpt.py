"""The decoder-only language model (GPT): embeddings, causal blocks, logits."""

import keras

from keras_transformer.config import TransformerConfig
from keras_transformer.layers import PositionalEmbedding, TransformerBlock


def build_gpt(config: TransformerConfig, name="gpt") -> keras.Model:
    """A functional GPT: int token ids `[batch, time]` -> logits `[batch, time, vocab]`.

    `time` may be anything up to `config.max_len`. The logits are float32
    even under a mixed-precision policy, so the loss is computed in float32.

    Example:

    >>> model = build_gpt(TransformerConfig(vocab_size=65, num_layers=2, d_model=32, num_heads=2))
    >>> model(np.zeros((1, 10), "int32")).shape
    (1, 10, 65)
    """
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
            d_model=config.d_model,
            num_heads=config.num_heads,
            d_ff=config.d_ff,
            dropout=config.dropout,
            norm_first=config.norm_first,
            activation=config.activation,
            causal=True,
            use_bias=config.use_bias,
            layer_norm_epsilon=config.layer_norm_epsilon,
            name=f"block_{index}",
        )(x)
    if config.norm_first:
        # Pre-LN leaves the residual stream unnormalised: one last norm.
        x = keras.layers.LayerNormalization(
            epsilon=config.layer_norm_epsilon, name="final_norm"
        )(x)
    if config.tie_embeddings:
        logits = embedding(x, reverse=True)
    else:
        logits = keras.layers.Dense(
            config.vocab_size, use_bias=False, dtype="float32", name="lm_head"
        )(x)
    return keras.Model(token_ids, logits, name=name)
