"""`SentencePieceTokenizer`: a byte-level BPE vocabulary trained on the training text.

The model is trained with SentencePiece (`model_type="bpe"`) on the lines of
the training split and stored with the run (`tokenizer.json` plus the binary
`tokenizer.model` beside it). Its ids are laid out as:

- 0 `<pad>`, 1 `<unk>`, 2 `<s>`, 3 `</s>`;
- then the special tokens of the job (`[CLS]`, `[SEP]`, `[MASK]`, or T5's
  sentinels), as SentencePiece *control symbols*: they are never produced
  from text, the pipelines insert them with `special_id(name)`;
- then the newline, a user-defined symbol of its own (SentencePiece
  otherwise treats its input as single sentences), the 256 byte pieces
  `<0x00>` .. `<0xFF>` and the learned merges.

Settings that make `decode(encode(x)) == normalize(x)` hold for any text:

- `byte_fallback=True`: a character the vocabulary lacks becomes its UTF-8
  bytes, so `<unk>` never appears;
- NFKC normalization (`normalize` shows the result: "ﬁ" -> "fi", full-width
  letters -> ASCII) and full character coverage;
- `add_dummy_prefix=False` and `remove_extra_whitespaces=False`: spaces are
  kept exactly (as the `▁` meta character), none is added at the start, so
  the ids of consecutive lines can simply be concatenated.

Training batches are tokenized inside `tf.data` by `tensorflow_text`'s
`SentencepieceTokenizer` (`tf_tokenizer`), with subword regularization
(`sampling=True`: BPE-dropout with `nbest_size=-1`, `alpha=0.1`), so every
pass sees other segmentations of the same text; evaluation uses the
deterministic encoding.
"""

import io
import json
import os
import re

import numpy as np

from keras_transformer.errors import UserInputError

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
RESERVED = {"<pad>": PAD_ID, "<unk>": UNK_ID, "<s>": BOS_ID, "</s>": EOS_ID}
NEWLINE = "\n"
SAMPLING_NBEST = -1
SAMPLING_ALPHA = 0.1
DEFAULT_VOCAB_SIZE = 4096


def _sentencepiece():
    import sentencepiece

    return sentencepiece


def _training_error(error, vocab_size):
    """A one-line `UserInputError` for SentencePiece's trainer errors."""
    message = str(error)
    too_high = re.search(r"Vocabulary size too high \((\d+)\).*<= (\d+)", message)
    if too_high:
        return UserInputError(
            f"--vocab-size {vocab_size} is larger than this training text supports: "
            f"SentencePiece can make at most {too_high.group(2)} pieces from it; "
            f"use --vocab-size {too_high.group(2)} or less"
        )
    too_low = re.search(r"smaller than required_chars\. (\d+) vs (\d+)", message)
    if too_low:
        return UserInputError(
            f"--vocab-size {vocab_size} is too small for this training text: it needs at least "
            f"{too_low.group(2)} (every distinct character, the 256 byte pieces and the "
            f"special tokens)"
        )
    first = (message.strip().splitlines() or [type(error).__name__])[0]
    return UserInputError(f"SentencePiece could not train on this text ({first[:200]})")


class SentencePieceTokenizer:
    """Subword tokenizer: a SentencePiece BPE model with byte fallback.

    Build one with `from_text` (trains the model) or `load_tokenizer(path)`.

    Args:
        proto: the serialized SentencePiece model (`bytes`), as written to
            `tokenizer.model`; `tensorflow_text.SentencepieceTokenizer(model=
            proto)` reads the same bytes.

    Attributes:
        kind: `"bpe"` (the `kind` field of `tokenizer.json`).
        proto: the serialized model.
        specials: names of the special tokens after `</s>` (control symbols).
        vocab_size: number of ids, padding and specials included.
        ordinary_ids: `(first, last)`, the ids text can encode to
            (the newline, the byte pieces and the learned pieces).

    Example:

    >>> tokenizer = SentencePieceTokenizer.from_text(text, vocab_size=1000)
    >>> tokenizer.decode(tokenizer.encode("To be, or not to be"))
    'To be, or not to be'
    """

    kind = "bpe"

    def __init__(self, proto):
        self.proto = bytes(proto)
        try:
            self._sp = _sentencepiece().SentencePieceProcessor(model_proto=self.proto)
        except Exception:  # sentencepiece raises RuntimeError/OSError on bad protos
            raise UserInputError("not a SentencePiece model") from None
        size = self._sp.get_piece_size()
        if size <= EOS_ID or any(
            self._sp.id_to_piece(i) != name for name, i in RESERVED.items()
        ):
            raise UserInputError("the SentencePiece model does not have ids pad=0 unk=1 bos=2 eos=3")
        self.specials = []
        for i in range(EOS_ID + 1, size):
            if not self._sp.is_control(i):
                break
            self.specials.append(self._sp.id_to_piece(i))
        self._special_ids = {name: EOS_ID + 1 + k for k, name in enumerate(self.specials)}
        self._special_ids.update(RESERVED)

    @classmethod
    def from_text(cls, text, vocab_size=DEFAULT_VOCAB_SIZE, specials=()):
        """Train a BPE model of `vocab_size` pieces on the lines of `text`.

        Args:
            text: the training text (one string; it is split into lines).
            vocab_size: the number of ids, the reserved four, the specials,
                the newline and the 256 byte pieces included.
            specials: extra special tokens (e.g. `[MASK]`); `<s>` and `</s>`
                are always there (ids 2 and 3).

        Raises:
            UserInputError: the text cannot support `vocab_size` pieces (the
                message names the largest size it can), or `vocab_size` is
                below what every character plus the byte pieces need.
        """
        spm = _sentencepiece()
        lines = [line for line in text.split(NEWLINE) if line.strip()]
        if not lines:
            raise UserInputError("cannot train a BPE tokenizer on an empty text")
        longest = max(len(line.encode("utf-8")) for line in lines)
        controls = [name for name in specials if name not in RESERVED]
        if len(set(controls)) != len(controls) or NEWLINE in controls:
            raise UserInputError("special tokens must be unique")
        model = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(lines),
                model_writer=model,
                model_type="bpe",
                vocab_size=int(vocab_size),
                byte_fallback=True,
                normalization_rule_name="nfkc",
                character_coverage=1.0,
                pad_id=PAD_ID,
                unk_id=UNK_ID,
                bos_id=BOS_ID,
                eos_id=EOS_ID,
                control_symbols=controls,
                user_defined_symbols=[NEWLINE],
                add_dummy_prefix=False,
                remove_extra_whitespaces=False,
                max_sentence_length=max(4192, longest + 1),
                num_threads=max(1, min(4, os.cpu_count() or 1)),
                minloglevel=2,
            )
        except RuntimeError as error:
            raise _training_error(error, vocab_size) from None
        return cls(model.getvalue())

    @property
    def vocab_size(self):
        """Number of ids, padding and special tokens included."""
        return self._sp.get_piece_size()

    @property
    def ordinary_ids(self):
        """`(first, last)`: the range of ids that text encodes to."""
        return EOS_ID + 1 + len(self.specials), self.vocab_size - 1

    def special_id(self, name):
        """The id of special token `name` (`<pad>`, `<unk>`, `<s>`, `</s>` or a special)."""
        try:
            return self._special_ids[name]
        except KeyError:
            raise UserInputError(f"the tokenizer has no special token {name!r}") from None

    def normalize(self, text):
        """`text` as the tokenizer sees it (NFKC): what `decode(encode(text))` returns."""
        return self._sp.normalize(text).replace("\u2581", " ")

    def encode(self, text):
        """Deterministic ids of `text` as an int32 numpy array (no `<s>`/`</s>` added)."""
        return np.asarray(self._sp.encode(text), dtype=np.int32)

    def decode(self, ids):
        """Text of `ids`: `<pad>`, `<s>` and `</s>` are dropped, other specials shown by name."""
        pieces, run = [], []
        for i in np.asarray(ids).reshape(-1).tolist():
            if i in (PAD_ID, BOS_ID, EOS_ID) or not 0 <= i < self.vocab_size:
                continue
            if EOS_ID < i <= EOS_ID + len(self.specials):
                pieces.append(self._sp.decode(run))
                pieces.append(self.specials[i - EOS_ID - 1])
                run = []
            else:
                run.append(i)
        pieces.append(self._sp.decode(run))
        return "".join(pieces)

    def tf_tokenizer(self, sampling=False):
        """A `tensorflow_text.SentencepieceTokenizer` of this model (int32 ids).

        Args:
            sampling: subword regularization for training (a new random
                segmentation on every call: `nbest_size=-1`, `alpha=0.1`);
                `False` gives the deterministic encoding of `encode`.
        """
        import tensorflow as tf
        import tensorflow_text

        if sampling:
            return tensorflow_text.SentencepieceTokenizer(
                model=self.proto, out_type=tf.int32, nbest_size=SAMPLING_NBEST,
                alpha=SAMPLING_ALPHA,
            )
        return tensorflow_text.SentencepieceTokenizer(model=self.proto, out_type=tf.int32)

    @staticmethod
    def model_path(path):
        """Where the binary model of the tokenizer file `path` lives (`X.json` -> `X.model`)."""
        root, _ = os.path.splitext(path)
        return root + ".model"

    def save(self, path):
        """Write `path` (JSON, e.g. `tokenizer.json`) and the binary model beside it."""
        model_file = self.model_path(os.fspath(path))
        with open(model_file, "wb") as handle:
            handle.write(self.proto)
        spec = {
            "kind": self.kind,
            "model": os.path.basename(model_file),
            "vocab_size": self.vocab_size,
            "specials": self.specials,
            "byte_fallback": True,
            "normalization": "nfkc",
            "sampling": {"nbest_size": SAMPLING_NBEST, "alpha": SAMPLING_ALPHA},
        }
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(spec, handle, ensure_ascii=False, indent=2)

    @classmethod
    def from_spec(cls, spec, path):
        """The tokenizer a `tokenizer.json` spec (already read from `path`) describes."""
        model_file = os.path.join(os.path.dirname(os.fspath(path)), str(spec.get("model", "")))
        if not os.path.isfile(model_file):
            raise UserInputError(f"the SentencePiece model of {path} is missing: {model_file}")
        with open(model_file, "rb") as handle:
            proto = handle.read()
        try:
            return cls(proto)
        except UserInputError as error:
            raise UserInputError(f"{model_file}: {error}") from None
