"""KV-cached decoding equals full recomputation: logits at every step, and tokens."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from decoding_reference import reference_greedy

from keras_transformer import TransformerConfig, UserInputError, build_gpt, generate
from keras_transformer.data import CharTokenizer
from keras_transformer.generation import Decoder
from keras_transformer.layers.attention import commit_recent, two_part_cache
from keras_transformer.models import call_with_cache, init_cache

TINY = dict(vocab_size=12, max_len=16, num_layers=2, d_model=16, num_heads=4)
CONFIGS = {
    "learned": {},
    "sinusoidal_untied_post_ln": {"position": "sinusoidal", "tie_embeddings": False, "norm_first": False},
    "rope_gqa_rms_swiglu": {"position": "rope", "num_kv_heads": 2, "norm": "rms", "activation": "swiglu"},
    "mqa_chunked": {"num_kv_heads": 1, "attention": "chunked", "attention_block_size": 3},
}
PROMPTS = [[3, 4, 5], [7], [1, 2, 3, 4, 5, 6]]  # batch 3, unequal lengths
CONFIGS_KV_HEADS = {name: c.get("num_kv_heads") for name, c in CONFIGS.items()}


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def model(request):
    return build_gpt(TransformerConfig(**TINY, **CONFIGS[request.param]), name=request.param)


def prefill(model, slots):
    """`PROMPTS` left-padded and encoded into a cache of `slots` slots, as `Decoder` does:
    `(logits, cache, padding, real slots [batch, slots], prompt length)`."""
    longest = max(len(p) for p in PROMPTS)
    padding = np.array([longest - len(p) for p in PROMPTS], "int32")
    ids = np.zeros((len(PROMPTS), longest), "int32")
    for i, p in enumerate(PROMPTS):
        ids[i, padding[i]:] = p
    real = np.arange(slots)[None, :] >= padding[:, None]
    positions = np.maximum(np.arange(longest)[None, :] - padding[:, None], 0)
    mask = real[:, None, :] & (np.arange(slots)[None, None, :] <= np.arange(longest)[None, :, None])
    logits, cache = call_with_cache(model, ids, positions, init_cache(model, len(PROMPTS), slots), 0, mask)
    return logits, cache, padding, real, longest


def check_and_extend(model, logits, rows):
    """Assert the last logits equal re-running the model on each row; append the greedy
    tokens (never the padding id) to the rows and return them."""
    last = logits.numpy()[:, -1]
    for i, row in enumerate(rows):
        full = model(np.array([row], "int32")).numpy()[0, -1]
        np.testing.assert_allclose(last[i], full, rtol=1e-5, atol=1e-5)
    tokens = 1 + np.argmax(last[:, 1:], axis=-1).astype("int32")
    for i, row in enumerate(rows):
        row.append(int(tokens[i]))
    return tokens


def check_one_token_steps(model, steps, step_call):
    """Prefill, then `steps` one-token `step_call(token_ids, positions, cache, index, mask)`s
    into the same cache, every logits checked against full recomputation; the last cache."""
    longest = max(len(p) for p in PROMPTS)
    slots = longest + steps
    logits, cache, padding, real, _ = prefill(model, slots)
    rows = [list(p) for p in PROMPTS]
    for step in range(steps):
        tokens = check_and_extend(model, logits, rows)
        index = longest + step
        step_mask = (real & (np.arange(slots)[None, :] <= index))[:, None, :]
        logits, cache = step_call(tokens[:, None], (index - padding)[:, None], cache,
                                  tf.constant(index), step_mask)
    check_and_extend(model, logits, rows)
    return cache


def test_cached_logits_equal_full_recomputation_at_every_step(model):
    """Left-padded prefill, then one token at a time into the same cache."""
    steps = 8
    cache = check_one_token_steps(model, steps, lambda *args: call_with_cache(model, *args))
    kv_heads = CONFIGS_KV_HEADS.get(model.name)
    slots = max(len(p) for p in PROMPTS) + steps
    for keys, values in cache:  # the cache holds only the kv heads
        assert keys.shape == (len(PROMPTS), kv_heads or 4, slots, 4)
        assert values.shape == (len(PROMPTS), kv_heads or 4, slots, 4)


def test_a_two_part_cache_gives_the_logits_of_full_recomputation(model):
    """What `Decoder` does after the prefill: a long cache only read, a recent
    cache of 3 slots written at every step and committed to the long one every 3 steps
    (a wrong mask, part order or commit slot changes the logits)."""
    steps, recent = 8, 3
    longest = max(len(p) for p in PROMPTS)
    slots = longest + steps + recent
    logits, cache, padding, real, _ = prefill(model, slots)
    rows = [list(p) for p in PROMPTS]
    start, parts = longest, None
    for step in range(steps):
        tokens = check_and_extend(model, logits, rows)
        j = longest + step - start
        if j == recent:  # the recent cache is full: commit it and start a new one
            cache = [commit_recent(long, layer[2:], start)
                     for long, layer in zip(cache, parts, strict=True)]
            start, j, parts = start + recent, 0, None
        if parts is None:
            parts = [two_part_cache(long, short) for long, short in
                     zip(cache, init_cache(model, len(PROMPTS), recent), strict=True)]
        step_mask = np.concatenate([real & (np.arange(slots)[None, :] < start),
                                    np.broadcast_to(np.arange(recent) <= j, (len(PROMPTS), recent))],
                                   axis=-1)[:, None, :]
        logits, parts = call_with_cache(model, tokens[:, None], (start + j - padding)[:, None], parts,
                                        tf.constant(j), step_mask)
    assert start > longest  # the loop did commit


@pytest.mark.parametrize("name", ["learned", "rope_gqa_rms_swiglu"])
def test_cached_and_uncached_decoders_match_the_reference_and_slide(name):
    """The cached decoder commits its recent cache every 3 tokens here, so the tokens
    cross many chunks and the sliding window's re-encodings fall inside them (with the
    default 32 no chunk fills up in these tests; `test_generation` runs that)."""
    keras.utils.set_random_seed(0)  # weights whose greedy text depends on the window
    model = build_gpt(TransformerConfig(**TINY, **CONFIGS[name]))
    cached = Decoder(model, slide=True, recent_slots=3)
    uncached = Decoder(model, use_cache=False, slide=True)
    # Within the context: greedy tokens equal re-running the model on each row.
    expected = reference_greedy(model, PROMPTS, 9, context=16)
    for decoder in (cached, uncached):
        assert [t.tolist() for t in decoder(PROMPTS, 9, temperature=0.0)] == expected
    # The chunk size is the cached loop's; without a cache it is refused, not ignored.
    with pytest.raises(UserInputError, match="recent_slots is a setting of the cached loop"):
        Decoder(model, use_cache=False, recent_slots=3)
    with pytest.raises(UserInputError, match="recent_slots must be >= 1"):
        Decoder(model, recent_slots=0)
    # 6 + 40 tokens do not fit 16 positions: an error, unless the window may slide.
    with pytest.raises(UserInputError, match="slide"):
        Decoder(model)(PROMPTS, max_new_tokens=40, temperature=0.0)
    # Uncached, it slides by one token; cached, the last 8 tokens are encoded again
    # whenever the 16 slots are full (four times in 40 tokens).
    exact = reference_greedy(model, PROMPTS, 40, context=16)
    windowed = reference_greedy(model, PROMPTS, 40, context=16, keep=8)
    assert [t.tolist() for t in uncached(PROMPTS, 40, temperature=0.0)] == exact
    assert [t.tolist() for t in cached(PROMPTS, 40, temperature=0.0)] == windowed
    # The two windows give other text in every row, so each comparison tells them apart.
    assert all(a != b for a, b in zip(exact, windowed, strict=True))
    # Sampling: the same seed draws the same first tokens, sliding or not.
    short, long = (cached(PROMPTS, n, temperature=1.0, seed=4) for n in (11, 40))
    for a, b in zip(short, long, strict=True):
        assert b[:11].tolist() == a.tolist()


def test_padding_id_is_never_generated():
    model = build_gpt(TransformerConfig(**TINY))
    for use_cache in (True, False):
        tokens = Decoder(model, use_cache=use_cache)([[1], [2, 3]], 15, temperature=50.0, seed=1)
        assert all(0 not in t for t in tokens)
        assert len(set(np.concatenate(tokens).tolist())) > 5  # the sampling is really random


def test_generate_uses_the_cache_by_default_and_keeps_its_signature():
    model = build_gpt(TransformerConfig(**TINY, position="rope"))
    tokenizer = CharTokenizer(list("abcdefghijk"))
    args = (model, tokenizer, ["abc", "k"], 9, 0.8, 3, 0.9, 5, None)
    assert generate(*args) == generate(*args, use_cache=False)
    with pytest.raises(UserInputError, match="slide"):
        generate(model, tokenizer, "abc", max_new_tokens=20, slide=False)
    assert len(generate(model, tokenizer, "abc", max_new_tokens=20)) == 23  # slides by default


@pytest.mark.parametrize("name, use_bias", [("learned", True), ("rope_gqa_rms_swiglu", True),
                                            ("rope_gqa_rms_swiglu", False)])
def test_folded_biases_give_the_logits_of_full_recomputation(name, use_bias):
    """The one-token products with their biases folded in (`fold_biases=True`, compiled
    with XLA as `Decoder` runs them) on a model whose every bias is non-zero: a bias
    dropped, or added to the wrong outputs, changes the logits. Without biases (Llama)
    the folded row is zeros."""
    model = build_gpt(TransformerConfig(**TINY, **CONFIGS[name], use_bias=use_bias), name=name)
    biases = [w for w in model.weights if w.path.endswith("/bias")]
    # per block: query, key, value, attention output, FFN hidden and output (and gate)
    assert len(biases) >= 6 * TINY["num_layers"] if use_bias else not biases
    rng = np.random.default_rng(0)
    for w in biases:
        w.assign(rng.normal(0.0, 0.5, w.shape))
    folded_step = tf.function(
        lambda *args: model.call_with_cache(*args, fold_biases=True), jit_compile=True)
    check_one_token_steps(model, 3, folded_step)
