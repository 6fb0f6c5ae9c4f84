"""Mixed precision on this CPU: `--mixed-precision` (with `--jit auto`) against float32 + XLA.

    python benchmarks/mixed_precision.py [--steps 200] [--chunk 20] [--json FILE]

Trains two copies of one GPT (default: d_model 512, 6 layers, 8 heads,
batch 16 x 256 characters of Tiny Shakespeare, `train.py`'s data pipeline,
optimizer and seed) for `--steps` steps each: one in float32 with XLA,
one under `mixed_bfloat16` with the XLA setting `--jit auto` picks on this
CPU (`distribute.choose_jit`: off where the CPU has AMX bfloat16 units).
Both start from the same weights and see the same batches; their `fit`s
alternate every `--chunk` steps in one process, so both are timed under the
same conditions. The first chunk of each (tracing and compilation) is not
timed.

Prints a row per chunk (each model's mean training loss over it and their
relative difference) as it finishes, then tokens/s of both and their ratio;
`--json` writes all of it.
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

from keras_transformer import TransformerConfig  # noqa: E402
from keras_transformer.training.distribute import (  # noqa: E402
    choose_jit,
    cpu_flags,
    precision_policy,
)
from keras_transformer.training.schedules import make_optimizer  # noqa: E402
from keras_transformer.training.trainer import TrainSettings, make_job  # noqa: E402


def make_run(settings, mixed, total_steps):
    """`(model, train_data, xla)` of one precision, built as `train()` builds them."""
    xla, _ = choose_jit(True if not mixed else "auto", mixed)
    with precision_policy(mixed):
        job = make_job(settings)
        keras.utils.set_random_seed(settings.seed)
        model = job.build_model()
        model.compile(
            optimizer=make_optimizer(settings.learning_rate, total_steps,
                                     warmup_steps=settings.warmup_steps,
                                     weight_decay=settings.weight_decay,
                                     clipnorm=settings.clipnorm),
            loss=job.loss,
            jit_compile=xla,
        )
    return model, job.train_data, xla


class ChunkTimer(keras.callbacks.Callback):
    """Wall seconds of one `fit` call's steps, and the mean of their losses."""

    def on_train_begin(self, logs=None):
        self.losses, self.start = [], time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(float(logs["loss"]))

    def on_train_end(self, logs=None):
        self.seconds = time.perf_counter() - self.start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--chunk", type=int, default=20, help="steps per alternating fit")
    parser.add_argument("--d-model", type=int, default=512)
    parser.add_argument("--num-layers", type=int, default=6)
    parser.add_argument("--num-heads", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--data", help="a text file (default: Tiny Shakespeare)")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)

    model_config = TransformerConfig.preset(
        "gpt-mini", max_len=max(128, args.seq_len), num_layers=args.num_layers,
        d_model=args.d_model, num_heads=args.num_heads)
    settings = TrainSettings.for_arch(
        "gpt", model=model_config, batch_size=args.batch_size, seq_len=args.seq_len,
        data=args.data, steps_per_epoch=args.chunk, epochs=args.steps // args.chunk)
    flags = cpu_flags()
    print(f"CPU flags: avx512f={'avx512f' in flags} avx512_bf16={'avx512_bf16' in flags} "
          f"amx_bf16={'amx_bf16' in flags}")
    runs = {}
    for name, mixed in (("float32", False), ("mixed_bfloat16", True)):
        runs[name] = make_run(settings, mixed, args.steps)
        print(f"{name}: XLA {'on' if runs[name][2] else 'off'}", flush=True)
    chunks = {name: [] for name in runs}
    print(f"{'steps':>9} {'float32 loss':>13} {'mixed loss':>11} {'difference':>11}")
    for start in range(0, args.steps, args.chunk):
        for name, (model, data, _) in runs.items():
            timer = ChunkTimer()
            model.fit(data.skip(start), steps_per_epoch=args.chunk, epochs=1, verbose=0, shuffle=False,
                      callbacks=[timer])
            chunks[name].append({"loss": float(np.mean(timer.losses)), "seconds": timer.seconds})
        f32, mixed = chunks["float32"][-1]["loss"], chunks["mixed_bfloat16"][-1]["loss"]
        print(f"{start + 1:>4}-{start + args.chunk:<4} {f32:>13.4f} {mixed:>11.4f} "
              f"{(mixed - f32) / f32:>+11.2%}", flush=True)
    tokens = args.chunk * args.batch_size * args.seq_len
    speed = {name: tokens * (len(rows) - 1) / sum(row["seconds"] for row in rows[1:])
             for name, rows in chunks.items()}
    differences = [abs(m["loss"] - f["loss"]) / f["loss"]
                   for f, m in zip(chunks["float32"], chunks["mixed_bfloat16"], strict=True)]
    ratio = speed["mixed_bfloat16"] / speed["float32"]
    print(f"tokens/s: float32 + XLA {speed['float32']:,.0f}, mixed_bfloat16 (XLA "
          f"{'on' if runs['mixed_bfloat16'][2] else 'off'}) {speed['mixed_bfloat16']:,.0f}: "
          f"{ratio:.2f}x; largest loss difference over a chunk {max(differences):.2%}")
    report = {
        "config": vars(args), "cpu_flags": sorted(f for f in flags if "avx512" in f or "amx" in f),
        "xla": {name: run[2] for name, run in runs.items()}, "chunks": chunks,
        "tokens_per_sec": {name: round(value, 1) for name, value in speed.items()},
        "speedup": round(ratio, 3), "max_loss_difference": round(max(differences), 5),
    }
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)
    return report


if __name__ == "__main__":
    main()
