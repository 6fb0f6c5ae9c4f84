"""`python -m keras_transformer.inspect CONFIG`: the sizes of an architecture.

    python -m keras_transformer.inspect gpt2-small
    python -m keras_transformer.inspect runs/gpt-20260101-120000        # a run directory
    python -m keras_transformer.inspect runs/gpt-20260101-120000/config.json

Prints layers, heads, kv heads, d_model, d_ff, the parameter count (computed
from the config, without building the model) and the bytes the KV cache
holds per generated token.
"""

import json
import os
import sys

from keras_transformer.cli.common import ArgumentParser, run
from keras_transformer.config import PRESETS, TransformerConfig
from keras_transformer.errors import UserInputError

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def load_config(spec):
    """A `TransformerConfig` from a preset name, a run directory or a config.json."""
    if spec in PRESETS:
        return TransformerConfig.preset(spec)
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
    if isinstance(values, dict) and isinstance(values.get("settings"), dict):
        if values["settings"].get("arch", values.get("arch")) != "gpt":
            raise UserInputError(f"{path} is not the config of a Transformer run")
        values = values["settings"].get("model")
    if not isinstance(values, dict):
        raise UserInputError(f"{path} holds no model config")
    return TransformerConfig.from_dict(values)


def parameter_count(config):
    """Parameters counted from the config alone.

    A config with segments (`num_segments > 0`, the BERT presets) is counted as
    `build_bert`'s backbone: plus the segment table, the embedding norm and the
    pooler, without the masked-LM and sentence-pair heads (the published
    BERT count). Any other config is counted as `build_gpt(config)`.
    """
    d, bias = config.d_model, config.use_bias
    kv_width = config.num_kv_heads * config.head_dim
    norm = 2 * d if config.norm == "layer" else d

    def dense(n_in, n_out):
        return n_in * n_out + (n_out if bias else 0)

    attention = 2 * dense(d, d) + 2 * dense(d, kv_width)
    if config.activation == "swiglu":
        hidden = max(1, 2 * config.d_ff // 3)
        ffn = 2 * dense(d, hidden) + dense(hidden, d)
    else:
        ffn = dense(d, config.d_ff) + dense(config.d_ff, d)
    total = config.vocab_size * d
    if config.position == "learned":
        total += config.max_len * d
    total += config.num_layers * (attention + ffn + 2 * norm)
    if config.norm_first:
        total += norm
    if config.num_segments:
        return total + config.num_segments * d + norm + dense(d, d)
    if not config.tie_embeddings:
        total += d * config.vocab_size
    return total


def describe(config, dtype="float32"):
    """The lines `inspect` prints for `config`."""
    per_token = config.kv_cache_bytes_per_token(DTYPE_BYTES[dtype])
    attention = {
        config.num_heads: "multi-head",
        1: "multi-query",
    }.get(config.num_kv_heads, "grouped-query")
    rows = [
        ("layers", f"{config.num_layers}"),
        ("heads", f"{config.num_heads}"),
        ("kv heads", f"{config.num_kv_heads} ({attention} attention)"),
        ("d_model", f"{config.d_model}"),
        ("head_dim", f"{config.head_dim}"),
        ("d_ff", f"{config.d_ff}" + (" (SwiGLU hidden width "
                                      f"{max(1, 2 * config.d_ff // 3)})"
                                      if config.activation == "swiglu" else "")),
        ("vocab_size", f"{config.vocab_size}"),
        ("max_len", f"{config.max_len}"),
        ("position", config.position),
        ("norm", f"{config.norm} ({'pre' if config.norm_first else 'post'}-norm)"),
        ("activation", config.activation),
        ("attention", config.attention),
        ("parameters", f"{parameter_count(config):,}"),
        ("KV cache", f"{per_token:,} bytes/token ({dtype}); "
                     f"{per_token * config.max_len / 2**20:,.1f} MiB per sequence of {config.max_len}"),
    ]
    return [f"{name:<12} {value}" for name, value in rows]


def build_parser():
    parser = ArgumentParser(
        prog="python -m keras_transformer.inspect",
        description="Print the sizes of a model architecture: a preset name, a run "
        "directory or its config.json.",
    )
    parser.add_argument("config", metavar="CONFIG",
                        help=f"a preset ({', '.join(PRESETS)}), a run directory or a config.json")
    parser.add_argument("--dtype", choices=sorted(DTYPE_BYTES), default="float32",
                        help="dtype of the cached keys and values")
    return parser


def main(argv=None):
    def body():
        args = build_parser().parse_args(argv)
        config = load_config(args.config)
        sys.stdout.write("\n".join(describe(config, args.dtype)) + "\n")
        return 0

    return run(body, "inspect")


if __name__ == "__main__":
    main()
