"""Hugging Face `config.json` <-> `TransformerConfig`, for GPT-2 and Llama-family decoders.

Every field of a checkpoint's config that changes what the model computes is
either translated or refused with one line naming it: a checkpoint is never
loaded into a model that computes something else. Fields that only concern
training or tooling (`initializer_range`, `use_cache`, token ids, ...) are
ignored.
"""

import contextlib

from keras_transformer.config import TransformerConfig
from keras_transformer.errors import UserInputError

MODEL_TYPES = ("gpt2", "llama", "bert", "t5")


def _refuse(model_type, field, value, why):
    raise UserInputError(f"{model_type} config: {field}={value!r} is not supported ({why})")


def _require(hf, model_type, field, allowed, why):
    value = hf.get(field, allowed[0])
    if value not in allowed:
        _refuse(model_type, field, value, why)
    return value


@contextlib.contextmanager
def _fields_of(model_type):
    """A missing or ill-typed field of a `model_type` config as one line."""
    try:
        yield
    except KeyError as missing:
        raise UserInputError(f"{model_type} config: the field {missing.args[0]!r} is "
                             "missing") from None
    except (TypeError, ValueError) as error:
        if isinstance(error, UserInputError):
            raise
        raise UserInputError(f"{model_type} config: {error}") from None


def config_from_hf(hf):
    """A `TransformerConfig` computing what the Hugging Face config `hf` describes.

    Args:
        hf: the dict of a checkpoint's `config.json`, `model_type` `"gpt2"`
            or `"llama"` (SmolLM, TinyLlama and Llama-3 shaped models).

    Raises:
        UserInputError: another `model_type`, or a field whose value this
            package's layers cannot honour (one line naming it).
    """
    if not isinstance(hf, dict):
        raise UserInputError("a Hugging Face config must be a JSON object")
    model_type = hf.get("model_type")
    if model_type == "gpt2":
        return _from_gpt2(hf)
    if model_type == "llama":
        return _from_llama(hf)
    if model_type == "bert":
        from keras_transformer.pretrained.bert import bert_config_from_hf

        return bert_config_from_hf(hf)
    if model_type == "t5":
        from keras_transformer.pretrained.t5 import t5_config_from_hf

        return t5_config_from_hf(hf)
    raise UserInputError(
        f"model_type {model_type!r} is not supported; keras_transformer loads "
        f"{', '.join(MODEL_TYPES)} checkpoints"
    )


def _from_gpt2(hf):
    kind = "gpt2"
    _require(hf, kind, "activation_function", ["gelu_new", "gelu_pytorch_tanh"],
             "the feed-forward activation here is the tanh GELU")
    _require(hf, kind, "scale_attn_weights", [True], "attention is always scaled by 1/sqrt(d)")
    _require(hf, kind, "scale_attn_by_inverse_layer_idx", [False], "no per-layer scaling")
    _require(hf, kind, "add_cross_attention", [False], "a GPT has no cross-attention")
    with _fields_of(kind):
        d_model = int(hf["n_embd"])
        return TransformerConfig(
            vocab_size=int(hf["vocab_size"]),
            max_len=int(hf["n_positions"]),
            num_layers=int(hf["n_layer"]),
            d_model=d_model,
            num_heads=int(hf["n_head"]),
            d_ff=int(hf.get("n_inner") or 4 * d_model),
            dropout=float(hf.get("resid_pdrop", 0.0)),
            position="learned",
            norm_first=True,
            activation="gelu_tanh",
            tie_embeddings=bool(hf.get("tie_word_embeddings", True)),
            use_bias=True,
            layer_norm_epsilon=float(hf.get("layer_norm_epsilon", 1e-5)),
            norm="layer",
        )


def rope_theta(hf):
    """The RoPE base of a Llama config (`rope_parameters`, or the older `rope_theta` /
    `rope_scaling` fields); a scaled RoPE kind is refused."""
    parameters = hf.get("rope_parameters") or {}
    scaling = hf.get("rope_scaling") or {}
    kind = parameters.get("rope_type") or scaling.get("rope_type") or scaling.get("type")
    if kind not in (None, "default"):
        _refuse("llama", "rope_type", kind, "only unscaled RoPE is implemented")
    return float(parameters.get("rope_theta", hf.get("rope_theta", 10000.0)))


def _from_llama(hf):
    kind = "llama"
    _require(hf, kind, "hidden_act", ["silu"], "the gated feed-forward here is SwiGLU")
    _require(hf, kind, "attention_bias", [False], "the attention projections have no biases")
    _require(hf, kind, "mlp_bias", [False], "the feed-forward projections have no biases")
    _require(hf, kind, "pretraining_tp", [1], "tensor-parallel slicing of the projections")
    _require(hf, kind, "attention_dropout", [0.0, 0], "dropout here also drops residual branches")
    with _fields_of(kind):
        d_model, num_heads = int(hf["hidden_size"]), int(hf["num_attention_heads"])
        head_dim = hf.get("head_dim") or d_model // num_heads
        if head_dim * num_heads != d_model:
            _refuse(kind, "head_dim", head_dim, f"heads here are hidden_size / num_attention_heads "
                    f"= {d_model // num_heads} wide")
        intermediate = int(hf["intermediate_size"])
        return TransformerConfig(
            vocab_size=int(hf["vocab_size"]),
            max_len=int(hf.get("max_position_embeddings", 2048)),
            num_layers=int(hf["num_hidden_layers"]),
            d_model=d_model,
            num_heads=num_heads,
            num_kv_heads=int(hf.get("num_key_value_heads") or num_heads),
            # SwiGLU's hidden width is 2 * d_ff // 3 (swiglu_width); this d_ff gives intermediate.
            d_ff=(3 * intermediate + 1) // 2,
            dropout=0.0,
            position="rope",
            rotary_max_wavelength=rope_theta(hf),
            norm_first=True,
            activation="swiglu",
            tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
            use_bias=False,
            layer_norm_epsilon=float(hf.get("rms_norm_eps", 1e-6)),
            norm="rms",
        )


def hf_model_type(config):
    """`"gpt2"` or `"llama"`: the Hugging Face family that computes what `config` does.

    GPT-2's activation is the tanh GELU: `"gelu_tanh"`, or `"gelu"`, the name
    older configs give it.

    Raises:
        UserInputError: naming the first field that fits neither.
    """
    gpt2 = dict(position="learned", norm="layer", activation="gelu_tanh", use_bias=True,
                norm_first=True, num_kv_heads=config.num_heads, num_segments=0)
    llama = dict(position="rope", norm="rms", activation="swiglu", use_bias=False,
                 norm_first=True, num_segments=0, dropout=0.0)
    aliases = {"activation": {"gelu": "gelu_tanh"}}

    def value_of(name):
        value = getattr(config, name)
        return aliases.get(name, {}).get(value, value)

    for model_type, wanted in (("gpt2", gpt2), ("llama", llama)):
        if all(value_of(name) == value for name, value in wanted.items()):
            return model_type
    # Name what keeps the config from the family it is closest to.
    wanted = gpt2 if config.position == "learned" else llama
    model_type = "gpt2" if wanted is gpt2 else "llama"
    field = next(name for name, value in wanted.items() if value_of(name) != value)
    raise UserInputError(
        f"this model has no Hugging Face layout: {field}={getattr(config, field)!r}, while a "
        f"{model_type} model has {field}={wanted[field]!r}"
    )


def config_to_hf(config):
    """The Hugging Face `config.json` dict of a GPT-2- or Llama-shaped `config`."""
    model_type = hf_model_type(config)
    if model_type == "gpt2":
        return {
            "model_type": "gpt2",
            "architectures": ["GPT2LMHeadModel"],
            "vocab_size": config.vocab_size,
            "n_positions": config.max_len,
            "n_layer": config.num_layers,
            "n_embd": config.d_model,
            "n_head": config.num_heads,
            "n_inner": config.d_ff,
            "activation_function": "gelu_new",
            "resid_pdrop": config.dropout,
            "embd_pdrop": config.dropout,
            "attn_pdrop": config.dropout,
            "layer_norm_epsilon": config.layer_norm_epsilon,
            "tie_word_embeddings": config.tie_embeddings,
        }
    from keras_transformer.layers.feedforward import swiglu_width

    return {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "vocab_size": config.vocab_size,
        "max_position_embeddings": config.max_len,
        "num_hidden_layers": config.num_layers,
        "hidden_size": config.d_model,
        "num_attention_heads": config.num_heads,
        "num_key_value_heads": config.num_kv_heads,
        "head_dim": config.head_dim,
        "intermediate_size": swiglu_width(config.d_ff),
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "attention_dropout": 0.0,
        "rms_norm_eps": config.layer_norm_epsilon,
        "rope_parameters": {"rope_type": "default", "rope_theta": config.rotary_max_wavelength},
        "tie_word_embeddings": config.tie_embeddings,
    }
