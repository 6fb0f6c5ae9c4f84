"""Generation speed: our KV-cached loop vs our uncached loop vs keras-hub's GPT-2.

    python benchmarks/generate.py --json benchmarks/generate.json       # full size
    python benchmarks/generate.py --new-tokens 50 --repeats 1           # quick smoke run
    python benchmarks/generate.py --impls ours_cached_sliding ours_uncached_sliding \
        --json benchmarks/generate_sliding.json                         # past the context

Every implementation decodes greedily from the same random prompts with a
model of the same sizes (default: the GPT config of `train.py`, 4 layers,
d_model 128, 4 heads, vocab 66) and XLA:

- `ours_cached`: `Decoder(model)`, the KV-cached `tf.while_loop`;
- `ours_uncached`: `Decoder(model, use_cache=False)`, the same compiled loop
  re-running the full model over the window at every step;
- `keras_hub`: `keras_hub.models.GPT2CausalLM(backbone, preprocessor=None)`
  with a `GPT2Backbone` built from arguments (no download), greedy sampler,
  `jit_compile=True`, fed `{"token_ids", "padding_mask"}` directly.

1,000 new tokens do not fit a 128-position context, so these models are
built with `--max-len 1024` (the prompt plus the new tokens must fit: no
window sliding is involved). Two more rows decode past the context of the
default model (`--sliding-max-len 128`, `slide=True`):

- `ours_cached_sliding`: the cached loop; when the cache is full it encodes
  the last half window again and goes on cached (`Decoder.sliding_loop`);
- `ours_uncached_sliding`: the uncached loop, exact one-token sliding.
 Each setting is compiled once (a warm-up call), then
the implementations are timed in turn, `--repeats` times, interleaved; the
table shows the median.
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


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--new-tokens", type=int, default=1000)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--prompt-len", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--impls", nargs="+", choices=IMPLS, default=list(IMPLS[:3]))
    parser.add_argument("--max-len", type=int, default=1024,
                        help="context of the models; must hold prompt + new tokens")
    parser.add_argument("--sliding-max-len", type=int, default=128,
                        help="context of the *_sliding rows' model (train.py's default)")
    parser.add_argument("--num-layers", type=int, default=4)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--num-heads", type=int, default=4)
    parser.add_argument("--vocab-size", type=int, default=66)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    return parser


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
        causal_lm = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)
        causal_lm.compile(sampler="greedy")  # jit_compile=True is the default

        def run_keras_hub(prompts):
            prompts = np.asarray(prompts, dtype="int32")
            batch, length = prompts.shape
            token_ids = np.zeros((batch, length + args.new_tokens), "int32")
            token_ids[:, :length] = prompts
            padding_mask = np.zeros_like(token_ids, dtype=bool)
            padding_mask[:, :length] = True
            out = causal_lm.generate(
                {"token_ids": token_ids, "padding_mask": padding_mask}, stop_token_ids=None
            )
            return np.asarray(out["token_ids"])[:, length:]

        runners["keras_hub"] = run_keras_hub
    return {name: runners[name] for name in args.impls}


def main(argv=None):
    args = build_parser().parse_args(argv)
    fitting = [name for name in args.impls if name not in SLIDING]
    if fitting and args.prompt_len + args.new_tokens - 1 > args.max_len:
        sys.exit(f"--prompt-len + --new-tokens - 1 must be <= --max-len ({args.max_len})")
    runners = make_runners(args)
    rng = np.random.default_rng(args.seed)
    prompts = {b: rng.integers(1, args.vocab_size, size=(b, args.prompt_len)) for b in args.batches}
    for batch in args.batches:  # compile every (implementation, batch) once
        for run in runners.values():
            run(prompts[batch])
    seconds = {(name, b): [] for name in runners for b in args.batches}
    for _ in range(args.repeats):
        for batch in args.batches:
            for name, run in runners.items():
                start = time.perf_counter()
                out = run(prompts[batch])
                seconds[(name, batch)].append(time.perf_counter() - start)
                assert out.shape == (batch, args.new_tokens), out.shape
    results = []
    print(f"{'impl':<15}{'batch':>6}{'new_tokens':>12}{'tokens/s':>12}")
    for batch in args.batches:
        for name in runners:
            median = statistics.median(seconds[(name, batch)])
            rate = batch * args.new_tokens / median
            results.append({"impl": name, "batch": batch, "new_tokens": args.new_tokens,
                            "tokens_per_sec": round(rate, 1)})
            print(f"{name:<15}{batch:>6}{args.new_tokens:>12}{rate:>12,.0f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"results": results, "settings": vars(args)}, handle, indent=2)
    return results


if __name__ == "__main__":
    main()
