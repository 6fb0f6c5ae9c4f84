"""Two or more versions of one training step, timed in one process, their `fit`s alternating.

Used by `transposed_matmul.py` and `fused_activation.py`: each variant is our
GPT traced (at its first `fit`) with some attributes of modules or classes
replaced, e.g. the attention's `batched_matmul` by `tf.matmul`; after tracing
they are put back, and the traced step keeps what it was traced with.
"""

import statistics

import numpy as np

from keras_transformer import TransformerConfig

DEFAULT = dict(batch=64, seq_len=128, jit=True, mixed=False)  # train.py --arch gpt's step
LARGE = dict(batch=16, seq_len=256, jit=False, mixed=True)  # issue 17 line 3's, --jit auto on AMX


def step_config(large):
    """The default GPT (gpt-mini), or with `large` the d_model 512, 6-layer one."""
    if large:
        return TransformerConfig(vocab_size=66, max_len=256, num_layers=6, d_model=512,
                                 num_heads=8), LARGE
    return TransformerConfig.preset("gpt-mini", vocab_size=66), DEFAULT


def time_variants(variants, repeats, large=False, steps=10, warmup=3):
    """`({name: median tokens/s}, {name: [tokens/s per round]})`.

    `variants`: `{name: [(module or class, attribute, replacement), ...]}` (an empty list:
    the code as it is).
    """
    from train import batches, compiled, timed_fit  # benchmarks/train.py

    config, step = step_config(large)
    batch, seq_len = step["batch"], step["seq_len"]
    ids = np.random.default_rng(0).integers(1, 66, size=(batch * (steps + warmup), seq_len + 1))
    models = {}
    for name, patch in variants.items():
        model, to_inputs = compiled("ours", config, step["jit"], step["mixed"], 1000)
        data = batches(to_inputs, ids.astype("int32"), batch)
        kept = [(owner, attribute, getattr(owner, attribute)) for owner, attribute, _ in patch]
        for owner, attribute, replacement in patch:
            setattr(owner, attribute, replacement)
        try:  # the first fit traces the step
            model.fit(data.take(1), epochs=1, verbose=0)
        finally:
            for owner, attribute, value in kept:
                setattr(owner, attribute, value)
        models[name] = (model, data)
    speeds = {name: [] for name in models}
    for _ in range(repeats):
        for name, (model, data) in models.items():
            speeds[name].append(steps * batch * seq_len / timed_fit(model, data, warmup))
    return {name: statistics.median(values) for name, values in speeds.items()}, speeds


def report(speeds, rounds, large):
    """Print each variant's median tokens/s and the second over the first (also round by
    round); return that ratio."""
    title = ("d_model 512 step (mixed_bfloat16, no XLA)" if large
             else "default GPT step (XLA, float32)")
    print(f"\n{title:42s} {'tokens/s':>10s}")
    for name, speed in speeds.items():
        print(f"{name:42s} {speed:10,.0f}")
    (first, second), (a_rounds, b_rounds) = list(speeds)[:2], list(rounds.values())[:2]
    ratio = speeds[second] / speeds[first]
    each = ", ".join(f"{b / a:.3f}" for a, b in zip(a_rounds, b_rounds, strict=True))
    print(f"{second} / {first}: {ratio:.3f} (rounds: {each})")
    return ratio
