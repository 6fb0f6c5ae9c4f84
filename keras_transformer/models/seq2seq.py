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

from keras_transformer.config import TransformerConfig
from keras_transformer.errors import UserInputError
from keras_transformer.layers import PaddingMask, PositionalEmbedding, TransformerBlock, make_norm
from keras_transformer.models.blocks import block_args

T5_SMALL_PUBLISHED_PARAMS = 60_506_624


def _block(config, name, decoder):
    return TransformerBlock(
        **block_args(config),
        causal=decoder,
        cross_attention=decoder,
        name=name,
    )


def _embedding(config, name):
    return PositionalEmbedding(
        config.vocab_size, config.d_model, config.max_len, position=config.position, name=name
    )


def build_seq2seq(config: TransformerConfig, name="seq2seq") -> keras.Model:
    """A functional encoder-decoder trained with teacher forcing.

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

    Example:

    >>> config = TransformerConfig(vocab_size=30, num_layers=2, d_model=32, num_heads=2)
    >>> model = build_seq2seq(config)
    >>> model({"source_ids": np.ones((1, 7), "int32"),
    ...        "target_ids": np.ones((1, 5), "int32")}).shape
    (1, 5, 30)
    """
    if config.num_segments:
        raise UserInputError(
            f"num_segments={config.num_segments} does not apply to an encoder-decoder (segment "
            "embeddings are BERT's); use num_segments=0"
        )
    source_ids = keras.Input(shape=(None,), dtype="int32", name="source_ids")
    target_ids = keras.Input(shape=(None,), dtype="int32", name="target_ids")
    source_mask = PaddingMask(name="source_mask")(source_ids)
    target_mask = PaddingMask(name="target_mask")(target_ids)
    if config.share_embeddings:
        source_embedding = target_embedding = _embedding(config, "embedding")
    else:
        source_embedding = _embedding(config, "source_embedding")
        target_embedding = _embedding(config, "target_embedding")

    x = keras.layers.Dropout(config.dropout, name="source_dropout")(source_embedding(source_ids))
    for index in range(config.num_layers):
        x = _block(config, f"encoder_block_{index}", decoder=False)(x, padding_mask=source_mask)
    if config.norm_first:
        x = make_norm(config.norm, config.layer_norm_epsilon, name="encoder_norm")(x)

    y = keras.layers.Dropout(config.dropout, name="target_dropout")(target_embedding(target_ids))
    for index in range(config.num_decoder_layers):
        y = _block(config, f"decoder_block_{index}", decoder=True)(
            y, padding_mask=target_mask, context=x, context_mask=source_mask
        )
    if config.norm_first:
        y = make_norm(config.norm, config.layer_norm_epsilon, name="decoder_norm")(y)
    if config.tie_embeddings:
        logits = target_embedding(y, reverse=True)
    else:
        logits = keras.layers.Dense(
            config.vocab_size, use_bias=False, dtype="float32", name="lm_head"
        )(y)
    return keras.Model({"source_ids": source_ids, "target_ids": target_ids}, logits, name=name)
