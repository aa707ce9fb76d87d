"""The device check a session with a GPU runs once (issue 17), as one prepared script: which device TensorFlow trains on,
whether every GRU of privemo's networks takes the cuDNN kernel in the traced training step, whether two trainings with
one seed give identical weights (op determinism), then the cost benchmark (``protocol_cost.py --quick``: K = 1 and 16 on
a GPU) and a short real ``reproduce`` run, both timed. Prints each finding and writes them to ``<out>/gpu_check.json``
(atomically). On a CPU it runs too: the cuDNN line then says that no GPU is visible.

    python benchmarks/gpu_check.py --out /tmp/gpu            # everything (a few minutes on a GPU)
    python benchmarks/gpu_check.py --out /tmp/gpu --skip-runs   # device, cuDNN and determinism only (seconds)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from privemo._util.io import atomic_write_json  # noqa: E402

QUICK = dict(conv_layers=3, conv_width=3, conv_kernels=32, gru_layers=2, gru_width=32, dense_layers=1, dense_width=32)


def _batch(seed: int = 0, batch: int = 16, frames: int = 120):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, frames, 40)).astype("float32")
    x[batch // 2:, frames // 2:] = 0  # padded utterances: the masked cuDNN path
    y = {"emotion": rng.integers(0, 3, batch), "gender": rng.integers(0, 2, batch)}
    return {"acoustic": x}, y


def cudnn_kernels() -> dict:
    """GRU layers of the quick network and the cuDNN RNN ops in its traced training step (one per GRU expected on a
    GPU; none on a CPU), with ``privemo.nn.device.cudnn_gru_problems``' reasons if Keras would fall back."""
    import tensorflow as tf
    import keras

    from privemo.nn.device import cudnn_gru_problems, gpu_visible
    from privemo.nn.models import build_model

    model = build_model(**QUICK, adversary="gender")
    x, y = _batch()
    loss = keras.losses.SparseCategoricalCrossentropy()

    @tf.function
    def step(inputs):
        with tf.GradientTape() as tape:
            out = model(inputs, training=True)
            total = loss(y["emotion"], out["emotion"]) + loss(y["gender"], out["gender"])
        return tape.gradient(total, model.trainable_variables)

    graph = step.get_concrete_function(x).graph.as_graph_def()
    nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
    ops = sorted({n.op for n in nodes if n.op.startswith("CudnnRNN")})
    grus = sum(isinstance(layer, keras.layers.GRU) for layer in model.layers)
    return {"gpu_visible": gpu_visible(), "gru_layers": grus, "cudnn_ops": ops,
            "cudnn_ops_in_step": sum(n.op.startswith("CudnnRNN") for n in nodes),
            "cudnn_problems": cudnn_gru_problems(model)}


def determinism(epochs: int = 2) -> dict:
    """Two trainings of the quick network with one seed: are the weights identical?"""
    from privemo._util.seed import set_seed
    from privemo.nn.models import build_model
    from privemo.nn.training import compile_model

    weights = []
    for _ in range(2):
        set_seed(0)
        model = compile_model(build_model(**QUICK, adversary="gender"))
        x, y = _batch(1, batch=64)
        model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, shuffle=False)  # privemo shuffles with NumPy
        weights.append(model.get_weights())
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(*weights))
    return {"identical_weights": diff == 0.0, "max_abs_difference": diff}


def timed(command: list[str]) -> dict:
    """Run ``command`` from the repository root; its wall time and whether it succeeded (the tail of its output)."""
    print("running:", " ".join(command), flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")))
    return {"command": " ".join(command[1:]), "returncode": done.returncode,
            "wall_s": round(time.perf_counter() - started, 1), "output_tail": (done.stdout + done.stderr)[-3000:]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for gpu_check.json, the cost CSV and the reproduce run")
    parser.add_argument("--skip-runs", action="store_true", help="leave out the cost benchmark and the reproduce run")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from privemo.experiment.cost_calibration import device_name
    from privemo.nn.device import configure_device, describe_devices

    configure_device()
    found = {"device": device_name(), "devices": describe_devices(), "cudnn": cudnn_kernels(),
             "determinism": determinism()}
    print(f"device: {found['device']}")
    c = found["cudnn"]
    print(f"cuDNN: {c['cudnn_ops_in_step']} CudnnRNN op(s) {c['cudnn_ops']} in the traced step for {c['gru_layers']} "
          f"GRU layer(s)" + ("" if c["gpu_visible"] else " (no GPU visible: the CPU loop is expected)")
          + (f"; Keras would fall back because: {c['cudnn_problems']}" if c["cudnn_problems"] else ""))
    d = found["determinism"]
    print(f"determinism: two trainings with one seed {'identical' if d['identical_weights'] else 'differ'} "
          f"(max |difference| {d['max_abs_difference']:.3g})")
    if not args.skip_runs:
        found["protocol_cost"] = timed([sys.executable, "benchmarks/protocol_cost.py", "--quick", "--out",
                                        str(out / "protocol_cost.csv")])
        found["reproduce"] = timed([sys.executable, "-m", "privemo.reproduce", "--demo-size", "16", "--modality",
                                    "acoustic", "--task", "activation", "--out", str(out / "reproduce"), "--quiet"])
        for key in ("protocol_cost", "reproduce"):
            print(f"{key}: exit {found[key]['returncode']} in {found[key]['wall_s']} s")
        print(found["protocol_cost"]["output_tail"])
    atomic_write_json(out / "gpu_check.json", found)
    print(f"wrote {out / 'gpu_check.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
