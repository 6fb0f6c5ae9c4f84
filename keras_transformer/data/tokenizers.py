"""Tokenizers: text <-> integer ids, saved beside the model in a run directory.

`CharTokenizer` lives here; the subword `SentencePieceTokenizer` in `bpe.py`,
Hugging Face's byte-level BPE (`ByteLevelBPETokenizer`) in `hf_tokenizers.py`.
"""

import json
import os

import numpy as np

from keras_transformer.errors import UserInputError

PAD = "<pad>"


class CharTokenizer:
    """One id per character, the vocabulary built from a training text.

    Id 0 is reserved for padding; characters get ids 1.. in sorted order.
    Encoding a character that is not in the vocabulary is an error that names
    the characters (there is no silent "unknown" fallback: a character model
    has never learned what to do with one).

    Special tokens (`specials`, e.g. `[CLS]`, `[SEP]`, `[MASK]` for BERT or
    `<s>`, `</s>` and sentinels for an encoder-decoder) get the ids after
    the characters. `encode` never produces them from text: the pipelines
    insert them with `special_id(name)`.

    Example:

    >>> tokenizer = CharTokenizer.from_text("hello")
    >>> tokenizer.vocab_size
    5
    >>> tokenizer.decode(tokenizer.encode("hole"))
    'hole'
    >>> CharTokenizer.from_text("hello", specials=["[MASK]"]).special_id("[MASK]")
    5
    """

    kind = "char"

    def __init__(self, chars, specials=()):
        if PAD in chars or len(set(chars)) != len(chars):
            raise UserInputError("tokenizer characters must be unique")
        if len(set(specials)) != len(specials) or any(len(s) < 2 for s in specials):
            raise UserInputError("special tokens must be unique and longer than one character")
        self.chars = list(chars)
        self.specials = list(specials)
        self._index = {char: i + 1 for i, char in enumerate(self.chars)}
        self._names = self.chars + self.specials

    @classmethod
    def from_text(cls, text, specials=()):
        """Build the vocabulary from every distinct character of `text`."""
        return cls(sorted(set(text)), specials)

    @property
    def vocab_size(self):
        """Number of ids, padding and special tokens included."""
        return len(self.chars) + len(self.specials) + 1

    @property
    def num_chars(self):
        """Character ids are `1 .. num_chars`; special ids follow."""
        return len(self.chars)

    @property
    def ordinary_ids(self):
        """`(first, last)`: the range of ids that text encodes to (`1 .. num_chars`)."""
        return 1, len(self.chars)

    def special_id(self, name):
        """The id of special token `name`."""
        try:
            return len(self.chars) + 1 + self.specials.index(name)
        except ValueError:
            raise UserInputError(f"the tokenizer has no special token {name!r}") from None

    def encode(self, text):
        """Ids of `text` as an int32 numpy array."""
        try:
            return np.fromiter((self._index[c] for c in text), dtype=np.int32, count=len(text))
        except KeyError:
            unknown = sorted({c for c in text if c not in self._index})
            shown = ", ".join(repr(c) for c in unknown[:10])
            raise UserInputError(
                f"{len(unknown)} character(s) not in the tokenizer's vocabulary: {shown}"
            ) from None

    def decode(self, ids):
        """Text of `ids`; padding ids (0) are dropped, special ids shown by name."""
        names = self._names
        return "".join(
            names[i - 1] for i in np.asarray(ids).reshape(-1).tolist() if 0 < i <= len(names)
        )

    def save(self, path):
        """Write the vocabulary as JSON."""
        spec = {"kind": self.kind, "chars": self.chars}
        if self.specials:
            spec["specials"] = self.specials
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(spec, handle, ensure_ascii=False)


def load_tokenizer(path):
    """Load the tokenizer stored at `path`: a `tokenizer.json`, or a Hugging Face folder.

    Returns a `CharTokenizer` (`"kind": "char"`), a `SentencePieceTokenizer`
    (`"kind": "bpe"`, whose binary model is the file named by `"model"`,
    beside `path`), or a Hugging Face `ByteLevelBPETokenizer` when `path` is
    a folder holding GPT-2's `vocab.json` + `merges.txt` or a byte-level BPE
    `tokenizer.json` (the `tokenizers` format: no `"kind"`, a `"model"`
    object), or is such a `tokenizer.json` itself; the special tokens come
    from `tokenizer_config.json` / `special_tokens_map.json` beside it.

    Raises:
        UserInputError: a missing or corrupt file, or a tokenizer of a kind
            this package cannot reproduce (one line naming the problem).

    Example:

    >>> load_tokenizer("runs/shakespeare/tokenizer.json").kind
    'char'
    >>> load_tokenizer("checkpoints/gpt2").eos_token
    '<|endoftext|>'
    """
    from keras_transformer.data import hf_tokenizers

    path = os.fspath(path)
    if os.path.isdir(path):
        inner = os.path.join(path, hf_tokenizers.TOKENIZER_FILE)
        if os.path.isfile(inner):
            return load_tokenizer(inner)
        return hf_tokenizers.ByteLevelBPETokenizer.from_directory(path)
    if not os.path.exists(path):
        raise UserInputError(f"tokenizer file not found: {path}")
    try:
        with open(path, encoding="utf-8") as handle:
            spec = json.load(handle)
    except json.JSONDecodeError as error:
        raise UserInputError(
            f"not a keras_transformer tokenizer file: {path} "
            f"(invalid JSON: {error.msg}, line {error.lineno})"
        ) from None
    except (OSError, ValueError):
        raise UserInputError(f"not a keras_transformer tokenizer file: {path}") from None
    if hf_tokenizers.is_hf_tokenizer_json(spec):
        return hf_tokenizers.ByteLevelBPETokenizer.from_file(path)
    try:
        kind = spec["kind"]
    except (KeyError, TypeError):
        raise UserInputError(f"not a keras_transformer tokenizer file: {path}") from None
    if kind == "char":
        return CharTokenizer(spec["chars"], spec.get("specials", ()))
    if kind == "bpe":
        from keras_transformer.data.bpe import SentencePieceTokenizer

        return SentencePieceTokenizer.from_spec(spec, path)
    raise UserInputError(f"unknown tokenizer kind {kind!r} in {path}")
