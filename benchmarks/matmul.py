"""Matmul throughput of this CPU: float32 and bfloat16, TensorFlow's kernels vs XLA.

    python benchmarks/matmul.py [--size 2048] [--json FILE]

TensorFlow's default CPU kernels (oneDNN) use a CPU's bfloat16 instructions
(AVX512_BF16, AMX) for bfloat16 matmuls; XLA's CPU path may not. This table
tells, on the machine it runs on, which of the four settings a training run
should use (`--jit`, `--mixed-precision`). XLA flags (the `XLA_FLAGS`
environment variable) apply to the XLA rows.
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402


def gflops(size, dtype, jit, repeats=10):
    """Best of three timings of `repeats` `[size, size] @ [size, size]` matmuls, in GFLOP/s."""
    a = tf.cast(tf.random.normal((size, size)), dtype)
    b = tf.cast(tf.random.normal((size, size)), dtype)
    matmul = tf.function(lambda x, y: tf.matmul(x, y), jit_compile=jit)
    matmul(a, b).numpy()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            out = matmul(a, b)
        out.numpy()
        best = min(best, (time.perf_counter() - start) / repeats)
    return 2 * size**3 / best / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    rows = []
    print(f"{'dtype':<9} {'kernels':<8} {'GFLOP/s':>8}")
    for dtype in ("float32", "bfloat16"):
        for jit in (False, True):
            rate = gflops(args.size, dtype, jit)
            rows.append({"dtype": dtype, "xla": jit, "size": args.size, "gflops": round(rate, 1)})
            print(f"{dtype:<9} {'XLA' if jit else 'oneDNN':<8} {rate:>8,.0f}", flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"results": rows, "xla_flags": os.environ.get("XLA_FLAGS", "")}, handle,
                      indent=2)
    return rows


if __name__ == "__main__":
    main()
