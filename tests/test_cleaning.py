"""Text cleaning before tokenizer training."""

import pytest
from conftest import make_text
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_transformer.data.cleaning import clean_text


@pytest.mark.parametrize("raw, clean", [
    ("donâ€™t", "don't"),                                      # UTF-8 read as Windows-1252
    ("Ã©tÃ© Ã  Paris", "été à Paris"),
    ("\u201cHark!\u201d \u2018tis so", '"Hark!" \'tis so'),   # curly quotes
    ("1914\u20131918 \u2212 5", "1914-1918 - 5"),              # en dash, minus sign
    ("Nay\u2014not so", "Nay--not so"),                        # em dash
    ("a \t  b\u00a0\u00a0c", "a b c"),                         # runs of spaces, tabs, NBSP
    ("line one   \nline two\t\n", "line one\nline two\n"),     # trailing spaces
    ("a\r\nb\rc", "a\nb\nc"),                                  # line breaks
    ("act one\n\n\n\n\nact two", "act one\n\nact two"),        # at most one blank line
    ("\ufb01ne", "fine"),                                      # ligature
])
def test_clean_text_fixes(raw, clean):
    assert clean_text(raw) == clean


def test_clean_text_keeps_clean_text_and_newlines():
    text = make_text()
    assert clean_text(text) == text  # already clean: unchanged
    assert clean_text(" = Title = \n\n Some <unk> text @-@ here . \n") == (
        " = Title =\n\n Some <unk> text @-@ here .\n"  # WikiText markup survives
    )


# Text from pieces cleaning acts on, mixed with ordinary words.
pieces = st.sampled_from(["word", " ", "  ", "\t", "\n", "\n\n\n", "\u2019", "\u201c", "\u2014",
                          "\u2013", "\u00a0", "é", "Ã©", "\r\n", ".", "ﬁ"])


@settings(max_examples=200, deadline=None)
@given(st.lists(pieces, max_size=30).map("".join))
def test_clean_text_is_idempotent_and_normalizes_whitespace(text):
    once = clean_text(text)
    assert clean_text(once) == once
    assert "  " not in once and "\t" not in once and "\r" not in once and "\n\n\n" not in once
    assert " \n" not in once
    assert not set(once) & set("\u2018\u2019\u201c\u201d\u2013\u2014\u00a0")
