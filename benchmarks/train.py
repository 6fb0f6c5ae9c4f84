"""Training throughput: our GPT train step vs keras-hub's GPT2 at the same sizes.

    python benchmarks/train.py [--json FILE] [--steps 30] [--repeats 3] [--batches 12,64]

For every (batch, XLA on/off, float32/mixed_bfloat16) setting it compiles both
models (with `train.py`'s optimizer), then trains them with `model.fit` on
random tokens (pre-batched in `tf.data`, as `train.py` feeds them), their fits interleaved `--repeats` times in one process (these
machines drift by up to 30 % between runs), and times the steady-state steps
inside a callback (the first `--warmup` steps of each fit, which include
tracing and compilation, are not timed); a row shows the median. MFU is the model's FLOPs per second over the
float32 matmul peak measured in the same run.

Prints a table and writes `{"results": [...], "matmul_gflops": G}`.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from matmul import gflops  # noqa: E402  (benchmarks/matmul.py, beside this script)

from keras_transformer import TransformerConfig, build_gpt  # noqa: E402
from keras_transformer.training.schedules import make_optimizer  # noqa: E402


def matmul_peak_gflops(size=2048, repeats=20):
    """Float32 matmul throughput of this machine, XLA-compiled, in GFLOP/s."""
    return gflops(size, "float32", jit=True, repeats=repeats)


class StepTimer(keras.callbacks.Callback):
    """Seconds of the training steps after the first `warmup` of a `fit`.

    `seconds` runs from the start of step `warmup` to the end of the last
    step; `after_seconds` is what `fit` does after it (validation, the
    epoch's callbacks, tearing the data iterator down), which a short timed
    `fit` would otherwise spread over its few steps.
    """

    def __init__(self, warmup):
        super().__init__()
        self.warmup = warmup
        self.start = self.last = None
        self.seconds = self.after_seconds = None

    def on_train_batch_begin(self, batch, logs=None):
        if batch == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.last = time.perf_counter()

    def on_train_end(self, logs=None):
        self.seconds = self.last - self.start
        self.after_seconds = time.perf_counter() - self.last


def build_ours(config):
    return build_gpt(config), lambda ids: ids


def build_keras_hub(config):
    import keras_hub

    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=config.vocab_size,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
        hidden_dim=config.d_model,
        intermediate_dim=config.d_ff,
        dropout=0.0,
        max_sequence_length=config.max_len,
    )
    model = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)
    return model, lambda ids: {"token_ids": ids, "padding_mask": np.ones_like(ids, dtype=bool)}


def flops_per_token(config, params, seq_len):
    """Training FLOPs per token: 6 per weight of every matmul, plus attention scores.

    The position table is a lookup, not a matmul, so it is left out; the tied
    output projection is a matmul and counts. Attention (QK^T and AV, forward
    and backward) adds 12 * layers * d_model * seq_len, halved for causal
    attention's triangle (PaLM, appendix B).
    """
    matmul_params = params - config.max_len * config.d_model
    attention = 12 * config.num_layers * config.d_model * seq_len // 2
    return 6 * matmul_params + attention


def compiled(impl, config, jit, mixed, total_steps):
    """`(model, to_inputs)`: one implementation, compiled as `train.py` compiles ours."""
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if mixed else "float32")
    keras.utils.set_random_seed(0)
    try:
        model, to_inputs = (build_ours if impl == "ours" else build_keras_hub)(config)
        # train.py's optimizer for both: AdamW, warmup + cosine, global-norm clipping.
        model.compile(
            optimizer=make_optimizer(2e-3, total_steps, warmup_steps=10),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=jit,
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return model, to_inputs


def batches(to_inputs, ids, batch):
    """`ids` as `train.py` feeds a model: a `tf.data` stream of `(inputs, next ids)` batches.

    (`fit` on the arrays themselves slices every batch through Keras' array
    adapter, a cost `train.py`'s pre-batched pipeline does not have.)
    """
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((to_inputs(ids[:, :-1]), ids[:, 1:]))
    return dataset.batch(batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def timed_fit(model, data, warmup):
    """Seconds of the steps after the first `warmup` of one `fit` over `data` (`batches`)."""
    timer = StepTimer(warmup)
    model.fit(data, epochs=1, verbose=0, callbacks=[timer])
    return timer.seconds


def measure_row(impls, config, batch, seq_len, jit, mixed, steps, warmup, repeats):
    """Median tokens/s of each implementation, their `fit`s interleaved `repeats` times."""
    models = {impl: compiled(impl, config, jit, mixed, (steps + warmup) * repeats)
              for impl in impls}
    rng = np.random.default_rng(0)
    ids = rng.integers(1, config.vocab_size, size=(batch * (steps + warmup), seq_len + 1))
    ids = ids.astype("int32")
    data = {impl: batches(to_inputs, ids, batch) for impl, (_, to_inputs) in models.items()}
    speeds = {impl: [] for impl in impls}
    for _ in range(repeats):
        for impl, (model, _) in models.items():
            seconds = timed_fit(model, data[impl], warmup)
            speeds[impl].append(steps * batch * seq_len / seconds)
    return {impl: (float(np.median(values)), models[impl][0].count_params())
            for impl, values in speeds.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per fit")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per fit")
    parser.add_argument("--repeats", type=int, default=3,
                        help="interleaved fits per implementation and row (the median is shown)")
    parser.add_argument("--batches", default="12,64")
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--num-layers", type=int, default=4)
    parser.add_argument("--num-heads", type=int, default=4)
    parser.add_argument("--impls", default="ours,keras_hub")
    parser.add_argument("--jit", choices=("on", "off", "both"), default="both")
    parser.add_argument("--mixed", choices=("on", "off", "both"), default="both",
                        help="mixed_bfloat16 rows (default: float32 and mixed)")
    args = parser.parse_args()

    config = TransformerConfig(vocab_size=66, max_len=max(128, args.seq_len),
                               num_layers=args.num_layers, d_model=args.d_model,
                               num_heads=args.num_heads)
    peak = matmul_peak_gflops()
    print(f"float32 matmul peak: {peak:.0f} GFLOP/s")
    results = []
    header = f"{'impl':<10} {'batch':>5} {'seq':>4} {'jit':>5} {'mixed':>6} {'tokens/s':>10} {'MFU':>6}"
    print(header)
    print("-" * len(header))
    for batch in [int(b) for b in args.batches.split(",")]:
        for jit in {"on": [True], "off": [False], "both": [True, False]}[args.jit]:
            for mixed in {"on": [True], "off": [False], "both": [False, True]}[args.mixed]:
                row = measure_row(args.impls.split(","), config, batch, args.seq_len, jit, mixed,
                                  args.steps, args.warmup, args.repeats)
                for impl, (tokens_per_sec, params) in row.items():
                    flops = flops_per_token(config, params, args.seq_len) * tokens_per_sec
                    result = {"impl": impl, "jit": jit, "mixed_precision": mixed, "batch": batch,
                              "seq_len": args.seq_len, "tokens_per_sec": round(tokens_per_sec, 1),
                              "mfu": round(flops / (peak * 1e9), 4)}
                    results.append(result)
                    print(f"{impl:<10} {batch:>5} {args.seq_len:>4} {str(jit):>5} {str(mixed):>6} "
                          f"{tokens_per_sec:>10,.0f} {result['mfu']:>6.1%}", flush=True)
    report = {"results": results, "matmul_gflops": round(peak, 1)}
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)
    return report


if __name__ == "__main__":
    main()
