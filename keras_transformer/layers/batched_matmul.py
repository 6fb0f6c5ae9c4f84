"""A batched matmul whose gradient runs in the layouts XLA:CPU is fast at."""

import tensorflow as tf

try:  # XLA's optimization barrier: keeps a transpose as a copy instead of folding it
    from tensorflow.compiler.tf2xla.python.xla import optimization_barrier as _barrier
except ImportError:  # pragma: no cover - a TensorFlow without it runs the plain forms
    _barrier = None


def _kept(x):
    """`x`, materialized where it is: XLA may not fold the transpose that made it into
    the matmul that reads it (outside XLA this is the identity)."""
    return x if _barrier is None else _barrier(x)[0]


def _swap(x):
    """`x` with its last two axes swapped."""
    rank = len(x.shape)
    return tf.transpose(x, list(range(rank - 2)) + [rank - 1, rank - 2])


def _smaller_left(a, dy, b):
    """Whether `a` is no larger than `dy` and `b` together (unknown sizes: yes)."""
    sizes = [x.shape[-2] * x.shape[-1] if None not in x.shape[-2:] else None for x in (a, dy, b)]
    return None in sizes or sizes[0] <= sizes[1] + sizes[2]


def right_gradient(a, dy, b):
    """`a^T @ dy`, the gradient of `a @ b` with respect to `b`, as a plain product of a
    kept transposed copy: `swap(a) @ dy`, or `swap(swap(dy) @ a)` when `a` is larger than
    `dy` and `b` together (only `b`'s shape is read)."""
    if _smaller_left(a, dy, b):
        return tf.matmul(_kept(_swap(a)), dy)
    return _swap(_kept(tf.matmul(_kept(_swap(dy)), a)))  # copies of the smaller dy and db^T


@tf.custom_gradient
def batched_matmul(a, b):
    """`a @ b` over leading batch axes, with a gradient XLA:CPU runs fast.

    Attention's two batched products, scores `q @ k^T` and output
    `weights @ v`, contract over the keys' and the queries' axes. Their
    gradients with respect to `b` (`a^T @ dy`) contract `a` and `dy` over
    their rows, which autodiff hands XLA as one dot with a transposed left
    operand, and XLA:CPU runs that form about twice as slow as a plain
    product (`benchmarks/transposed_matmul.py`: 9.3 ms against 4.3 ms this
    way for the default GPT's `weights^T @ d_output`). So here that gradient
    is a plain product of a copied transpose (`right_gradient`): `swap(a) @
    dy`, or, when `a` is the larger operand, `swap(swap(dy) @ a)`; each copy
    is kept as a copy (XLA's optimization barrier), or XLA folds it back into
    the dot. The other
    gradient, `dy @ b^T`, is already a form XLA:CPU runs at full speed.

    The values are those of `tf.matmul` and of its gradients; only the
    products' layouts differ. The default GPT's training step, XLA-compiled,
    runs 3-8 % faster (`benchmarks/RESULTS.md`, "Attention's backward
    products").

    Args:
        a: `[..., m, k]`.
        b: `[..., k, n]`, the same batch axes and dtype.

    Returns:
        `[..., m, n]`.

    Example:

    >>> a, b = tf.ones((2, 3, 4)), tf.ones((2, 4, 5))
    >>> batched_matmul(a, b).shape
    TensorShape([2, 3, 5])
    """
    y = tf.matmul(a, b)

    def grad(dy):
        return tf.matmul(dy, b, transpose_b=True), right_gradient(a, dy, b)

    return y, grad
