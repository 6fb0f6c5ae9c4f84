"""One-token products with biases under XLA:CPU, written five ways (issue 17, line 4).

    python benchmarks/bias_fold.py [--layers 12] [--width 768] [--json FILE]

A decoding step of GPT-2 small is 48 one-token products with a bias each
(per layer `[1, 768]` times `[768, 2304]`, `[768, 768]`, `[768, 3072]` and
`[3072, 768]`), then the `[768, 50257]` logits. This times that chain alone,
in an XLA `tf.while_loop` (the weights read at every step, as in
`generation/decoding.py`), with the products and their biases written as:

- `no bias`: `x @ W` (the floor: what the products cost alone);
- `plus bias`: `x @ W + b` (what the layers did before `matmul_folded_bias`);
- `bias tiled in loop`: `x @ W + tile(b, [batch, 1])` inside the loop;
- `bias tiled before`: `x @ W + B`, `B` tiled to `[batch, out]` before the loop;
- `folded`: `[x, 1] @ [W; b]`, the concatenation written inside the loop
  (`layers/folded_bias.py: matmul_folded_bias`, what the decoding loop does).

The forms are compiled once each, then timed in turn `--repeats` times (one
process, interleaved); prints the median milliseconds per step and the
weights' read rate, and writes them with `--json`.
"""

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_transformer.layers.folded_bias import matmul_folded_bias  # noqa: E402

FORMS = ("no bias", "plus bias", "bias tiled in loop", "bias tiled before", "folded")


def chain(form, layers, head, x, steps):
    """`steps` decoding-like steps of the product chain, in one XLA while loop."""
    if form == "bias tiled before":  # outside the loop, so XLA cannot put it back inside
        tiled = [[tf.tile(b[None], [x.shape[0], 1]) for _, b in layer] for layer in layers]

    def linear(h, i, j):
        w, b = layers[i][j]
        if form == "no bias":
            return tf.matmul(h, w)
        if form == "plus bias":
            return tf.matmul(h, w) + b
        if form == "bias tiled in loop":
            return tf.matmul(h, w) + tf.tile(b[None], [h.shape[0], 1])
        if form == "bias tiled before":
            return tf.matmul(h, w) + tiled[i][j]
        return matmul_folded_bias(h, w, b)

    def step(t, h):
        width = h.shape[-1]
        for i in range(len(layers)):
            h = linear(linear(h, i, 0)[:, :width], i, 1) + h  # attention's QKV and output
            h = linear(tf.nn.gelu(linear(h, i, 2)), i, 3) + h  # the feed-forward network
        logits = tf.matmul(h, head)
        return t + 1, h + 1e-9 * tf.reduce_max(logits)  # the logits feed the next step

    return tf.while_loop(lambda t, h: t < steps, step, (0, x))[1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--vocab", type=int, default=50257)
    parser.add_argument("--steps", type=int, default=20, help="steps per timed call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    d = args.width
    rng = np.random.default_rng(0)

    def weight(*shape):
        return tf.Variable(rng.normal(0.0, 0.02, shape).astype("float32"))

    layers = [[(weight(d, 3 * d), weight(3 * d)), (weight(d, d), weight(d)),
               (weight(d, 4 * d), weight(4 * d)), (weight(4 * d, d), weight(d))]
              for _ in range(args.layers)]
    head = weight(d, args.vocab)
    weight_bytes = 4 * (args.layers * 12 * d * d + d * args.vocab)
    x = tf.constant(rng.normal(size=(1, d)).astype("float32"))
    runs = {}
    for form in FORMS:
        runs[form] = tf.function(lambda x, n, form=form: chain(form, layers, head, x, n),
                                 jit_compile=True)
        runs[form](x, 2).numpy()  # compile
    seconds = {form: [] for form in FORMS}
    for _ in range(args.repeats):
        for form in FORMS:
            start = time.perf_counter()
            runs[form](x, args.steps).numpy()
            seconds[form].append((time.perf_counter() - start) / args.steps)
    print(f"{args.layers} layers of width {d}, {weight_bytes / 1e6:.1f} MB of weights per step; "
          f"median of {args.repeats} interleaved runs")
    print(f"{'form':20s} {'ms/step':>9s} {'GB/s':>6s}")
    rows = []
    for form in FORMS:
        step = statistics.median(seconds[form])
        rows.append({"form": form, "ms_per_step": round(step * 1e3, 3),
                     "GBps": round(weight_bytes / step / 1e9, 1)})
        print(f"{form:20s} {step * 1e3:9.2f} {weight_bytes / step / 1e9:6.1f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"layers": args.layers, "width": d, "vocab": args.vocab,
                       "weight_bytes": weight_bytes, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
