"""The encoder-only model (BERT): token + segment + position embeddings, bidirectional blocks,
a masked-LM head and a sentence-pair head.

`bert_backbone` builds the shared part (embeddings, blocks, pooler) on given
inputs, so any model with a BERT body (`BERT` here, a classifier elsewhere)
has the same layers under the same names and takes a BERT's weights layer by
layer.
"""

import keras
from keras import ops

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


def mlm_gelu_approximate(config):
    """Whether the masked-LM transform's GELU is the tanh approximation (else exact, erf).

    Hugging Face's BERT applies its `hidden_act` in the feed-forward and in
    this transform, so `activation="gelu_tanh"` is tanh in both; every other
    activation (`"gelu_erf"`, the legacy `"gelu"`, `"relu"`, gated kinds)
    keeps the exact GELU this head always had.
    """
    return config.activation == "gelu_tanh"


def bert_backbone(config, token_ids, segment_ids):
    """BERT's body on symbolic inputs: embeddings, blocks and pooler, as a functional graph.

    Build it inside the model's dtype policy (`dtype_policy_scope`). The
    layers are named `embedding` (a `PositionalEmbedding`: token + position),
    `segment_embedding`, `embedding_norm`, `block_{i}` for each block,
    `final_norm` (only when `config.norm_first`) and `pooler`, the same in
    every model built with it, so weights copy between such models by layer
    name (`target.get_layer(name).set_weights(source.get_layer(name).get_weights())`).
    Padding is token id 0: no position attends to it.

    Args:
        config: a `TransformerConfig` with `num_segments >= 1`.
        token_ids: int `keras.Input` `[batch, time]`.
        segment_ids: int `keras.Input` `[batch, time]` (0: sentence A, 1: sentence B).

    Returns:
        A dict: `hidden` (the encoder's last hidden states `[batch, time,
        d_model]`, after `final_norm` if any), `pooled` (`[batch, d_model]`,
        the `[CLS]` position through the pooler), `embedding` (the
        `PositionalEmbedding` layer, for a tied output projection),
        `padding_mask` (`[batch, time]` bool, True at real tokens), and the
        layers `segment_embedding`, `embedding_norm`, `blocks` (the list of
        `TransformerBlock`s), `final_norm` (or `None`) and `pooler`.

    Example:

    >>> config = TransformerConfig(vocab_size=50, num_layers=2, d_model=32, num_heads=2,
    ...                            num_segments=2, norm_first=False)
    >>> token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    >>> segment_ids = keras.Input(shape=(None,), dtype="int32", name="segment_ids")
    >>> body = bert_backbone(config, token_ids, segment_ids)
    >>> head = keras.layers.Dense(3, name="classifier")(body["pooled"])
    >>> classifier = keras.Model({"token_ids": token_ids, "segment_ids": segment_ids}, head)
    """
    # Each layer made where it is first called, so a seeded model draws its initial
    # weights in the same order as ever (the segment embedding before the token embedding).
    norm_args = (config.norm, config.layer_norm_epsilon)
    padding_mask = PaddingMask(name="padding_mask")(token_ids)
    embedding = PositionalEmbedding(
        config.vocab_size, config.d_model, config.max_len, position=config.position,
        name="embedding",
    )
    segment_embedding = keras.layers.Embedding(
        config.num_segments, config.d_model,
        embeddings_initializer=keras.initializers.RandomNormal(stddev=0.02),
        name="segment_embedding",
    )
    segments = segment_embedding(segment_ids)
    x = keras.layers.Add(name="add_segments")([embedding(token_ids), segments])
    embedding_norm = make_norm(*norm_args, name="embedding_norm")
    x = embedding_norm(x)
    x = keras.layers.Dropout(config.dropout, name="embedding_dropout")(x)
    blocks = []
    for index in range(config.num_layers):
        blocks.append(TransformerBlock(**block_args(config), causal=False, name=f"block_{index}"))
        x = blocks[-1](x, padding_mask=padding_mask)
    final_norm = None
    if config.norm_first:
        final_norm = make_norm(*norm_args, name="final_norm")
        x = final_norm(x)
    pooler = Pooler(config.d_model, name="pooler")
    pooled = pooler(x)
    return {"hidden": x, "pooled": pooled, "padding_mask": padding_mask, "embedding": embedding,
            "segment_embedding": segment_embedding, "embedding_norm": embedding_norm,
            "blocks": blocks, "final_norm": final_norm, "pooler": pooler}


@keras.saving.register_keras_serializable(package="keras_transformer")
class BERT(FamilyModel):
    """A BERT, with its two pretraining heads or without, built from a `TransformerConfig`.

    Inputs, a dict:
        `token_ids`: int `[batch, time]`, id 0 is padding (never attended to);
        `segment_ids`: int `[batch, time]`, 0 for sentence A, 1 for sentence B.

    Outputs, a dict:
        `hidden`: the encoder's last hidden states `[batch, time, d_model]`;
        `pooled`: the pooler's `[batch, d_model]` (`tanh(Dense)` of `[CLS]`);
        and with `heads=True` (the default):
        `mlm`: float32 logits `[batch, time, vocab]` of the masked-LM head:
            `Dense(d_model) -> GELU -> norm -> tied projection + bias` (the
            tanh GELU for `activation="gelu_tanh"`, else the exact one);
        `nsp`: float32 logits `[batch, 2]` of the sentence-pair ("B follows
            A") classifier, read from `pooled`.

    The backbone is `bert_backbone`: the embeddings, the embedding norm, the
    blocks and the pooler; the heads are the masked-LM and sentence-pair
    layers. With `TransformerConfig.preset("bert-base")` the backbone has
    109,482,240 parameters (`backbone_params()`), BERT-base's published
    count. Train with a loss per head (`loss={"mlm": ..., "nsp": ...}`):
    `hidden` and `pooled` have none, and Keras leaves an output without a
    loss out of the total.

    Args:
        config: a `TransformerConfig` (or its `to_dict()`) with `num_segments >= 1`.
        heads: `True` for the masked-LM and sentence-pair heads
            (`BertForPreTraining`), `False` for the backbone alone
            (`BertModel`, as sentence-embedding checkpoints ship it).
        name: the model's name.
        dtype: the dtype policy (`None`: the global one).

    Example:

    >>> config = TransformerConfig(vocab_size=50, num_layers=2, d_model=32, num_heads=2,
    ...                            num_segments=2, norm_first=False)
    >>> model = BERT(config)
    >>> out = model({"token_ids": np.ones((1, 8), "int32"),
    ...              "segment_ids": np.zeros((1, 8), "int32")})
    >>> out["mlm"].shape, out["nsp"].shape, out["hidden"].shape, out["pooled"].shape
    ((1, 8, 50), (1, 2), (1, 8, 32), (1, 32))
    """

    def __init__(self, config, heads=True, name="bert", dtype=None, **kwargs):
        config = family_config(config, "BERT", segments=True)
        if config.num_segments < 1:
            raise UserInputError("BERT needs num_segments >= 1 (2 for sentence pairs)")
        if not isinstance(heads, bool):
            raise UserInputError(f"BERT heads must be True or False, got {heads!r}")
        with dtype_policy_scope(dtype) as policy:
            # === Layers and graph ===
            token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
            segment_ids = keras.Input(shape=(None,), dtype="int32", name="segment_ids")
            body = bert_backbone(config, token_ids, segment_ids)
            outputs = {"hidden": body["hidden"], "pooled": body["pooled"]}
            mlm_transform = mlm_norm = mlm_output = nsp_classifier = None
            if heads:
                # Masked-LM head: transform, GELU, normalise, project with the input embedding.
                mlm_transform = keras.layers.Dense(config.d_model, name="mlm_transform")
                mlm_norm = make_norm(config.norm, config.layer_norm_epsilon, name="mlm_norm")
                h = ops.gelu(mlm_transform(body["hidden"]),
                             approximate=mlm_gelu_approximate(config))
                h = mlm_norm(h)
                if config.tie_embeddings:
                    mlm_output = LogitBias(name="mlm_bias")
                    mlm_logits = mlm_output(body["embedding"](h, reverse=True))
                else:
                    mlm_output = keras.layers.Dense(config.vocab_size, dtype="float32",
                                                    name="mlm_output")
                    mlm_logits = mlm_output(h)
                nsp_classifier = keras.layers.Dense(2, dtype="float32", name="nsp_classifier")
                outputs = {"mlm": mlm_logits, "nsp": nsp_classifier(body["pooled"]), **outputs}
            super().__init__(
                {"token_ids": token_ids, "segment_ids": segment_ids}, outputs, name=name, **kwargs
            )

        # === Config ===
        self.config = config
        self.policy = policy
        self.has_heads = heads
        self.embedding, self.segment_embedding = body["embedding"], body["segment_embedding"]
        self.embedding_norm, self.blocks = body["embedding_norm"], body["blocks"]
        self.final_norm, self.pooler = body["final_norm"], body["pooler"]
        self.mlm_transform, self.mlm_norm = mlm_transform, mlm_norm
        self.mlm_output, self.nsp_classifier = mlm_output, nsp_classifier
        self.head_layers = [layer for layer in (mlm_transform, mlm_norm, mlm_output,
                                                nsp_classifier) if layer is not None]

    def get_config(self):
        return {**super().get_config(), "heads": self.has_heads}

    def checkpoint_weights(self):
        """Where each tensor of a Hugging Face BERT checkpoint goes in this model.

        The layout of `BertForPreTraining` (`heads=True`) or `BertModel`
        (`heads=False`), in the form of `GPT.checkpoint_weights`: a list of
        `(name, variables, transposed, in_dims)`. The body's names are
        without the `bert.` prefix of `BertForPreTraining` files; the heads'
        (`cls.predictions.*`, `cls.seq_relationship.*`) are as in the file.
        The tied masked-LM decoder has no matrix of its own (it is the word
        embedding) and its bias is `cls.predictions.bias`; an untied one is
        `cls.predictions.decoder.weight` and `.bias`, as `transformers` writes
        it.

        Raises:
            UserInputError: the config has no Hugging Face BERT layout
                (learned positions, post-LN LayerNorm blocks with biases, as
                many key/value heads as heads, no final norm).
        """
        config = self.config
        wanted = dict(position="learned", norm="layer", norm_first=False, use_bias=True,
                      num_kv_heads=config.num_heads, head_dim=config.d_model // config.num_heads)
        for field, value in wanted.items():
            if getattr(config, field) != value:
                raise UserInputError(f"this BERT has no Hugging Face layout: {field}="
                                     f"{getattr(config, field)!r}, a Hugging Face BERT has "
                                     f"{field}={value!r}")

        def dense(name, layer, in_dims=1):
            return [(f"{name}.weight", [layer.kernel], True, in_dims),
                    (f"{name}.bias", [layer.bias], False, 0)]

        def norm(name, layer):
            return [(f"{name}.weight", [layer.gamma], False, 0),
                    (f"{name}.bias", [layer.beta], False, 0)]

        weights = [
            ("embeddings.word_embeddings.weight", [self.embedding.token_embedding.embeddings],
             False, 1),
            ("embeddings.position_embeddings.weight", [self.embedding.position_embeddings],
             False, 1),
            ("embeddings.token_type_embeddings.weight", [self.segment_embedding.embeddings],
             False, 1),
            *norm("embeddings.LayerNorm", self.embedding_norm),
        ]
        for i, block in enumerate(self.blocks):
            attention, ffn, prefix = block.self_attention, block.feed_forward, f"encoder.layer.{i}"
            weights += [
                *dense(f"{prefix}.attention.self.query", attention.query_dense),
                *dense(f"{prefix}.attention.self.key", attention.key_dense),
                *dense(f"{prefix}.attention.self.value", attention.value_dense),
                *dense(f"{prefix}.attention.output.dense", attention.output_dense, in_dims=2),
                *norm(f"{prefix}.attention.output.LayerNorm", block.self_attention_norm),
                *dense(f"{prefix}.intermediate.dense", ffn.hidden),
                *dense(f"{prefix}.output.dense", ffn.output_dense),
                *norm(f"{prefix}.output.LayerNorm", block.feed_forward_norm),
            ]
        weights += dense("pooler.dense", self.pooler.dense)
        if self.has_heads:
            weights += [
                *dense("cls.predictions.transform.dense", self.mlm_transform),
                *norm("cls.predictions.transform.LayerNorm", self.mlm_norm),
                *dense("cls.seq_relationship", self.nsp_classifier),
            ]
            if config.tie_embeddings:
                weights.append(("cls.predictions.bias", [self.mlm_output.bias], False, 0))
            else:
                weights += dense("cls.predictions.decoder", self.mlm_output)
        return weights

    def backbone_params(self):
        """Parameters without the masked-LM and sentence-pair heads."""
        return self.count_params() - sum(layer.count_params() for layer in self.head_layers)


def build_bert(config: TransformerConfig, name="bert", heads=True) -> BERT:
    """A `BERT` of `config` (see `BERT`; `heads=False`: the backbone alone)."""
    return BERT(config, heads=heads, name=name)


def backbone_params(model):
    """`model.backbone_params()`: a `BERT`'s parameters without its two heads."""
    if not isinstance(model, BERT):
        raise UserInputError(f"model {model.name!r} is not a BERT from build_bert")
    return model.backbone_params()
