"""Loading privemo's ``.keras`` files: every Keras class privemo defines, registered in one call.

Keras finds a custom class in a saved model only if the class is registered (``keras.saving.register_keras_serializable``)
before ``keras.saving.load_model`` reads the file, and a class is registered when the module defining it is imported.
privemo's Keras classes live in ``privemo.nn.layers`` and the removal methods' modules.
``import privemo`` stays light (no TensorFlow), so it does not import them; ``privemo.load_model(path)`` does, then loads
the file, and ``register_keras_classes()`` only registers (for code that calls ``keras.saving.load_model`` itself).
Importing any of privemo's network modules (``privemo.nn.models``, the modules of ``privemo.removal`` that define layers
and models; the package itself resolves them lazily) registers them too.
"""

from __future__ import annotations

from typing import Any

def register_keras_classes() -> None:
    """Register all of privemo's Keras classes ("privemo>..." names) by importing the modules that define them (hence Keras
    and TensorFlow); safe to call any number of times."""
    import privemo.nn.layers  # noqa: F401
    import privemo.removal.adversarial  # noqa: F401
    import privemo.removal.erasure  # noqa: F401
    import privemo.removal.grl  # noqa: F401
    import privemo.removal.inlp  # noqa: F401
    import privemo.removal.mmd  # noqa: F401


def load_model(path, **kwargs: Any):
    """``keras.saving.load_model(path, **kwargs)`` after ``register_keras_classes()``: loads any ``.keras`` file privemo
    wrote (a network of the experiment, an exported encoder) in a fresh process."""
    register_keras_classes()
    import keras

    return keras.saving.load_model(path, **kwargs)


__all__ = ["load_model", "register_keras_classes"]
