"""`python -m keras_transformer.inspect CONFIG` (see `cli/inspect.py`)."""

from keras_transformer.cli.inspect import main

if __name__ == "__main__":
    main()
