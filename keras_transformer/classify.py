"""`python -m keras_transformer.classify --model RUN_DIR --text ...` (see `cli/classify.py`).

This module only exists so that `-m` finds the command-line tool under that short name.
"""

from keras_transformer.cli.classify import main

if __name__ == "__main__":
    main()
