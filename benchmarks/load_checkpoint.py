"""Load time and peak memory of a GPT-2-small-sized checkpoint: ours against `transformers`.

    python benchmarks/load_checkpoint.py --json benchmarks/load_checkpoint.json
    python benchmarks/load_checkpoint.py --n-layer 2 --n-embd 64 --repeats 1   # quick smoke run

The checkpoint is made here: `transformers`' `GPT2LMHeadModel` of GPT-2
small's config (124,439,808 parameters), random weights, saved with
`save_pretrained` (one float32 `model.safetensors`). Each load runs in a
fresh subprocess, the two loaders interleaved `--repeats` times:

- `ours`: `keras_transformer.from_pretrained(path)`;
- `transformers`: `AutoModelForCausalLM.from_pretrained(path)`.

The time is the wall time of that one call, after the imports; the memory is
how far the call raised the process' peak resident memory (`VmHWM`) above
what the process held before it (its imports done). Medians are printed in a
table and written as `{"results": [...], "settings": {...}}`.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from memory import _status_kib  # noqa: E402  (the same /proc reading as the training benchmark)

LOADERS = ("ours", "transformers")


def measure(loader, path):
    """Run in the worker process: (seconds, MiB above the imports) of one load."""
    if loader == "ours":
        import keras_transformer

        load = keras_transformer.from_pretrained
    else:
        import torch  # noqa: F401
        import transformers

        def load(folder):
            return transformers.AutoModelForCausalLM.from_pretrained(folder)

    with open("/proc/self/clear_refs", "w") as handle:  # reset VmHWM to the current RSS
        handle.write("5")
    before = _status_kib("VmRSS")
    started = time.perf_counter()
    model = load(path)
    seconds = time.perf_counter() - started
    peak = _status_kib("VmHWM")
    del model
    return seconds, (peak - before) / 1024


def make_checkpoint(path, n_layer, n_embd, n_head):
    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=n_layer, n_embd=n_embd, n_head=n_head)
    model = transformers.GPT2LMHeadModel(config)
    model.save_pretrained(path)
    return sum(p.numel() for p in model.parameters())


def run_worker(loader, path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, __file__, "--worker", loader, path], env=env,
                         capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"{loader} worker failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-layer", type=int, default=12)
    parser.add_argument("--n-embd", type=int, default=768)
    parser.add_argument("--n-head", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        seconds, mib = measure(*args.worker)
        print(json.dumps({"seconds": seconds, "mib": mib}))
        return
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "gpt2-small-random")
        params = make_checkpoint(path, args.n_layer, args.n_embd, args.n_head)
        size = os.path.getsize(os.path.join(path, "model.safetensors")) / 2**20
        runs = {loader: [] for loader in LOADERS}
        for _ in range(args.repeats):
            for loader in LOADERS:  # interleaved
                runs[loader].append(run_worker(loader, path))
    results = []
    print(f"checkpoint: {params:,} parameters, model.safetensors {size:,.0f} MiB (float32)")
    print(f"{'loader':<14} {'load s (median)':>16} {'peak MiB above imports':>24}")
    for loader in LOADERS:
        seconds = statistics.median(r["seconds"] for r in runs[loader])
        mib = statistics.median(r["mib"] for r in runs[loader])
        results.append({"loader": loader, "seconds": round(seconds, 3), "peak_mib": round(mib, 1),
                        "runs": runs[loader]})
        print(f"{loader:<14} {seconds:>16.2f} {mib:>24,.0f}")
    if args.json:
        settings = {"parameters": params, "file_mib": round(size, 1), "repeats": args.repeats,
                    "n_layer": args.n_layer, "n_embd": args.n_embd, "n_head": args.n_head}
        with open(args.json, "w") as handle:
            json.dump({"results": results, "settings": settings}, handle, indent=2)


if __name__ == "__main__":
    main()
