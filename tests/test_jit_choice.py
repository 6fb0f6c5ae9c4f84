"""`--jit auto`: XLA, except mixed precision on a CPU with bfloat16 matrix units.

The rule itself is tested on given CPU flags; a real (tiny) `train.py` run
then shows it reaches the compiled step: the first line says which, and
`metrics.json` records the XLA setting the run used.
"""

import json

import pytest
from conftest import make_text

from keras_transformer.errors import UserInputError
from keras_transformer.training import distribute
from keras_transformer.training.distribute import choose_jit, cpu_flags

AMX = {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}
AVX2 = {"avx2", "fma"}


def test_auto_is_xla_except_mixed_precision_on_bf16_matrix_units():
    assert choose_jit("auto", False, AMX) == (True, None)  # float32: as before
    assert choose_jit("auto", False, AVX2) == (True, None)
    xla, note = choose_jit("auto", True, AMX)
    assert xla is False and note.startswith("XLA off (--jit auto)") and "AMX" in note
    xla, note = choose_jit("auto", True, AVX2)  # no units: XLA stays, and the user is told
    assert xla is True and "brings no speed here" in note


def test_an_explicit_setting_is_honoured_and_explained():
    assert choose_jit(True, True, AMX)[0] is True
    assert "--jit auto" in choose_jit(True, True, AMX)[1]
    assert choose_jit(False, True, AMX) == (False, None)
    assert choose_jit(False, True, AVX2)[0] is False
    assert choose_jit(True, False, AMX) == (True, None)
    assert choose_jit(False, False, AMX) == (False, None)
    for bad in ("yes", 1, None):
        with pytest.raises(UserInputError, match="jit must be"):
            choose_jit(bad, True, AMX)


def test_cpu_flags_reads_the_flags_line(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: X\nflags\t\t: fpu avx2 amx_bf16\n\n")
    assert cpu_flags(str(info)) == {"fpu", "avx2", "amx_bf16"}
    assert cpu_flags(str(tmp_path / "missing")) == set()


@pytest.mark.parametrize(("flags", "value"), [
    ([], "auto"), (["--jit"], True), (["--jit", "on"], True), (["--jit", "off"], False),
    (["--no-jit"], False), (["--jit", "auto"], "auto"),
])
def test_train_py_jit_flag(flags, value):
    from keras_transformer.cli.train import prepare

    assert prepare(["--arch", "gpt", *flags])[1].jit == value


@pytest.mark.parametrize("units", [True, False])
def test_a_mixed_precision_run_says_first_which_xla_setting_it_took(units, tmp_path, monkeypatch,
                                                                     capsys):
    """A tiny `train.py --mixed-precision` run on a CPU with and without AMX (flags faked)."""
    from keras_transformer.cli.train import main

    (tmp_path / "play.txt").write_text(make_text(200), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(distribute, "cpu_flags", lambda: AMX if units else AVX2)
    code = main(["--data", "play.txt", "--num-layers", "1", "--d-model", "16", "--num-heads",
                 "2", "--max-len", "16", "--seq-len", "16", "--batch-size", "4", "--epochs", "1",
                 "--steps-per-epoch", "2", "--sample-tokens", "0", "--verbose", "0",
                 "--mixed-precision", "--out", "run"])
    assert code == 0
    first = capsys.readouterr().out.splitlines()[0]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["dtype_policy"] == "mixed_bfloat16"
    if units:
        assert first.startswith("XLA off (--jit auto)") and metrics["xla"] is False
    else:
        assert "brings no speed here" in first and metrics["xla"] is True
    config = json.loads((tmp_path / "run" / "config.json").read_text())["settings"]
    assert config["jit"] == "auto"
