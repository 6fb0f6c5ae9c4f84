"""Where the default GPT training step spends its time, with XLA and without.

    python benchmarks/profile_step.py [--json FILE] [--steps 10] [--jit both]

The step is `train.py --arch gpt`'s default (gpt-mini: 4 layers, d_model 128,
4 heads, batch 64 x 128 characters, AdamW with clipping, float32). It is run
two ways, each timed over `--steps` steady steps:

- `fit`: `benchmarks/train.py`'s loop, `model.fit` on random tokens;
- `train.py`: the real `train()` on Tiny Shakespeare (its tf.data pipeline,
  callbacks, progress bar and run directory), with a timer callback.

Without XLA, TensorFlow's profiler times every op of a traced `fit`; the
ops are grouped (matmuls, attention scores / mask / softmax, norms, the
activation, casts, the optimizer update, the loss, the input pipeline) and
the wall time no op covers is the host's (Python, Keras, the executor).

With XLA the step is one compiled program whose fusions the profiler does
not see one by one, so the table is built from timed variants instead: the
same step with a plain SGD update (the difference is the optimizer), the
forward pass alone, and the step's matmuls alone (every matmul of the
forward and backward pass at its shapes, in one XLA program).

Prints the tables and writes them with `--json`.
"""

import argparse
import collections
import contextlib
import glob
import io
import json
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_transformer import TransformerConfig  # noqa: E402
from train import StepTimer, batches, compiled  # noqa: E402  (benchmarks/train.py)

BATCH, SEQ_LEN = 64, 128

# Op groups, tried in order on "scope/op_name:OpType" (the first match wins).
GROUPS = (
    ("input pipeline", lambda name, kind: kind.startswith("IteratorGetNext")),
    ("matmuls", lambda name, kind: "MatMul" in kind or "Einsum" in kind),
    ("casts", lambda name, kind: kind == "Cast"),
    ("optimizer update", lambda name, kind: "gpt" not in name and (
        "adam" in name.lower() or "clip" in name.lower() or kind.startswith("Assign")
        or "optimizer" in name.lower() or "Norm" in kind)),
    ("loss", lambda name, kind: "gpt" not in name and (
        "loss" in name.lower() or "Softmax" in kind or "CrossEntropy" in kind)),
    ("norms", lambda name, kind: "norm" in name),
    ("attention: scores, mask, softmax", lambda name, kind: "attention" in name),
    ("activation", lambda name, kind: "feed_forward" in name),
    ("embeddings", lambda name, kind: "embedding" in name),
)


def config(vocab_size=66):
    return TransformerConfig.preset("gpt-mini", vocab_size=vocab_size)


def read_xspace(logdir):
    """The `XSpace` (every plane, thread line and event) of the profiler trace in `logdir`."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    path = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)[0]
    space = xplane_pb2.XSpace()
    with open(path, "rb") as handle:
        space.ParseFromString(handle.read())
    return space


def op_groups(logdir):
    """`(seconds per group, busy seconds)` of the ops in a profiler trace.

    Busy time is the union of the intervals in which any op ran on the
    executor's threads (ops of the two threads may overlap).
    """
    space = read_xspace(logdir)
    seconds, intervals = collections.Counter(), []
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                label = plane.event_metadata[event.metadata_id].name
                if ":" not in label or "::" in label:
                    continue  # executor bookkeeping, not an op
                name, kind = label.rsplit(":", 1)
                group = next((group for group, test in GROUPS if test(name, kind)), "other ops")
                seconds[group] += event.duration_ps * 1e-12
                start = (line.timestamp_ns * 1000 + event.offset_ps) * 1e-12
                intervals.append((start, start + event.duration_ps * 1e-12))
    busy, end = 0.0, -np.inf
    for start, stop in sorted(intervals):
        if stop > end:
            busy += stop - max(start, end)
            end = stop
    return seconds, busy


def profiled(run, steps):
    """`(seconds per group, busy, wall)` of `run()` (which trains `steps` steps) under the profiler."""
    logdir = tempfile.mkdtemp(prefix="profile_step-")
    try:
        tf.profiler.experimental.start(logdir)
        started = time.perf_counter()
        run()
        wall = time.perf_counter() - started
        tf.profiler.experimental.stop()
        seconds, busy = op_groups(logdir)
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
    return {group: value / steps for group, value in seconds.items()}, busy / steps, wall / steps


def fit_step(jit, steps, warmup):
    """`benchmarks/train.py`'s step: `(seconds per step, fit-again callable)`."""
    model, _ = compiled("ours", config(), jit, False, 10 * (steps + warmup))
    ids = np.random.default_rng(0).integers(1, 66, size=(BATCH * (steps + warmup), SEQ_LEN + 1))
    data = batches(lambda x: x, ids.astype("int32"), BATCH)

    def fit(callbacks=(), n=steps + warmup):
        model.fit(data.take(n), epochs=1, verbose=0, callbacks=list(callbacks))

    fit(n=warmup)
    timer = StepTimer(warmup)
    fit([timer])
    return timer.seconds / steps, model, fit


def train_py_step(jit, steps, warmup, data):
    """`(seconds per steady step, seconds of the epoch's end)` of the real `train()`.

    The epoch's end is what `fit` does after the last step: validation, the
    best checkpoint, the backup, the history row. The progress bar is
    printed (into a buffer), as a user's run prints it.
    """
    from keras_transformer.training.trainer import TrainSettings, train

    out = tempfile.mkdtemp(prefix="profile_step-run-")
    settings = TrainSettings.for_arch("gpt", epochs=1, steps_per_epoch=steps + warmup, data=data,
                                      out=out, jit=jit, sample_tokens=0)
    timer = StepTimer(warmup)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            train(settings, callbacks=[timer])
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return timer.seconds / steps, timer.after_seconds


def matmul_seconds(steps=20):
    """Seconds of the default step's matmuls alone (forward and backward shapes), XLA-compiled."""
    c = config()
    rows, heads, head_dim = BATCH * SEQ_LEN, c.num_heads, c.d_model // c.num_heads
    dense = [(c.d_model, 3 * c.d_model), (c.d_model, c.d_model), (c.d_model, c.d_ff),
             (c.d_ff, c.d_model)] * c.num_layers + [(c.d_model, c.vocab_size)]
    rng = np.random.default_rng(0)
    xs = [tf.constant(rng.normal(size=(rows, k)), tf.float32) for k, _ in dense]
    ws = [tf.constant(rng.normal(size=(k, n)), tf.float32) for k, n in dense]
    q = tf.constant(rng.normal(size=(BATCH * heads, SEQ_LEN, head_dim)), tf.float32)
    p = tf.constant(rng.normal(size=(BATCH * heads, SEQ_LEN, SEQ_LEN)), tf.float32)

    @tf.function(jit_compile=True)
    def matmuls():
        total = 0.0
        for x, w in zip(xs, ws, strict=True):
            y = x @ w  # forward
            total += tf.reduce_sum(tf.transpose(x) @ y)  # the weight's gradient
            total += tf.reduce_sum(y @ tf.transpose(w))  # the input's gradient
        for _ in range(c.num_layers):  # scores q k^T and p v, each with its two gradients
            for a, b in ((q, tf.transpose(q, (0, 2, 1))), (p, q)):
                y = a @ b
                total += tf.reduce_sum(tf.linalg.matmul(a, y, transpose_a=True))
                total += tf.reduce_sum(tf.linalg.matmul(y, b, transpose_b=True))
        return total

    matmuls().numpy()
    started = time.perf_counter()
    for _ in range(steps):
        result = matmuls()
    result.numpy()
    return (time.perf_counter() - started) / steps


def xla_variants(steps, warmup):
    """Seconds per step of the XLA step's variants (see the module docstring)."""
    full, model, _ = fit_step(True, steps, warmup)
    keras.utils.set_random_seed(0)
    sgd, _ = compiled("ours", config(), True, False, 1)
    sgd.compile(optimizer=keras.optimizers.SGD(1e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                jit_compile=True)
    ids = np.random.default_rng(0).integers(1, 66, size=(BATCH, SEQ_LEN + 1)).astype("int32")
    x, y = ids[:, :-1], ids[:, 1:]
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    forward = tf.function(lambda x, y: loss(y, model(x, training=True)), jit_compile=True)

    def per_step(call):
        for _ in range(warmup):
            call()
        started = time.perf_counter()
        for _ in range(steps):
            call()
        return (time.perf_counter() - started) / steps

    without_optimizer = per_step(lambda: sgd.train_on_batch(x, y))
    forward_only = per_step(lambda: float(forward(x, y)))
    matmuls = matmul_seconds()
    return {"step": full, "step with a plain SGD update": without_optimizer,
            "forward pass only": forward_only, "the step's matmuls only": matmuls,
            "optimizer update (step - SGD step)": full - without_optimizer,
            "backward pass (SGD step - forward)": without_optimizer - forward_only,
            "everything but matmuls (SGD step - matmuls)": without_optimizer - matmuls}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--jit", choices=("on", "off", "both"), default="both")
    parser.add_argument("--data", help="the text train.py trains on (default: Tiny Shakespeare)")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    report = {"batch": BATCH, "seq_len": SEQ_LEN, "steps": args.steps}
    jits = {"on": [True], "off": [False], "both": [True, False]}[args.jit]
    for jit in jits:
        key = "xla" if jit else "no_xla"
        fit_seconds, _, fit = fit_step(jit, args.steps, args.warmup)
        train_seconds, epoch_end = train_py_step(jit, args.steps, args.warmup, args.data)
        row = {"fit_seconds_per_step": fit_seconds, "train_py_seconds_per_step": train_seconds,
               "train_py_epoch_end_seconds": epoch_end}
        print(f"\n== XLA {'on' if jit else 'off'}: benchmark fit {fit_seconds * 1000:.0f} ms a "
              f"step, train.py {train_seconds * 1000:.0f} ms a step "
              f"({train_seconds / fit_seconds - 1:+.1%}); train.py's epoch end (validation, "
              f"checkpoint, backup) {epoch_end:.2f} s", flush=True)
        if jit:
            parts = xla_variants(args.steps, args.warmup)
            row["variants"] = parts
            for name, value in parts.items():
                print(f"{name:<46} {value * 1000:>8.1f} ms {value / parts['step']:>7.1%}")
        else:
            groups, busy, wall = profiled(fit, args.steps + args.warmup)
            groups["host (no op running)"] = max(wall - busy, 0.0)
            row.update(groups=groups, busy=busy, wall=wall)
            total = sum(groups.values())
            print(f"{'group (traced fit)':<36} {'ms/step':>8} {'share':>7}")
            for name, value in sorted(groups.items(), key=lambda item: -item[1]):
                print(f"{name:<36} {value * 1000:>8.1f} {value / total:>7.1%}")
            print(f"traced wall {wall * 1000:.0f} ms a step, ops busy {busy * 1000:.0f} ms")
        report[key] = row
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)
    return report


if __name__ == "__main__":
    main()
