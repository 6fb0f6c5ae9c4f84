"""Hugging Face checkpoint folders <-> this package's `GPT`: `from_pretrained`, `save_pretrained`.

A folder in the Hugging Face layout holds `config.json` and the weights as
`model.safetensors`, or as shards listed in `model.safetensors.index.json`.
The weights are read with the `safetensors` package's numpy API (bfloat16
through `ml_dtypes`): nothing is unpickled, PyTorch is not needed. Every
tensor is checked (present, expected, of the right shape) before any weight
is assigned, so a bad checkpoint is one line and never a half-loaded model.
"""

import json
import os

import numpy as np

from keras_transformer.config import TransformerConfig
from keras_transformer.errors import UserInputError
from keras_transformer.models.gpt import GPT
from keras_transformer.pretrained.hf_config import config_to_hf, hf_model_type

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
PICKLES = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack")
PREFIXES = ("", "transformer.", "model.")
# Buffers some checkpoints carry that are not weights (causal masks, RoPE frequencies).
BUFFERS = (".attn.bias", ".attn.masked_bias", ".rotary_emb.inv_freq")


def read_hf_config(path):
    """The dict of `path/config.json`; a missing or broken file is one line."""
    if not os.path.isdir(path):
        raise UserInputError(f"{path} is not a directory")
    config_path = os.path.join(path, "config.json")
    try:
        with open(config_path, encoding="utf-8") as handle:
            hf = json.load(handle)
    except FileNotFoundError:
        raise UserInputError(f"{path} has no config.json: not a Hugging Face checkpoint") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise UserInputError(f"{config_path} is not valid JSON ({error})") from None
    if not isinstance(hf, dict):
        raise UserInputError(f"{config_path} is not a JSON object")
    return hf


def weight_files(path):
    """The safetensors files of a checkpoint folder (one, or the shards of its index)."""
    if os.path.isfile(os.path.join(path, SINGLE_FILE)):
        return [os.path.join(path, SINGLE_FILE)]
    index_path = os.path.join(path, INDEX_FILE)
    if os.path.isfile(index_path):
        try:
            with open(index_path, encoding="utf-8") as handle:
                shards = sorted(set(json.load(handle)["weight_map"].values()))
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
            raise UserInputError(f"{index_path} is not a safetensors index") from None
        missing = [shard for shard in shards if not os.path.isfile(os.path.join(path, shard))]
        if missing:
            raise UserInputError(f"{path} lacks the shard {missing[0]} that {INDEX_FILE} lists")
        return [os.path.join(path, shard) for shard in shards]
    pickled = [name for name in PICKLES if os.path.exists(os.path.join(path, name))]
    if pickled:
        raise UserInputError(
            f"{path} holds only {pickled[0]}, which this package never unpickles; convert it "
            f"where PyTorch is installed: AutoModelForCausalLM.from_pretrained(DIR)"
            f".save_pretrained(DIR, safe_serialization=True)"
        )
    raise UserInputError(f"{path} has no {SINGLE_FILE} or {INDEX_FILE}")


def read_tensors(path):
    """Every tensor of a checkpoint folder, by name, as numpy arrays in their own dtypes."""
    from safetensors import safe_open

    tensors = {}
    for file in weight_files(path):
        try:
            with safe_open(file, framework="np") as handle:
                for name in handle.keys():  # noqa: SIM118  (safe_open has no __iter__)
                    tensors[name] = handle.get_tensor(name)
        except Exception as error:  # a truncated or foreign file: safetensors' own errors
            first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
            raise UserInputError(f"could not read {file} ({first})") from None
    return tensors


def _hf_shape(variables, in_dims):
    """The 2-D (or 1-D) shape of the checkpoint tensor that holds `variables` side by side."""
    shapes = [tuple(v.shape) for v in variables]
    if in_dims == 0:
        return (sum(int(np.prod(shape)) for shape in shapes),)
    rows = {int(np.prod(shape[:in_dims])) for shape in shapes}
    (rows,) = rows
    return (rows, sum(int(np.prod(shape)) // rows for shape in shapes))


def _place(tensors, layout, source):
    """`[(variable, value)]` for every variable of `layout`; every check before any assignment."""
    # The body's tensors are named with the prefix of the file ("transformer.h.0..." or
    # "h.0..."); the output head never has one.
    body = next((prefix for prefix in PREFIXES[1:] if any(key.startswith(prefix)
                                                          for key in tensors)), "")
    placed, used = [], set()
    for name, variables, transposed, in_dims in layout:
        key = name if name == "lm_head.weight" else body + name
        if key not in tensors:
            raise UserInputError(f"{source}: the tensor {key!r} is missing")
        used.add(key)
        tensor = tensors[key]
        expected = _hf_shape(variables, in_dims)
        shape = tensor.shape[::-1] if transposed else tensor.shape
        if tuple(shape) != expected:
            wanted = expected[::-1] if transposed else expected
            raise UserInputError(
                f"{source}: the tensor {key!r} has shape {list(tensor.shape)}, this model's "
                f"config needs {list(wanted)}"
            )
        value = tensor.T if transposed else tensor
        rows = value.shape[0] if in_dims else 1
        splits = np.cumsum([int(np.prod(v.shape)) // rows for v in variables])
        for variable, part in zip(variables, np.split(value, splits[:-1], axis=-1), strict=True):
            placed.append((variable, part.reshape(variable.shape)))
    unexpected = sorted(key for key in tensors if key not in used and not key.endswith(BUFFERS))
    if unexpected:
        raise UserInputError(f"{source}: unexpected tensor {unexpected[0]!r} "
                             f"({len(unexpected)} in all) that this model has no place for")
    return placed


def from_pretrained(path, dtype=None):
    """A `GPT` of this package with the weights of a Hugging Face checkpoint folder.

    Args:
        path: a folder with `config.json` and `model.safetensors` (or shards
            with `model.safetensors.index.json`); `model_type` `gpt2` or
            `llama`.
        dtype: the model's dtype policy (`None`: float32 whatever the
            checkpoint's dtype; `"bfloat16"` keeps bfloat16 weights).

    Returns:
        A `GPT` whose logits equal the checkpoint's model's.

    Raises:
        UserInputError: one line, for any checkpoint that cannot be loaded
            exactly (unknown model type, unsupported config field, missing,
            unexpected or misshapen tensor, pickled or damaged files).

    Example:

    >>> model = from_pretrained("checkpoints/gpt2")
    >>> model(np.array([[464, 2068]])).shape
    (1, 2, 50257)
    """
    hf = read_hf_config(path)
    config = TransformerConfig.from_hf(hf)
    tensors = read_tensors(path)
    head = tensors.get("lm_head.weight")
    if config.tie_embeddings and head is not None:  # some tied checkpoints store the head too
        embedding = tensors.get("model.embed_tokens.weight", tensors.get(
            "transformer.wte.weight", tensors.get("wte.weight", tensors.get("embed_tokens.weight"))))
        if embedding is None or not np.array_equal(head, embedding):
            raise UserInputError(f"{path}: lm_head.weight differs from the token embedding, "
                                 "but config.json says tie_word_embeddings")
        del tensors["lm_head.weight"]
    model = GPT(config, name=os.path.basename(os.path.normpath(path)) or "gpt", dtype=dtype)
    placed = _place(tensors, model.checkpoint_weights(hf["model_type"]), path)
    for variable, value in placed:
        variable.assign(value.astype(_numpy_dtype(variable.dtype)))
    return model


def _numpy_dtype(name):
    import ml_dtypes

    return ml_dtypes.bfloat16 if name == "bfloat16" else np.dtype(name)


def save_pretrained(model, path):
    """Write a GPT-2- or Llama-shaped `GPT` as a Hugging Face checkpoint folder.

    The folder holds `config.json` and `model.safetensors` (float32, or the
    model's variable dtype), and loads with `transformers`'
    `AutoModelForCausalLM.from_pretrained(path)` and with `from_pretrained`.

    Raises:
        UserInputError: the model is not a `GPT`, or its config fits neither
            layout (one line naming the field).
    """
    import keras
    from safetensors.numpy import save_file

    if not isinstance(model, GPT):
        raise UserInputError(f"save_pretrained writes GPT models, not {type(model).__name__}")
    model_type = hf_model_type(model.config)
    hf = config_to_hf(model.config)
    tensors = {}
    for name, variables, transposed, in_dims in model.checkpoint_weights(model_type):
        values = [keras.ops.convert_to_numpy(variable) for variable in variables]
        if in_dims == 0:
            value = np.concatenate([v.reshape(-1) for v in values])
        else:
            rows = _hf_shape(variables, in_dims)[0]
            value = np.concatenate([v.reshape(rows, -1) for v in values], axis=-1)
        prefix = "" if name == "lm_head.weight" else {"gpt2": "transformer.",
                                                       "llama": "model."}[model_type]
        tensors[prefix + name] = np.ascontiguousarray(value.T if transposed else value)
    hf["torch_dtype"] = hf["dtype"] = str(next(iter(tensors.values())).dtype)
    os.makedirs(path, exist_ok=True)
    partial = os.path.join(path, SINGLE_FILE + ".partial")
    save_file(tensors, partial, metadata={"format": "pt"})
    with open(os.path.join(path, "config.json"), "w", encoding="utf-8") as handle:
        json.dump(hf, handle, indent=2)
    os.replace(partial, os.path.join(path, SINGLE_FILE))
