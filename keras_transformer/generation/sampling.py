"""Choosing the next token from logits: greedy, temperature, top-k, nucleus (top-p).

All functions are TensorFlow ops with tensor arguments, so one compiled
decoding step serves every setting without retracing.
"""

import tensorflow as tf


def filter_logits(logits, top_k, top_p):
    """Set to -inf every logit outside the top-k and outside the top-p nucleus.

    Args:
        logits: float32 `[batch, vocab]`.
        top_k: int32 scalar; keep the `top_k` largest logits (0 keeps all).
        top_p: float32 scalar; keep the smallest set of largest-probability
            tokens whose probabilities sum to at least `top_p` (1.0 keeps all).

    Tokens tied with the last kept one are kept too.
    """
    logits = tf.convert_to_tensor(logits, tf.float32)
    vocab = tf.shape(logits)[-1]
    top_k = tf.convert_to_tensor(top_k, tf.int32)
    top_p = tf.convert_to_tensor(top_p, tf.float32)
    ordered = tf.sort(logits, axis=-1, direction="DESCENDING")
    # top-k: the k-th largest logit is the threshold.
    k = tf.where(top_k > 0, tf.minimum(top_k, vocab), vocab)
    kth = tf.gather(ordered, k - 1, axis=-1)[:, None]
    # top-p: keep sorted tokens whose preceding cumulative probability < top_p.
    before = tf.math.cumsum(tf.nn.softmax(ordered, axis=-1), axis=-1, exclusive=True)
    kept = tf.reduce_sum(tf.cast(before < top_p, tf.int32), axis=-1)
    kept = tf.maximum(kept, 1)
    nucleus = tf.gather(ordered, kept - 1, axis=-1, batch_dims=1)[:, None]
    threshold = tf.maximum(kth, nucleus)
    return tf.where(logits < threshold, tf.constant(-float("inf"), tf.float32), logits)


def sample_next(logits, temperature, top_k, top_p, seed):
    """The next token id for each row of `logits` (`[batch, vocab]`).

    `temperature <= 0` is greedy decoding (argmax). Otherwise the logits are
    divided by the temperature, filtered by `filter_logits` (skipped when
    `top_k <= 0` and `top_p >= 1`, which keep every token) and sampled with
    a stateless generator: the same `seed` (a `[2]` int tensor) gives the
    same tokens. Only the branch the settings select runs (`tf.cond`), so
    greedy decoding costs an argmax, not a sort of the vocabulary.
    """
    logits = tf.convert_to_tensor(logits, tf.float32)
    temperature = tf.convert_to_tensor(temperature, tf.float32)
    top_k = tf.convert_to_tensor(top_k, tf.int32)
    top_p = tf.convert_to_tensor(top_p, tf.float32)

    def greedy():
        return tf.argmax(logits, axis=-1, output_type=tf.int32)

    def sampled(filtered):
        scaled = logits / tf.maximum(temperature, 1e-6)
        if filtered:
            scaled = filter_logits(scaled, top_k, top_p)
        return tf.random.stateless_categorical(scaled, 1, seed=seed, dtype=tf.int32)[:, 0]

    # Only the branch taken runs: greedy decoding and unfiltered sampling never sort the
    # vocabulary (a sort of 50k logits costs more than a small model's whole step).
    unfiltered = (top_k <= 0) & (top_p >= 1.0)
    return tf.cond(
        temperature > 0,
        lambda: tf.cond(unfiltered, lambda: sampled(False), lambda: sampled(True)),
        greedy,
    )
