"""The fast paths of `sample_next`: greedy decoding and unfiltered sampling skip the sort."""

import numpy as np
import tensorflow as tf

from keras_transformer.generation import filter_logits, sample_next

LOGITS = np.random.default_rng(0).normal(size=(64, 50)).astype("float32")


def _old_sample_next(logits, temperature, top_k, top_p, seed):
    """The rule before the fast paths: always filter, then pick greedy or sampled."""
    greedy = tf.argmax(logits, axis=-1, output_type=tf.int32)
    filtered = filter_logits(logits / max(temperature, 1e-6), top_k, top_p)
    sampled = tf.random.stateless_categorical(filtered, 1, seed=seed, dtype=tf.int32)[:, 0]
    return greedy if temperature <= 0 else sampled


def test_fast_paths_give_the_tokens_of_the_filtering_rule():
    seed = tf.constant([3, 1])
    for settings in ((0.0, 0, 1.0), (0.0, 5, 0.5), (1.0, 0, 1.0), (0.7, 0, 1.0), (1.0, 3, 1.0),
                     (1.0, 0, 0.3)):
        np.testing.assert_array_equal(sample_next(LOGITS, *settings, seed).numpy(),
                                      _old_sample_next(LOGITS, *settings, seed).numpy())


def test_the_branch_is_chosen_at_run_time_inside_one_compiled_function():
    # One XLA function serves every setting: the tensors pick the branch.
    step = tf.function(sample_next, jit_compile=True)
    seed = tf.constant([5, 0])

    def run(temperature, top_k):
        return step(LOGITS, tf.constant(temperature), tf.constant(top_k), tf.constant(1.0),
                    seed).numpy()

    np.testing.assert_array_equal(run(0.0, 0), np.argmax(LOGITS, -1))
    top2 = np.argsort(-LOGITS, axis=-1)[:, :2]
    assert (run(1.0, 2)[:, None] == top2).any(axis=1).all()  # top-k still filters
    assert not (run(1.0, 0)[:, None] == top2).any(axis=1).all()  # unfiltered: any token
