"""The layers BERT and the encoder-decoder add: PaddingMask, Pooler, LogitBias."""

import numpy as np
import pytest
from layer_checks import check_layer

from keras_transformer.layers import LogitBias, PaddingMask, Pooler

RNG = np.random.default_rng(0)
X = RNG.normal(size=(2, 7, 16)).astype("float32")
IDS = np.array([[3, 4, 5, 0, 0], [1, 0, 0, 0, 0]], "int32")

LAYERS = {
    "padding_mask": (lambda: PaddingMask(), [IDS], (2, 5)),
    "pooler": (lambda: Pooler(16), [X], (2, 16)),
    "logit_bias": (lambda: LogitBias(), [X], (2, 7, 16)),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_common_checks(name, tmp_path):
    make_layer, inputs, shape = LAYERS[name]
    check_layer(make_layer, inputs, tmp_path, expected_shape=shape)


def test_padding_mask_is_true_at_real_tokens():
    np.testing.assert_array_equal(np.asarray(PaddingMask()(IDS)), IDS != 0)


def test_pooler_reads_only_the_first_position():
    pooler = Pooler(16)
    changed = X.copy()
    changed[:, 1:] += 1.0
    np.testing.assert_allclose(np.asarray(pooler(X)), np.asarray(pooler(changed)))
