"""The one exception type for mistakes a user can make.

Everything a user can get wrong (a missing data file, a bad flag value, a
prompt with characters the tokenizer never saw, a directory that is not a run)
raises :class:`UserInputError` with a plain, one-line message. The command
line tools print that message on one line and exit with status 2; library
callers can catch it like any other exception.
"""


class UserInputError(ValueError):
    """A problem with the user's input, described in one plain sentence."""
