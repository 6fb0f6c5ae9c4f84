"""`TransformerConfig`: every architecture choice of a model, in one dataclass.

The models in `keras_transformer.models` are built from a config, and a run
directory stores the config it trained (as `config.json`), so a model can be
rebuilt or inspected without reading code.

Example:

>>> config = TransformerConfig.preset("gpt2-small")
>>> config.num_layers, config.d_model, config.num_heads
(12, 768, 12)
>>> TransformerConfig(vocab_size=65, d_model=64, num_heads=4).d_ff
256
"""

import dataclasses
import math
from dataclasses import dataclass

from keras_transformer.errors import UserInputError, recompute_dropout_message

POSITIONS = ("learned", "sinusoidal", "rope", "relative")
ACTIVATIONS = ("relu", "gelu_tanh", "gelu_erf", "gelu", "swiglu", "gated-gelu")
NORMS = ("layer", "rms")
ATTENTIONS = ("standard", "chunked")
# The string fields and their allowed values (cli/train.py makes `choices=` flags of them).
CHOICES = {"position": POSITIONS, "activation": ACTIVATIONS, "norm": NORMS, "attention": ATTENTIONS}
# The largest size a config field may hold: TensorFlow's shapes and positions are int32.
INT32_MAX = 2**31 - 1


@dataclass
class TransformerConfig:
    """Architecture of a Transformer model.

    Args:
        vocab_size: number of token ids the embedding knows.
        max_len: longest sequence the model accepts (its context window).
        num_layers: number of Transformer blocks.
        d_model: width of the residual stream.
        num_heads: attention heads per block; must divide `d_model`.
        d_ff: hidden width of the feed-forward network; `None` means
            `4 * d_model`, the paper's choice.
        dropout: dropout rate on embeddings, attention weights and residual
            branches (0 disables it).
        position: `"learned"` position embeddings (GPT, BERT), fixed
            `"sinusoidal"` ones (Vaswani et al.), or `"rope"`: rotary
            embeddings applied to queries and keys inside attention (Su et
            al. 2021), which add no parameters, or `"relative"`: T5's
            learned relative position bias, added to the attention scores
            (`RelativePositionBias`; encoder-decoders only), with no
            position information in the embeddings.
        norm_first: `True` for pre-LN blocks (GPT-2 and later), `False` for
            the original post-LN blocks.
        activation: feed-forward activation: `"gelu_tanh"` (GELU's tanh
            approximation, GPT-2's), `"gelu_erf"` (exact GELU, BERT's),
            `"relu"`, `"swiglu"` (a gated FFN whose hidden width is
            `2 * d_ff // 3`, so its three matrices hold about as many weights
            as two of `d_ff`) or `"gated-gelu"` (T5 v1.1's gated FFN, hidden
            width `d_ff`). `"gelu"` is the name older configs use for
            `"gelu_tanh"`; it still loads and computes what it did.
        tie_embeddings: reuse the token embedding matrix as the output
            projection (no separate `lm_head`).
        use_bias: biases in the attention and feed-forward projections.
        layer_norm_epsilon: epsilon of every normalization layer.
        num_kv_heads: key/value heads of self-attention. `None` (or
            `num_heads`) is standard multi-head attention, `1` multi-query
            attention, anything between grouped-query attention; it must
            divide `num_heads`. The KV cache stores only these heads.
        norm: `"layer"` (LayerNormalization) or `"rms"` (RMSNormalization).
        attention: `"standard"` (the scores matrix is materialised) or
            `"chunked"`: exact memory-efficient attention over key blocks with
            a running max and sum (FlashAttention's idea), whose memory grows
            linearly with the sequence length. It has no attention dropout,
            so it needs `dropout=0`.
        attention_block_size: key block length of `attention="chunked"`.
        rotary_max_wavelength: the RoPE base of `position="rope"` (10,000 as
            in Su et al.; Hugging Face calls it `rope_theta`).
        recompute: gradient checkpointing of every block in training
            (`TransformerBlock(recompute=True)`, `tf.recompute_grad`): less
            activation memory for one more forward pass; outputs and
            gradients are unchanged. It needs `dropout=0`: the recomputed
            pass would draw other dropout masks than the forward pass.
        num_segments: segment ("token type") embeddings added to the token
            embeddings, BERT's sentence A / sentence B; 0 means none (GPT).
        num_decoder_layers: decoder blocks of an encoder-decoder model
            (`None`: `num_layers`, the encoder's depth).
        share_embeddings: an encoder-decoder model uses one token embedding
            for source and target (T5); `False` gives each its own table.
        relative_buckets: buckets of `position="relative"` (T5: 32); each
            stack learns one bias per bucket and head.
        relative_max_distance: distance from which on relative positions
            share the last bucket (T5: 128); above `relative_buckets // 2`.
        scale_attention: divide the attention scores by `sqrt(head_dim)`
            (Vaswani et al.); T5 does not (`False`, encoder-decoders only).
        scale_output: multiply the decoder output by `d_model ** -0.5`
            before the output projection (T5's tied head; encoder-decoders
            only).
        key_dim: width of one attention head (`None`: `d_model //
            num_heads`); T5 v1.1 and FLAN-T5 have `key_dim * num_heads !=
            d_model` (encoder-decoders only).
    """

    vocab_size: int = 256
    max_len: int = 128
    num_layers: int = 4
    d_model: int = 128
    num_heads: int = 4
    d_ff: int | None = None
    dropout: float = 0.0
    position: str = "learned"
    norm_first: bool = True
    activation: str = "gelu"
    tie_embeddings: bool = True
    use_bias: bool = True
    layer_norm_epsilon: float = 1e-5
    num_segments: int = 0
    num_decoder_layers: int | None = None
    share_embeddings: bool = True
    num_kv_heads: int | None = None
    norm: str = "layer"
    attention: str = "standard"
    attention_block_size: int = 128
    rotary_max_wavelength: float = 10000.0
    recompute: bool = False
    relative_buckets: int = 32
    relative_max_distance: int = 128
    scale_attention: bool = True
    scale_output: bool = False
    key_dim: int | None = None

    def __post_init__(self):
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        if self.num_decoder_layers is None:
            self.num_decoder_layers = self.num_layers
        if self.num_kv_heads is None:
            self.num_kv_heads = self.num_heads
        names = ("vocab_size", "max_len", "num_layers", "d_model", "num_heads", "d_ff",
                 "num_decoder_layers", "num_kv_heads", "attention_block_size",
                 "relative_buckets", "relative_max_distance")
        for name in names:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UserInputError(f"{name} must be a positive integer, got {value!r}")
            if value > INT32_MAX:
                raise UserInputError(f"{name} must be at most {INT32_MAX}, got {value}")
        for name in ("dropout", "layer_norm_epsilon", "rotary_max_wavelength"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not (
                    math.isfinite(value)):
                raise UserInputError(f"{name} must be a finite number, got {value!r}")
        if self.layer_norm_epsilon <= 0:
            raise UserInputError(
                f"layer_norm_epsilon must be positive, got {self.layer_norm_epsilon}"
            )
        if not isinstance(self.num_segments, int) or self.num_segments < 0:
            raise UserInputError(f"num_segments must be >= 0, got {self.num_segments!r}")
        if self.key_dim is not None and (not isinstance(self.key_dim, int) or isinstance(
                self.key_dim, bool) or self.key_dim < 1):
            raise UserInputError(f"key_dim must be a positive integer or None, got {self.key_dim!r}")
        for name in ("scale_attention", "scale_output"):
            if not isinstance(getattr(self, name), bool):
                raise UserInputError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.key_dim is None and self.d_model % self.num_heads:
            raise UserInputError(
                f"d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise UserInputError(f"dropout must be in [0, 1), got {self.dropout}")
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise UserInputError(
                    f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}"
                )
        if self.num_heads % self.num_kv_heads:
            raise UserInputError(
                f"num_kv_heads ({self.num_kv_heads}) must divide num_heads ({self.num_heads})"
            )
        if self.position == "rope" and self.head_dim % 2:
            raise UserInputError(
                f"position='rope' needs an even head width, got {self.head_dim}"
            )
        relative = (self.relative_buckets, self.relative_max_distance)
        if self.position != "relative" and relative != (32, 128):
            raise UserInputError(
                f"relative_buckets={self.relative_buckets} and relative_max_distance="
                f"{self.relative_max_distance} apply to position='relative' only, not "
                f"{self.position!r}"
            )
        if self.relative_buckets < 4:
            raise UserInputError(f"relative_buckets must be >= 4, got {self.relative_buckets}")
        if self.relative_max_distance <= self.relative_buckets // 2:
            raise UserInputError(
                f"relative_max_distance ({self.relative_max_distance}) must exceed "
                f"relative_buckets // 2 ({self.relative_buckets // 2})"
            )
        if self.position == "relative" and self.attention == "chunked":
            raise UserInputError("attention='chunked' cannot add position='relative''s attention "
                                 "bias; use attention='standard'")
        if not isinstance(self.rotary_max_wavelength, (int, float)) or not (
                self.rotary_max_wavelength > 1):
            raise UserInputError(
                f"rotary_max_wavelength must be a number above 1, got {self.rotary_max_wavelength!r}"
            )
        if self.rotary_max_wavelength != 10000 and self.position != "rope":
            raise UserInputError(
                f"rotary_max_wavelength={self.rotary_max_wavelength} applies to position='rope' "
                f"only, not {self.position!r}"
            )
        if self.recompute and self.dropout:
            raise UserInputError(recompute_dropout_message(self.dropout))
        if self.attention == "chunked" and self.dropout:
            raise UserInputError(
                "attention='chunked' has no attention dropout; use dropout=0 "
                f"(got {self.dropout}) or attention='standard'"
            )

    @property
    def head_dim(self):
        """Width of one attention head: `key_dim`, or `d_model // num_heads`."""
        return self.key_dim or self.d_model // self.num_heads

    def kv_cache_bytes_per_token(self, bytes_per_value=4):
        """Bytes the KV cache holds per token: keys and values of every layer's kv heads."""
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * bytes_per_value

    def to_dict(self):
        """The config as a plain dict (JSON-ready)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, values):
        """Rebuild a config from `to_dict()`'s output; unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserInputError(f"unknown config field(s): {', '.join(unknown)}")
        return cls(**values)

    @classmethod
    def from_hf(cls, hf):
        """The config of a Hugging Face `config.json` dict (`gpt2` or `llama`); a field
        this package cannot honour is a one-line `UserInputError` naming it."""
        from keras_transformer.pretrained.hf_config import config_from_hf

        return config_from_hf(hf)

    def to_hf(self):
        """This config as a Hugging Face `config.json` dict (GPT-2- or Llama-shaped only)."""
        from keras_transformer.pretrained.hf_config import config_to_hf

        return config_to_hf(self)

    @classmethod
    def preset(cls, name, **overrides):
        """A named architecture, optionally with some fields changed.

        Presets: `gpt-mini` (the default of `train.py --arch gpt`: 4 layers,
        d_model 128, 4 heads, char-level), `gpt2-small` (GPT-2 small's
        architecture, 124,439,808 parameters), `bert-mini` (the default of
        `--arch bert`), `bert-base` (BERT-base: 109,482,240 parameters with
        the pooler, without the pretraining heads), `seq2seq-mini` (the
        default of `--arch seq2seq`) and `t5-small` (T5-small, Raffel et
        al. 2020: relative position bias, RMSNorm, unscaled attention, the
        tied and rescaled output; 60,506,624 parameters, the published count).
        """
        if name not in PRESETS:
            raise UserInputError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        values = dict(PRESETS[name])
        values.update(overrides)
        return cls(**values)


PRESETS = {
    "gpt-mini": dict(
        vocab_size=256, max_len=128, num_layers=4, d_model=128, num_heads=4,
        dropout=0.0, position="learned", norm_first=True, activation="gelu_tanh",
        tie_embeddings=True,
    ),
    # Radford et al. 2019, the 124M model: 50257 BPE tokens, 1024 learned
    # positions, 12 pre-LN blocks of width 768, tied output embedding.
    "gpt2-small": dict(
        vocab_size=50257, max_len=1024, num_layers=12, d_model=768, num_heads=12,
        d_ff=3072, dropout=0.1, position="learned", norm_first=True,
        activation="gelu_tanh", tie_embeddings=True, use_bias=True, layer_norm_epsilon=1e-5,
    ),
    "bert-mini": dict(
        vocab_size=256, max_len=128, num_layers=4, d_model=128, num_heads=4, d_ff=512,
        dropout=0.0, position="learned", norm_first=False, activation="gelu_erf",
        tie_embeddings=True, use_bias=True, layer_norm_epsilon=1e-12, num_segments=2,
    ),
    # Devlin et al. 2019, BERT-base uncased: 30522 WordPiece tokens, 512
    # learned positions, 2 segments, 12 post-LN blocks of width 768.
    "bert-base": dict(
        vocab_size=30522, max_len=512, num_layers=12, d_model=768, num_heads=12,
        d_ff=3072, dropout=0.1, position="learned", norm_first=False,
        activation="gelu_erf", tie_embeddings=True, use_bias=True, layer_norm_epsilon=1e-12,
        num_segments=2,
    ),
    "seq2seq-mini": dict(
        vocab_size=256, max_len=64, num_layers=2, num_decoder_layers=2, d_model=128,
        num_heads=4, d_ff=512, dropout=0.0, position="learned", norm_first=True,
        activation="relu", tie_embeddings=True, share_embeddings=True, use_bias=True,
        layer_norm_epsilon=1e-6,
    ),
    # Raffel et al. 2020, T5-small: 32128 SentencePiece tokens, 6 + 6 pre-LN
    # blocks of width 512, 8 heads, d_ff 2048, ReLU, no biases, RMSNorm, a
    # relative position bias (32 buckets, max distance 128) in each stack,
    # unscaled attention, one embedding shared by encoder, decoder and the
    # output, which rescales the decoder output by d_model ** -0.5.
    "t5-small": dict(
        vocab_size=32128, max_len=512, num_layers=6, num_decoder_layers=6, d_model=512,
        num_heads=8, d_ff=2048, dropout=0.1, position="relative", norm_first=True,
        activation="relu", tie_embeddings=True, share_embeddings=True, use_bias=False,
        layer_norm_epsilon=1e-6, norm="rms", relative_buckets=32, relative_max_distance=128,
        scale_attention=False, scale_output=True,
    ),
}
