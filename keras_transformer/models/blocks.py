"""What every model family shares: the `TransformerBlock` arguments of a config, and the
dtype policy a model is built under."""

import contextlib

import keras

from keras_transformer.config import TransformerConfig
from keras_transformer.errors import UserInputError


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
        rotary_max_wavelength=config.rotary_max_wavelength,
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


def family_config(config, family, segments=False):
    """`config` as a `TransformerConfig` (it may be its `to_dict()`) for `family`.

    Segment embeddings are BERT's: `num_segments > 0` for any other family
    (`segments=False`) is a `UserInputError` naming the option.
    """
    if isinstance(config, dict):
        config = TransformerConfig.from_dict(config)
    if config.num_segments and not segments:
        raise UserInputError(
            f"num_segments={config.num_segments} does not apply to {family} (segment "
            "embeddings are BERT's); use num_segments=0"
        )
    return config


class FamilyModel(keras.Model):
    """The base of `GPT`, `BERT` and `Seq2Seq`: a functional model whose config is its
    `TransformerConfig` (`self.config`) and dtype policy (`self.policy`)."""

    def get_config(self):
        return {"config": self.config.to_dict(), "name": self.name, "dtype": self.policy,
                "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
