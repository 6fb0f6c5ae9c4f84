"""Peak memory of attention, standard vs chunked, forward + backward.

    python benchmarks/attention_memory.py --json benchmarks/attention_memory.json   # 512 ... 8192
    python benchmarks/attention_memory.py --lengths 256 512 --no-plot               # quick smoke run

Each point runs in a fresh subprocess: it builds a `CausalSelfAttention`
(d_model 128, 4 heads; `attention="standard"` or `"chunked"`), runs one
compiled forward + backward pass on a tiny input (so tracing costs are paid
and the baseline is taken afterwards), then one on `[1, length, 128]`
inputs with a padding mask. The peak is the growth of the process' maximum
resident set size (`resource.getrusage(...).ru_maxrss`) during that second
pass: what the attention call itself needed on top of the process. The
table, `--json FILE` and the plot `benchmarks/attention_memory.png` show it.
"""

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def measure(impl, length, d_model, num_heads, block_size, batch):
    """Run in the worker process: peak extra MiB of one forward + backward pass."""
    import resource

    import numpy as np
    import tensorflow as tf

    from keras_transformer.layers import CausalSelfAttention

    layer = CausalSelfAttention(num_heads=num_heads, key_dim=d_model // num_heads,
                                attention=impl, attention_block_size=block_size)

    @tf.function
    def forward_backward(x, mask):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x, key_mask=mask))
        grads = tape.gradient(loss, [x, *layer.trainable_weights])
        return tf.add_n([tf.reduce_sum(g) for g in grads])

    def inputs(n):
        rng = np.random.default_rng(0)
        x = tf.constant(rng.normal(size=(batch, n, d_model)).astype("float32"))
        mask = np.ones((batch, n), bool)
        mask[:, n - n // 8:] = False  # some padding, as in a real batch
        return x, tf.constant(mask)

    forward_backward(*inputs(16)).numpy()
    x, mask = inputs(length)
    forward_backward.get_concrete_function(x, mask)  # trace before the baseline
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    forward_backward(x, mask).numpy()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (after - before) / 1024.0  # ru_maxrss is in KiB on Linux


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 1024, 2048, 4096, 8192])
    parser.add_argument("--impls", nargs="+", choices=("standard", "chunked"),
                        default=["standard", "chunked"])
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--num-heads", type=int, default=4)
    parser.add_argument("--block-size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--plot", default=os.path.join(HERE, "attention_memory.png"))
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--worker", nargs=2, metavar=("IMPL", "LENGTH"), help=argparse.SUPPRESS)
    return parser


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for impl in sorted({r["impl"] for r in results}):
        rows = [r for r in results if r["impl"] == impl]
        ax.plot([r["length"] for r in rows], [max(r["peak_mib"], 0.1) for r in rows], "o-", label=impl)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length")
    ax.set_ylabel("peak extra memory (MiB)")
    ax.set_title("Attention forward + backward (d_model 128, 4 heads)")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.worker:
        impl, length = args.worker
        peak = measure(impl, int(length), args.d_model, args.num_heads, args.block_size, args.batch)
        print(json.dumps({"peak_mib": peak}))
        return None
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]))
    results = []
    print(f"{'length':>8}{'impl':>10}{'peak MiB':>12}")
    for length in args.lengths:
        for impl in args.impls:
            command = [sys.executable, os.path.abspath(__file__), "--worker", impl, str(length),
                       "--d-model", str(args.d_model), "--num-heads", str(args.num_heads),
                       "--block-size", str(args.block_size), "--batch", str(args.batch)]
            done = subprocess.run(command, capture_output=True, text=True, env=env)
            if done.returncode:
                sys.exit(f"worker {impl} {length} failed:\n{done.stderr[-2000:]}")
            peak = json.loads(done.stdout.strip().splitlines()[-1])["peak_mib"]
            results.append({"impl": impl, "length": length, "peak_mib": round(peak, 1)})
            print(f"{length:>8}{impl:>10}{peak:>12,.1f}")
    by_length = {}
    for r in results:
        by_length.setdefault(r["length"], {})[r["impl"]] = r["peak_mib"]
    for length, peaks in by_length.items():
        if peaks.get("chunked", 0) > 0 and "standard" in peaks:
            print(f"length {length}: chunked peak = 1/{peaks['standard'] / peaks['chunked']:.1f} "
                  "of the standard peak")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"results": results, "settings": vars(args)}, handle, indent=2)
    if not args.no_plot:
        plot(results, args.plot)
        print(f"plot: {args.plot}")
    return results


if __name__ == "__main__":
    main()
