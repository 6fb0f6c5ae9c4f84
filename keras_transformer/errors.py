"""The one exception type for mistakes a user can make.

Everything a user can get wrong (a missing data file, a bad flag value, a
prompt with characters the tokenizer never saw, a directory that is not a run)
raises :class:`UserInputError` with a plain, one-line message. The command
line tools print that message on one line and exit with status 2; library
callers can catch it like any other exception.
"""


class UserInputError(ValueError):
    """A problem with the user's input, described in one plain sentence."""


def recompute_dropout_message(dropout):
    """Why `recompute` refuses dropout (`TransformerConfig` and `TransformerBlock` say it)."""
    return (
        f"recompute=True needs dropout=0 (got {dropout}): the recomputed forward pass would "
        "draw new dropout masks, so the gradients would not be those of the output"
    )
