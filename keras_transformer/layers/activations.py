"""The feed-forward network's activations, each one fused kernel forward and one backward.

GELU (both forms) and SiLU are a handful of elementwise operations. Inside an
XLA-compiled step XLA fuses them anyway. Without XLA, which is how
`--mixed-precision` runs on a CPU with AMX units (`--jit auto`), TensorFlow runs
each operation as its own kernel over the whole `[batch, time, d_ff]` tensor,
in bfloat16, and keeps the intermediates for the gradient. Here each
activation is a `tf.function(jit_compile=True)` with its derivative written out:
the forward pass is one fused XLA kernel that computes in float32, and the
backward pass is one more, recomputing from the input. Inside a compiled
step the functions are inlined, and nothing changes.

Measured (`benchmarks/RESULTS.md`, "One fused kernel per activation"): the
d_model 512, 6-layer GPT step in mixed_bfloat16 without XLA runs 1.17x
faster.
"""

import math

import tensorflow as tf

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _fused(value_and_derivative):
    """An activation from `f(x) -> (value, derivative)` on float32 `x`: computed in
    float32, returned in `x`'s dtype, with a gradient that recomputes the derivative
    from `x`; forward and backward each one XLA-compiled kernel."""

    @tf.custom_gradient
    def activation(x):
        value, _ = value_and_derivative(tf.cast(x, tf.float32))

        def grad(upstream):
            _, derivative = value_and_derivative(tf.cast(x, tf.float32))
            return tf.cast(tf.cast(upstream, tf.float32) * derivative, x.dtype)

        return tf.cast(value, x.dtype), grad

    return tf.function(activation, jit_compile=True, reduce_retracing=True)


def _gelu_tanh(x):
    inner = _SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)
    t = tf.tanh(inner)
    derivative = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * _SQRT_2_OVER_PI * (
        1.0 + 3 * 0.044715 * x * x)
    return 0.5 * x * (1.0 + t), derivative


def _gelu_erf(x):
    cdf = 0.5 * (1.0 + tf.math.erf(x * _INV_SQRT_2))
    return x * cdf, cdf + x * _INV_SQRT_2PI * tf.exp(-0.5 * x * x)


def _silu(x):
    sigmoid = tf.sigmoid(x)
    return x * sigmoid, sigmoid * (1.0 + x * (1.0 - sigmoid))


_fused_gelu_tanh = _fused(_gelu_tanh)
_fused_gelu_erf = _fused(_gelu_erf)
_fused_silu = _fused(_silu)


def gelu_tanh(x):
    """GELU by its tanh approximation (GPT-2's `gelu_new`, T5 v1.1's gated GELU):
    `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.

    Example:

    >>> float(gelu_tanh(tf.constant(1.0)))  # doctest: +ELLIPSIS
    0.841...
    """
    return _fused_gelu_tanh(x)


def gelu_erf(x):
    """GELU exactly, `x * Phi(x)` with the error function (BERT's `gelu`).

    Example:

    >>> float(gelu_erf(tf.constant(1.0)))  # doctest: +ELLIPSIS
    0.841...
    """
    return _fused_gelu_erf(x)


def silu(x):
    """SiLU (swish), `x * sigmoid(x)`: the gate of SwiGLU (LLaMA).

    Example:

    >>> float(silu(tf.constant(1.0)))  # doctest: +ELLIPSIS
    0.731...
    """
    return _fused_silu(x)
