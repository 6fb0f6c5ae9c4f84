"""`tf.data` pipelines that turn a long array of token ids into training batches."""

import numpy as np
import tensorflow as tf

from keras_transformer.errors import UserInputError


def num_windows(num_tokens, seq_len):
    """How many non-overlapping `(x, y)` windows of `seq_len` fit in `num_tokens` ids.

    A window needs `seq_len + 1` ids (the target is the input shifted by one),
    and this count holds for every start offset in `[0, seq_len)`. Works on
    Python ints and on scalar tensors.
    """
    if tf.is_tensor(num_tokens):
        return tf.maximum((num_tokens - seq_len) // seq_len, 0)
    return max(0, (num_tokens - seq_len) // seq_len)


def _check_length(ids, seq_len, batch_size, what):
    windows = num_windows(len(ids), seq_len)
    if windows < batch_size:
        raise UserInputError(
            f"the {what} text has {len(ids)} tokens: too short for one batch of "
            f"{batch_size} windows of {seq_len} (+1) tokens; use a longer text or a smaller "
            f"--batch-size / --seq-len"
        )
    return windows


def _windows_at(ids, starts, seq_len):
    """Gather `[n, seq_len + 1]` windows and split them into inputs and targets."""
    index = starts[:, None] + tf.range(seq_len + 1, dtype=starts.dtype)[None, :]
    window = tf.gather(ids, index)
    return window[:, :-1], window[:, 1:]


def lm_train_dataset(ids, seq_len, batch_size, seed=0, resample=None):
    """An endless stream of shuffled `(x, y)` batches, `y` being `x` shifted by one.

    Each pass over the text ("data epoch" `e`) starts the windows at a random
    offset in `[0, seq_len)` drawn from `(seed, e)`, so the model sees
    different cuts of the text every pass, then visits the windows in a
    random order, also drawn from `(seed, e)`. A pass yields
    `num_windows(len(ids), seq_len) // batch_size` full batches; use that as
    `steps_per_epoch` to make one Keras epoch one pass over the text.

    Args:
        ids: the text's token ids (int array).
        seq_len, batch_size: each batch holds `batch_size` windows of
            `seq_len` tokens.
        seed: seeds the offsets and orders.
        resample: optional `resample(pass_seed) -> int32 tensor`, called
            inside `tf.data` at the start of every pass to tokenize the text
            anew (subword sampling, see `sampled_ids`). The pass then cuts
            its windows from those ids; `ids` (the deterministic encoding)
            only fixes the number of batches per pass (a pass whose sampled
            ids are too few for it yields fewer).

    Returns:
        A `tf.data.Dataset` of `(x, y)`, both int32 `[batch_size, seq_len]`,
        with an attribute `batches_per_pass`. Every batch depends on `seed`
        and its index alone (without `resample`), so `dataset.skip(g)` is
        the stream from batch `g` on: how a resumed run continues.
    """
    windows = _check_length(ids, seq_len, batch_size, "training")
    batches = windows // batch_size
    ids = tf.constant(np.asarray(ids, dtype=np.int32))

    def one_pass(epoch):
        pass_seed = tf.stack([tf.constant(seed, tf.int64), epoch])
        pass_ids = ids if resample is None else resample(pass_seed)
        here = windows if resample is None else num_windows(tf.size(pass_ids, tf.int64), seq_len)
        offset = tf.random.stateless_uniform(
            [], seed=pass_seed, minval=0, maxval=seq_len, dtype=tf.int64
        )
        starts = offset + tf.range(here, dtype=tf.int64) * seq_len
        starts = tf.random.experimental.stateless_shuffle(starts, seed=pass_seed + 1)
        count = tf.minimum(tf.cast(batches, tf.int64), here // batch_size)
        starts = tf.reshape(starts[: count * batch_size], [count, batch_size])
        return tf.data.Dataset.from_tensor_slices(starts).map(
            lambda s: _windows_at(pass_ids, tf.cast(s, tf.int32), seq_len),
            num_parallel_calls=tf.data.AUTOTUNE,
        )

    dataset = tf.data.Dataset.counter().flat_map(one_pass).prefetch(tf.data.AUTOTUNE)
    # The stream is stateless: batch `g` is batch `g % batches` of pass `g // batches`,
    # whatever came before, so `dataset.skip(g)` continues a run exactly (`backup.py`).
    dataset.batches_per_pass = batches
    return dataset


def sampled_ids(make_tokenizer, text):
    """A `resample` function for `lm_train_dataset`: `text` tokenized anew on each call.

    The text is cut into lines (each keeping its newline) and tokenized in
    one batch by the tokenizer `make_tokenizer()` returns (e.g.
    `lambda: tokenizer.tf_tokenizer(sampling=True)`); the lines' ids are
    concatenated back into one stream. With a sampling tokenizer every call
    gives another segmentation.

    The tokenizer is made inside the call, so inside the `tf.data` function
    that calls it: its TensorFlow resource then lives as long as the
    dataset (one made eagerly would be freed once its Python object is).

    Args:
        make_tokenizer: no-argument callable returning a `tensorflow_text`
            tokenizer with `tokenize(strings) -> RaggedTensor` of ids.
        text: the training text.

    Returns:
        `resample(pass_seed) -> int32 [num_tokens]` (the seed is unused:
        SentencePiece draws its own samples).
    """
    lines = text.splitlines(keepends=True) or [text]

    def resample(pass_seed):
        del pass_seed
        tokenizer = make_tokenizer()
        return tf.cast(tokenizer.tokenize(tf.constant(lines)).flat_values, tf.int32)

    return resample


def lm_eval_dataset(ids, seq_len, batch_size):
    """Every window of the text once, in order, from offset 0 (for validation).

    The last batch may be smaller than `batch_size`, so no text is left out.
    """
    windows = num_windows(len(ids), seq_len)
    if windows < 1:
        raise UserInputError(
            f"the validation text has {len(ids)} tokens: too short for one window of "
            f"{seq_len} (+1) tokens; use a longer text or a smaller --seq-len"
        )
    ids = tf.constant(np.asarray(ids, dtype=np.int32))
    starts = tf.range(windows, dtype=tf.int32) * seq_len
    dataset = tf.data.Dataset.from_tensor_slices(starts).batch(batch_size)
    dataset = dataset.map(lambda s: _windows_at(ids, s, seq_len))
    return dataset.cache().prefetch(tf.data.AUTOTUNE)


def steps_per_pass(num_tokens, seq_len, batch_size):
    """Batches in one pass of `lm_train_dataset` over `num_tokens` ids."""
    return num_windows(num_tokens, seq_len) // batch_size


def padded_batches(texts, tf_tokenizer, batch_size, max_len, shuffle_seed=None):
    """Variable-length batches of whole texts (lines, articles), padded, with a mask.

    Each text is tokenized inside `tf.data` by `tf_tokenizer` and cut to its
    first `max_len` ids; a batch is padded (id 0) to its longest row only
    (`Dataset.padded_batch`), and `padding_mask` is True at the `length`
    real tokens of each row, the form `PaddingMask` and the blocks'
    `padding_mask=` expect.

    Args:
        texts: a list of strings.
        tf_tokenizer: a `tensorflow_text` tokenizer (`tokenize(string) ->
            int32 ids`), e.g. `SentencePieceTokenizer.tf_tokenizer()`.
        batch_size: rows per batch (the last batch may be smaller).
        max_len: the longest row kept.
        shuffle_seed: shuffle the texts with this seed (`None`: in order).

    Returns:
        A `tf.data.Dataset` of `{"token_ids": int32 [batch, time],
        "padding_mask": bool [batch, time], "length": int32 [batch]}`.
    """
    if not texts:
        raise UserInputError("no texts to batch")
    dataset = tf.data.Dataset.from_tensor_slices(tf.constant(list(texts)))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(texts), seed=shuffle_seed)

    def tokenize(text):
        ids = tf.cast(tf_tokenizer.tokenize(text), tf.int32)[:max_len]
        return ids, tf.size(ids)

    dataset = dataset.map(tokenize, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.padded_batch(batch_size, padded_shapes=([None], []), padding_values=(0, 0))

    def with_mask(ids, length):
        mask = tf.range(tf.shape(ids)[1])[None, :] < length[:, None]
        return {"token_ids": ids, "padding_mask": mask, "length": length}

    return dataset.map(with_mask).prefetch(tf.data.AUTOTUNE)
