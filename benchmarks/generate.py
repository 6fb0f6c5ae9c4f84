"""Generation speed: our KV-cached loop against our uncached loop, keras-hub and transformers.

    python benchmarks/generate.py --json benchmarks/generate.json       # the default model
    python benchmarks/generate.py --new-tokens 50 --repeats 1           # quick smoke run
    python benchmarks/generate.py --impls ours_cached_sliding ours_uncached_sliding \
        --json benchmarks/generate_sliding.json                         # past the context
    python benchmarks/generate.py --model gpt2 --batches 1 --dtypes float32 \
        --json benchmarks/generate_real.json                            # GPT-2 small, one row set
    python benchmarks/generate.py --model llama --batches 8 --dtypes bfloat16 \
        --json benchmarks/generate_real.json                            # the Llama-shaped model

**The default model** (`--model default`: the GPT config of `train.py`, 4
layers, d_model 128, 4 heads, vocab 66, built with `--max-len 1024` so that
1,000 new tokens fit) decodes greedily with XLA:

- `ours_cached`: `Decoder(model)`, the KV-cached `tf.while_loop`;
- `ours_uncached`: `Decoder(model, use_cache=False)`, the same compiled loop
  re-running the full model over the window at every step;
- `keras_hub`: `keras_hub.models.GPT2CausalLM(backbone, preprocessor=None)`
  with a `GPT2Backbone` built from arguments (no download), greedy sampler,
  `jit_compile=True`, fed `{"token_ids", "padding_mask"}` directly;
- `ours_cached_sliding` / `ours_uncached_sliding`: decoding past the context
  of a `--sliding-max-len 128` model (`slide=True`): the cached loop
  re-encodes the last half window when its cache is full, the uncached loop
  slides exactly one token at a time.

**Real-size models** (`--model gpt2`: GPT-2 small, 124,439,808 parameters,
12 layers, d_model 768, 12 heads, vocab 50,257, 1,024 positions, tied
embeddings; `--model llama`: a Llama-shaped model of about the same size,
12 layers, d_model 768, 12 query heads and 4 kv heads, SwiGLU width 2,048,
RMSNorm, RoPE, vocab 32,000, untied head) have random weights, written once
by `transformers`' own `save_pretrained` (safetensors) to
`--checkpoint-dir` and read by every implementation, so all decode with the
SAME weights:

- `ours_cached`: this package's `from_pretrained(folder, dtype=...)` and
  `Decoder(model, pad_id=None)`, greedy;
- `transformers`: `AutoModelForCausalLM.from_pretrained(folder,
  dtype=...)` in PyTorch on the CPU, `generate(do_sample=False,
  min_new_tokens=max_new_tokens)`;
- `keras_hub` (GPT-2 only): `GPT2Backbone.from_preset(folder)` (keras-hub
  reads the Hugging Face folder itself) in `GPT2CausalLM`, greedy, XLA;
- `ceiling` (batch 1 and batch B): the tokens/s that reading every weight
  once per step allows, `bandwidth * batch / weight bytes per step`. The
  weight bytes per step are the parameters' bytes, less the position table's
  (one row of it is read); the bandwidth is measured in the same run, the
  best of a large float32 reduce and a `[1, 768] x [768, 50257]` matvec (2
  threads, TensorFlow), printed first.

Rows are `(model, dtype, batch)` groups: each group's implementations are
compiled (a warm-up call) and then timed in turn, `--repeats` times,
interleaved; each timing is printed as it ends, and each group's table as
soon as the group ends (the median; flushed, so a killed run keeps what it
printed). `--json FILE` merges the rows into FILE after every group (rows
of other models, dtypes or batches already there are kept), so a full table
can be built by several short runs. transformers, torch and keras-hub are
imported here only.
"""

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

IMPLS = ("ours_cached", "ours_uncached", "keras_hub", "ours_cached_sliding",
         "ours_uncached_sliding")
SLIDING = ("ours_cached_sliding", "ours_uncached_sliding")
REAL_IMPLS = ("ours_cached", "transformers", "keras_hub")
MODELS = ("default", "gpt2", "llama")
DTYPES = ("float32", "bfloat16")


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=MODELS, default="default",
                        help="default: train.py's GPT; gpt2 / llama: real-size, random weights")
    parser.add_argument("--new-tokens", type=int, default=None,
                        help="default 1000 for the default model, 200 for gpt2 / llama")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--dtypes", nargs="+", choices=DTYPES, default=list(DTYPES),
                        help="weight dtypes of the real-size models")
    parser.add_argument("--prompt-len", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--impls", nargs="+", choices=IMPLS + REAL_IMPLS, default=None,
                        help="default: ours_cached ours_uncached keras_hub (default model); "
                             "ours_cached transformers keras_hub (gpt2); ours_cached "
                             "transformers (llama)")
    parser.add_argument("--max-len", type=int, default=1024,
                        help="context of the default-size models; must hold prompt + new tokens")
    parser.add_argument("--sliding-max-len", type=int, default=128,
                        help="context of the *_sliding rows' model (train.py's default)")
    parser.add_argument("--num-layers", type=int, default=4)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--num-heads", type=int, default=4)
    parser.add_argument("--vocab-size", type=int, default=66)
    parser.add_argument("--checkpoint-dir", default="checkpoints/benchmark",
                        help="where the random real-size checkpoints are written once")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="FILE", help="also write (merge) the results as JSON")
    return parser


def say(text):
    print(text, flush=True)


# === The default model ===

def make_runners(args):
    """One `run(prompts) -> [batch, new_tokens] ids` callable per implementation."""
    import keras

    from keras_transformer import TransformerConfig, build_gpt
    from keras_transformer.generation import Decoder

    runners = {}

    def our_runner(max_len, **decoder_args):
        keras.utils.set_random_seed(args.seed)
        model = build_gpt(TransformerConfig(
            vocab_size=args.vocab_size, max_len=max_len, num_layers=args.num_layers,
            d_model=args.d_model, num_heads=args.num_heads,
        ))
        decoder = Decoder(model, **decoder_args)
        return lambda p: np.stack(decoder(p, args.new_tokens, temperature=0.0))

    for name, max_len, use_cache in [("ours_cached", args.max_len, True),
                                     ("ours_uncached", args.max_len, False),
                                     ("ours_cached_sliding", args.sliding_max_len, True),
                                     ("ours_uncached_sliding", args.sliding_max_len, False)]:
        if name in args.impls:
            runners[name] = our_runner(max_len, use_cache=use_cache, slide=name in SLIDING)
    if "keras_hub" in args.impls:
        import keras_hub

        backbone = keras_hub.models.GPT2Backbone(
            vocabulary_size=args.vocab_size, num_layers=args.num_layers,
            num_heads=args.num_heads, hidden_dim=args.d_model,
            intermediate_dim=4 * args.d_model, dropout=0.0, max_sequence_length=args.max_len,
        )
        runners["keras_hub"] = keras_hub_runner(backbone, args.new_tokens)
    return {name: runners[name] for name in args.impls}


def keras_hub_runner(backbone, new_tokens):
    """`GPT2CausalLM` around `backbone`, greedy, fed token ids and a padding mask."""
    import keras_hub

    causal_lm = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)
    causal_lm.compile(sampler="greedy")  # jit_compile=True is the default

    def run(prompts):
        prompts = np.asarray(prompts, dtype="int32")
        batch, length = prompts.shape
        token_ids = np.zeros((batch, length + new_tokens), "int32")
        token_ids[:, :length] = prompts
        padding_mask = np.zeros_like(token_ids, dtype=bool)
        padding_mask[:, :length] = True
        out = causal_lm.generate(
            {"token_ids": token_ids, "padding_mask": padding_mask}, stop_token_ids=None
        )
        return np.asarray(out["token_ids"])[:, length:]

    return run


# === Real-size models: checkpoints, runners, the bandwidth ceiling ===

def write_checkpoint(model_name, folder, seed):
    """A random GPT-2 small or Llama-shaped checkpoint, written by transformers (once)."""
    if os.path.isfile(os.path.join(folder, "model.safetensors")):
        return
    import torch
    import transformers

    torch.manual_seed(seed)
    if model_name == "gpt2":
        config = transformers.GPT2Config(n_positions=1024, n_embd=768, n_layer=12, n_head=12,
                                         vocab_size=50257)
        model = transformers.GPT2LMHeadModel(config)
    else:
        config = transformers.LlamaConfig(
            vocab_size=32000, hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
            num_attention_heads=12, num_key_value_heads=4, max_position_embeddings=1024,
            rms_norm_eps=1e-5, tie_word_embeddings=False,
        )
        model = transformers.LlamaForCausalLM(config)
    model.save_pretrained(folder, safe_serialization=True)
    say(f"wrote {folder}: {sum(p.numel() for p in model.parameters()):,} parameters")


def weight_bytes_per_step(model):
    """Bytes of weights a decoding step reads: all of them but the position table."""
    total = 0
    for variable in model.weights:
        if "position_embeddings" in variable.path:
            continue
        total += int(np.prod(variable.shape)) * np.dtype(
            "uint16" if variable.dtype == "bfloat16" else variable.dtype).itemsize
    return total


def read_bandwidth():
    """Measured memory read bandwidth in bytes/s: the best of a reduce and a matvec."""
    import tensorflow as tf

    def best_rate(fn, nbytes, runs=7):
        fn()
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return nbytes / min(times)

    big = tf.random.uniform([256 * 1024 * 1024])  # 1 GiB of float32
    reduce_rate = best_rate(lambda: float(tf.reduce_sum(big)), 4 * big.shape[0])
    weights = tf.random.normal([768, 50257])
    x = tf.random.normal([1, 768])
    matvec_rate = best_rate(lambda: tf.matmul(x, weights).numpy(), 4 * 768 * 50257)
    return max(reduce_rate, matvec_rate), {"reduce_GBps": round(reduce_rate / 1e9, 1),
                                           "matvec_GBps": round(matvec_rate / 1e9, 1)}


def real_runners(args, folder, dtype):
    """`{impl: run(prompts) -> [batch, new_tokens] ids}` of the real-size models, and the
    weight bytes per step."""
    from keras_transformer.generation import Decoder
    from keras_transformer.pretrained import from_pretrained

    runners = {}
    ours = from_pretrained(folder, dtype=None if dtype == "float32" else dtype)
    weight_bytes = weight_bytes_per_step(ours)
    if "ours_cached" in args.impls:
        decoder = Decoder(ours, pad_id=None)
        runners["ours_cached"] = lambda p: np.stack(decoder(p, args.new_tokens, temperature=0.0))
    if "transformers" in args.impls:
        import torch
        import transformers

        torch.set_num_threads(os.cpu_count())
        hf = transformers.AutoModelForCausalLM.from_pretrained(
            folder, dtype=getattr(torch, dtype)).eval()

        def run_transformers(prompts):
            ids = torch.as_tensor(np.asarray(prompts), dtype=torch.long)
            with torch.inference_mode():
                out = hf.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                  max_new_tokens=args.new_tokens,
                                  min_new_tokens=args.new_tokens, pad_token_id=0)
            return out[:, ids.shape[1]:].numpy()

        runners["transformers"] = run_transformers
    if "keras_hub" in args.impls and args.model == "gpt2":
        import keras_hub

        backbone = keras_hub.models.GPT2Backbone.from_preset(folder, dtype=dtype)
        runners["keras_hub"] = keras_hub_runner(backbone, args.new_tokens)
    return {name: runners[name] for name in args.impls if name in runners}, weight_bytes


# === Timing ===

def time_group(runners, prompts, repeats, label):
    """Compile each runner, then time them in turn `repeats` times; the median seconds."""
    for name, run in runners.items():
        start = time.perf_counter()
        out = run(prompts)
        say(f"  {label} {name}: warm-up (compile) {time.perf_counter() - start:.1f} s")
    expected = (len(prompts), out.shape[1])
    seconds = {name: [] for name in runners}
    for repeat in range(repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            out = run(prompts)
            seconds[name].append(time.perf_counter() - start)
            assert out.shape == expected, (name, out.shape)
            rate = out.size / seconds[name][-1]
            say(f"  {label} {name}: run {repeat + 1}/{repeats} {seconds[name][-1]:.2f} s, "
                f"{rate:,.1f} tokens/s")
    return {name: statistics.median(times) for name, times in seconds.items()}


def merge_json(path, results, settings):
    """Write `results` into `path`, keeping the rows there of other settings."""
    key = ("model", "impl", "dtype", "batch", "new_tokens")
    old = []
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            old = json.load(handle).get("results", [])
    new_keys = {tuple(row.get(k) for k in key) for row in results}
    rows = [row for row in old if tuple(row.get(k) for k in key) not in new_keys] + results
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"results": rows, "settings": settings}, handle, indent=2)


def header():
    say(f"{'model':<9}{'dtype':<10}{'impl':<23}{'batch':>6}{'new_tokens':>12}{'tokens/s':>12}")


def row(result):
    say(f"{result['model']:<9}{result['dtype']:<10}{result['impl']:<23}{result['batch']:>6}"
        f"{result['new_tokens']:>12}{result['tokens_per_sec']:>12,.1f}")


def main(argv=None):
    args = build_parser().parse_args(argv)
    real = args.model != "default"
    if args.new_tokens is None:
        args.new_tokens = 200 if real else 1000
    if args.impls is None:
        args.impls = {"default": list(IMPLS[:3]), "gpt2": list(REAL_IMPLS),
                      "llama": list(REAL_IMPLS[:2])}[args.model]
    allowed = REAL_IMPLS if real else IMPLS
    if any(name not in allowed for name in args.impls):
        sys.exit(f"--impls for --model {args.model}: {', '.join(allowed)}")
    fitting = [name for name in args.impls if name not in SLIDING]
    max_len = 1024 if real else args.max_len
    if fitting and args.prompt_len + args.new_tokens - 1 > max_len:
        sys.exit(f"--prompt-len + --new-tokens - 1 must be <= the context ({max_len})")
    rng = np.random.default_rng(args.seed)
    vocab = {"default": args.vocab_size, "gpt2": 50257, "llama": 32000}[args.model]
    prompts = {b: rng.integers(1, vocab, size=(b, args.prompt_len)) for b in args.batches}
    settings = dict(vars(args))
    results = []

    def finish(medians, dtype, batch):
        for name, median in medians.items():
            results.append({"model": args.model, "impl": name, "dtype": dtype, "batch": batch,
                            "new_tokens": args.new_tokens,
                            "tokens_per_sec": round(batch * args.new_tokens / median, 1)})
            row(results[-1])
        if args.json:
            merge_json(args.json, results, settings)

    if not real:
        runners = make_runners(args)
        header()
        for batch in args.batches:
            finish(time_group(runners, prompts[batch], args.repeats, f"batch {batch}"),
                   "float32", batch)
        return results

    import tensorflow as tf

    folder = os.path.join(args.checkpoint_dir, f"random-{args.model}")
    write_checkpoint(args.model, folder, args.seed)
    bandwidth, measured = read_bandwidth()
    settings.update(measured, cpu=cpu_model(), threads=os.cpu_count(),
                    tensorflow=tf.__version__)
    say(f"read bandwidth: reduce {measured['reduce_GBps']} GB/s, "
        f"matvec {measured['matvec_GBps']} GB/s")
    for dtype in args.dtypes:
        runners, weight_bytes = real_runners(args, folder, dtype)
        say(f"{args.model} {dtype}: {weight_bytes / 1e6:,.1f} MB of weights read per step")
        for batch in args.batches:
            medians = time_group(runners, prompts[batch], args.repeats,
                                 f"{args.model} {dtype} batch {batch}")
            header()
            finish(medians, dtype, batch)
            results.append({"model": args.model, "impl": "ceiling", "dtype": dtype,
                            "batch": batch, "new_tokens": args.new_tokens,
                            "tokens_per_sec": round(bandwidth * batch / weight_bytes, 1),
                            "weight_bytes_per_step": weight_bytes,
                            "bandwidth_GBps": round(bandwidth / 1e9, 1)})
            row(results[-1])
            if args.json:
                merge_json(args.json, results, settings)
        del runners
    return results


def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle
                     if line.startswith("model name")]
        return names[0] if names else "unknown"
    except OSError:
        return "unknown"


if __name__ == "__main__":
    main()
