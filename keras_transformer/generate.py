"""`python -m keras_transformer.generate --model RUN_DIR ...` (see `cli/generate.py`).

The library function is `keras_transformer.generate`; this module only exists
so that `-m` finds the command-line tool under that short name.
"""

from keras_transformer.cli.generate import main

if __name__ == "__main__":
    main()
