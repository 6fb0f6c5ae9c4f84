"""Files written by earlier versions: same outputs today, or one line saying why not.

`tests/fixtures/` holds what earlier versions wrote (see its README): one
seeded model of each family with its logits, and two run directories (one
from before the model classes, a plain functional model; one from before the
attention layers were flattened). The refactors that followed change no
output: the same seeds give the same logits, the old files load into today's
layers with the same logits, and the old run directories generate the same
text.
"""

import json
import os
import shutil
import sys

import keras
import numpy as np
import pytest

from keras_transformer.config import TransformerConfig
from keras_transformer.errors import UserInputError
from keras_transformer.models import load_model

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
MODELS = os.path.join(FIXTURES, "models_gpt_class")
sys.path.insert(0, FIXTURES)
from write_fixtures import BUILDERS, CONFIGS, inputs, perturb  # noqa: E402

RECORDED = np.load(os.path.join(MODELS, "logits.npz"))


def _outputs(model, family):
    result = model(inputs(family))
    items = result.items() if isinstance(result, dict) else [("logits", result)]
    return {f"{family}/{name}": keras.ops.convert_to_numpy(value) for name, value in items}


def _assert_recorded(outputs):
    # Every recorded output is still there and the same (outputs added since, like BERT's
    # `hidden` and `pooled`, were not recorded).
    family = next(iter(outputs)).split("/")[0]
    recorded = [name for name in RECORDED.files if name.startswith(family + "/")]
    assert recorded, "no outputs compared"
    for name in recorded:
        np.testing.assert_allclose(outputs[name], RECORDED[name], rtol=1e-6, atol=1e-6,
                                   err_msg=name)


@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_a_seeded_model_computes_what_the_earlier_version_did(family):
    # Same seed, same weights drawn in the same order, same arithmetic.
    keras.utils.set_random_seed(11)
    model = BUILDERS[family](TransformerConfig(**CONFIGS[family]))
    perturb(model)
    _assert_recorded(_outputs(model, family))


@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_a_file_of_the_earlier_version_loads_with_the_same_outputs(family):
    path = os.path.join(MODELS, f"{family}.keras")
    # Keras alone cannot read it: its attention weights sit at their earlier paths.
    with pytest.raises(ValueError, match="could not be loaded"):
        keras.saving.load_model(path, safe_mode=True)
    model = load_model(path)
    assert type(model).__name__ == {"gpt": "GPT", "bert": "BERT", "seq2seq": "Seq2Seq"}[family]
    _assert_recorded(_outputs(model, family))
    # Every weight came from the file: a freshly seeded model differs.
    keras.utils.set_random_seed(12)
    other = BUILDERS[family](TransformerConfig(**CONFIGS[family]))
    assert any(not np.array_equal(a, b) for a, b in zip(model.get_weights(), other.get_weights(),
                                                        strict=True))


@pytest.mark.parametrize("run", ["run_functional", "run_gpt_class"])
def test_a_run_directory_of_an_earlier_version_generates_the_same_text(run, tmp_path, cli):
    with open(os.path.join(FIXTURES, "generate_expected.txt"), encoding="utf-8") as handle:
        expected = handle.read()
    result = cli(["-m", "keras_transformer.generate", "--model", os.path.join(FIXTURES, run),
                  "--prompt", "ROMEO:", "--max-new-tokens", "40", "--temperature", "0.8",
                  "--seed", "2"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == expected


def test_an_earlier_run_whose_weights_do_not_fit_its_config_is_one_line(tmp_path, cli):
    run = tmp_path / "old"
    shutil.copytree(os.path.join(FIXTURES, "run_functional"), run)
    config = json.loads((run / "config.json").read_text())
    config["settings"]["model"]["d_ff"] *= 2
    (run / "config.json").write_text(json.dumps(config))
    result = cli(["-m", "keras_transformer.generate", "--model", str(run), "--prompt", "A"],
                 cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("generate: error: ") and "written by an earlier version" in last


def test_a_damaged_file_is_one_line(tmp_path):
    path = tmp_path / "gpt.keras"
    with open(os.path.join(MODELS, "gpt.keras"), "rb") as handle:
        data = handle.read()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserInputError, match="could not load") as error:
        load_model(str(path))
    assert "\n" not in str(error.value)
