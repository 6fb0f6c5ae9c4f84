"""BERT pretraining data in `tf.data`: sentence pairs and masked-LM masking.

Each example is `[CLS] A [SEP] B [SEP]` cut from a long array of token ids
(characters, or BPE pieces): `A` is a stretch of text and, half the time, `B` is the text right after
it (label 1, "B follows A"); otherwise `B` starts at a random place (label 0).
The segment ids are 0 over `[CLS] A [SEP]` and 1 over `B [SEP]`.

Then BERT's masking: 15 % of the character positions (never `[CLS]`,
`[SEP]`, `[MASK]` or padding) are chosen for prediction; of those, 80 %
become `[MASK]`, 10 % a random character and 10 % stay as they are. The
loss is computed only there: the `mlm` sample weight is 0 except at chosen
positions.

All randomness is stateless and seeded by `(seed, batch index)`, so a run is
reproducible and the validation batches are the same every epoch.
"""

import numpy as np
import tensorflow as tf

from keras_transformer.errors import UserInputError

SPECIALS = ("[CLS]", "[SEP]", "[MASK]")


def mask_tokens(ids, seed, num_chars, mask_id, rate=0.15, mask_fraction=0.8, random_fraction=0.1,
                first_id=1):
    """BERT's masking of a batch of ids.

    Args:
        ids: int32 `[batch, time]`. Ids `first_id .. num_chars` are ordinary
            tokens and may be chosen; 0 (padding) and ids outside that range
            (special tokens) never are.
        seed: int `[2]` tensor for the stateless random ops.
        num_chars: the largest ordinary id; random replacements are drawn
            from `first_id .. num_chars`.
        mask_id: id of `[MASK]`.
        rate: fraction of ordinary tokens chosen for prediction.
        mask_fraction, random_fraction: of the chosen tokens, the share
            replaced by `[MASK]` and by a random token; the rest is kept.
        first_id: the smallest ordinary id (1 for `CharTokenizer`; a
            `SentencePieceTokenizer`'s specials come first, see
            `tokenizer.ordinary_ids`).

    Returns:
        `(inputs, labels, weights)`: the corrupted ids, the original ids, and
        float32 weights, 1.0 at chosen positions and 0.0 elsewhere.

    Example:

    >>> inputs, labels, weights = mask_tokens(ids, tf.constant([0, 1]), num_chars=65, mask_id=68)
    """
    ids = tf.convert_to_tensor(ids, tf.int32)
    seed = tf.cast(seed, tf.int32)
    shape = tf.shape(ids)
    ordinary = (ids >= first_id) & (ids <= num_chars)
    chosen = ordinary & (tf.random.stateless_uniform(shape, seed) < rate)
    action = tf.random.stateless_uniform(shape, seed + tf.constant([0, 7919]))
    random_ids = tf.random.stateless_uniform(
        shape, seed + tf.constant([0, 104729]), minval=first_id, maxval=num_chars + 1,
        dtype=tf.int32,
    )
    to_mask = chosen & (action < mask_fraction)
    to_random = chosen & (action >= mask_fraction) & (action < mask_fraction + random_fraction)
    inputs = tf.where(to_mask, tf.cast(mask_id, tf.int32), ids)
    inputs = tf.where(to_random, random_ids, inputs)
    return inputs, ids, tf.cast(chosen, tf.float32)


def sentence_pairs(ids, starts, a_lengths, b_starts, seq_len, cls_id, sep_id):
    """Assemble `[CLS] A [SEP] B [SEP]` rows of exactly `seq_len` ids.

    Args:
        ids: int32 `[num_tokens]`, the text.
        starts, a_lengths, b_starts: int32 `[batch]`: where `A` starts, its
            length, where `B` starts (`B` fills the rest, `seq_len - 3 - a`).

    Returns:
        `(token_ids, segment_ids)`, int32 `[batch, seq_len]`.
    """
    p = tf.range(seq_len, dtype=tf.int32)[None, :]
    a = a_lengths[:, None]
    a_tokens = tf.gather(ids, tf.clip_by_value(starts[:, None] + p - 1, 0, tf.size(ids) - 1))
    b_tokens = tf.gather(ids, tf.clip_by_value(b_starts[:, None] + p - a - 2, 0, tf.size(ids) - 1))
    tokens = tf.where(p <= a, a_tokens, b_tokens)
    tokens = tf.where((p == a + 1) | (p == seq_len - 1), sep_id, tokens)
    tokens = tf.where(p == 0, cls_id, tokens)
    segments = tf.cast(p > a + 1, tf.int32) + tf.zeros_like(tokens)
    return tokens, segments


def _pair_batch(ids, seed, batch_size, seq_len, tokenizer):
    """One batch of masked sentence pairs, drawn from `seed` (an int `[2]` tensor)."""
    budget = seq_len - 3
    n = tf.size(ids)
    seed = tf.cast(seed, tf.int32)
    min_a = max(1, budget // 4)
    seeds = [seed + tf.constant([0, k]) for k in range(1, 5)]
    a_lengths = tf.random.stateless_uniform(
        [batch_size], seeds[0], minval=min_a, maxval=budget - min_a + 1, dtype=tf.int32
    )
    starts = tf.random.stateless_uniform(
        [batch_size], seeds[1], minval=0, maxval=n - budget, dtype=tf.int32
    )
    is_next = tf.random.stateless_uniform([batch_size], seeds[2]) < 0.5
    random_b = tf.random.stateless_uniform(
        [batch_size], seeds[3], minval=0, maxval=n - budget, dtype=tf.int32
    )
    b_starts = tf.where(is_next, starts + a_lengths, random_b)
    tokens, segments = sentence_pairs(
        ids, starts, a_lengths, b_starts, seq_len,
        tokenizer.special_id("[CLS]"), tokenizer.special_id("[SEP]"),
    )
    first, last = tokenizer.ordinary_ids
    inputs, labels, weights = mask_tokens(
        tokens, seed + tf.constant([0, 5]), last, tokenizer.special_id("[MASK]"), first_id=first
    )
    # Keras averages weighted losses over all positions; rescaling the 0/1
    # weights by their mean makes `mlm_loss` the mean over masked positions.
    weights = weights / tf.maximum(tf.reduce_mean(weights), 1e-6)
    x = {"token_ids": inputs, "segment_ids": segments}
    y = {"mlm": labels, "nsp": tf.cast(is_next, tf.int32)}
    weights = {"mlm": weights, "nsp": tf.ones([batch_size], tf.float32)}
    return x, y, weights


def _check(ids, seq_len, what):
    if len(ids) < 4 * seq_len:
        raise UserInputError(
            f"the {what} text has {len(ids)} tokens: too short for sentence pairs of "
            f"{seq_len} tokens; use a longer text or a smaller --seq-len"
        )
    if seq_len < 8:
        raise UserInputError(f"--seq-len {seq_len} is too short for [CLS] A [SEP] B [SEP]")


def mlm_train_dataset(ids, tokenizer, seq_len, batch_size, seed=0, resample=None,
                      steps_per_sample=200):
    """An endless stream of `(x, y, sample_weight)` batches for `build_bert`.

    `x` is `{"token_ids", "segment_ids"}`, `y` is `{"mlm": original ids,
    "nsp": 1 if B follows A}`, the sample weights are `{"mlm": positive
    (one value per batch) at masked positions, 0 elsewhere; "nsp": 1.0}`.

    Args:
        ids: the training text's token ids.
        tokenizer: gives `special_id` and `ordinary_ids`.
        seq_len, batch_size: rows of `seq_len` tokens, `batch_size` a batch.
        seed: seeds the pairs and the masking.
        resample: optional `resample(seed) -> int32 tensor` (see
            `pipelines.sampled_ids`): every `steps_per_sample` batches the
            text is tokenized anew inside `tf.data` (subword sampling).
        steps_per_sample: batches drawn from one tokenization.
    """
    _check(ids, seq_len, "training")
    ids = tf.constant(np.asarray(ids, dtype=np.int32))

    def batch_at(source, step):
        pair_seed = tf.stack([tf.constant(seed, tf.int64), step])
        return _pair_batch(source, pair_seed, batch_size, seq_len, tokenizer)

    if resample is None:
        dataset = tf.data.Dataset.counter().map(
            lambda step: batch_at(ids, step), num_parallel_calls=tf.data.AUTOTUNE
        )
    else:
        def one_sample(index):
            sampled = resample(tf.stack([tf.constant(seed, tf.int64), index]))
            steps = tf.data.Dataset.range(steps_per_sample)
            return steps.map(lambda step: batch_at(sampled, index * steps_per_sample + step),
                             num_parallel_calls=tf.data.AUTOTUNE)

        dataset = tf.data.Dataset.counter().flat_map(one_sample)
    return dataset.prefetch(tf.data.AUTOTUNE)


def mlm_eval_dataset(ids, tokenizer, seq_len, batch_size, num_batches, seed=0):
    """`num_batches` fixed batches like `mlm_train_dataset`'s (for validation)."""
    _check(ids, seq_len, "validation")
    ids = tf.constant(np.asarray(ids, dtype=np.int32))
    dataset = tf.data.Dataset.range(num_batches).map(
        lambda step: _pair_batch(
            ids, tf.stack([tf.constant(seed + 1_000_003, tf.int64), step]), batch_size, seq_len,
            tokenizer,
        )
    )
    return dataset.cache().prefetch(tf.data.AUTOTUNE)
