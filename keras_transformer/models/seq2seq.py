"""The encoder-decoder model (Vaswani et al., T5): an encoder stack, a decoder stack with
cross-attention, and logits over the target vocabulary.

About the `t5-small` preset: its sizes are T5-small's (6 + 6 blocks,
d_model 512, 8 heads, d_ff 2048, vocabulary 32128, no biases, one shared
embedding that is also the output projection), but two parts differ from T5:

- positions: T5 adds a learned relative-position bias to the attention
  logits (32 buckets x 8 heads, in the first block of each stack: 2 x 256 =
  512 parameters); here the fixed sinusoidal table is added to the embeddings
  (0 parameters);
- normalisation is T5's: RMSNorm (`norm="rms"`, a scale only), in all 32
  norms (encoder 6 x 2 + 1 final, decoder 6 x 3 + 1 final).

So the preset counts 60,506,624 - 512 = 60,506,112 parameters against
T5-small's published 60,506,624: the difference is exactly the relative
position bias table.
"""

import keras
import numpy as np
from keras import ops

from keras_transformer.config import TransformerConfig
from keras_transformer.layers import PaddingMask, PositionalEmbedding, TransformerBlock, make_norm
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
    cross_attention=True)` called with the target padding mask and, as
    `context`, the encoder output and its padding mask. With
    `config.share_embeddings` one token table serves source, target and (with
    `config.tie_embeddings`) the output projection; otherwise the source and
    target have their own tables.

    Args:
        config: a `TransformerConfig` (or its `to_dict()`).
        name: the model's name.

    Example:

    >>> config = TransformerConfig(vocab_size=30, num_layers=2, d_model=32, num_heads=2)
    >>> model = Seq2Seq(config)
    >>> model({"source_ids": np.ones((1, 7), "int32"),
    ...        "target_ids": np.ones((1, 5), "int32")}).shape
    (1, 5, 30)
    """

    def __init__(self, config, name="seq2seq", dtype=None, **kwargs):
        config = family_config(config, "an encoder-decoder")
        with dtype_policy_scope(dtype) as policy:
            # === Layers and graph === (each layer made where it is first called, so a
            # seeded model draws its initial weights in the same order as ever)
            source_ids = keras.Input(shape=(None,), dtype="int32", name="source_ids")
            target_ids = keras.Input(shape=(None,), dtype="int32", name="target_ids")
            source_mask = PaddingMask(name="source_mask")(source_ids)
            target_mask = PaddingMask(name="target_mask")(target_ids)
            if config.share_embeddings:
                source_embedding = target_embedding = _embedding(config, "embedding")
            else:
                source_embedding = _embedding(config, "source_embedding")
                target_embedding = _embedding(config, "target_embedding")
            norm_args = (config.norm, config.layer_norm_epsilon)

            x = keras.layers.Dropout(config.dropout, name="source_dropout")(
                source_embedding(source_ids))
            encoder_blocks = []
            for index in range(config.num_layers):
                encoder_blocks.append(TransformerBlock(**block_args(config), causal=False,
                                                       name=f"encoder_block_{index}"))
                x = encoder_blocks[-1](x, padding_mask=source_mask)
            encoder_norm = decoder_norm = lm_head = None
            if config.norm_first:
                encoder_norm = make_norm(*norm_args, name="encoder_norm")
                x = encoder_norm(x)

            y = keras.layers.Dropout(config.dropout, name="target_dropout")(
                target_embedding(target_ids))
            decoder_blocks = []
            for index in range(config.num_decoder_layers):
                decoder_blocks.append(TransformerBlock(**block_args(config), causal=True,
                                                       cross_attention=True,
                                                       name=f"decoder_block_{index}"))
                y = decoder_blocks[-1](y, padding_mask=target_mask, context=x,
                                       context_mask=source_mask)
            if config.norm_first:
                decoder_norm = make_norm(*norm_args, name="decoder_norm")
                y = decoder_norm(y)
            if config.tie_embeddings:
                logits = target_embedding(y, reverse=True)
            else:
                lm_head = keras.layers.Dense(config.vocab_size, use_bias=False, dtype="float32",
                                             name="lm_head")
                logits = lm_head(y)
            super().__init__({"source_ids": source_ids, "target_ids": target_ids}, logits,
                             name=name, **kwargs)

        # === Config ===
        self.config = config
        self.policy = policy
        self.source_embedding, self.target_embedding = source_embedding, target_embedding
        self.encoder_blocks, self.decoder_blocks = encoder_blocks, decoder_blocks
        self.encoder_norm, self.decoder_norm, self.lm_head = encoder_norm, decoder_norm, lm_head

    def parameter_parts(self):
        """Parameters by part: `{"encoder", "decoder", "shared embedding"}`, summing to the total.

        The encoder holds its blocks, its final norm and (unshared) the source
        embedding; the decoder its blocks, its final norm, the target embedding
        and an untied `lm_head`; "shared embedding" is the one token table of
        `share_embeddings` (0 without it).
        """
        def count(layers):
            return sum(layer.count_params() for layer in layers if layer is not None)

        shared = self.source_embedding is self.target_embedding
        encoder = [*self.encoder_blocks, self.encoder_norm] + ([] if shared else
                                                                [self.source_embedding])
        decoder = [*self.decoder_blocks, self.decoder_norm, self.lm_head] + (
            [] if shared else [self.target_embedding])
        return {"encoder": count(encoder), "decoder": count(decoder),
                "shared embedding": self.source_embedding.count_params() if shared else 0}

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
        source_ids = ops.convert_to_tensor(np.asarray(source_ids), "int32")
        target_ids = ops.convert_to_tensor(np.asarray(target_ids), "int32")
        source_mask = ops.not_equal(source_ids, 0)
        target_mask = ops.not_equal(target_ids, 0)
        x = self.source_embedding(source_ids)
        for block in self.encoder_blocks:
            x = block(x, padding_mask=source_mask, training=False)
        if self.encoder_norm is not None:
            x = self.encoder_norm(x)
        y = self.target_embedding(target_ids)
        maps = []
        for block in self.decoder_blocks:
            y, scores = block(y, padding_mask=target_mask, context=x, context_mask=source_mask,
                              training=False, return_attention_scores=True)
            maps.append(ops.convert_to_numpy(scores["cross_attention"]))
        return maps


def build_seq2seq(config: TransformerConfig, name="seq2seq") -> Seq2Seq:
    """A `Seq2Seq` of `config` (see `Seq2Seq`)."""
    return Seq2Seq(config, name=name)
