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
    `num_kv_heads` sets the key/value heads of self- and cross-attention,
    `attention` / `attention_block_size` choose the attention kernel of both,
    and `key_dim` / `scale_attention` (T5's head width and unscaled scores)
    apply to both. (`position="relative"`'s bias is made by the model, once
    per stack, and passed to the blocks when they are called.)
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
        key_dim=config.head_dim,
        scale_attention=config.scale_attention,
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


def _t5_option(config):
    """The first of T5's options that `config` uses, as it is written (`None`: none)."""
    if config.position == "relative":
        return "position='relative' (T5's relative position bias)"
    if not config.scale_attention:
        return "scale_attention=False"
    if config.scale_output:
        return "scale_output=True"
    if config.head_dim * config.num_heads != config.d_model:
        return f"key_dim={config.key_dim} (heads narrower or wider than d_model / num_heads)"
    return None


def family_config(config, family, segments=False, t5_options=False):
    """`config` as a `TransformerConfig` (it may be its `to_dict()`) for `family`.

    Segment embeddings are BERT's: `num_segments > 0` for any other family
    (`segments=False`) is a `UserInputError` naming the option. T5's options
    (`position="relative"`, `scale_attention=False`, `scale_output=True`, a
    `key_dim` other than `d_model // num_heads`) are the encoder-decoder's
    (`t5_options=True`); any other family refuses them with one line.
    """
    if isinstance(config, dict):
        config = TransformerConfig.from_dict(config)
    if config.num_segments and not segments:
        raise UserInputError(
            f"num_segments={config.num_segments} does not apply to {family} (segment "
            "embeddings are BERT's); use num_segments=0"
        )
    option = None if t5_options else _t5_option(config)
    if option is not None:
        raise UserInputError(f"{option} applies to encoder-decoders only, not to {family}")
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
