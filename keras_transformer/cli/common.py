"""What every command-line tool shares: one-line errors and exit codes."""

import argparse
import sys


class ArgumentParser(argparse.ArgumentParser):
    """An `argparse` parser whose errors are one line: `PROG: error: MESSAGE`."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def run(main_body, prog):
    """Call `main_body()`; print a `UserInputError` as one line and exit 2."""
    from keras_transformer.errors import UserInputError

    try:
        return main_body()
    except UserInputError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
