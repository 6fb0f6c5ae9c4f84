"""Text classification data: a labelled TSV file, its held-out split, and BERT's packing.

A classification file has one example a line, in one of two layouts (the
same in the whole file):

- `text<TAB>label`: one text;
- `text_a<TAB>text_b<TAB>label`: a pair of texts (premise and hypothesis,
  question and answer, ...).

Labels are any non-empty strings (surrounding spaces are dropped); texts
are kept as they are but may not be blank. Blank lines are skipped, and a
first line that is a header (`text<TAB>label` or `text_a<TAB>text_b<TAB>label`)
is skipped too. Any other line that does not fit is a `UserInputError`
naming the file and the line number.

`split_examples` holds out a deterministic, stratified share of each label
for evaluation; `encode_examples` packs texts as BERT reads them,
`[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]` (segment 0, then 1 for `b [SEP]`),
truncated like `transformers`' "longest_first" and padded with id 0;
`classify_dataset` batches the arrays in `tf.data`.
"""

import os
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from keras_transformer.errors import UserInputError

SPECIALS = ("[CLS]", "[SEP]")
HEADERS = (("text", "label"), ("text_a", "text_b", "label"))
HELD_OUT_FRACTION = 0.1


@dataclass(frozen=True)
class Example:
    """One labelled example: `text_b` is `None` in a one-text file; `line` is its line number."""

    text_a: str
    text_b: str | None
    label: str
    line: int = 0


@dataclass
class ClassificationData:
    """The examples of a classification file.

    Args:
        examples: the `Example`s, in file order.
        labels: the distinct labels, sorted; a label's id is its index here.
        pairs: whether the file holds text pairs (three columns).
        path: the file.
    """

    examples: list
    labels: list
    pairs: bool
    path: str

    def label_ids(self, examples=None):
        """Int32 label ids of `examples` (default: all of them)."""
        index = {label: i for i, label in enumerate(self.labels)}
        return np.array([index[e.label] for e in (self.examples if examples is None else examples)], np.int32)


def _layout(columns):
    return "text_a<TAB>text_b<TAB>label" if columns == 3 else "text<TAB>label"


def read_classification_tsv(path):
    """The `ClassificationData` of a `text<TAB>label` or `text_a<TAB>text_b<TAB>label` file.

    Raises:
        UserInputError: one line: a missing or non-UTF-8 file; a line whose
            number of columns is not 2 or 3 or differs from the first
            example's; an empty text or label (each names the file and the
            line number); fewer than two labels.

    Example:

    >>> data = read_classification_tsv("reviews.tsv")   # "great film<TAB>pos" ...
    >>> data.labels, data.pairs
    (['neg', 'pos'], False)
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        kind = "is a directory" if os.path.isdir(path) else "not found"
        raise UserInputError(f"classification file {kind}: {path}")
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except UnicodeDecodeError as error:
        raise UserInputError(
            f"classification file is not UTF-8 text: {path} (bad byte at offset {error.start})"
        ) from None
    examples, columns, first = [], None, None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if columns is None:
            if len(fields) not in (2, 3):
                raise UserInputError(
                    f"{path} line {number}: expected 'text<TAB>label' or "
                    f"'text_a<TAB>text_b<TAB>label', found {len(fields)} column(s)"
                )
            columns, first = len(fields), number
            if tuple(f.strip().lower() for f in fields) in HEADERS:
                continue
        elif len(fields) != columns:
            raise UserInputError(
                f"{path} line {number}: expected '{_layout(columns)}' ({columns} columns, as on "
                f"line {first}), found {len(fields)} column(s)"
            )
        *texts, label = fields
        label = label.strip()
        if not label:
            raise UserInputError(f"{path} line {number}: the label is empty")
        for name, text in zip(("text_a", "text_b") if columns == 3 else ("text",), texts,
                              strict=True):
            if not text.strip():
                raise UserInputError(f"{path} line {number}: the {name} is empty")
        examples.append(Example(texts[0], texts[1] if columns == 3 else None, label, number))
    if not examples:
        raise UserInputError(f"{path} holds no examples")
    labels = sorted({e.label for e in examples})
    if len(labels) < 2:
        raise UserInputError(
            f"{path}: every example has the label {labels[0]!r}; classification needs at "
            f"least 2 labels"
        )
    return ClassificationData(examples, labels, columns == 3, path)


def split_examples(examples, seed=0, fraction=HELD_OUT_FRACTION):
    """`(train, held_out)`: a stratified, deterministic split of `examples`.

    Each label's examples are shuffled with `seed` and `round(fraction *
    count)` of them held out (never all of a label's: one stays for
    training), so the held-out labels are distributed as in the file. Both
    lists keep the file order. The same examples and seed give the same split.

    Raises:
        UserInputError: nothing would be held out (fewer than 5 examples of
            every label).
    """
    rng = np.random.default_rng([seed, 11])
    by_label = {}
    for i, example in enumerate(examples):
        by_label.setdefault(example.label, []).append(i)
    held = set()
    for label in sorted(by_label):
        indices = by_label[label]
        count = min(int(fraction * len(indices) + 0.5), len(indices) - 1)
        held.update(np.asarray(indices)[rng.permutation(len(indices))[:count]].tolist())
    if not held:
        raise UserInputError(
            f"{len(examples)} examples are too few for a held-out split of "
            f"{fraction:.0%} of each label (a label needs at least 5 examples)"
        )
    train = [e for i, e in enumerate(examples) if i not in held]
    return train, [e for i, e in enumerate(examples) if i in held]


def special_ids(tokenizer):
    """`(cls_id, sep_id)` of `tokenizer`, which must pad with id 0.

    A `WordPieceTokenizer` names its own `cls_id`, `sep_id` and `pad_id`;
    the tokenizers this package trains have `[CLS]` and `[SEP]` specials
    and pad with 0.

    Raises:
        UserInputError: the tokenizer lacks one of them, or pads with another
            id than 0 (the models mask id 0 as padding).
    """
    pad_id = getattr(tokenizer, "pad_id", 0)
    if pad_id is None:
        raise UserInputError("the tokenizer has no padding token; these models pad with id 0")
    if pad_id != 0:
        raise UserInputError(
            f"the tokenizer pads with id {pad_id}; these models treat id 0 as padding"
        )
    ids = [getattr(tokenizer, f"{role}_id", None) for role in ("cls", "sep")]
    return tuple(tokenizer.special_id(name) if i is None else int(i)
                 for i, name in zip(ids, SPECIALS, strict=True))


def pack(ids_a, ids_b, seq_len, cls_id, sep_id):
    """`(token_ids, segment_ids)` of `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]`, unpadded.

    Over `seq_len` tokens the texts are cut as `transformers`' "longest_first"
    truncation cuts them (`longest_first`): the longer text gives way first.
    Segment 0 is `[CLS] a [SEP]`, segment 1 `b [SEP]`.

    Example:

    >>> pack([5, 6, 7], [8], 6, cls_id=1, sep_id=2)
    ([1, 5, 6, 2, 8, 2], [0, 0, 0, 0, 1, 1])
    """
    from keras_transformer.data.hf_wordpiece import longest_first  # (its tokenizer packs so too)

    ids_a = list(ids_a)
    if ids_b is None:
        ids_a = ids_a[:seq_len - 2]
        return [cls_id, *ids_a, sep_id], [0] * (len(ids_a) + 2)
    keep_a, keep_b = longest_first(len(ids_a), len(ids_b), seq_len - 3)
    ids_a, ids_b = ids_a[:keep_a], list(ids_b)[:keep_b]
    tokens = [cls_id, *ids_a, sep_id, *ids_b, sep_id]
    return tokens, [0] * (len(ids_a) + 2) + [1] * (len(ids_b) + 1)


def encode_texts(tokenizer, texts_a, texts_b=None, seq_len=512):
    """Packed, padded arrays of texts (or pairs) for a BERT.

    Args:
        tokenizer: a tokenizer with `encode` (see `special_ids`).
        texts_a: the first texts.
        texts_b: the second texts (as many), or `None` for single texts.
        seq_len: the longest row; longer ones are truncated (see `pack`).

    Returns:
        `(token_ids, segment_ids, truncated)`: int32 `[n, time]` arrays padded
        with 0 to the longest packed row (`time <= seq_len`), and how many
        rows lost tokens to truncation.
    """
    specials = 3 if texts_b is not None else 2
    if seq_len < specials + 1:
        raise UserInputError(f"--seq-len {seq_len} leaves no room for text beside the "
                             f"{specials} special tokens")
    cls_id, sep_id = special_ids(tokenizer)
    encode = getattr(tokenizer, "encode_batch", None) or (lambda t: [tokenizer.encode(x)
                                                                       for x in t])
    ids_a = encode(list(texts_a))
    ids_b = encode(list(texts_b)) if texts_b is not None else [None] * len(ids_a)
    rows, truncated = [], 0
    for a, b in zip(ids_a, ids_b, strict=True):
        row = pack(a, b, seq_len, cls_id, sep_id)
        truncated += len(row[0]) < len(a) + (len(b) if b is not None else 0) + specials
        rows.append(row)
    time = max(len(tokens) for tokens, _ in rows)
    token_ids = np.zeros((len(rows), time), np.int32)
    segment_ids = np.zeros((len(rows), time), np.int32)
    for i, (tokens, segments) in enumerate(rows):
        token_ids[i, :len(tokens)] = tokens
        segment_ids[i, :len(segments)] = segments
    return token_ids, segment_ids, truncated


def encode_examples(data, examples, tokenizer, seq_len):
    """`((token_ids, segment_ids, label_ids), truncated)` of `examples` of `data`."""
    texts_b = [e.text_b for e in examples] if data.pairs else None
    token_ids, segment_ids, truncated = encode_texts(
        tokenizer, [e.text_a for e in examples], texts_b, seq_len)
    return (token_ids, segment_ids, data.label_ids(examples)), truncated


def classify_dataset(arrays, batch_size, shuffle_seed=None, repeat=False):
    """Batches `({"token_ids", "segment_ids"}, label_ids)` of `encode_examples`' arrays.

    With `shuffle_seed` the examples are reshuffled every pass; with `repeat`
    the dataset is endless and every batch full.
    """
    token_ids, segment_ids, label_ids = arrays
    dataset = tf.data.Dataset.from_tensor_slices(
        ({"token_ids": token_ids, "segment_ids": segment_ids}, label_ids))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(label_ids), seed=shuffle_seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    return dataset.batch(batch_size, drop_remainder=repeat).prefetch(tf.data.AUTOTUNE)
