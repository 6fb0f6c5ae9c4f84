"""Encoder-decoder data and decoding: dates, span corruption, pairs files, beam search."""

import datetime
import itertools

import keras
import numpy as np
import pytest
from conftest import make_text

from keras_transformer import TransformerConfig, UserInputError
from keras_transformer.data import CharTokenizer
from keras_transformer.data.seq2seq import (
    BOS,
    EOS,
    SENTINELS,
    date_pairs,
    encode_pairs,
    read_pairs,
    span_corruption_pairs,
    split_dates,
)
from keras_transformer.generation.beam import beam_search
from keras_transformer.generation.seq2seq import NextLogits, greedy_decode
from keras_transformer.models import build_seq2seq


def test_dates_are_reproducible_and_held_out_dates_never_train():
    train_days, heldout = split_dates(num_heldout=2000, seed=5)
    assert len(heldout) == 2000 and not set(train_days) & set(heldout)
    pairs = date_pairs(train_days, 5000, seed=5)
    assert pairs == date_pairs(*split_dates(2000, seed=5)[:1], 5000, seed=5)
    heldout_iso = {datetime.date.fromordinal(int(d)).isoformat() for d in heldout}
    assert not {target for _, target in pairs} & heldout_iso
    for source, target in pairs[:50]:
        assert datetime.date.fromisoformat(target)
        assert source != target
    assert len({s.split(" ")[0].strip(",") for s, _ in pairs}) > 20  # various formats


def test_span_corruption_drops_spans_behind_sentinels():
    text = make_text(300)
    pairs = span_corruption_pairs(text, 30, length=60, seed=2)
    for source, target in pairs:
        assert source.startswith(SENTINELS[0]) or SENTINELS[0] in source
        # Putting the spans back gives the original window.
        restored = source
        pieces = target.split("<extra_id_")[1:]
        for piece in pieces:
            index, span = piece.split(">", 1)
            restored = restored.replace(f"<extra_id_{index}>", span, 1)
        assert len(restored) == 60 and restored in text


def test_encode_pairs_teacher_forcing_layout():
    tokenizer = CharTokenizer.from_text("abc", [BOS, EOS])
    source, decoder_input, label = encode_pairs([("ab", "c"), ("a", "cba")], tokenizer, 8)
    bos, eos = tokenizer.special_id(BOS), tokenizer.special_id(EOS)
    assert source.tolist() == [[1, 2], [1, 0]]
    assert decoder_input.tolist() == [[bos, 3, 0, 0], [bos, 3, 2, 1]]
    assert label.tolist() == [[3, eos, 0, 0], [3, 2, 1, eos]]
    with pytest.raises(UserInputError, match="empty"):
        encode_pairs([("", "c")], tokenizer, 8)
    with pytest.raises(UserInputError, match="longer than max_len"):
        encode_pairs([("a", "abcabcab")], tokenizer, 8)


def test_read_pairs_names_the_bad_line(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("one\tuno\ntwo\tdos\n\nthree tres\n", encoding="utf-8")
    with pytest.raises(UserInputError, match="line 4: expected 'source<TAB>target'"):
        read_pairs(str(path))
    path.write_text("one\tuno\n\tdos\n", encoding="utf-8")
    with pytest.raises(UserInputError, match="line 2: the source is empty"):
        read_pairs(str(path))
    path.write_text("one\tuno\ntwo\t" + "d" * 20 + "\n", encoding="utf-8")
    with pytest.raises(UserInputError, match="line 2: the target has 20 characters"):
        read_pairs(str(path), max_len=16)
    path.write_text("one\tuno\ntwo\tdos\n", encoding="utf-8")
    assert read_pairs(str(path)) == [("one", "uno"), ("two", "dos")]


@pytest.mark.parametrize("seed", [2, 4])
def test_beam_search_with_width_one_is_greedy(seed):
    keras.utils.set_random_seed(seed)  # fixed weights: the seeds below give both kinds of rows
    model = build_seq2seq(TransformerConfig(vocab_size=12, max_len=12, num_layers=1, d_model=16,
                                            num_heads=2))
    rng = np.random.default_rng(seed)
    source = rng.integers(1, 12, size=(6, 7)).astype("int32")
    source[0, 4:] = 0
    step = NextLogits(model, jit_compile=False)
    # eos 11: some rows stop early, others run to max_target.
    greedy = greedy_decode(model, source, bos_id=10, eos_id=11, max_target=9, step=step)
    beam = beam_search(model, source, bos_id=10, eos_id=11, max_target=9, width=1, step=step)
    assert greedy == beam
    # Both paths are compared: rows that stopped at </s> and rows cut at max_target.
    assert any(len(g) < 9 for g in greedy), "no row stopped at </s>; choose another seed"
    assert any(len(g) == 9 for g in greedy), "every row stopped early; choose another seed"


def _exhaustive_best(model, source, bos_id, eos_id, max_target, length_penalty, pad_id=0):
    """The best output of each row over every output `beam_search` can return.

    Scored as `beam.py` ranks its beams: an output is either `k <= max_target`
    tokens whose last is `</s>` (its log-probability counts the `</s>`,
    nothing after it) or `max_target` tokens without `</s>`; the padding id
    is never generated. The score is the summed log-probability divided by
    `((5 + length) / 6) ** length_penalty`, `length` counting the `</s>`.
    Log-probabilities come from one call of the model on each whole output.

    Returns the best output of each row (its `</s>` included), the margin of
    each over the runner-up and the number of outputs.
    """
    vocab = model.output.shape[-1]
    body = [i for i in range(vocab) if i not in (pad_id, eos_id)]
    outputs = [(*prefix, eos_id) for k in range(max_target)
               for prefix in itertools.product(body, repeat=k)]
    outputs += list(itertools.product(body, repeat=max_target))
    window = np.zeros((len(outputs), max_target), "int32")
    window[:, 0] = bos_id
    for i, out in enumerate(outputs):
        window[i, 1:len(out)] = out[:max_target - 1][:len(out) - 1]
    lengths = np.array([len(out) for out in outputs])
    best, margins = [], []
    for row in source:
        logits = keras.ops.convert_to_numpy(model(
            {"source_ids": np.repeat(row[None], len(outputs), axis=0), "target_ids": window},
            training=False)).astype(np.float64)
        logits[..., pad_id] = -np.inf
        top = logits.max(axis=-1, keepdims=True)
        logp = logits - top - np.log(np.exp(logits - top).sum(axis=-1, keepdims=True))
        summed = np.array([sum(logp[i, t, token] for t, token in enumerate(out))
                           for i, out in enumerate(outputs)])
        ranked = summed / ((5.0 + lengths) / 6.0) ** length_penalty
        first, second = np.argsort(-ranked)[:2]
        best.append(outputs[first])
        margins.append(ranked[first] - ranked[second])
    return best, np.array(margins), len(outputs)


def test_a_beam_as_wide_as_the_search_space_finds_the_exhaustive_best():
    # 4 ids that can be generated (1, 2, bos 3, eos 4; 0 is padding) and 4 steps:
    # 1 + 3 + 9 + 27 outputs end with </s>, 81 run to max_target, 121 in all.
    vocab, bos, eos, max_target = 5, 3, 4, 4
    keras.utils.set_random_seed(11)
    model = build_seq2seq(TransformerConfig(vocab_size=vocab, max_len=8, num_layers=1,
                                            d_model=16, num_heads=2))
    # Large random weights give peaked, source-dependent distributions, so that the
    # best outputs differ between rows, in length and from greedy decoding.
    rng = np.random.default_rng(11)
    model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])
    source = np.random.default_rng(11).integers(1, vocab, size=(8, 5)).astype("int32")
    source[::3, 3:] = 0
    step = NextLogits(model, jit_compile=False)
    greedy = greedy_decode(model, source, bos, eos, max_target=max_target, step=step)
    bests = {}
    for alpha in (0.0, 1.0):
        best, margins, size = _exhaustive_best(model, source, bos, eos, max_target, alpha)
        assert size == 121
        assert margins.min() > 1e-3, "a near tie between two outputs; choose another seed"
        beam = beam_search(model, source, bos, eos, max_target=max_target, width=size,
                           length_penalty=alpha, step=step)
        assert beam == [[token for token in out if token != eos] for out in best], alpha
        # What makes the comparison prove something: in some rows the best ends with
        # </s> (at once, or after a token), in others it runs to max_target without
        # one; and greedy decoding misses the best in some rows.
        ends = {len(out) for out in best if out[-1] == eos}
        assert {1, 2} <= ends and any(eos not in out for out in best), best
        assert any(list(out[:-1] if out[-1] == eos else out) != g
                   for out, g in zip(best, greedy, strict=True))
        bests[alpha] = best
    # ... and the length penalty changes the winner of some row.
    assert bests[0.0] != bests[1.0]
