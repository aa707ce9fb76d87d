"""Device set-up and GPU readiness: TensorFlow's start (quiet, threads, op determinism), an optional mixed-precision
policy, and what TensorFlow sees.

privemo trains on whatever TensorFlow places the ops on: a visible GPU is used without any flag. The encoder's GRU
layers (``privemo.nn.models.encode_branch``) keep Keras' cuDNN-compatible defaults (tanh, sigmoid recurrent activation,
bias, ``reset_after=True``, no recurrent dropout, not unrolled) and get right-padded masks from ``FrameMask`` (an
all-zero input keeps one frame, so no sequence is fully masked), so on a GPU Keras takes the cuDNN GRU kernel;
``cudnn_gru_problems`` checks a model for anything that would silently fall back to the generic kernel.

Mixed precision (``configure_device(mixed_precision=True)``) is off by default. It sets the Keras policy
"mixed_float16" (float16 compute, float32 variables; ``compile`` then wraps the optimizer in a ``LossScaleOptimizer``).
Softmax outputs should stay float32 under that policy; ``float16_outputs`` lists the outputs that would not.

Determinism: ``enable_op_determinism`` makes TensorFlow choose deterministic kernels (or raise for an op that has none),
so the same seed gives the same numbers on the same machine and software. Not covered: different TensorFlow/cuDNN
versions, different GPU models, and a different number of CPU threads for some reductions; on a GPU, determinism costs
speed. privemo has not been run on a GPU by its authors' CI (no GPU there); see the README.
"""

from __future__ import annotations

from typing import Any

from privemo._util.quiet import quiet_tensorflow

MIXED_POLICY = "mixed_float16"
DEFAULT_POLICY = "float32"


def start_tensorflow(threads: int | None = None, *, deterministic: bool = False) -> Any:
    """TensorFlow for this process, as privemo's workers and cost calibration set it up, returned as the module.

    Args:
        threads: one thread pool size for TensorFlow's intra- and inter-op pools (e.g. 1 per worker when several
            share the cores); None or 0 keeps TensorFlow's default. Effective only before TensorFlow has run an op; a
            size TensorFlow no longer accepts is left as it is.
        deterministic: True enables TensorFlow's op determinism (see the module docstring).

    TensorFlow is imported without its C++ start-up log (``privemo.quiet_tensorflow``).
    """
    tf = quiet_tensorflow()
    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(int(threads))
            tf.config.threading.set_inter_op_parallelism_threads(int(threads))
        except RuntimeError:  # already initialised in this process: keep what it has
            pass
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    return tf


def op_determinism_enabled() -> bool | None:
    """Whether TensorFlow's op determinism is on (None when this TensorFlow cannot tell)."""
    try:
        from tensorflow.python.framework import config as tf_config  # no public getter in TF 2.21

        return bool(tf_config.is_op_determinism_enabled())
    except (ImportError, AttributeError):  # pragma: no cover - other TensorFlow versions
        return None


def configure_device(mixed_precision: bool = False, deterministic: bool = True) -> dict[str, Any]:
    """Set up TensorFlow/Keras for training and describe the devices it sees.

    Args:
        mixed_precision: True sets the global Keras dtype policy to "mixed_float16" (useful on GPUs with tensor cores;
            slower on CPUs); False sets it back to "float32" (the default).
        deterministic: True enables TensorFlow's op determinism (it cannot be switched off again in the same process;
            False leaves it as it is).

    Returns:
        {"devices": [logical device names], "gpus": [GPU names], "cudnn": bool (a GPU is visible, so Keras' GRU layers
        take the cuDNN kernel), "policy": the global dtype policy's name, "mixed_precision": bool,
        "deterministic": bool | None (op determinism state), "tensorflow": version, "keras": version}.
    """
    for name, value in (("mixed_precision", mixed_precision), ("deterministic", deterministic)):
        if not isinstance(value, bool):
            raise ValueError(
                f"Invalid value received for argument `{name}`. Expected True or False. Received: {name}={value!r}"
            )
    import keras
    import tensorflow as tf

    if deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.mixed_precision.set_global_policy(MIXED_POLICY if mixed_precision else DEFAULT_POLICY)
    return describe_devices()


def gpu_visible() -> bool:
    """Whether TensorFlow sees a GPU (physical devices only: the runtime is not started)."""
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def describe_devices() -> dict[str, Any]:
    """What TensorFlow sees and how privemo would train on it (no side effects)."""
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    names = []
    for gpu in gpus:
        try:
            names.append(tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name))
        except Exception:  # pragma: no cover - details unavailable on some platforms
            names.append(gpu.name)
    policy = keras.mixed_precision.global_policy().name
    return {
        "devices": [d.name for d in tf.config.list_logical_devices()],
        "gpus": names,
        "cudnn": bool(gpus) and tf.test.is_built_with_cuda(),
        "policy": policy,
        "mixed_precision": policy == MIXED_POLICY,
        "deterministic": op_determinism_enabled(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def device_summary() -> str:
    """One line, in privemo's words, saying where training runs, e.g. "privemo: training on the CPU (TensorFlow sees no
    GPU)" or "privemo: training on GPU 0 (NVIDIA H100 80GB HBM3), cuDNN GRU kernels".

    Commands print it once at start-up instead of TensorFlow's own device log (off by default, see
    ``privemo._util.quiet``). Only the physical devices are listed: the TensorFlow runtime is not started, so no GPU
    memory is taken in the calling process (worker processes may need all of it).
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "privemo: training on the CPU (TensorFlow sees no GPU)"
    names = []
    for gpu in gpus:
        try:
            details = tf.config.experimental.get_device_details(gpu)
        except Exception:  # pragma: no cover - details unavailable on some platforms
            details = {}
        index = gpu.name.rsplit(":", 1)[-1]
        names.append(f"{index} ({details.get('device_name', gpu.name)})")
    kernels = "cuDNN GRU kernels" if tf.test.is_built_with_cuda() else "generic GRU kernels"
    return f"privemo: training on GPU {', '.join(names)}, {kernels}"


def cudnn_gru_problems(model) -> list[str]:
    """Reasons why a GRU layer of ``model`` would not use the cuDNN kernel on a GPU (empty list: all would).

    Checks the layer arguments Keras' TensorFlow backend requires (``keras.src.backend.tensorflow.rnn.cudnn_ok`` plus
    ``recurrent_dropout == 0`` and ``use_cudnn != False``). The mask condition (right padding, no fully masked
    sequence) is a property of the data; privemo's ``FrameMask`` guarantees it for zero-padded batches.
    """
    import keras

    problems = []
    for layer in _all_layers(model):
        if not isinstance(layer, keras.layers.GRU):
            continue
        cell = layer.cell
        checks = {
            "activation is tanh": getattr(cell.activation, "__name__", "") == "tanh",
            "recurrent_activation is sigmoid": getattr(cell.recurrent_activation, "__name__", "") == "sigmoid",
            "use_bias": bool(cell.use_bias),
            "reset_after": bool(cell.reset_after),
            "not unrolled": not layer.unroll,
            "no recurrent_dropout": not cell.recurrent_dropout,
            "use_cudnn is not False": layer.use_cudnn is not False,
        }
        problems += [f"{layer.name}: needs {what}" for what, ok in checks.items() if not ok]
    return problems


def float16_outputs(model) -> list[str]:
    """Names of ``model``'s outputs whose dtype is float16 (under "mixed_float16" softmax outputs should be float32)."""
    import keras

    outputs = model.output
    items = outputs.items() if isinstance(outputs, dict) else [(getattr(t, "name", str(i)), t) for i, t in
                                                                enumerate(keras.tree.flatten(outputs))]
    return [name for name, tensor in items if "float16" in str(tensor.dtype)]


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)
