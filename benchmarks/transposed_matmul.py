"""Attention's backward products under XLA:CPU: autodiff's layouts against `batched_matmul`'s.

    python benchmarks/transposed_matmul.py [--repeats 5] [--step-repeats 4] [--large] [--json FILE]

The gradient of a batched `a @ b` with respect to `b` is `a^T @ dy`, a
contraction of `a` and `dy` over their rows. Autodiff hands XLA that as one
dot with a transposed left operand; `layers/batched_matmul.py` computes it as
a plain product of a transposed copy. Two parts, each in one process,
interleaved:

- products: the default GPT's two such products (batch 64 x 4 heads, 128
  positions, head size 32), `weights^T @ d_output` (the values' gradient)
  and `q^T @ d_scores` (the keys'), in autodiff's form, in
  `batched_matmul`'s, and, as the floor, a plain product of an operand that
  is already transposed; median milliseconds of `--repeats` rounds.
- step: the default GPT's training step (`train.py --arch gpt`'s model and
  optimizer, batch 64 x 128, float32, XLA), one copy traced with
  `tf.matmul` in the attention (autodiff's gradients) and one with
  `batched_matmul`, their `fit`s alternating `--step-repeats` times; median
  tokens/s. `--large`: line 3's step instead (d_model 512, 6 layers, batch
  16 x 256, mixed_bfloat16 without XLA), where no XLA sees the products.

Prints both tables; `--json` writes them.
"""

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from step_variants import report, time_variants  # noqa: E402  (benchmarks/step_variants.py)

import keras_transformer.layers.attention as attention  # noqa: E402
from keras_transformer.layers.batched_matmul import _swap, right_gradient  # noqa: E402

BATCH, SEQ_LEN, HEADS, HEAD_DIM = 64, 128, 4, 32


def product_forms():
    """`{name: zero-argument XLA function}` of the two gradient products, each three ways."""
    rng = np.random.default_rng(0)

    def tensor(*shape):
        return tf.constant(rng.normal(size=shape).astype("float32"))

    rows = BATCH * HEADS
    weights, d_output = tensor(rows, SEQ_LEN, SEQ_LEN), tensor(rows, SEQ_LEN, HEAD_DIM)
    q, d_scores = tensor(rows, SEQ_LEN, HEAD_DIM), tensor(rows, SEQ_LEN, SEQ_LEN)
    # The forward products' right operands (their shapes pick right_gradient's form).
    values, keys_t = tensor(rows, SEQ_LEN, HEAD_DIM), tensor(rows, HEAD_DIM, SEQ_LEN)
    weights_t, q_t = _swap(weights), _swap(q)  # made outside: the floor reads them as they are
    forms = {
        "weights^T @ d_output: autodiff (transposed left operand)":
            lambda: tf.matmul(weights, d_output, transpose_a=True),
        "weights^T @ d_output: batched_matmul, swap(swap(d_output) @ weights)":
            lambda: right_gradient(weights, d_output, values),
        "weights^T @ d_output: floor, weights already transposed":
            lambda: tf.matmul(weights_t, d_output),
        "q^T @ d_scores: autodiff (transposed left operand)":
            lambda: tf.matmul(q, d_scores, transpose_a=True),
        "q^T @ d_scores: batched_matmul, swap(q) @ d_scores":
            lambda: right_gradient(q, d_scores, keys_t),
        "q^T @ d_scores: floor, q already transposed":
            lambda: tf.matmul(q_t, d_scores),
    }
    return {name: tf.function(form, jit_compile=True) for name, form in forms.items()}


def time_products(repeats, calls=10):
    forms = product_forms()
    for form in forms.values():
        form()  # compile
    first = {}
    for name, form in forms.items():  # each product of a pair gives the same numbers
        key = name.split(":")[0]
        result = form().numpy()
        if key in first:
            np.testing.assert_allclose(result, first[key], rtol=1e-4, atol=1e-3)
        first.setdefault(key, result)
    times = {name: [] for name in forms}
    for _ in range(repeats):
        for name, form in forms.items():
            start = time.perf_counter()
            for _ in range(calls):
                result = form()
            result.numpy()
            times[name].append((time.perf_counter() - start) / calls * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="rounds of the product timings")
    parser.add_argument("--step-repeats", type=int, default=4,
                        help="alternating fits of each step (0: products only)")
    parser.add_argument("--large", action="store_true",
                        help="time line 3's mixed-precision step (d_model 512, 6 layers, XLA "
                             "off) instead of the default one")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    products = time_products(args.repeats)
    print(f"{'product (XLA, float32)':72s} {'ms':>7s}")
    for name, ms in products.items():
        print(f"{name:72s} {ms:7.2f}", flush=True)
    result = {"products_ms": products}
    if args.step_repeats:
        steps, rounds = time_variants(
            {"autodiff": [(attention, "batched_matmul", tf.matmul)], "batched_matmul": []},
            args.step_repeats, args.large)
        ratio = report(steps, rounds, args.large)
        result.update(step="large" if args.large else "default", step_tokens_per_second=steps,
                      step_rounds=rounds, step_ratio=ratio)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
