"""Where text comes from: Tiny Shakespeare through the Keras cache, or a user's file."""

import os

import keras

from keras_transformer.errors import UserInputError

SHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)
SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
SHAKESPEARE_FNAME = "tinyshakespeare.txt"


def shakespeare_path(cache_dir=None):
    """Path of Tiny Shakespeare in the Keras cache, downloading it if needed.

    Uses `keras.utils.get_file`, which honours `KERAS_HOME`: a file at
    `$KERAS_HOME/datasets/tinyshakespeare.txt` (default `~/.keras/datasets/`)
    with the right sha256 is used as it is, with no network access.
    `cache_dir` replaces the Keras home directory.
    """
    try:
        return keras.utils.get_file(
            SHAKESPEARE_FNAME,
            origin=SHAKESPEARE_URL,
            file_hash=SHAKESPEARE_SHA256,
            cache_dir=cache_dir,
        )
    except Exception as error:  # no network, a proxy error, a bad hash ...
        # Where get_file looked: `cache_dir`, else $KERAS_HOME, else ~/.keras.
        home = cache_dir or os.environ.get("KERAS_HOME") or os.path.expanduser("~/.keras")
        cache = os.path.join(home, "datasets", SHAKESPEARE_FNAME)
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserInputError(
            f"could not download Tiny Shakespeare ({reason}); put the file at {cache} "
            f"or pass --data PATH"
        ) from None


def read_text(path):
    """Read a UTF-8 text file, with one-line errors for the usual mistakes."""
    if not os.path.exists(path):
        raise UserInputError(f"data file not found: {path}")
    if os.path.isdir(path):
        raise UserInputError(f"data path is a directory, expected a text file: {path}")
    with open(path, "rb") as handle:
        raw = handle.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UserInputError(
            f"data file is not UTF-8 text: {path} (bad byte at offset {error.start})"
        ) from None
    if not text.strip():
        raise UserInputError(f"data file is empty: {path}")
    return text


def load_text(path=None, cache_dir=None):
    """The training text: the file at `path`, or Tiny Shakespeare when `path` is None."""
    return read_text(path if path is not None else shakespeare_path(cache_dir))


def split_text(text, train_fraction=0.9):
    """First `train_fraction` of the characters for training, the rest for validation.

    This is nanoGPT's split of Tiny Shakespeare (90 % / 10 %), so validation
    losses compare with its published figures. The validation text is the end
    of the file: scenes and speakers the model never trains on.
    """
    cut = int(len(text) * train_fraction)
    return text[:cut], text[cut:]
