"""Command-line tools. Nothing else in the package imports this."""
