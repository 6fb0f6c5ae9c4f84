"""`tf.data` pipelines that turn a long array of token ids into training batches."""

import numpy as np
import tensorflow as tf

from keras_transformer.errors import UserInputError


def num_windows(num_tokens, seq_len):
    """How many non-overlapping `(x, y)` windows of `seq_len` fit in `num_tokens` ids.

    A window needs `seq_len + 1` ids (the target is the input shifted by one),
    and this count holds for every start offset in `[0, seq_len)`.
    """
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


def lm_train_dataset(ids, seq_len, batch_size, seed=0):
    """An endless stream of shuffled `(x, y)` batches, `y` being `x` shifted by one.

    Each pass over the text ("data epoch" `e`) starts the windows at a random
    offset in `[0, seq_len)` drawn from `(seed, e)`, so the model sees
    different cuts of the text every pass, then visits the windows in a
    random order, also drawn from `(seed, e)`. A pass yields
    `num_windows(len(ids), seq_len) // batch_size` full batches; use that as
    `steps_per_epoch` to make one Keras epoch one pass over the text.

    Returns:
        A `tf.data.Dataset` of `(x, y)`, both int32 `[batch_size, seq_len]`.
    """
    windows = _check_length(ids, seq_len, batch_size, "training")
    batches = windows // batch_size
    ids = tf.constant(np.asarray(ids, dtype=np.int32))

    def one_pass(epoch):
        pass_seed = tf.stack([tf.constant(seed, tf.int64), epoch])
        offset = tf.random.stateless_uniform(
            [], seed=pass_seed, minval=0, maxval=seq_len, dtype=tf.int64
        )
        starts = offset + tf.range(windows, dtype=tf.int64) * seq_len
        starts = tf.random.experimental.stateless_shuffle(starts, seed=pass_seed + 1)
        starts = tf.reshape(starts[: batches * batch_size], [batches, batch_size])
        return tf.data.Dataset.from_tensor_slices(starts)

    dataset = tf.data.Dataset.counter().flat_map(one_pass)
    dataset = dataset.map(
        lambda starts: _windows_at(ids, tf.cast(starts, tf.int32), seq_len),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


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
