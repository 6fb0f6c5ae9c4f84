"""`python -m keras_transformer.export RUN_DIR OUT_DIR` (see `cli/export.py`).

The library function is `keras_transformer.generation.export_generator`;
this module only exists so that `-m` finds the command-line tool under that
short name.
"""

from keras_transformer.cli.export import main

if __name__ == "__main__":
    main()
