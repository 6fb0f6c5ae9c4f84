"""`load_model`: a `.keras` file of this package, also one written by an earlier version.

Earlier versions saved the same weights at other places:

- until the attention layers were flattened, each block's attention was a
  wrapper holding the `GroupedQueryAttention` as `mha`, so its weights were
  saved under `.../self_attention/mha/...` instead of `.../self_attention/...`;
- until the model classes, a GPT was a plain functional model of the same
  layers, with no `TransformerConfig` of its own (its run directory's
  `config.json` holds it).

A file that Keras cannot load as it is gets its model rebuilt from its config
(or the one given), and its weights read from their earlier paths. Anything
else stops with one line: `UserInputError`.
"""

import json
import os
import tempfile
import zipfile

import h5py
import keras

from keras_transformer.errors import UserInputError
from keras_transformer.models.bert import BERT
from keras_transformer.models.gpt import GPT
from keras_transformer.models.seq2seq import Seq2Seq

FAMILIES = {f"keras_transformer>{family.__name__}": family for family in (GPT, BERT, Seq2Seq)}

# (earlier, today) pieces of the weight paths, applied in order.
WEIGHT_PATH_CHANGES = (("/mha/", "/"),)


def load_model(path, config=None):
    """The model saved at `path` (`keras.saving.load_model(path, safe_mode=True)`).

    A file written by an earlier version of the package is rebuilt with
    today's layers (see the module docstring); the outputs are the same.

    Args:
        path: a `.keras` file.
        config: the `TransformerConfig` of a file written before the model
            classes (a plain functional GPT); a run directory's
            `config.json` has it.

    Returns:
        The model: a `GPT`, `BERT`, `Seq2Seq` or whatever the file holds.

    Raises:
        UserInputError: one line, when the file cannot be loaded either way.
    """
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as error:  # a truncated zip, foreign file, earlier layout ...
        problem = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
    model = _rebuild(path, config)
    if model is None:
        raise UserInputError(f"could not load {path} ({problem})")
    return model


def _rebuild(path, config):
    """The model of an earlier version's file, or `None` if it is not one."""
    try:
        with zipfile.ZipFile(path) as archive:
            saved = json.loads(archive.read("config.json"))
            weights = archive.read("model.weights.h5")
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    family = FAMILIES.get(saved.get("registered_name"))
    try:
        if family is not None:
            model = family.from_config(saved["config"])
        elif saved.get("class_name") == "Functional" and config is not None:
            model = GPT(config, name=saved.get("config", {}).get("name", "gpt"))
        else:
            return None
    except (KeyError, TypeError, ValueError):
        return None
    with tempfile.TemporaryDirectory() as scratch:
        earlier = os.path.join(scratch, "earlier.h5")
        with open(earlier, "wb") as handle:
            handle.write(weights)
        today = os.path.join(scratch, "today.weights.h5")
        try:
            _move_weights(earlier, today)
            model.load_weights(today)
        except (OSError, KeyError, ValueError):
            raise UserInputError(
                f"{path} was written by an earlier version of keras_transformer and its weights "
                f"do not fit its config; train the run again"
            ) from None
    return model


def _move_weights(earlier, today):
    """Copy the model's weights (not the optimizer's) of `earlier` to today's paths."""

    def new_path(name):
        name = f"/{name}/"
        for old, new in WEIGHT_PATH_CHANGES:
            name = name.replace(old, new)
        return name.strip("/")

    with h5py.File(earlier, "r") as source, h5py.File(today, "w") as target:
        def copy(name, item):
            if name.split("/")[0] == "optimizer":
                return
            if isinstance(item, h5py.Dataset):
                copied = target.create_dataset(new_path(name), data=item[()])
            else:
                copied = target.require_group(new_path(name))
            copied.attrs.update(item.attrs)

        source.visititems(copy)
