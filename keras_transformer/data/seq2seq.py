"""Source -> target pairs for the encoder-decoder: three tasks and one batching pipeline.

- `date_pairs`: Géron's date-format translation ("April 22, 2019",
  "22 Apr 2019", "2019/04/22", ... -> "2019-04-22"), generated from a seed;
  `split_dates` keeps a set of held-out dates that never appear in training.
- `span_corruption_pairs`: T5's objective on a text: spans of the source are
  replaced by sentinels `<extra_id_0>`, `<extra_id_1>`, ... and the target
  lists the dropped spans after their sentinels.
- `read_pairs`: a user's `source<TAB>target` file.

`encode_pairs` turns pairs into padded id arrays: the encoder input, the
decoder input `<s> target` (teacher forcing) and the decoder label
`target </s>`; `pairs_dataset` batches them with a padding-aware weight.
"""

import datetime
import os

import numpy as np
import tensorflow as tf

from keras_transformer.errors import UserInputError

BOS, EOS = "<s>", "</s>"
NUM_SENTINELS = 16
SENTINELS = tuple(f"<extra_id_{i}>" for i in range(NUM_SENTINELS))

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
FIRST_DATE = datetime.date(1900, 1, 1)
LAST_DATE = datetime.date(2099, 12, 31)


def format_date(date, style):
    """`date` written in one of the input styles (0 .. 7) of the dates task."""
    month, short = MONTHS[date.month - 1], MONTHS[date.month - 1][:3]
    d, m, y = date.day, date.month, date.year
    return [
        f"{month} {d}, {y}",                 # April 22, 2019
        f"{d} {short} {y}",                  # 22 Apr 2019
        f"{y}/{m:02d}/{d:02d}",              # 2019/04/22
        f"{d:02d}.{m:02d}.{y}",              # 22.04.2019
        f"{short} {d} {y}",                  # Apr 22 2019
        f"{WEEKDAYS[date.weekday()]}, {month} {d}, {y}",  # Monday, April 22, 2019
        f"{d} {month} {y}",                  # 22 April 2019
        f"{short}. {d:02d}, {y}",            # Apr. 22, 2019
    ][style]


NUM_STYLES = 8


def split_dates(num_heldout=1000, seed=0):
    """Day numbers (ordinals) of the training dates and of `num_heldout` held-out dates.

    The held-out dates are drawn once from `seed` out of 1900-01-01 ..
    2099-12-31; training examples are only ever made from the other dates.
    """
    days = np.arange(FIRST_DATE.toordinal(), LAST_DATE.toordinal() + 1)
    rng = np.random.default_rng([seed, 1])
    heldout = rng.choice(len(days), size=num_heldout, replace=False)
    keep = np.ones(len(days), bool)
    keep[heldout] = False
    return days[keep], days[np.sort(heldout)]


def date_pairs(days, num_pairs, seed=0):
    """`num_pairs` (source, target) pairs from random days of `days` in random styles."""
    rng = np.random.default_rng([seed, 2])
    picked = days[rng.integers(0, len(days), size=num_pairs)] if num_pairs != len(days) else days
    styles = rng.integers(0, NUM_STYLES, size=len(picked))
    pairs = []
    for day, style in zip(picked, styles, strict=True):
        date = datetime.date.fromordinal(int(day))
        pairs.append((format_date(date, int(style)), date.isoformat()))
    return pairs


def span_corruption_pairs(text, num_pairs, length=96, rate=0.15, mean_span=3, seed=0):
    """T5's span corruption on windows of `text`.

    Each window of `length` characters loses about `rate` of its characters
    in spans of `mean_span`: the source keeps the rest with one sentinel per
    dropped span, the target is `<extra_id_0> span_0 <extra_id_1> span_1 ...`.
    Sentinels are returned as their names inside the strings; `encode_pairs`
    maps them to their ids.
    """
    if len(text) <= length:
        raise UserInputError(f"the text has {len(text)} characters; span corruption needs more than {length}")
    rng = np.random.default_rng([seed, 3])
    num_spans = max(1, min(NUM_SENTINELS, round(length * rate / mean_span)))
    pairs = []
    for _ in range(num_pairs):
        start = int(rng.integers(0, len(text) - length))
        window = text[start:start + length]
        # Span starts: distinct cells of an evenly split window, so spans never touch.
        cell = length // num_spans
        starts = [i * cell + int(rng.integers(0, max(1, cell - mean_span - 1))) for i in range(num_spans)]
        source, target, position = [], [], 0
        for i, s in enumerate(starts):
            source.append(window[position:s])
            source.append(SENTINELS[i])
            target.append(SENTINELS[i] + window[s:s + mean_span])
            position = s + mean_span
        source.append(window[position:])
        pairs.append(("".join(source), "".join(target)))
    return pairs


def read_pairs(path, max_len=None):
    """Pairs of a `source<TAB>target` file, one pair a line (blank lines are skipped).

    A line without exactly one tab, with an empty source or target, or (with
    `max_len`, counted in characters) a source longer than `max_len` or a
    target longer than `max_len - 1` (the decoder's start token takes one
    position), is a `UserInputError` naming the file and the line number.
    """
    if not os.path.isfile(path):
        raise UserInputError(f"pairs file not found: {path}")
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except UnicodeDecodeError as error:
        raise UserInputError(f"pairs file is not UTF-8 text: {path} (byte {error.start})") from None
    pairs = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise UserInputError(
                f"{path} line {number}: expected 'source<TAB>target', found {len(fields) - 1} tab(s)"
            )
        source, target = fields
        if not source.strip():
            raise UserInputError(f"{path} line {number}: the source is empty")
        if not target.strip():
            raise UserInputError(f"{path} line {number}: the target is empty")
        if max_len is not None and len(source) > max_len:
            raise UserInputError(
                f"{path} line {number}: the source has {len(source)} characters, more than "
                f"max_len={max_len}"
            )
        if max_len is not None and len(target) + 1 > max_len:
            raise UserInputError(
                f"{path} line {number}: the target has {len(target)} characters, more than "
                f"max_len - 1 = {max_len - 1} (raise --max-len)"
            )
        pairs.append((source, target))
    if len(pairs) < 2:
        raise UserInputError(f"{path} holds {len(pairs)} pair(s); at least 2 are needed")
    return pairs


def _encode(tokenizer, text):
    """Ids of `text`, where sentinel names count as one token."""
    if "<extra_id_" not in text:
        return list(tokenizer.encode(text))
    ids, rest = [], text
    while rest:
        at = rest.find("<extra_id_")
        if at == -1:
            ids.extend(tokenizer.encode(rest))
            break
        ids.extend(tokenizer.encode(rest[:at]))
        end = rest.index(">", at) + 1
        ids.append(tokenizer.special_id(rest[at:end]))
        rest = rest[end:]
    return ids


def is_t5_tokenizer(tokenizer):
    """Whether `tokenizer` is a Hugging Face T5's (`load_tokenizer` of a T5 folder)."""
    return getattr(tokenizer, "kind", None) == "t5_sentencepiece"


def pair_special_ids(tokenizer, decoder_start_id=None):
    """`(start_id, end_id, pad_id)` of an encoder-decoder using `tokenizer`.

    A run's tokenizer has `<s>` (the decoder's start) and `</s>`, and id 0 is
    padding that is never generated (`pad_id` 0). A T5 tokenizer has no
    `<s>`: the decoder starts with `decoder_start_id` (`None`: the pad id 0,
    T5's `decoder_start_token_id`), `</s>` ends every source and target, and
    `pad_id` is `None`: id 0 is the start token, so no id is banned.
    """
    if is_t5_tokenizer(tokenizer):
        start = tokenizer.pad_id if decoder_start_id is None else decoder_start_id
        return start, tokenizer.eos_id, None
    return tokenizer.special_id(BOS), tokenizer.special_id(EOS), 0


def encode_source(tokenizer, text):
    """The encoder ids of `text`: a T5 source ends in `</s>`, a run's has no special."""
    if is_t5_tokenizer(tokenizer):
        return list(tokenizer.encode(text, add_eos=True))
    return _encode(tokenizer, text)


def decode_target(tokenizer, ids):
    """The text of generated ids (T5's special tokens left out)."""
    if is_t5_tokenizer(tokenizer):
        return tokenizer.decode(ids, skip_special_tokens=True)
    return tokenizer.decode(ids)


def encode_pairs(pairs, tokenizer, max_len, where="pair"):
    """Padded arrays `(source, decoder_input, decoder_label)` of `pairs`.

    The source is padded to its longest row; the decoder arrays, `<s> target`
    and `target </s>`, to the longest target plus one. Both must fit in
    `max_len`, the model's position table. With a T5 tokenizer the source
    ends in `</s>` and the decoder starts with the pad id (see
    `pair_special_ids`).
    """
    bos, eos, _ = pair_special_ids(tokenizer)
    t5 = is_t5_tokenizer(tokenizer)
    sources, targets = [], []
    for number, (source, target) in enumerate(pairs, start=1):
        if not source:
            raise UserInputError(f"{where} {number}: the source is empty")
        s = encode_source(tokenizer, source)
        t = list(tokenizer.encode(target)) if t5 else _encode(tokenizer, target)
        if len(s) > max_len:
            raise UserInputError(
                f"{where} {number}: the source is {len(s)} tokens, longer than max_len={max_len}"
            )
        if len(t) + 1 > max_len:
            raise UserInputError(
                f"{where} {number}: the target is {len(t)} tokens, longer than max_len={max_len} "
                f"minus 1 for the start token"
            )
        sources.append(s)
        targets.append(t)
    source_len = max(len(s) for s in sources)
    target_len = max(len(t) for t in targets) + 1
    source = np.zeros((len(pairs), source_len), np.int32)
    decoder_input = np.zeros((len(pairs), target_len), np.int32)
    decoder_label = np.zeros((len(pairs), target_len), np.int32)
    for i, (s, t) in enumerate(zip(sources, targets, strict=True)):
        source[i, : len(s)] = s
        decoder_input[i, : len(t) + 1] = [bos, *t]
        decoder_label[i, : len(t) + 1] = [*t, eos]
    return source, decoder_input, decoder_label


def pairs_dataset(arrays, batch_size, shuffle_seed=None, repeat=False):
    """Batches `({"source_ids", "target_ids"}, labels, weights)` for `build_seq2seq`.

    The weight is 1 on real target tokens (the `</s>` included) and 0 on
    padding, rescaled per batch so the loss is a mean over real tokens.
    """
    source, decoder_input, decoder_label = arrays
    dataset = tf.data.Dataset.from_tensor_slices((source, decoder_input, decoder_label))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(source), seed=shuffle_seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size, drop_remainder=repeat)

    def to_keras(s, d, label):
        weights = tf.cast(label != 0, tf.float32)
        weights = weights / tf.maximum(tf.reduce_mean(weights), 1e-6)
        return {"source_ids": s, "target_ids": d}, label, weights

    return dataset.map(to_keras).prefetch(tf.data.AUTOTUNE)
