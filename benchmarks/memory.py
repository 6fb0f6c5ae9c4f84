"""Peak memory of one GPT training step, with and without gradient checkpointing.

    python benchmarks/memory.py --json benchmarks/memory.json          # 1024 and 2048 tokens
    python benchmarks/memory.py --lengths 64 --num-layers 1 --d-model 32  # quick smoke run

Each point runs in a fresh subprocess: a GPT (by default 4 layers, d_model
256, 4 heads, 66 token ids, `max_len` = the sequence length) compiled with
the project's optimizer exactly as `train.py` compiles it (`--jit` or
`--no-jit`, `--recompute` or not), trained for one step on a batch of 8 so
that tracing and XLA compilation are done, then for a second step on another
batch. Before that second step the process' high-water mark of resident
memory is reset (`/proc/self/clear_refs`); the figure is how far the second
step raised resident memory above what the process held before it: the
activations, gradients and temporaries of one steady-state training step.
glibc is told to return every large block to the system at once
(`MALLOC_MMAP_THRESHOLD_`), so memory freed by the first step is not
counted as held.

Prints a table and writes `{"results": [...], "settings": {...}}`.
"""

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def _status_kib(field):
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure(length, recompute, jit, num_layers, d_model, num_heads, batch):
    """Run in the worker process: MiB one steady-state training step adds to the process."""
    import keras
    import numpy as np

    from keras_transformer import TransformerConfig, build_gpt
    from keras_transformer.training.schedules import make_optimizer

    config = TransformerConfig(vocab_size=66, max_len=length, num_layers=num_layers,
                               d_model=d_model, num_heads=num_heads, recompute=recompute)
    keras.utils.set_random_seed(0)
    model = build_gpt(config)
    model.compile(optimizer=make_optimizer(1e-3, 100, warmup_steps=10),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=jit)
    rng = np.random.default_rng(0)

    def batch_of_ids():
        ids = rng.integers(1, 66, size=(batch, length + 1)).astype("int32")
        return ids[:, :-1], ids[:, 1:]

    model.train_on_batch(*batch_of_ids())  # traces, compiles, builds the optimizer
    x, y = batch_of_ids()
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # reset the high-water mark (VmHWM) to the current RSS
    before = _status_kib("VmRSS")
    loss = model.train_on_batch(x, y)
    peak = _status_kib("VmHWM")
    assert np.isfinite(loss)
    return (peak - before) / 1024.0


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--jit", choices=("on", "off", "both"), default="both",
                        help="XLA for the train step (default: measure both)")
    parser.add_argument("--num-layers", type=int, default=4)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--num-heads", type=int, default=4)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--worker", nargs=3, metavar=("LENGTH", "RECOMPUTE", "JIT"),
                        help=argparse.SUPPRESS)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    sizes = (args.num_layers, args.d_model, args.num_heads, args.batch)
    if args.worker:
        length, recompute, jit = args.worker
        peak = measure(int(length), recompute == "1", jit == "1", *sizes)
        print(json.dumps({"peak_mib": peak}))
        return None
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", MALLOC_MMAP_THRESHOLD_="1048576",
               PYTHONPATH=os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]))
    jits = {"on": [True], "off": [False], "both": [True, False]}[args.jit]
    results = []
    header = f"{'length':>8}{'jit':>6}{'recompute':>11}{'peak MiB':>11}{'saved':>8}"
    print(header)
    print("-" * len(header))
    for length in args.lengths:
        for jit in jits:
            peaks = {}
            for recompute in (False, True):
                command = [sys.executable, os.path.abspath(__file__),
                           "--worker", str(length), str(int(recompute)), str(int(jit)),
                           "--num-layers", str(args.num_layers), "--d-model", str(args.d_model),
                           "--num-heads", str(args.num_heads), "--batch", str(args.batch)]
                done = subprocess.run(command, capture_output=True, text=True, env=env)
                if done.returncode:
                    sys.exit(f"worker {length} recompute={recompute} jit={jit} failed:\n"
                             f"{done.stderr[-2000:]}")
                peaks[recompute] = json.loads(done.stdout.strip().splitlines()[-1])["peak_mib"]
                saved = 1 - peaks[True] / peaks[False] if recompute and peaks[False] > 0 else None
                results.append({"length": length, "batch": args.batch, "jit": jit,
                                "recompute": recompute, "peak_mib": round(peaks[recompute], 1),
                                **({"saved": round(saved, 3)} if saved is not None else {})})
                shown = f"{saved:>7.0%}" if saved is not None else f"{'':>7}"
                print(f"{length:>8}{'on' if jit else 'off':>6}{str(recompute):>11}"
                      f"{peaks[recompute]:>11,.1f} {shown}", flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"results": results, "settings": vars(args)}, handle, indent=2)
    return results


if __name__ == "__main__":
    main()
