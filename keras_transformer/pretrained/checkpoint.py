"""Hugging Face checkpoint folders <-> this package's `GPT`: `from_pretrained`, `save_pretrained`.

A folder in the Hugging Face layout holds `config.json` and the weights as
`model.safetensors`, or as shards listed in `model.safetensors.index.json`.
The weights are read with the `safetensors` package's numpy API (bfloat16
through `ml_dtypes`): nothing is unpickled, PyTorch is not needed. Every
tensor is checked (present, expected, of the right shape) before any weight
is assigned, so a bad checkpoint is one line and never a half-loaded model.
"""

import contextlib
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
            f"where PyTorch is installed: AutoModel.from_pretrained(DIR)"
            f".save_pretrained(DIR, safe_serialization=True)"
        )
    raise UserInputError(f"{path} has no {SINGLE_FILE} or {INDEX_FILE}")


class CheckpointTensors:
    """The tensors of a checkpoint folder's safetensors files, read one at a time.

    Opening reads only the files' headers (names, shapes, dtypes); `get(name)`
    reads one tensor, so loading holds at most one tensor beside the model.
    A damaged file is a one-line `UserInputError`.
    """

    def __init__(self, path):
        self.files, self.shapes = {}, {}
        for file in weight_files(path):
            with self._open(file) as handle:
                for name in handle.keys():  # noqa: SIM118  (safe_open has no __iter__)
                    self.files[name] = file
                    self.shapes[name] = tuple(handle.get_slice(name).get_shape())

    @staticmethod
    @contextlib.contextmanager
    def _open(file):
        from safetensors import safe_open

        try:
            with safe_open(file, framework="np") as handle:
                yield handle
        except Exception as error:  # a truncated or foreign file: safetensors' own errors
            first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
            raise UserInputError(f"could not read {file} ({first})") from None

    def __contains__(self, name):
        return name in self.shapes

    def __iter__(self):
        return iter(self.shapes)

    def get(self, name):
        """The tensor `name` as a numpy array in its own dtype (bfloat16 via `ml_dtypes`)."""
        with self._open(self.files[name]) as handle:
            return handle.get_tensor(name)


def check_sizes(config, tensors, path):
    """Refuse a `config.json` that describes a bigger model than the weights hold.

    Checked on the files' headers before the model is built, so that a wrong
    size (a `vocab_size` of 10**8 in a small checkpoint) is one line, not
    gigabytes allocated first: the token embedding, a feed-forward matrix and
    (learned positions) the position embedding each hold at most all the
    values of the files, and each block at least one of their tensors.
    """
    total = sum(int(np.prod(shape)) for shape in tensors.shapes.values())
    needs = {"vocab_size x d_model": config.vocab_size * config.d_model,
             "d_model x d_ff": config.d_model * config.d_ff}
    if config.position == "learned":
        needs["max_len x d_model"] = config.max_len * config.d_model
    for what, values in needs.items():
        if values > total:
            raise UserInputError(f"{path}: config.json describes a bigger model than its weights "
                                 f"({what} = {values:,} values, the files hold {total:,})")
    blocks = max(config.num_layers, config.num_decoder_layers)
    if blocks > len(tensors.shapes):
        raise UserInputError(f"{path}: config.json describes {blocks:,} blocks, the files hold "
                             f"{len(tensors.shapes):,} tensors")


def _hf_shape(variables, in_dims):
    """The 2-D (or 1-D) shape of the checkpoint tensor that holds `variables` side by side."""
    shapes = [tuple(v.shape) for v in variables]
    if in_dims == 0:
        return (sum(int(np.prod(shape)) for shape in shapes),)
    rows = {int(np.prod(shape[:in_dims])) for shape in shapes}
    (rows,) = rows
    return (rows, sum(int(np.prod(shape)) // rows for shape in shapes))


def _plan(tensors, layout, source, skip=(), prefixes=PREFIXES, absolute=("lm_head.weight",)):
    """`[(key, variables, transposed, in_dims)]`: every tensor of `layout` found in the
    checkpoint with its shape checked, and no tensor left over (but `skip`), before any
    weight is read or assigned.

    The body's tensors are named with the file's prefix, the first of `prefixes[1:]`
    that some tensor starts with, else none ("transformer.h.0..." or "h.0..."); the
    names in `absolute` (the output heads) never have one.
    """
    body = next((prefix for prefix in prefixes[1:] if any(key.startswith(prefix)
                                                          for key in tensors)), "")
    plan, used = [], set(skip)
    for name, variables, transposed, in_dims in layout:
        key = name if name in absolute else body + name
        if key not in tensors:
            raise UserInputError(f"{source}: the tensor {key!r} is missing")
        used.add(key)
        expected = _hf_shape(variables, in_dims)
        shape = tensors.shapes[key]
        if (shape[::-1] if transposed else shape) != expected:
            wanted = expected[::-1] if transposed else expected
            raise UserInputError(
                f"{source}: the tensor {key!r} has shape {list(shape)}, this model's "
                f"config needs {list(wanted)}"
            )
        plan.append((key, variables, transposed, in_dims))
    unexpected = sorted(key for key in tensors if key not in used and not key.endswith(BUFFERS))
    if unexpected:
        raise UserInputError(f"{source}: unexpected tensor {unexpected[0]!r} "
                             f"({len(unexpected)} in all) that this model has no place for")
    return plan


def _assign(tensors, plan):
    """Read each planned tensor and assign its parts to its variables, one tensor at a time."""
    for key, variables, transposed, in_dims in plan:
        value = tensors.get(key)
        value = value.T if transposed else value
        rows = value.shape[0] if in_dims else 1
        splits = np.cumsum([int(np.prod(v.shape)) // rows for v in variables])
        for variable, part in zip(variables, np.split(value, splits[:-1], axis=-1), strict=True):
            variable.assign(part.reshape(variable.shape).astype(_numpy_dtype(variable.dtype),
                                                                copy=False))


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
    model_type = hf.get("model_type")
    if model_type == "bert":
        from keras_transformer.pretrained.bert import bert_from_pretrained

        return bert_from_pretrained(path, hf, dtype)
    if model_type == "t5":
        from keras_transformer.pretrained.t5 import t5_from_pretrained

        return t5_from_pretrained(path, hf, dtype)
    config = TransformerConfig.from_hf(hf)
    tensors = CheckpointTensors(path)
    check_sizes(config, tensors, path)
    skip = ()
    if config.tie_embeddings and "lm_head.weight" in tensors:  # some tied files store it too
        embedding = next((name for name in ("model.embed_tokens.weight", "embed_tokens.weight",
                                            "transformer.wte.weight", "wte.weight")
                          if name in tensors), None)
        if embedding is None or not np.array_equal(tensors.get("lm_head.weight"),
                                                   tensors.get(embedding)):
            raise UserInputError(f"{path}: lm_head.weight differs from the token embedding, "
                                 "but config.json says tie_word_embeddings")
        skip = ("lm_head.weight",)
    model = GPT(config, name=os.path.basename(os.path.normpath(path)) or "gpt", dtype=dtype)
    _assign(tensors, _plan(tensors, model.checkpoint_weights(hf["model_type"]), path, skip))
    return model


def _numpy_dtype(name):
    import ml_dtypes

    return ml_dtypes.bfloat16 if name == "bfloat16" else np.dtype(name)


def save_pretrained(model, tokenizer, path):
    """Write a GPT-2- or Llama-shaped `GPT` and its tokenizer as a Hugging Face folder.

    The folder holds `config.json`, `model.safetensors` (float32, or the
    model's variable dtype) and, for a Hugging Face byte-level BPE tokenizer,
    `tokenizer.json` + `tokenizer_config.json`, with the tokenizer's bos, eos
    and pad ids in `config.json`. It loads with `transformers`'
    `AutoModelForCausalLM.from_pretrained(path)` and
    `AutoTokenizer.from_pretrained(path)`, and with this package's
    `from_pretrained` and `load_tokenizer`. Everything is checked before
    anything is written, and each file appears whole or not at all.

    Args:
        model: a `GPT` whose config has a Hugging Face layout (learned or
            rotary positions; see `hf_model_type`).
        tokenizer: a `ByteLevelBPETokenizer` (e.g. the checkpoint's own,
            from `load_tokenizer`), or `None` for the weights and config only.
            This package's char and SentencePiece tokenizers have no
            Hugging Face form and are refused.
        path: the folder to write (made if missing; files there of the same
            names are replaced).

    Raises:
        UserInputError: the model is not a `GPT`, its config fits neither
            layout, or the tokenizer cannot be written or does not fit the
            model (one line naming what).

    Example:

    >>> model = from_pretrained("checkpoints/gpt2")
    >>> save_pretrained(model, load_tokenizer("checkpoints/gpt2"), "checkpoints/gpt2-copy")
    """
    import shutil
    import tempfile

    import keras
    from safetensors.numpy import save_file

    from keras_transformer.data.hf_tokenizers import ByteLevelBPETokenizer

    if not isinstance(model, GPT):
        raise UserInputError(f"save_pretrained writes GPT models, not {type(model).__name__}")
    model_type = hf_model_type(model.config)
    hf = config_to_hf(model.config)
    if tokenizer is not None:
        if not isinstance(tokenizer, ByteLevelBPETokenizer):
            raise UserInputError(
                f"a {getattr(tokenizer, 'kind', type(tokenizer).__name__)} tokenizer has no "
                "Hugging Face form; pass tokenizer=None to write the model alone"
            )
        if tokenizer.vocab_size > model.config.vocab_size:
            raise UserInputError(
                f"the tokenizer has {tokenizer.vocab_size} ids but the model only "
                f"{model.config.vocab_size}"
            )
        for role in ("bos", "eos", "pad"):
            if getattr(tokenizer, f"{role}_id") is not None:
                hf[f"{role}_token_id"] = getattr(tokenizer, f"{role}_id")
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
    path = os.fspath(path)
    try:
        os.makedirs(path, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".partial-", dir=path)
    except OSError as error:
        raise UserInputError(f"cannot write {path}: {error.strerror or error}") from None
    try:
        save_file(tensors, os.path.join(staging, SINGLE_FILE), metadata={"format": "pt"})
        with open(os.path.join(staging, "config.json"), "w", encoding="utf-8") as handle:
            json.dump(hf, handle, indent=2)
        if tokenizer is not None:
            tokenizer.save(os.path.join(staging, "tokenizer.json"))
        for name in sorted(os.listdir(staging), key=lambda n: n == SINGLE_FILE):
            os.replace(os.path.join(staging, name), os.path.join(path, name))
    except OSError as error:
        raise UserInputError(f"cannot write {path}: {error.strerror or error}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
