"""Tokenizers: text <-> integer ids, saved beside the model in a run directory.

`CharTokenizer` lives here; the subword `SentencePieceTokenizer` in `bpe.py`,
Hugging Face's byte-level BPE (`ByteLevelBPETokenizer`) in `hf_tokenizers.py`,
BERT's WordPiece (`WordPieceTokenizer`) in `hf_wordpiece.py` and T5's
SentencePiece (`T5SentencePieceTokenizer`) in `hf_sentencepiece.py`.
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
    beside `path`), or a Hugging Face tokenizer when `path` is a folder
    holding one (or is its `tokenizer.json`, `vocab.txt` or `spiece.model`):
    a `ByteLevelBPETokenizer` for GPT-2's `vocab.json` + `merges.txt` or a
    byte-level BPE `tokenizer.json` (the `tokenizers` format: no `"kind"`, a
    `"model"` object), a `WordPieceTokenizer` (`hf_wordpiece`) for BERT's
    `vocab.txt` or a WordPiece `tokenizer.json`, a `T5SentencePieceTokenizer`
    (`hf_sentencepiece`) for T5's `spiece.model` or a Unigram
    `tokenizer.json`; the special tokens and settings come from
    `tokenizer_config.json` / `special_tokens_map.json` beside it. A
    `tokenizer.json` is read before the other files of its folder.

    Raises:
        UserInputError: a missing or corrupt file, or a tokenizer of a kind
            this package cannot reproduce (one line naming the problem).

    Example:

    >>> load_tokenizer("runs/shakespeare/tokenizer.json").kind
    'char'
    >>> load_tokenizer("checkpoints/gpt2").eos_token
    '<|endoftext|>'
    >>> load_tokenizer("checkpoints/bert-base-uncased").kind
    'wordpiece'
    """
    from keras_transformer.data import hf_files, hf_sentencepiece, hf_tokenizers, hf_wordpiece

    path = os.fspath(path)
    if os.path.isdir(path):
        inner = os.path.join(path, hf_files.TOKENIZER_FILE)
        if os.path.isfile(inner):
            return load_tokenizer(inner)
        if os.path.isfile(os.path.join(path, hf_tokenizers.VOCAB_FILE)):
            return hf_tokenizers.ByteLevelBPETokenizer.from_directory(path)
        if os.path.isfile(os.path.join(path, hf_wordpiece.VOCAB_FILE)):
            return hf_wordpiece.WordPieceTokenizer.from_vocab_txt(path)
        if os.path.isfile(os.path.join(path, hf_sentencepiece.MODEL_FILE)):
            return hf_sentencepiece.T5SentencePieceTokenizer.from_model_file(path)
        raise UserInputError(
            f"no tokenizer in {path}: expected {hf_files.TOKENIZER_FILE}, "
            f"{hf_tokenizers.VOCAB_FILE} and {hf_tokenizers.MERGES_FILE} (GPT-2), "
            f"{hf_wordpiece.VOCAB_FILE} (BERT) or {hf_sentencepiece.MODEL_FILE} (T5)"
        )
    if not os.path.exists(path):
        raise UserInputError(f"tokenizer file not found: {path}")
    name = os.path.basename(path)
    if name == hf_wordpiece.VOCAB_FILE:
        return hf_wordpiece.WordPieceTokenizer.from_vocab_txt(os.path.dirname(path) or ".")
    if name == hf_sentencepiece.MODEL_FILE:
        return hf_sentencepiece.T5SentencePieceTokenizer.from_model_file(
            os.path.dirname(path) or ".")
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
        model = hf_files.model_type(spec)
        if model == "WordPiece":
            return hf_wordpiece.WordPieceTokenizer.from_file(path)
        if model == "Unigram":
            return hf_sentencepiece.T5SentencePieceTokenizer.from_file(path)
        return hf_tokenizers.ByteLevelBPETokenizer.from_file(path)
    try:
        kind = spec["kind"]
    except (KeyError, TypeError):
        raise UserInputError(f"not a keras_transformer tokenizer file: {path}") from None
    if kind == "char":
        return _char_tokenizer(spec, path)
    if kind == "bpe":
        from keras_transformer.data.bpe import SentencePieceTokenizer

        return SentencePieceTokenizer.from_spec(spec, path)
    if kind == HF_FOLDER_KIND:
        folder = spec.get("folder")
        if not isinstance(folder, str) or os.path.isabs(folder) or ".." in folder.split("/"):
            raise UserInputError(f"{path}: 'folder' must name a folder beside it")
        return load_tokenizer(os.path.join(os.path.dirname(path) or ".", folder))
    raise UserInputError(f"unknown tokenizer kind {kind!r} in {path}")


def _char_tokenizer(spec, path):
    """The `CharTokenizer` of a `{"kind": "char"}` spec, its fields checked (one line each)."""
    chars, specials = spec.get("chars"), spec.get("specials", [])
    if not isinstance(chars, list) or not all(isinstance(c, str) and len(c) == 1 for c in chars):
        raise UserInputError(f"{path}: 'chars' must be a list of single characters")
    if not isinstance(specials, list) or not all(isinstance(s, str) for s in specials):
        raise UserInputError(f"{path}: 'specials' must be a list of strings")
    return CharTokenizer(chars, specials)


# A run's `tokenizer.json` pointing at a Hugging Face tokenizer folder beside it.
HF_FOLDER_KIND = "hugging_face_folder"
FOLDER_TOKENIZERS = ("wordpiece", "t5_sentencepiece")


def save_tokenizer(tokenizer, path):
    """Save `tokenizer` so that `load_tokenizer(path)` reads it back.

    `path` is a run's `tokenizer.json`. Most tokenizers write that file
    themselves; BERT's WordPiece and T5's SentencePiece tokenizers are Hugging
    Face folders (`vocab.txt` or `spiece.model`, `tokenizer_config.json`), so
    they are written into the folder `tokenizer/` beside `path`, and `path`
    says so (`{"kind": "hugging_face_folder", "folder": "tokenizer"}`).
    """
    path = os.fspath(path)
    if getattr(tokenizer, "kind", None) not in FOLDER_TOKENIZERS:
        tokenizer.save(path)
        return
    tokenizer.save(os.path.join(os.path.dirname(path) or ".", "tokenizer"))
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"kind": HF_FOLDER_KIND, "folder": "tokenizer"}, handle)
