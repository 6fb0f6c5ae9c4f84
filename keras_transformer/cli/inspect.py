"""`python -m keras_transformer.inspect CONFIG`: the sizes of an architecture.

    python -m keras_transformer.inspect gpt2-small
    python -m keras_transformer.inspect t5-small
    python -m keras_transformer.inspect runs/gpt-20260101-120000        # a run directory
    python -m keras_transformer.inspect runs/gpt-20260101-120000/config.json
    python -m keras_transformer.inspect my-config.json --arch bert      # a bare TransformerConfig
    python -m keras_transformer.inspect checkpoints/gpt2                # a Hugging Face checkpoint

Prints the family (gpt, bert or seq2seq), layers, heads, kv heads, d_model,
d_ff, the parameter count and, for a GPT or an encoder-decoder, the bytes the
KV cache holds per token. The count is the built model's: `build_gpt`, `build_bert` or
`build_seq2seq` of the config, `count_params()` (a BERT also shows its
backbone without the pretraining heads, an encoder-decoder its encoder,
decoder and shared embedding). Building gpt2-small, bert-base or t5-small
takes a few seconds on a CPU.
"""

import json
import os
import sys

from keras_transformer.cli.common import ArgumentParser, run
from keras_transformer.config import PRESETS, TransformerConfig
from keras_transformer.errors import UserInputError

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
FAMILIES = ("gpt", "bert", "seq2seq")
# The model family (builder) of every preset in `keras_transformer.config.PRESETS`.
PRESET_FAMILIES = {
    "gpt-mini": "gpt",
    "gpt2-small": "gpt",
    "bert-mini": "bert",
    "bert-base": "bert",
    "seq2seq-mini": "seq2seq",
    "t5-small": "seq2seq",
}
FAMILY_NAMES = {"gpt": "decoder-only", "bert": "encoder-only", "seq2seq": "encoder-decoder"}


def preset_family(name):
    """The family of preset `name`: `"gpt"`, `"bert"` or `"seq2seq"`."""
    if name not in PRESET_FAMILIES:
        raise UserInputError(f"preset {name!r} has no family in cli/inspect.py's PRESET_FAMILIES")
    return PRESET_FAMILIES[name]


def load_config(spec, arch=None):
    """A `TransformerConfig` and its family from a preset, a run directory or a config.json.

    `spec` is a preset name (its family is `PRESET_FAMILIES[spec]`), a run
    directory of `train.py` or its `config.json` (the family is the run's
    `arch`), or a JSON file holding a bare `TransformerConfig.to_dict()`,
    which says nothing about its family: then `arch` must give it. An `arch`
    that contradicts the preset's or the run's family is an error.

    Returns `(config, family)`.
    """
    if arch is not None and arch not in FAMILIES:
        raise UserInputError(f"--arch must be one of {', '.join(FAMILIES)}, got {arch!r}")
    if spec in PRESETS:
        config, family = TransformerConfig.preset(spec), preset_family(spec)
        source = f"preset {spec}"
    else:
        config, family, source = _read_config_file(spec)
    if family is None:
        if arch is None:
            raise UserInputError(
                f"{spec} holds a bare model config without its family; "
                f"pass --arch {'|'.join(FAMILIES)}"
            )
        family = arch
    elif arch is not None and arch != family:
        raise UserInputError(f"--arch {arch} contradicts {source}, a {family} config")
    return config, family


def _read_config_file(spec):
    path = os.path.join(spec, "config.json") if os.path.isdir(spec) else spec
    if not os.path.isfile(path):
        raise UserInputError(
            f"{spec!r} is neither a preset ({', '.join(PRESETS)}) nor a config.json or run directory"
        )
    try:
        with open(path, encoding="utf-8") as handle:
            values = json.load(handle)
    except (OSError, ValueError) as error:
        raise UserInputError(f"could not read {path} ({error})") from None
    family = None
    if isinstance(values, dict) and "model_type" in values:  # a Hugging Face checkpoint's
        family = {"bert": "bert", "t5": "seq2seq"}.get(values["model_type"], "gpt")
        return TransformerConfig.from_hf(values), family, f"the Hugging Face config {path}"
    if isinstance(values, dict) and isinstance(values.get("settings"), dict):
        family = values["settings"].get("arch", values.get("arch"))
        if family == "charrnn":
            raise UserInputError(
                f"{path} is the config of a charrnn run, not of a Transformer "
                f"(inspect describes {', '.join(FAMILIES)} configs)"
            )
        if family not in FAMILIES:
            raise UserInputError(f"{path} is not the config of a Transformer run (arch {family!r})")
        values = values["settings"].get("model")
    if not isinstance(values, dict):
        raise UserInputError(f"{path} holds no model config")
    return TransformerConfig.from_dict(values), family, f"the run config {path}"


def build_model(config, family, initialize=False):
    """The model `inspect` counts: `build_gpt`, `build_bert` or `build_seq2seq` of `config`.

    With `initialize=False` the model is built in a `keras.StatelessScope`:
    every layer and variable is made, with its shape, but no initial values
    are computed or stored, which is all counting needs (gpt2-small would
    otherwise fill 500 MB). `initialize=True` builds it as usual.
    """
    import contextlib

    import keras

    from keras_transformer.models import build_bert, build_gpt, build_seq2seq

    builders = {"gpt": build_gpt, "bert": build_bert, "seq2seq": build_seq2seq}
    if family not in builders:
        raise UserInputError(f"unknown model family {family!r}; choose one of {', '.join(FAMILIES)}")
    with contextlib.nullcontext() if initialize else keras.StatelessScope():
        return builders[family](config)


def family_of(config, family=None):
    """`family`, or with `None` the family of the preset `config` equals (else an error)."""
    if family is not None:
        return family
    matches = [name for name in PRESETS if TransformerConfig.preset(name) == config]
    if not matches:
        raise UserInputError(
            f"the family of a config that is no preset must be given ({', '.join(FAMILIES)})"
        )
    return preset_family(matches[0])


def parameter_count(config, family=None):
    """The parameters of the built model: `build_<family>(config).count_params()`.

    `family=None` is the family of the preset `config` equals.
    """
    return build_model(config, family_of(config, family)).count_params()


def _parameters(config, family, model):
    total = model.count_params()
    if family == "bert":
        from keras_transformer.models import backbone_params

        return (f"{total:,} (backbone {backbone_params(model):,} without the masked-LM "
                "and sentence-pair heads)")
    if family == "seq2seq":
        parts = model.parameter_parts()
        shown = [f"{name} {count:,}" for name, count in parts.items()
                 if count or name in ("encoder", "decoder")]
        return f"{total:,} ({' + '.join(shown)})"
    return f"{total:,}"


def describe(config, dtype="float32", family=None, model=None):
    """The lines `inspect` prints for `config` of `family` (gpt, bert or seq2seq).

    `family=None` takes the family of the preset `config` equals (an error
    for any other config). `model` is the built model to count; `None`
    builds it (`build_model(config, family)`).
    """
    family = family_of(config, family)
    if model is None:
        model = build_model(config, family)
    attention = {
        config.num_heads: "multi-head",
        1: "multi-query",
    }.get(config.num_kv_heads, "grouped-query")
    layers = f"{config.num_layers}"
    if family == "seq2seq":
        layers = f"{config.num_layers} encoder + {config.num_decoder_layers} decoder"
    if family == "gpt":
        per_token = config.kv_cache_bytes_per_token(DTYPE_BYTES[dtype])
        kv_cache = (f"{per_token:,} bytes/token ({dtype}); "
                    f"{per_token * config.max_len / 2**20:,.1f} MiB per sequence of {config.max_len}")
    elif family == "bert":
        kv_cache = "none (an encoder-only model does not decode)"
    else:  # the decoder's self-attention cache, and the cross-attention keys and values
        per_token = (2 * config.num_decoder_layers * config.num_kv_heads * config.head_dim
                     * DTYPE_BYTES[dtype])
        kv_cache = (f"{per_token:,} bytes per target token, and {per_token:,} per source token "
                    f"for the cross-attention keys and values ({dtype})")
    rows = [
        ("family", f"{family} ({FAMILY_NAMES[family]})"),
        ("layers", layers),
        ("heads", f"{config.num_heads}"),
        ("kv heads", f"{config.num_kv_heads} ({attention} attention)"),
        ("d_model", f"{config.d_model}"),
        ("head_dim", f"{config.head_dim}"),
        ("d_ff", f"{config.d_ff}" + (" (SwiGLU hidden width "
                                      f"{max(1, 2 * config.d_ff // 3)})"
                                      if config.activation == "swiglu" else "")),
        ("vocab_size", f"{config.vocab_size}"),
        ("max_len", f"{config.max_len}"),
        ("position", config.position + (f" (base {config.rotary_max_wavelength:g})"
                                        if config.position == "rope" else "")),
        ("norm", f"{config.norm} ({'pre' if config.norm_first else 'post'}-norm)"),
        ("activation", config.activation),
        ("attention", config.attention),
        ("parameters", _parameters(config, family, model)),
        ("KV cache", kv_cache),
        ("preset", next((f"same as {name}" for name in PRESETS
                         if TransformerConfig.preset(name) == config), "none equal")),
    ]
    return [f"{name:<12} {value}" for name, value in rows]


def build_parser():
    parser = ArgumentParser(
        prog="python -m keras_transformer.inspect",
        description="Print the sizes of a model architecture: a preset name, a run "
        "directory or its config.json. The parameters are counted on the built model.",
    )
    parser.add_argument("config", metavar="CONFIG",
                        help=f"a preset ({', '.join(PRESETS)}), a run directory, a Hugging Face "
                        "checkpoint folder (gpt2, llama; hf://REPO_ID downloads one) or a config.json")
    parser.add_argument("--arch", choices=FAMILIES, default=None,
                        help="the model family of a bare TransformerConfig JSON file "
                        "(a preset or a run directory knows its own)")
    parser.add_argument("--dtype", choices=sorted(DTYPE_BYTES), default="float32",
                        help="dtype of the cached keys and values (GPT)")
    return parser


def main(argv=None):
    def body():
        args = build_parser().parse_args(argv)
        from keras_transformer.pretrained.hub import resolve_checkpoint

        args.config = resolve_checkpoint(args.config)
        config, family = load_config(args.config, args.arch)
        sys.stdout.write("\n".join(describe(config, args.dtype, family)) + "\n")
        return 0

    return run(body, "inspect")


if __name__ == "__main__":
    main()
