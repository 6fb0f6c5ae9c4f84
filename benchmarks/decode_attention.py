"""One decoding step's attention under XLA:CPU, written four ways (issue 17, line 5).

    python benchmarks/decode_attention.py [--slots 256 1024] [--json FILE]

A KV-cached decoding step writes one key and value into the cache and attends
from one query to every slot. This times that step alone, in an XLA
`tf.while_loop` of `--steps` iterations (the cache is loop state, updated in
place as in `generation/decoding.py`), for the default model's attention
shape (4 heads of 32, batch 1) and each of these forms:

- `sums` (what `_one_query_attention` does): products summed over the head
  axis (scores) and over the slots (output), cache `[1, heads, slots, 32]`;
- `matmul`: the same layout, two batched `tf.matmul`s;
- `keys transposed`: keys stored `[1, heads, 32, slots]`, scores summed over
  the head axis, so the sum runs along contiguous slots;
- `per-head matmul`: one 2-D matmul per head and product (a Python loop);
- `two-part cache`: what `generation/decoding.py` does since then: chunks
  of 32 steps in which the long cache is only read (its keys transposed once
  per chunk) by two matmuls, each step writing into a 32-slot recent cache
  that the chunk's end commits to the long one.

Prints microseconds per step (the best of 5 runs) and writes them with `--json`.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import ops  # noqa: E402

HEADS, HEAD_DIM = 4, 32


def scores_sums(q, k):
    return tf.reduce_sum(q * k, -1)  # [1, heads, slots]


def scores_transposed(q, kt):
    return tf.reduce_sum(tf.transpose(q, (0, 1, 3, 2)) * kt, -2)


def attend_sums(w, v):
    return tf.reduce_sum(w[..., None] * v, -2)  # [1, heads, head_dim]


def attend_matmul(w, v):
    return tf.matmul(w[:, :, None], v)[:, :, 0]


def scores_matmul(q, k):
    return tf.matmul(q, k, transpose_b=True)[:, :, 0]


def per_head(q, k, v):
    outputs = []
    for h in range(HEADS):
        weights = tf.nn.softmax(tf.matmul(q[0, h], k[0, h], transpose_b=True))
        outputs.append(tf.matmul(weights, v[0, h])[0])
    return tf.stack(outputs)[None]


FORMS = {
    "sums": (scores_sums, attend_sums, False),
    "matmul": (scores_matmul, attend_matmul, False),
    "keys transposed": (scores_transposed, attend_sums, True),
    "per-head matmul": (None, per_head, False),
    "two-part cache": (None, None, False),
}
RECENT = 32


def two_part_loop(slots, steps):
    """Chunks of `RECENT` steps (fewer with fewer slots): the long cache only read, a
    recent cache written. Runs `steps` rounded down to whole chunks."""
    recent = min(RECENT, slots)

    def run(q, keys, values):
        def chunk(c, q, keys, values):
            keys_t = tf.transpose(keys, (0, 1, 3, 2))  # once per chunk

            def step(i, q, recent_keys, recent_values):
                recent_keys = ops.slice_update(recent_keys, (0, 0, i, 0), q)
                recent_values = ops.slice_update(recent_values, (0, 0, i, 0), q)
                scores = tf.concat([tf.matmul(q, keys_t), tf.matmul(q, recent_keys,
                                                                    transpose_b=True)], -1)
                weights = tf.nn.softmax(scores, -1)
                output = (tf.matmul(weights[..., :slots], values)
                          + tf.matmul(weights[..., slots:], recent_values))
                return i + 1, tf.tanh(output), recent_keys, recent_values

            empty = tf.zeros([1, HEADS, recent, HEAD_DIM])
            _, q, recent_keys, recent_values = tf.while_loop(
                lambda i, *_: i < recent, step, (0, q, empty, empty))
            start = (c * recent) % slots
            keys = ops.slice_update(keys, (0, 0, start, 0), recent_keys)
            values = ops.slice_update(values, (0, 0, start, 0), recent_values)
            return c + 1, q, keys, values

        _, q, keys, values = tf.while_loop(lambda c, *_: c < steps // recent, chunk,
                                           (0, q, keys, values))
        return q + tf.reduce_sum(keys) + tf.reduce_sum(values)

    return tf.function(run, jit_compile=True)


def step_loop(form, slots, steps):
    if form == "two-part cache":
        return two_part_loop(slots, steps)
    score, attend, keys_transposed = FORMS[form]

    def run(q, keys, values):
        def step(i, q, keys, values):
            slot = i % slots
            if keys_transposed:
                keys = ops.slice_update(keys, (0, 0, 0, slot), tf.transpose(q, (0, 1, 3, 2)))
            else:
                keys = ops.slice_update(keys, (0, 0, slot, 0), q)
            values = ops.slice_update(values, (0, 0, slot, 0), q)
            if score is None:
                output = attend(q, keys, values)
            else:
                output = attend(tf.nn.softmax(score(q, keys), -1), values)
            return i + 1, tf.tanh(output)[:, :, None], keys, values

        _, q, keys, values = tf.while_loop(lambda i, *_: i < steps, step, (0, q, keys, values))
        return q + tf.reduce_sum(keys) + tf.reduce_sum(values)

    return tf.function(run, jit_compile=True)


def time_form(form, slots, steps):
    rng = np.random.default_rng(0)
    keys_shape = (1, HEADS, HEAD_DIM, slots) if FORMS[form][2] else (1, HEADS, slots, HEAD_DIM)
    args = [tf.constant(rng.normal(size=shape).astype("float32"))
            for shape in ((1, HEADS, 1, HEAD_DIM), keys_shape, (1, HEADS, slots, HEAD_DIM))]
    run = step_loop(form, slots, steps)
    if form == "two-part cache":
        steps -= steps % min(RECENT, slots)
    run(*args).numpy()  # compile
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        run(*args).numpy()
        best = min(best, time.perf_counter() - start)
    return best / steps * 1e6


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slots", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--steps", type=int, default=512)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    rows = []
    print(f"{'form':18s}" + "".join(f"{f'{s} slots':>14s}" for s in args.slots))
    for form in FORMS:
        micros = [time_form(form, slots, args.steps) for slots in args.slots]
        rows += [{"form": form, "slots": s, "us_per_step": round(m, 2)}
                 for s, m in zip(args.slots, micros, strict=True)]
        print(f"{form:18s}" + "".join(f"{m:11.1f} us" for m in micros), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"heads": HEADS, "head_dim": HEAD_DIM, "steps": args.steps, "rows": rows},
                      f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
