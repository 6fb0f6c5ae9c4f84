"""The encoder-decoder model (Vaswani et al., T5): an encoder stack, a decoder stack with
cross-attention, and logits over the target vocabulary.

The `t5-small` preset is T5-small (Raffel et al. 2020) as `transformers`
computes it: 6 + 6 pre-norm blocks of width 512, 8 heads, d_ff 2048, ReLU,
no biases, RMSNorm (`norm="rms"`, a scale only, in all 32 norms: encoder
6 x 2 + 1 final, decoder 6 x 3 + 1 final), a relative position bias table
(32 buckets x 8 heads) in each stack, attention without the `1/sqrt(d)`
scaling, and one embedding (32128 x 512) shared by encoder, decoder and the
output projection, which rescales the decoder output by `d_model ** -0.5`.
It counts exactly T5-small's published 60,506,624 parameters
(`T5_SMALL_PUBLISHED_PARAMS`). A Hugging Face T5 folder loads into this
model with `keras_transformer.from_pretrained` (`Seq2Seq.checkpoint_weights`
is where each of its tensors goes).

Besides the functional graph (teacher forcing, training), `Seq2Seq` has the
methods of KV-cached decoding: `encode` (the encoder, once per batch),
`init_cache`, `cross_cache` (every decoder block's cross-attention keys and
values of the encoder output, once per batch) and `call_with_cache` (new
target tokens through the same layers, against the self-attention cache).
"""

import keras
import numpy as np
from keras import ops

from keras_transformer.config import TransformerConfig
from keras_transformer.errors import UserInputError
from keras_transformer.layers import (
    PaddingMask,
    PositionalEmbedding,
    RelativePositionBias,
    TransformerBlock,
    make_norm,
)
from keras_transformer.layers.attention import empty_kv_cache
from keras_transformer.layers.masking import attention_mask
from keras_transformer.models.blocks import (
    FamilyModel,
    block_args,
    dtype_policy_scope,
    family_config,
)

T5_SMALL_PUBLISHED_PARAMS = 60_506_624


def _embedding(config, name):
    return PositionalEmbedding(
        config.vocab_size, config.d_model, config.max_len, position=config.position, name=name
    )


def _position_bias(config, bidirectional, name):
    """T5's relative position bias of one stack (`None` unless `position="relative"`)."""
    if config.position != "relative":
        return None
    return RelativePositionBias(config.num_heads, config.relative_buckets,
                                config.relative_max_distance, bidirectional=bidirectional,
                                name=name)


def _output_logits(config, y, decoder_norm, target_embedding, lm_head):
    """float32 logits of the decoder's last block output `y` (graph and cached steps alike)."""
    if decoder_norm is not None:
        y = decoder_norm(y)
    if config.scale_output:  # T5's tied head: the decoder output times d_model ** -0.5
        y = y * (config.d_model ** -0.5)
    if lm_head is None:
        return target_embedding(y, reverse=True)
    return ops.cast(lm_head(y), "float32")


@keras.saving.register_keras_serializable(package="keras_transformer")
class Seq2Seq(FamilyModel):
    """An encoder-decoder trained with teacher forcing, built from a `TransformerConfig`.

    Inputs, a dict:
        `source_ids`: int `[batch, source_time]`, id 0 is padding;
        `target_ids`: int `[batch, target_time]`, the decoder input: the
            target shifted right behind a start token (teacher forcing).

    Output: float32 logits `[batch, target_time, vocab]`; the logits at `t`
    predict target token `t` from the whole source and target tokens `< t`.

    The encoder's blocks are `TransformerBlock(causal=False)` called with the
    source padding mask; the decoder's are `TransformerBlock(causal=True,
    cross_attention=True)` called with, as `context`, the encoder output and
    its padding mask. The decoder needs no padding mask of its own: it is
    causal and target padding only ever follows the real tokens, so no real
    position sees it (and T5's start token is the padding id 0, which must
    stay visible). With `config.share_embeddings` one token table serves
    source, target and (with `config.tie_embeddings`) the output projection;
    otherwise the source and target have their own tables.

    T5's options: `position="relative"` gives each stack a
    `RelativePositionBias` (bidirectional in the encoder, causal in the
    decoder), owned by the model and called once per stack, whose bias every
    block of the stack adds to its self-attention scores (T5 keeps the table
    in the first block and shares its output the same way);
    `scale_attention=False` drops the `1/sqrt(d)` of every attention;
    `scale_output=True` multiplies the decoder output by `d_model ** -0.5`
    before the output projection; `key_dim` sets the head width;
    `num_decoder_layers` may differ from `num_layers`.

    Args:
        config: a `TransformerConfig` (or its `to_dict()`).
        name: the model's name.
        dtype: the dtype policy (`None`: the global one).

    Example:

    >>> config = TransformerConfig(vocab_size=30, num_layers=2, d_model=32, num_heads=2)
    >>> model = Seq2Seq(config)
    >>> model({"source_ids": np.ones((1, 7), "int32"),
    ...        "target_ids": np.ones((1, 5), "int32")}).shape
    (1, 5, 30)
    """

    def __init__(self, config, name="seq2seq", dtype=None, **kwargs):
        config = family_config(config, "an encoder-decoder", t5_options=True)
        with dtype_policy_scope(dtype) as policy:
            # === Layers and graph === (each layer made where it is first called, so a
            # seeded model draws its initial weights in the same order as ever)
            source_ids = keras.Input(shape=(None,), dtype="int32", name="source_ids")
            target_ids = keras.Input(shape=(None,), dtype="int32", name="target_ids")
            source_mask = PaddingMask(name="source_mask")(source_ids)
            if config.share_embeddings:
                source_embedding = target_embedding = _embedding(config, "embedding")
            else:
                source_embedding = _embedding(config, "source_embedding")
                target_embedding = _embedding(config, "target_embedding")
            norm_args = (config.norm, config.layer_norm_epsilon)

            x = keras.layers.Dropout(config.dropout, name="source_dropout")(
                source_embedding(source_ids))
            encoder_position_bias = _position_bias(config, True, "encoder_position_bias")
            encoder_bias = None if encoder_position_bias is None else \
                encoder_position_bias(source_ids)
            encoder_blocks = []
            for index in range(config.num_layers):
                encoder_blocks.append(TransformerBlock(**block_args(config), causal=False,
                                                       name=f"encoder_block_{index}"))
                x = encoder_blocks[-1](x, padding_mask=source_mask, attention_bias=encoder_bias)
            encoder_norm = decoder_norm = lm_head = None
            if config.norm_first:
                encoder_norm = make_norm(*norm_args, name="encoder_norm")
                x = encoder_norm(x)

            y = keras.layers.Dropout(config.dropout, name="target_dropout")(
                target_embedding(target_ids))
            decoder_position_bias = _position_bias(config, False, "decoder_position_bias")
            decoder_bias = None if decoder_position_bias is None else \
                decoder_position_bias(target_ids)
            decoder_blocks = []
            for index in range(config.num_decoder_layers):
                decoder_blocks.append(TransformerBlock(**block_args(config), causal=True,
                                                       cross_attention=True,
                                                       name=f"decoder_block_{index}"))
                y = decoder_blocks[-1](y, context=x, context_mask=source_mask,
                                       attention_bias=decoder_bias)
            if config.norm_first:
                decoder_norm = make_norm(*norm_args, name="decoder_norm")
            if not config.tie_embeddings:
                lm_head = keras.layers.Dense(config.vocab_size, use_bias=False, dtype="float32",
                                             name="lm_head")
            logits = _output_logits(config, y, decoder_norm, target_embedding, lm_head)
            super().__init__({"source_ids": source_ids, "target_ids": target_ids}, logits,
                             name=name, **kwargs)

        # === Config ===
        self.config = config
        self.policy = policy
        self.source_embedding, self.target_embedding = source_embedding, target_embedding
        self.encoder_blocks, self.decoder_blocks = encoder_blocks, decoder_blocks
        self.encoder_norm, self.decoder_norm, self.lm_head = encoder_norm, decoder_norm, lm_head
        self.encoder_position_bias = encoder_position_bias
        self.decoder_position_bias = decoder_position_bias

    def parameter_parts(self):
        """Parameters by part: `{"encoder", "decoder", "shared embedding"}`, summing to the total.

        The encoder holds its blocks, its final norm, its relative position
        bias and (unshared) the source embedding; the decoder the same of its
        own, the target embedding and an untied `lm_head`; "shared embedding"
        is the one token table of `share_embeddings` (0 without it).
        """
        def count(layers):
            return sum(layer.count_params() for layer in layers if layer is not None)

        shared = self.source_embedding is self.target_embedding
        encoder = [*self.encoder_blocks, self.encoder_norm, self.encoder_position_bias] + (
            [] if shared else [self.source_embedding])
        decoder = [*self.decoder_blocks, self.decoder_norm, self.decoder_position_bias,
                   self.lm_head] + ([] if shared else [self.target_embedding])
        return {"encoder": count(encoder), "decoder": count(decoder),
                "shared embedding": self.source_embedding.count_params() if shared else 0}

    # --- KV-cached decoding: the same layers, one step at a time ----------------------

    def encode(self, source_ids):
        """The encoder output `[batch, source_time, d_model]` and the source mask `[batch,
        source_time]` of int `source_ids` (0 = padding), as the graph computes them."""
        source_ids = ops.convert_to_tensor(source_ids, "int32")
        source_mask = ops.not_equal(source_ids, 0)
        x = self.source_embedding(source_ids)
        bias = None if self.encoder_position_bias is None else \
            self.encoder_position_bias(source_ids)
        for block in self.encoder_blocks:
            x = block(x, padding_mask=source_mask, attention_bias=bias, training=False)
        if self.encoder_norm is not None:
            x = self.encoder_norm(x)
        return x, source_mask

    def init_cache(self, batch_size, slots):
        """An empty self-attention cache: per decoder block a `(keys, values)` pair (see
        `empty_kv_cache`); `slots` bounds the target length."""
        return [empty_kv_cache(batch_size, slots, self.config.num_kv_heads,
                               self.config.head_dim, block.compute_dtype)
                for block in self.decoder_blocks]

    def cross_cache(self, encoded):
        """Every decoder block's cross-attention `(keys, values)` of the encoder output
        `encoded` (from `encode`): computed once, used at every decoding step."""
        return [block.cross_key_value(encoded) for block in self.decoder_blocks]

    def call_with_cache(self, target_ids, index, cache, cross_cache, source_mask):
        """Logits of new target tokens at positions `index ...`, through the cached decoder.

        Runs exactly the decoder layers of the graph, but each block's
        self-attention writes the new keys and values at slots `index ...` of
        `cache` and attends to the slots up to each token's own, and its
        cross-attention reads the precomputed `cross_cache`.

        Args:
            target_ids: int `[batch, time]`, the decoder inputs at positions
                `index .. index + time - 1` (every row at the same positions).
            index: int scalar, the position (and cache slot) of the first one.
            cache: from `init_cache` (or a previous call).
            cross_cache: from `cross_cache`.
            source_mask: bool `[batch, source_time]`, from `encode`.

        Returns:
            `(logits [batch, time, vocab] float32, new_cache)`.
        """
        target_ids = ops.convert_to_tensor(target_ids, "int32")
        batch, time = ops.shape(target_ids)[0], ops.shape(target_ids)[1]
        slots = ops.shape(cache[0][0])[2]
        positions = ops.cast(index, "int32") + ops.arange(time, dtype="int32")
        slot = ops.arange(slots, dtype="int32")
        mask = attention_mask(positions, slot, causal=True)  # [1, time, slots]
        row_positions = ops.broadcast_to(positions[None], (batch, time))
        y = self.target_embedding(target_ids, positions=row_positions)
        bias = None if self.decoder_position_bias is None else self.decoder_position_bias(
            target_ids, query_positions=positions, key_positions=slot)
        new_cache = []
        for block, block_cache, cross in zip(self.decoder_blocks, cache, cross_cache,
                                             strict=True):
            y, block_cache = block(
                y, context_key_value=cross, context_mask=source_mask, positions=row_positions,
                cache=block_cache, cache_index=index, attention_mask=mask, attention_bias=bias,
                training=False,
            )
            new_cache.append(block_cache)
        logits = _output_logits(self.config, y, self.decoder_norm, self.target_embedding,
                                self.lm_head)
        return logits, new_cache

    def cross_attention_maps(self, source_ids, target_ids):
        """Cross-attention weights of each decoder block, re-running the layers eagerly.

        Args:
            source_ids: int `[batch, source_time]`, 0 = padding.
            target_ids: int `[batch, target_time]`, the decoder input (start
                token followed by the target so far).

        Returns:
            A list with one numpy array `[batch, heads, target_time, source_time]`
            per decoder block: which source tokens each target position reads.
            Padded source positions get zero weight.
        """
        x, source_mask = self.encode(np.asarray(source_ids))
        target_ids = ops.convert_to_tensor(np.asarray(target_ids), "int32")
        y = self.target_embedding(target_ids)
        bias = None if self.decoder_position_bias is None else \
            self.decoder_position_bias(target_ids)
        maps = []
        for block in self.decoder_blocks:
            y, scores = block(y, context=x, context_mask=source_mask, attention_bias=bias,
                              training=False, return_attention_scores=True)
            maps.append(ops.convert_to_numpy(scores["cross_attention"]))
        return maps

    # --- Hugging Face checkpoints ---------------------------------------------------

    def checkpoint_weights(self, model_type="t5"):
        """Where each tensor of a Hugging Face T5 checkpoint goes in this model.

        Args:
            model_type: `"t5"` (`T5ForConditionalGeneration`; the config must
                be T5-shaped, see `keras_transformer.pretrained.t5`).

        Returns:
            A list of `(name, variables, transposed, in_dims)` as
            `GPT.checkpoint_weights`: the full tensor name (T5 files have no
            prefix), the variables it fills, whether it is a PyTorch `Linear`
            weight (`[out, in]`, transposed here) and how many leading
            dimensions of the variable are rows (1 for `[d_model, heads,
            key_dim]` projections and tables, 2 for the attention output
            `[heads, key_dim, d_model]`, 0 for norm scales).

        Raises:
            UserInputError: the config has no T5 layout (one line naming the
                first field that differs).
        """
        config = self.config
        if model_type != "t5":
            raise UserInputError(f"no checkpoint layout for model_type {model_type!r}")
        wanted = dict(position="relative", norm="rms", norm_first=True, use_bias=False,
                      share_embeddings=True, scale_attention=False,
                      num_kv_heads=config.num_heads)
        for field, value in wanted.items():
            if getattr(config, field) != value:
                raise UserInputError(f"this model has no T5 layout: {field}="
                                     f"{getattr(config, field)!r}, while T5 has {value!r}")
        if config.activation not in ("relu", "gated-gelu"):
            raise UserInputError(f"this model has no T5 layout: activation="
                                 f"{config.activation!r}, while T5 has 'relu' or 'gated-gelu'")
        weights = [("shared.weight", [self.source_embedding.token_embedding.embeddings], False, 1)]
        stacks = (("encoder", self.encoder_blocks, self.encoder_position_bias, self.encoder_norm),
                  ("decoder", self.decoder_blocks, self.decoder_position_bias, self.decoder_norm))
        for stack, blocks, position_bias, final_norm in stacks:
            for i, block in enumerate(blocks):
                sublayers = [("SelfAttention", block.self_attention, block.self_attention_norm)]
                if block.cross_attention:
                    sublayers.append(("EncDecAttention", block.cross_attention_layer,
                                      block.cross_attention_norm))
                for j, (hf_name, attention, norm) in enumerate(sublayers):
                    prefix = f"{stack}.block.{i}.layer.{j}."
                    for short, layer in (("q", attention.query_dense), ("k", attention.key_dense),
                                         ("v", attention.value_dense),
                                         ("o", attention.output_dense)):
                        weights.append((f"{prefix}{hf_name}.{short}.weight", [layer.kernel], True,
                                        2 if short == "o" else 1))
                    weights.append((f"{prefix}layer_norm.weight", [norm.scale], False, 0))
                ffn = block.feed_forward
                prefix = f"{stack}.block.{i}.layer.{len(sublayers)}."
                inputs = ([("wi_0", ffn.gate), ("wi_1", ffn.hidden)]
                          if config.activation == "gated-gelu" else [("wi", ffn.hidden)])
                for short, layer in (*inputs, ("wo", ffn.output_dense)):
                    weights.append((f"{prefix}DenseReluDense.{short}.weight", [layer.kernel],
                                    True, 1))
                weights.append((f"{prefix}layer_norm.weight", [block.feed_forward_norm.scale],
                                False, 0))
            weights.append((f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias"
                            ".weight", [position_bias.embeddings], False, 1))
            weights.append((f"{stack}.final_layer_norm.weight", [final_norm.scale], False, 0))
        if self.lm_head is not None:
            weights.append(("lm_head.weight", [self.lm_head.kernel], True, 1))
        return weights


def build_seq2seq(config: TransformerConfig, name="seq2seq") -> Seq2Seq:
    """A `Seq2Seq` of `config` (see `Seq2Seq`)."""
    return Seq2Seq(config, name=name)


def supports_cache(model):
    """Whether `model` decodes with a KV cache (it is a `Seq2Seq`)."""
    return isinstance(model, Seq2Seq)
