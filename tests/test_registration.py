"""privemo's .keras files load in a fresh process with ``privemo.load_model`` (privemo.removal.saving).

``import privemo`` imports no TensorFlow and registers nothing; ``privemo.load_model`` (or ``register_keras_classes``)
imports the modules that define privemo's Keras classes, which registers them. Each check runs in a fresh interpreter:
in this one the classes are registered already.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np

import privemo
from privemo.removal import apply_projection, build_removal_model

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(conv_layers=1, conv_width=2, conv_kernels=4, gru_layers=1, gru_width=4, dense_layers=1, dense_width=4)

LOAD = """
import sys
import numpy as np
import privemo, keras
x = dict(np.load(sys.argv[1]))
for path in sys.argv[2:]:
    model = privemo.load_model(path)
    out = model.predict_on_batch({name: x[name] for name in model.input})
    np.savez(path + ".loaded.npz", **{name: np.asarray(value) for name, value in out.items()})
    print(type(model).__name__, sorted({type(l).__name__ for l in model._flatten_layers()
                                        if type(l).__module__.startswith("privemo")}))
"""


def _python(code: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=300)


def _inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    acoustic = rng.normal(size=(3, 12, 40)).astype("float32")
    acoustic[0, 9:] = 0.0  # padded frames: FrameMask, PoolMask and ApplyMask take part
    lexical = rng.normal(size=(3, 6, 16)).astype("float32")
    lexical[1, 4:] = 0.0
    return {"acoustic": acoustic, "lexical": lexical}


def test_saved_models_load_in_a_fresh_process_with_privemo_load_model(tmp_path):
    x = _inputs()
    keras.utils.set_random_seed(0)
    models = {
        "multimodal_gender": privemo.build_model(modalities=("acoustic", "lexical"), adversary="gender", lexical_dim=16,
                                                 **TINY),
        "alternating": build_removal_model("alternating", seed=0, modalities=("acoustic",), adversary="gender", **TINY),
    }
    base = build_removal_model("inlp", seed=0, modalities=("acoustic",), **TINY)
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(4, 4)))
    models["inlp"] = apply_projection(base, q[:, :3] @ q[:, :3].T)  # a rank-3 projection: NullspaceProjection

    expected = {}
    for name, model in models.items():
        path = tmp_path / f"{name}.keras"
        model.save(path)
        expected[path] = model.predict_on_batch({k: x[k] for k in model.input})
    np.savez(tmp_path / "x.npz", **x)

    result = _python(LOAD, str(tmp_path / "x.npz"), *map(str, expected), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert "FrameMask" in lines[0] and "GradientReversal" in lines[0]
    assert lines[1].startswith("AlternatingAdversarialModel")
    assert "NullspaceProjection" in lines[2]
    for path, outputs in expected.items():
        loaded = np.load(f"{path}.loaded.npz")
        assert sorted(loaded.files) == sorted(outputs)
        for name, value in outputs.items():
            np.testing.assert_array_equal(loaded[name], np.asarray(value), err_msg=f"{path.name}: {name}")


def test_import_privemo_stays_light_and_register_keras_classes_registers_them_all(tmp_path):
    check = ("import sys, keras; print(sorted(n for n in ('privemo>FrameMask', 'privemo>GradientReversal', "
             "'privemo>NullspaceProjection', 'privemo>AlternatingAdversarialModel') "
             "if keras.saving.get_registered_object(n) is not None))")
    everything = "['privemo>AlternatingAdversarialModel', 'privemo>FrameMask', 'privemo>GradientReversal', " \
                 "'privemo>NullspaceProjection']"
    code = ("import sys, privemo; print('tensorflow' in sys.modules, 'keras' in sys.modules); "
            "import privemo.corpora, privemo.features.acoustic; print('tensorflow' in sys.modules)")
    result = _python(code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["False", "False", "False"]
    # before or after Keras, from the public function or its module
    for first in ("import keras, privemo.removal.saving as s; s.register_keras_classes()",
                  "from privemo.removal.saving import register_keras_classes; register_keras_classes()"):
        result = _python(f"{first}; {check}", cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout.strip() == everything, first
