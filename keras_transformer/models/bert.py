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
from keras_transformer.models.blocks import (
    FamilyModel,
    block_args,
    dtype_policy_scope,
    family_config,
)


@keras.saving.register_keras_serializable(package="keras_transformer")
class BERT(FamilyModel):
    """A BERT with its two pretraining heads, built from a `TransformerConfig`.

    Inputs, a dict:
        `token_ids`: int `[batch, time]`, id 0 is padding (never attended to);
        `segment_ids`: int `[batch, time]`, 0 for sentence A, 1 for sentence B.

    Outputs, a dict:
        `mlm`: float32 logits `[batch, time, vocab]` of the masked-LM head:
            `Dense(d_model, gelu) -> norm -> tied projection + bias`;
        `nsp`: float32 logits `[batch, 2]` of the sentence-pair ("B follows
            A") classifier, read from the pooled `[CLS]` position.

    The backbone is the embeddings, the embedding norm, the blocks and the
    pooler; `heads` are the masked-LM and sentence-pair layers. With
    `TransformerConfig.preset("bert-base")` the backbone has 109,482,240
    parameters (`backbone_params()`), BERT-base's published count.

    Args:
        config: a `TransformerConfig` (or its `to_dict()`) with `num_segments >= 1`.
        name: the model's name.

    Example:

    >>> config = TransformerConfig(vocab_size=50, num_layers=2, d_model=32, num_heads=2,
    ...                            num_segments=2, norm_first=False)
    >>> model = BERT(config)
    >>> out = model({"token_ids": np.ones((1, 8), "int32"),
    ...              "segment_ids": np.zeros((1, 8), "int32")})
    >>> out["mlm"].shape, out["nsp"].shape
    ((1, 8, 50), (1, 2))
    """

    def __init__(self, config, name="bert", dtype=None, **kwargs):
        config = family_config(config, "BERT", segments=True)
        if config.num_segments < 1:
            raise UserInputError("BERT needs num_segments >= 1 (2 for sentence pairs)")
        with dtype_policy_scope(dtype) as policy:
            # === Layers and graph === (each layer made where it is first called, so a
            # seeded model draws its initial weights in the same order as ever)
            norm_args = (config.norm, config.layer_norm_epsilon)
            token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
            segment_ids = keras.Input(shape=(None,), dtype="int32", name="segment_ids")
            padding_mask = PaddingMask(name="padding_mask")(token_ids)
            embedding = PositionalEmbedding(
                config.vocab_size, config.d_model, config.max_len, position=config.position,
                name="embedding",
            )
            segments = keras.layers.Embedding(
                config.num_segments, config.d_model,
                embeddings_initializer=keras.initializers.RandomNormal(stddev=0.02),
                name="segment_embedding",
            )(segment_ids)
            x = keras.layers.Add(name="add_segments")([embedding(token_ids), segments])
            x = make_norm(*norm_args, name="embedding_norm")(x)
            x = keras.layers.Dropout(config.dropout, name="embedding_dropout")(x)
            for index in range(config.num_layers):
                block = TransformerBlock(**block_args(config), causal=False, name=f"block_{index}")
                x = block(x, padding_mask=padding_mask)
            if config.norm_first:
                x = make_norm(*norm_args, name="final_norm")(x)
            pooled = Pooler(config.d_model, name="pooler")(x)
            # Masked-LM head: transform, normalise, project with the input embedding.
            mlm_transform = keras.layers.Dense(config.d_model, activation="gelu",
                                               name="mlm_transform")
            mlm_norm = make_norm(*norm_args, name="mlm_norm")
            h = mlm_norm(mlm_transform(x))
            if config.tie_embeddings:
                mlm_output = LogitBias(name="mlm_bias")
                mlm_logits = mlm_output(embedding(h, reverse=True))
            else:
                mlm_output = keras.layers.Dense(config.vocab_size, dtype="float32",
                                                name="mlm_output")
                mlm_logits = mlm_output(h)
            nsp_classifier = keras.layers.Dense(2, dtype="float32", name="nsp_classifier")
            super().__init__(
                {"token_ids": token_ids, "segment_ids": segment_ids},
                {"mlm": mlm_logits, "nsp": nsp_classifier(pooled)},
                name=name,
                **kwargs,
            )

        # === Config ===
        self.config = config
        self.policy = policy
        self.heads = [mlm_transform, mlm_norm, mlm_output, nsp_classifier]

    def backbone_params(self):
        """Parameters without the masked-LM and sentence-pair heads."""
        return self.count_params() - sum(layer.count_params() for layer in self.heads)


def build_bert(config: TransformerConfig, name="bert") -> BERT:
    """A `BERT` of `config` (see `BERT`)."""
    return BERT(config, name=name)


def backbone_params(model):
    """`model.backbone_params()`: a `BERT`'s parameters without its two heads."""
    if not isinstance(model, BERT):
        raise UserInputError(f"model {model.name!r} is not a BERT from build_bert")
    return model.backbone_params()
