"""Text cleaning before a tokenizer is trained: mojibake, typographic punctuation, whitespace.

`clean_text` is optional (`train.py --clean/--no-clean`): it is on by
default for the subword (`bpe`) tokenizer, whose vocabulary would otherwise
spend entries on curly-quote and mojibake variants of the same words, and off
by default for the character tokenizer, so its measured figures stay those of
the raw text.
"""

import re

# Typographic quotes and dashes and their ASCII spelling (ftfy already
# straightens the common curly quotes; these are the rest).
_PUNCTUATION = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u00b4": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
    "\u00ab": '"', "\u00bb": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2212": "-",
    "\u2014": "--", "\u2015": "--",
}
_TRANSLATION = str.maketrans(_PUNCTUATION)
_SPACES = re.compile(r"[^\S\n]+")  # any whitespace except a newline
_TRAILING = re.compile(r" +\n")
_BLANK_LINES = re.compile(r"\n{3,}")


def clean_text(text):
    """A cleaned copy of `text`, ready for tokenizer training.

    In order:

    1. `ftfy.fix_text`: repairs mojibake ("donâ€™t" -> "don't"), HTML
       entities in text that is not HTML, Latin ligatures, full-width
       letters, and line breaks (`\\r\\n` -> `\\n`);
    2. typographic quotes become `'` and `"`, hyphens, en dashes and minus
       signs `-`, em dashes `--`;
    3. whitespace: every run of spaces, tabs and other non-newline
       whitespace becomes one space, spaces at the end of a line are
       removed, and more than one blank line in a row becomes one.

    Newlines are kept (a line break is information a model can learn). The
    steps are repeated until nothing changes (a repair can expose another
    one), so the result is a fixed point: `clean_text(clean_text(t)) ==
    clean_text(t)`.

    Args:
        text: a string.

    Returns:
        The cleaned string.

    Example:

    >>> clean_text("It\\u2019s  \\u201cfine\\u201d \\u2014 really\\t \\n")
    'It\\'s "fine" -- really\\n'
    """
    for _ in range(4):  # a fix can expose another ("\xa0Ã©" -> " Ã©" -> " é")
        cleaned = _clean_once(text)
        if cleaned == text:
            break
        text = cleaned
    return text


def _clean_once(text):
    import ftfy

    text = ftfy.fix_text(text)
    text = text.translate(_TRANSLATION)
    text = _SPACES.sub(" ", text)
    text = _TRAILING.sub("\n", text)
    return _BLANK_LINES.sub("\n\n", text)
