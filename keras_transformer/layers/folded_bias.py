"""A matmul with its bias folded in, for the one-token products of decoding loops."""

from keras import ops


def matmul_folded_bias(x, kernel, bias=None):
    """`x @ kernel + bias` as one matmul: `[x, 1] @ [kernel; bias]`.

    XLA:CPU fuses a one-token matrix-vector product with the broadcast add of
    its bias into one loop, which runs on one core; a product that is not fused
    goes to Eigen's matrix-vector kernel on every core. On GPT-2 small's 48
    biased products that is 12-15 GB/s fused against ~20 GB/s alone
    (`benchmarks/RESULTS.md`, "Biases folded into the one-token products").
    With the bias as one more row of the kernel no add follows the product.
    The bigger kernel depends only on the weights, so XLA hoists its
    concatenation out of a decoding `while` loop, which then pays only for
    appending a 1 to `x`. Without a bias the row is zeros: the concatenation
    still keeps XLA from fusing the product with what computes `x` (a sum, a
    norm), which it runs as the same one-core loop. In the Llama-shaped model
    of `benchmarks/generate.py`, which has no biases, the sum of the two
    attention parts fused into the output projection was half of a token.

    Use it inside XLA-compiled loops: without XLA the bigger kernel is
    concatenated again at every call, and the plain `x @ kernel + bias` is
    cheaper (`Decoder` folds only when it compiles).

    Args:
        x: `[..., in]`.
        kernel: `[in, out]`.
        bias: `[out]`, or `None` (a row of zeros).

    Returns:
        `[..., out]` in `x`'s dtype.

    Example:

    >>> x, kernel, bias = np.ones((1, 1, 3)), np.ones((3, 2)), np.array([1.0, 2.0])
    >>> keras.ops.convert_to_numpy(matmul_folded_bias(x, kernel, bias))
    array([[[4., 5.]]])
    """
    kernel = ops.cast(kernel, x.dtype)
    bias = ops.zeros(kernel.shape[-1:], x.dtype) if bias is None else ops.cast(bias, x.dtype)
    x = ops.concatenate([x, ops.ones_like(x[..., :1])], axis=-1)
    return ops.matmul(x, ops.concatenate([kernel, bias[None, :]], axis=0))


def matmul_with_bias(x, kernel, bias=None, fold=False):
    """`x @ kernel + bias` in `x`'s dtype: with `fold`, as `matmul_folded_bias`;
    otherwise the product, then the bias (if any) added."""
    if fold:
        return matmul_folded_bias(x, kernel, bias)
    y = ops.matmul(x, ops.cast(kernel, x.dtype))
    return y if bias is None else y + ops.cast(bias, y.dtype)
