"""Where a KV-cached decoding step's time goes: XLA:CPU's thunks, per step.

    python benchmarks/profile_generate.py [--model default|gpt2|llama] [--batch B] [--new-tokens N] [--json FILE]

Runs `Decoder` (greedy, XLA) once to compile, then once under TensorFlow's
profiler with `XLA_FLAGS=--xla_cpu_enable_xprof_traceme=true`, which records
every thunk (one fused kernel, one dot, one copy ...) of the compiled while
loop. Thunks are grouped by their HLO name without the number
(`dot_add_fusion.7` -> `dot_add_fusion`) and printed as milliseconds per
decoding step (one new token in each of the `--batch` rows), largest first, with the profiled run's tokens/s (the profiler slows
the run; compare groups, not the speed).

`--model default`: `train.py`'s GPT (4 layers, d_model 128) built with a
1,024 context, random weights, an 8-token prompt. `--model gpt2` / `llama`:
the GPT-2 small or Llama-shaped folder `benchmarks/generate.py` writes
(`--checkpoint-dir`; run that first).
"""

import argparse
import collections
import json
import os
import re
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_enable_xprof_traceme=true")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from profile_step import read_xspace  # noqa: E402  (benchmarks/profile_step.py)

from keras_transformer import TransformerConfig  # noqa: E402
from keras_transformer.generation.decoding import Decoder  # noqa: E402
from keras_transformer.models.gpt import build_gpt  # noqa: E402


def decoder(model_name, checkpoint_dir):
    if model_name in ("gpt2", "llama"):
        from keras_transformer.pretrained.checkpoint import from_pretrained
        folder = os.path.join(checkpoint_dir, f"random-{model_name}")
        return Decoder(from_pretrained(folder), pad_id=None)
    keras.utils.set_random_seed(0)
    config = TransformerConfig(vocab_size=66, num_layers=4, d_model=128, num_heads=4,
                               max_len=1024)
    return Decoder(build_gpt(config))


def thunk_groups(logdir):
    """Milliseconds per thunk group: the events inside XLA's `ThunkExecutor::Execute`
    spans, on whichever thread ran them (a worker of the pool or the caller's)."""
    space = read_xspace(logdir)
    groups = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            named = [(plane.event_metadata[e.metadata_id].name, e) for e in line.events]
            spans = [(e.offset_ps, e.offset_ps + e.duration_ps) for name, e in named
                     if name == "ThunkExecutor::Execute"]
            for name, event in named:
                if name.startswith(("ThunkExecutor", "while")):  # containers of the rest
                    continue
                if any(start <= event.offset_ps < end for start, end in spans):
                    groups[re.sub(r"\.\d+$", "", name)] += event.duration_ps / 1e9
    return groups


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("default", "gpt2", "llama"), default="default")
    parser.add_argument("--batch", type=int, default=1, help="rows decoded together")
    parser.add_argument("--new-tokens", type=int, default=300)
    parser.add_argument("--checkpoint-dir", default="checkpoints/benchmark")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    decode = decoder(args.model, args.checkpoint_dir)
    prompt = [np.arange(1, 9, dtype=np.int32)] * args.batch
    decode(prompt, args.new_tokens, temperature=0.0)  # compile
    logdir = tempfile.mkdtemp()
    try:
        tf.profiler.experimental.start(logdir)
        start = time.perf_counter()
        decode(prompt, args.new_tokens, temperature=0.0)
        seconds = time.perf_counter() - start
        tf.profiler.experimental.stop()
        groups = thunk_groups(logdir)
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
    per_token = {name: ms / args.new_tokens for name, ms in groups.most_common()}
    total = sum(per_token.values())
    print(f"{args.model}: {args.new_tokens} new tokens, batch {args.batch}, "
          f"{args.batch * args.new_tokens / seconds:.1f} tokens/s under the profiler; "
          f"thunks {total:.3f} ms per step")
    print(f"{'thunk group':40s} {'ms/step':>9s} {'share':>6s}")
    for name, ms in list(per_token.items())[: args.top]:
        print(f"{name:40s} {ms:9.4f} {ms / total:6.1%}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "batch": args.batch, "new_tokens": args.new_tokens,
                       "tokens_per_second_profiled": args.batch * args.new_tokens / seconds,
                       "ms_per_step": per_token}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
