"""The encoder-only model (BERT): token + segment + position embeddings, bidirectional blocks,
a masked-LM head and a sentence-pair head."""

import keras

from keras_transformer.config import TransformerConfig
from keras_transformer.errors import UserInputError
from keras_transformer.layers import (
    LogitBias,
    PaddingMask,
    Pooler,
    PositionalEmbedding,
    TransformerBlock,
    make_norm,
)
from keras_transformer.models.blocks import block_args

HEAD_PREFIXES = ("mlm_", "nsp_")


def build_bert(config: TransformerConfig, name="bert") -> keras.Model:
    """A functional BERT with its two pretraining heads.

    Inputs, a dict:
        `token_ids`: int `[batch, time]`, id 0 is padding (never attended to);
        `segment_ids`: int `[batch, time]`, 0 for sentence A, 1 for sentence B.

    Outputs, a dict:
        `mlm`: float32 logits `[batch, time, vocab]` of the masked-LM head:
            `Dense(d_model, gelu) -> LayerNorm -> tied projection + bias`;
        `nsp`: float32 logits `[batch, 2]` of the sentence-pair ("B follows
            A") classifier, read from the pooled `[CLS]` position.

    Layer names starting with `mlm_` / `nsp_` are the heads; everything else
    is the backbone (embeddings, embedding LayerNorm, blocks, pooler): with
    `TransformerConfig.preset("bert-base")` the backbone has 109,482,240
    parameters (`backbone_params(model)`), BERT-base's published count.

    Example:

    >>> config = TransformerConfig(vocab_size=50, num_layers=2, d_model=32, num_heads=2,
    ...                            num_segments=2, norm_first=False)
    >>> model = build_bert(config)
    >>> out = model({"token_ids": np.ones((1, 8), "int32"),
    ...              "segment_ids": np.zeros((1, 8), "int32")})
    >>> out["mlm"].shape, out["nsp"].shape
    ((1, 8, 50), (1, 2))
    """
    if config.num_segments < 1:
        raise UserInputError("BERT needs num_segments >= 1 (2 for sentence pairs)")
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    segment_ids = keras.Input(shape=(None,), dtype="int32", name="segment_ids")
    padding_mask = PaddingMask(name="padding_mask")(token_ids)
    embedding = PositionalEmbedding(
        config.vocab_size, config.d_model, config.max_len, position=config.position,
        name="embedding",
    )
    segments = keras.layers.Embedding(
        config.num_segments,
        config.d_model,
        embeddings_initializer=keras.initializers.RandomNormal(stddev=0.02),
        name="segment_embedding",
    )(segment_ids)
    x = keras.layers.Add(name="add_segments")([embedding(token_ids), segments])
    x = make_norm(config.norm, config.layer_norm_epsilon, name="embedding_norm")(x)
    x = keras.layers.Dropout(config.dropout, name="embedding_dropout")(x)
    for index in range(config.num_layers):
        x = TransformerBlock(
            **block_args(config),
            causal=False,
            name=f"block_{index}",
        )(x, padding_mask=padding_mask)
    if config.norm_first:
        x = make_norm(config.norm, config.layer_norm_epsilon, name="final_norm")(x)
    pooled = Pooler(config.d_model, name="pooler")(x)

    # Masked-LM head: transform, normalise, project with the input embedding.
    h = keras.layers.Dense(config.d_model, activation="gelu", name="mlm_transform")(x)
    h = make_norm(config.norm, config.layer_norm_epsilon, name="mlm_norm")(h)
    if config.tie_embeddings:
        mlm_logits = LogitBias(name="mlm_bias")(embedding(h, reverse=True))
    else:
        mlm_logits = keras.layers.Dense(config.vocab_size, dtype="float32", name="mlm_output")(h)
    nsp_logits = keras.layers.Dense(2, dtype="float32", name="nsp_classifier")(pooled)
    return keras.Model(
        {"token_ids": token_ids, "segment_ids": segment_ids},
        {"mlm": mlm_logits, "nsp": nsp_logits},
        name=name,
    )


def backbone_params(model):
    """Parameters of a `build_bert` model without its `mlm_*` / `nsp_*` heads."""
    return sum(
        layer.count_params() for layer in model.layers if not layer.name.startswith(HEAD_PREFIXES)
    )
