"""Encoder-decoder data and decoding: dates, span corruption, pairs files, beam search."""

import datetime

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


@pytest.mark.parametrize("seed", [0, 1])
def test_beam_search_with_width_one_is_greedy(seed):
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
    assert any(len(g) < 9 for g in greedy) or all(len(g) == 9 for g in greedy)


def test_wider_beams_never_score_worse_than_greedy():
    keras.utils.set_random_seed(2)  # fixed weights: some rows must end before max_target
    model = build_seq2seq(TransformerConfig(vocab_size=8, max_len=8, num_layers=1, d_model=16,
                                            num_heads=2))
    source = np.random.default_rng(7).integers(1, 8, size=(8, 5)).astype("int32")
    step = NextLogits(model, jit_compile=False)

    def log_prob(rows):
        total = np.zeros(len(rows))
        window = np.zeros((len(rows), 6), "int32")
        window[:, 0] = 6
        for i, row in enumerate(rows):
            full = [*row, 7][:6]
            window[i, 1:len(full)] = full[:-1]  # decoder input: <s> then all but the last
        for t in range(6):
            logp = step(source, window, t)
            for i, row in enumerate(rows):
                full = [*row, 7]
                if t < len(full):
                    total[i] += logp[i, full[t]]
        return total

    greedy = greedy_decode(model, source, 6, 7, max_target=6, step=step)
    beam = beam_search(model, source, 6, 7, max_target=6, width=4, step=step)
    finished = [i for i in range(8) if len(greedy[i]) < 6 and len(beam[i]) < 6]
    assert finished, "no row finished; choose another seed"
    g, b = log_prob(greedy), log_prob(beam)
    assert all(b[i] >= g[i] - 1e-9 for i in finished)
