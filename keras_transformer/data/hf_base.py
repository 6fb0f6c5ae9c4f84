"""What the Hugging Face tokenizers share: roles, loading, encoding, saving, graph modules.

`ByteLevelBPETokenizer` (GPT-2, Llama 3), `WordPieceTokenizer` (BERT) and
`T5SentencePieceTokenizer` (T5) each reproduce one `tokenizers` pipeline as
TensorFlow ops in a keras-hub layer (`make_layer()`). Around that layer they
work alike, and `HuggingFaceTokenizer` does it once:

- the special tokens: each role (`eos`, `cls`, ...) is an added token, one
  missing from the vocabulary getting the next free id as in `transformers`
  (`_with_roles`); `vocab_size`, `ordinary_ids`, `specials`, `special_id`;
- loading: `from_file(tokenizer.json)` and `from_directory(folder)`
  (`tokenizer.json` first, else the class's older files), errors one line
  naming the file;
- encoding: one layer per set of options, built eagerly even when first
  asked for inside `tf.data`, and a `tf.function` over it for
  `encode` / `encode_batch`;
- `decode`'s skipping of special tokens and `transformers`' clean-up, and
  `save`'s `tokenizer_config.json`.

`ExactLayerMixin` gives the keras-hub layers the same `tokenize` (a string
or a batch, invalid UTF-8 read as U+FFFD, added tokens cut out first) and
`detokenize`, and `HuggingFaceGraphTokenizer` is the `tf.Module` that lets a
SavedModel hold any of them.

Example:

>>> tokenizer = load_tokenizer("checkpoints/bert-base-uncased")
>>> isinstance(tokenizer, HuggingFaceTokenizer), tokenizer.special_id("[MASK]")
(True, 103)
"""

import os

import numpy as np
import tensorflow as tf

from keras_transformer.data import hf_files
from keras_transformer.data.hf_ops import (
    TRANSFORMERS_CLEANUP,
    ragged_ids,
    replace_literals,
    split_added_tokens,
    valid_utf8,
)
from keras_transformer.errors import UserInputError


class ExactLayerMixin:
    """`tokenize` and `detokenize` for the keras-hub layers of the Hugging Face tokenizers.

    Put first among the bases of a keras-hub tokenizer layer. The layer
    sets `_added` (`{content: id}` of the added tokens), `added_table` (a
    table of the same), `token_table` (int32 id -> token) and
    `_clean_up_spaces`, and defines `_encode_free(strings)` (the ids of text
    holding no added token) and `_join_tokens(tokens)` (the decoded text of
    ragged tokens `[batch, (tokens)]`); or overrides `_tokenize_valid` /
    `detokenize`.

    The two methods are not converted by AutoGraph (they hold no
    tensor-dependent Python control flow): tracing them inside a
    `tf.function` or `tf.data` is seconds faster.
    """

    @tf.autograph.experimental.do_not_convert
    def tokenize(self, inputs):
        """int32 ids: `[None]` for a string, ragged `[batch, None]` for strings `[batch]`."""
        with tf.device("cpu"):
            text = tf.convert_to_tensor(inputs, tf.string)
            scalar = text.shape.rank == 0
            ids = self._tokenize_valid(valid_utf8(tf.reshape(text, [-1])))
            return ids[0] if scalar else ids

    def _tokenize_valid(self, text):
        """int32 ids `[n, (ids)]` of valid UTF-8 strings `[n]`."""
        return split_added_tokens(text, list(self._added), self.added_table, self._encode_free)

    @tf.autograph.experimental.do_not_convert
    def detokenize(self, inputs):
        """Text of int ids `[batch, time]` (or ragged), as `transformers`' `decode`.

        Ids without a token are left out.
        """
        with tf.device("cpu"):
            tokens = tf.ragged.map_flat_values(self.token_table.lookup, ragged_ids(inputs))
            text = self._join_tokens(tf.ragged.boolean_mask(tokens, tokens != ""))
            return replace_literals(text, TRANSFORMERS_CLEANUP) if self._clean_up_spaces else text


class HuggingFaceTokenizer:
    """The base of the Hugging Face tokenizers: special tokens, loading, encoding, saving.

    A subclass sets `kind`, `roles` (the special-token roles, e.g. `("eos",
    "pad", "unk")`), `default_tokens` (`{role: token}` when the files name
    none) and `other_files` (what `from_directory` reads without a
    `tokenizer.json`, the first one deciding), and defines:

    - `_model_ids()`: the ids of the model's own tokens;
    - `_model_tokens()`: `{id: token}` of them (what decoding shows);
    - `_token_id(content)`: the model's id of a token, or None;
    - `make_layer(**options)`: a new keras-hub layer;
    - `_from_spec(spec, folder)` and `_from_other_files(folder)`, the
      class methods that read a parsed `tokenizer.json` and the older files.

    The subclass' `__init__` calls `super().__init__()` and
    `_with_roles(added, roles)`.
    """

    kind = None
    roles = ()
    default_tokens = {}
    other_files = ()
    normalized_added_tokens = False  # whether added tokens matched after normalization work
    model_max_length = None

    def __init__(self):
        self._layers = {}
        self._encode_fns = {}

    # -- special tokens ------------------------------------------------------------------

    def _hidden_ids(self):
        """Ids of the model that are no ordinary token (beyond the added tokens)."""
        return set()

    def _with_roles(self, added, roles):
        """`added` plus the role tokens, sorted by id, and the role attributes set.

        A role's token is the added token of that text if there is one, else
        the model's token of that text, else a new token with the next free
        id (as `transformers` adds it); `{role}_token` and `{role}_id` are
        set (None for a role without a token).

        Args:
            added: checked added tokens (`hf_files.check_added_tokens`).
            roles: `{role: token text or None}`.
        """
        by_id = {}
        for token in added:
            if token["normalized"] and not token["special"] and not self.normalized_added_tokens:
                raise UserInputError(
                    f"the added token {token['content']!r} is normalized, which is not supported"
                )
            if by_id.get(token["id"], token)["content"] != token["content"]:
                raise UserInputError(f"two added tokens have the id {token['id']}")
            by_id[token["id"]] = token
        next_id = max([*self._model_ids(), *by_id]) + 1
        for role in self.roles:
            content = roles[role]
            setattr(self, f"{role}_token", content)
            setattr(self, f"{role}_id", None)
            if content is None:
                continue
            known = [i for i, t in by_id.items() if t["content"] == content]
            token_id = known[0] if known else self._token_id(content)
            if token_id is None:
                token_id, next_id = next_id, next_id + 1
            if not known:
                by_id[token_id] = {"id": token_id, "content": content, "special": True,
                                   "normalized": False}
            setattr(self, f"{role}_id", token_id)
        return [by_id[i] for i in sorted(by_id)]

    @property
    def vocab_size(self):
        """Number of ids: the largest id (of the model or an added token) + 1."""
        return max([*self._model_ids(), *(t["id"] for t in self.added_tokens)]) + 1

    @property
    def ordinary_ids(self):
        """`(first, last)`: the range of the model's ids that are no added token."""
        hidden = {t["id"] for t in self.added_tokens} | self._hidden_ids()
        ids = [i for i in self._model_ids() if i not in hidden]
        return min(ids), max(ids)

    @property
    def specials(self):
        """The contents of the special added tokens, by id."""
        return [t["content"] for t in self.added_tokens if t["special"]]

    def special_id(self, name):
        """The id of the added token `name` (e.g. `"</s>"`)."""
        for token in self.added_tokens:
            if token["content"] == name:
                return token["id"]
        raise UserInputError(f"the tokenizer has no special token {name!r}")

    def _id_to_token(self):
        """`{id: token}`: the model's tokens and the added tokens (made once; do not change it)."""
        if getattr(self, "_tokens_by_id", None) is None:
            tokens = self._model_tokens()
            tokens.update({t["id"]: t["content"] for t in self.added_tokens})
            self._tokens_by_id = tokens
        return self._tokens_by_id

    def _skipped_ids(self, skip_special_tokens):
        """The ids `decode` leaves out: the special added tokens if asked to."""
        return {t["id"] for t in self.added_tokens if t["special"]} if skip_special_tokens else set()

    def _kept_tokens(self, ids, skip_special_tokens):
        """The tokens of `ids` that `decode` shows (ids without a token left out)."""
        tokens, skip = self._id_to_token(), self._skipped_ids(skip_special_tokens)
        return [tokens[i] for i in np.asarray(ids).reshape(-1).tolist()
                if i in tokens and i not in skip]

    def _clean_up(self, text):
        """`transformers`' `clean_up_tokenization` if `clean_up_tokenization_spaces` is set."""
        if getattr(self, "clean_up_tokenization_spaces", False):
            for dirty, clean in TRANSFORMERS_CLEANUP:
                text = text.replace(dirty, clean)
        return text

    # -- loading -------------------------------------------------------------------------

    @classmethod
    def _roles_of(cls, config, special_map):
        """`{role: token}` named by a folder's `tokenizer_config.json` / `special_tokens_map.json`."""
        return hf_files.role_tokens(config, special_map, cls.roles, cls.default_tokens)

    @classmethod
    def _role_arguments(cls, roles):
        """`{"eos_token": ..., ...}`: the constructor's arguments for `{role: token}`."""
        return {f"{role}_token": roles[role] for role in cls.roles}

    @classmethod
    def from_file(cls, path):
        """The tokenizer of a Hugging Face `tokenizer.json` (special tokens from its folder).

        Args:
            path: the `tokenizer.json`; `tokenizer_config.json` and
                `special_tokens_map.json` beside it name the special tokens.

        Raises:
            UserInputError: a missing or corrupt file, or a tokenizer this
                class cannot reproduce (the message names what).
        """
        path = os.fspath(path)
        spec = hf_files.read_tokenizer_json(path)
        try:
            return cls._from_spec(spec, os.path.dirname(path))
        except UserInputError as error:
            raise UserInputError(f"{path}: {error}") from None

    @classmethod
    def from_directory(cls, folder):
        """The tokenizer of a Hugging Face folder: `tokenizer.json`, else the class' older files.

        Args:
            folder: a checkpoint or tokenizer folder.

        Raises:
            UserInputError: neither is there, a file is corrupt, or the
                tokenizer is of a kind this class cannot reproduce.

        Example:

        >>> WordPieceTokenizer.from_directory("checkpoints/bert-base-cased").lowercase
        False
        """
        folder = os.fspath(folder)
        if not os.path.isdir(folder):
            raise UserInputError(f"tokenizer folder not found: {folder}")
        if os.path.isfile(os.path.join(folder, hf_files.TOKENIZER_FILE)):
            return cls.from_file(os.path.join(folder, hf_files.TOKENIZER_FILE))
        if os.path.isfile(os.path.join(folder, cls.other_files[0])):
            return cls._from_other_files(folder)
        raise UserInputError(
            f"no tokenizer in {folder}: expected {hf_files.TOKENIZER_FILE}, or "
            f"{' and '.join(cls.other_files)}"
        )

    # -- encoding ------------------------------------------------------------------------

    def _cached_layer(self, **options):
        """The layer of `make_layer(**options)`, made once (eagerly, even inside `tf.data`)."""
        key = tuple(sorted(options.items()))
        if key not in self._layers:
            with tf.init_scope():
                self._layers[key] = self.make_layer(**options)
        return self._layers[key]

    def tf_tokenizer(self):
        """The keras-hub layer that tokenizes inside `tf.data`: `tokenize(strings) -> int32 ids`.

        A string gives `[None]` ids, a batch `[batch]` a ragged `[batch, None]`;
        `detokenize(ids)` gives `decode`'s text. Keep this tokenizer alive
        while a dataset uses the layer (its tables are the layer's).

        Example:

        >>> layer = tokenizer.tf_tokenizer()
        >>> tf.data.Dataset.from_tensor_slices(["Hello", "World"]).map(layer.tokenize)
        """
        return self._cached_layer()

    def _encode_batch(self, texts, **options):
        """Ids of each of `texts`, as int32 numpy arrays, with `tf_tokenizer(**options)`."""
        key = tuple(sorted(options.items()))
        if key not in self._encode_fns:
            layer = self.tf_tokenizer(**options)
            self._encode_fns[key] = tf.function(
                layer.tokenize, input_signature=[tf.TensorSpec([None], tf.string)]
            )
        if not texts:
            return []
        ids = self._encode_fns[key](tf.constant([t.encode("utf-8", "replace") for t in texts]))
        values, splits = ids.flat_values.numpy(), ids.row_splits.numpy()
        return [values[a:b] for a, b in zip(splits[:-1], splits[1:], strict=True)]

    def encode_batch(self, texts):
        """Ids of each of `texts` (a list of strings), as int32 numpy arrays (no special tokens)."""
        return self._encode_batch(texts)

    def encode(self, text):
        """Ids of `text` as an int32 numpy array (no special tokens added)."""
        return self._encode_batch([text])[0]

    # -- saving --------------------------------------------------------------------------

    def _write_config(self, folder, config, added_tokens_decoder=True):
        """Write `tokenizer_config.json` into `folder`: `config`, the roles and added tokens."""
        config = dict(config)
        if self.model_max_length is not None:
            config["model_max_length"] = self.model_max_length
        config.update({f"{role}_token": getattr(self, f"{role}_token") for role in self.roles
                       if getattr(self, f"{role}_token") is not None})
        if added_tokens_decoder:
            config["added_tokens_decoder"] = hf_files.added_tokens_decoder(self.added_tokens)
        hf_files.write_json(os.path.join(folder, hf_files.CONFIG_FILE), config, indent=2)


class _Untracked:
    """Holds `value` without TensorFlow tracking it (a plain object, not a Trackable)."""

    def __init__(self, value):
        self.value = value


class HuggingFaceGraphTokenizer(tf.Module):
    """A Hugging Face tokenizer as graph ops that a SavedModel can hold.

    keras-hub's layers do not let a SavedModel track their lookup tables
    (keras-hub#2015: "Tried to export a function which references an
    'untracked' resource"); this module owns a fresh layer of the tokenizer
    and tracks every resource the layer lists in `resources`, so
    `tf.saved_model.save` works.

    Args:
        tokenizer: a `HuggingFaceTokenizer`.
        vocab_size: ids the model can produce (unused: ids without a token
            decode to nothing anyway).
        name: the module's name (default `"{kind}_tokenizer"`).
        **layer_options: passed to `tokenizer.make_layer`.

    Example:

    >>> module = HuggingFaceGraphTokenizer(tokenizer)
    >>> module.encode(tf.constant(["Hello world"]))
    <tf.RaggedTensor [[15496, 995]]>
    """

    def __init__(self, tokenizer, vocab_size=None, name=None, **layer_options):
        super().__init__(name=name or f"{tokenizer.kind}_tokenizer")
        del vocab_size
        layer = tokenizer.make_layer(**layer_options)
        self._holder = _Untracked(layer)  # the SavedModel keeps the layer's tables, not the layer
        self.tables = list(layer.resources)

    def encode(self, text):
        """int32 ids (ragged `[batch, None]`) of a batch of strings `[batch]`."""
        return self._holder.value.tokenize(text)

    def decode(self, ids):
        """One string per row of int `ids` (`[batch, time]`)."""
        return self._holder.value.detokenize(ids)
