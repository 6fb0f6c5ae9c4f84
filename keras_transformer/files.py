"""Writing a directory whole: it is built beside its place and renamed there at the end."""

import contextlib
import os
import shutil
import tempfile


@contextlib.contextmanager
def replaced_directory(out_dir):
    """Yield a fresh directory beside `out_dir`; on success it replaces `out_dir`.

    Whatever was at `out_dir` stays until the new directory is complete, and
    a failure inside the block leaves it untouched (the staging directory is
    removed). The caller decides beforehand whether replacing is allowed.

    Example:

    >>> with replaced_directory("exports/gpt") as staging:
    ...     tf.saved_model.save(module, staging)
    """
    out_dir = os.path.abspath(os.fspath(out_dir))
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.", dir=parent)
    try:
        yield staging
        if os.path.isdir(out_dir):
            shutil.rmtree(out_dir)
        elif os.path.exists(out_dir):
            os.remove(out_dir)
        os.replace(staging, out_dir)
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging)
