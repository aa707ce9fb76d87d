"""A quiet start: no TensorFlow C++ start-up log after ``privemo.quiet_tensorflow()`` (privemo._util.quiet), which the
commands call in their ``main()``; ``import privemo`` itself installs nothing. And one device line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from privemo._util import quiet as _quiet
from privemo.nn.device import device_summary

ROOT = Path(__file__).resolve().parents[1]
NOISE = ("E0000", "cuInit", "Could not find cuda drivers", "All log messages before absl::InitializeLog()",
         "oneDNN custom operations are on", "cpu_feature_guard", "To enable the following instructions")

# what TensorFlow 2.21 prints while it is imported on a CPU machine, plus lines that must survive the filter
CAUGHT = (
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    b"I0000 00:00:1795846801.708597    5523 port.cc:153] oneDNN custom operations are on. You may see slightly ...\n"
    b"I0000 00:00:1795846801.713138    5523 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will "
    b"not be used.\n"
    b"I0000 00:00:1795846801.853321    5523 cpu_feature_guard.cc:227] This TensorFlow binary is optimized ...\n"
    b"To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow ...\n"
    b"/site-packages/foo.py:3: DeprecationWarning: a Python warning\n"
    b"To enable the following instructions: (not after a dropped record: kept)\n"
    b"W0000 00:00:1795846801.9 5523 gpu_device.cc:2] a warning record\n"
    b"2025-09-17 14:44:05.176998: E external/local_xla/xla/stream_executor/cuda/cuda_fft.cc:467] Unable to register "
    b"cuFFT factory\n"
)


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in (_quiet.LOG_LEVEL_ENV, _quiet.VERBOSE_ENV)}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    return env


def test_quiet_tensorflow_then_layers_and_first_op_print_no_tensorflow_log(tmp_path):
    code = ("import privemo; privemo.quiet_tensorflow(); import privemo.nn.layers, keras; "
            "keras.ops.sum(keras.ops.ones((2, 3))); print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                            env=_clean_env(), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok"
    assert not [s for s in NOISE if s in result.stderr], result.stderr


def test_import_privemo_installs_nothing(tmp_path):
    code = ("import os, sys; finders, stderr = list(sys.meta_path), os.fstat(2); import privemo; "
            "assert sys.meta_path == finders, sys.meta_path; assert os.fstat(2) == stderr; "
            "assert 'TF_CPP_MIN_LOG_LEVEL' not in os.environ; assert 'tensorflow' not in sys.modules; print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                            env=_clean_env(), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok"


def test_a_command_prints_no_tensorflow_log(tmp_path):
    # the export command imports TensorFlow before it looks at the run folder
    result = subprocess.run([sys.executable, "-m", "privemo.export", "--out", str(tmp_path / "nothing"), "--list"],
                            capture_output=True, text=True, cwd=tmp_path, env=_clean_env(), timeout=300)
    assert result.returncode == 2 and result.stderr.startswith("privemo.export: error:"), result.stderr[-3000:]
    assert not [s for s in NOISE if s in result.stderr], result.stderr


def test_filter_applies_the_log_level_to_what_tensorflow_printed_before_reading_it():
    lines = CAUGHT.splitlines(keepends=True)
    kept = _quiet.filter_log(CAUGHT, 3).splitlines(keepends=True)
    assert kept == [lines[5], lines[6]]  # the Python warning and the unrelated line
    assert _quiet.filter_log(CAUGHT, 2).splitlines(keepends=True) == [lines[5], lines[6], lines[8]]
    assert _quiet.filter_log(CAUGHT, 1).splitlines(keepends=True) == [lines[5], lines[6], lines[7], lines[8]]
    assert _quiet.filter_log(CAUGHT, 0) == CAUGHT


def test_the_users_settings_win(monkeypatch):
    # setenv, not delenv: monkeypatch restores only what it saw, and show_tensorflow_log() below sets the variable
    # itself; a leaked PRIVEMO_VERBOSE=1 would make every later command print TensorFlow's log
    monkeypatch.setenv(_quiet.VERBOSE_ENV, "0")
    monkeypatch.setenv(_quiet.LOG_LEVEL_ENV, "1")
    _quiet.quiet_tensorflow()
    assert os.environ[_quiet.LOG_LEVEL_ENV] == "1"
    _quiet.show_tensorflow_log()  # --verbose: the user's own level stays
    assert os.environ[_quiet.LOG_LEVEL_ENV] == "1" and _quiet.verbose()

    monkeypatch.delenv(_quiet.VERBOSE_ENV)
    monkeypatch.delenv(_quiet.LOG_LEVEL_ENV)
    _quiet.quiet_tensorflow()
    assert os.environ[_quiet.LOG_LEVEL_ENV] == _quiet.QUIET_LEVEL
    _quiet.show_tensorflow_log()  # privemo's own setting is taken back
    assert _quiet.LOG_LEVEL_ENV not in os.environ and os.environ[_quiet.VERBOSE_ENV] == "1"


@pytest.mark.parametrize("value, expected", [("", False), ("0", False), ("1", True), ("yes", True)])
def test_verbose_variable(monkeypatch, value, expected):
    monkeypatch.setenv(_quiet.VERBOSE_ENV, value)
    assert _quiet.verbose() is expected


def test_device_summary_says_where_training_runs():
    import tensorflow as tf

    line = device_summary()
    assert line.startswith("privemo: training on ")
    if not tf.config.list_physical_devices("GPU"):
        assert line == "privemo: training on the CPU (TensorFlow sees no GPU)"
    else:
        assert "GPU 0 (" in line


def test_the_settings_test_leaves_no_verbose_flag_behind():
    """Runs after test_the_users_settings_win in this module: the environment later tests inherit is not verbose."""
    assert not _quiet.verbose()
