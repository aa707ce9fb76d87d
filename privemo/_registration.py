"""Every ``.keras`` file privemo writes loads after ``import privemo``, without importing privemo's submodules by hand.

Keras finds a custom class in a saved model only if the class is registered (``keras.saving.register_keras_serializable``)
before ``keras.saving.load_model`` reads the file; registration happens when the module defining the class is imported.
``privemo/__init__.py`` imports names lazily, so that ``import privemo`` (corpora, features) does not cost TensorFlow's
import time; importing the layer modules there would undo that. Instead, privemo registers its classes as soon as Keras
itself is imported, whoever imports it: ``install()`` (called by ``privemo/__init__.py``) registers at once if Keras is
already loaded, else leaves an import hook (``privemo._import_hooks``) that does it right after Keras's own code has run.
``import privemo, keras; keras.saving.load_model("fold0.keras")`` therefore works in a fresh process, and a process that
never imports Keras pays nothing.

When Keras is first imported by one of privemo's own modules (``import privemo.nn.models`` imports Keras, then
``privemo.nn.layers``), importing the other class modules at that moment could meet a privemo module half-way through its
own import (``privemo.removal`` needs ``privemo.nn.models``' names); registration then waits until no privemo module is
being imported any more.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import threading
import warnings
from typing import Iterator

from privemo._import_hooks import after_import, around_import, initializing, remove_hooks

#: privemo's modules that define Keras classes registered for deserialisation ("privemo>..." names)
KERAS_CLASS_MODULES: tuple[str, ...] = ("privemo.nn.layers", "privemo.removal.grl", "privemo.removal.adversarial",
                                          "privemo.removal.mmd", "privemo.removal.inlp", "privemo.removal.erasure")

_lock = threading.RLock()
_state = {"pending": False, "done": False}


def register_keras_classes() -> None:
    """Import the modules of ``KERAS_CLASS_MODULES`` (imports Keras and TensorFlow), registering all of privemo's Keras
    classes; safe to call any number of times."""
    for name in KERAS_CLASS_MODULES:
        importlib.import_module(name)
    with _lock:
        _state["done"] = True
        _state["pending"] = False
    remove_hooks("privemo.", prefix=True)


def install() -> None:
    """Register privemo's Keras classes now if Keras is loaded, else as soon as it is (see the module docstring)."""
    if _state["done"]:
        return
    around_import("privemo.", _privemo_module, prefix=True)
    after_import("keras", _keras_imported)


def _privemo_importing(excluding: str | None = None) -> bool:
    """True while a privemo submodule (other than ``excluding``) is being imported in this process."""
    for name, module in list(sys.modules.items()):
        if name.startswith("privemo.") and name != excluding and module is not None and initializing(module):
            return True
    return False


def _register_quietly() -> None:
    # runs inside someone's `import keras`: a failure here must not break that import
    try:
        register_keras_classes()
    except Exception as exc:  # pragma: no cover - only a broken privemo installation gets here
        warnings.warn(f"privemo: could not register its Keras classes ({exc.__class__.__name__}: {exc}); "
                      f"import {', '.join(KERAS_CLASS_MODULES)} before loading a privemo .keras file.", RuntimeWarning,
                      stacklevel=2)


def _keras_imported() -> None:
    with _lock:
        if _state["done"]:
            return
        if _privemo_importing():
            _state["pending"] = True  # finished by _privemo_module when the last privemo import in progress ends
            return
    _register_quietly()


@contextlib.contextmanager
def _privemo_module(name: str) -> Iterator[None]:
    yield  # the module's code has run
    with _lock:
        ready = _state["pending"] and not _state["done"] and not _privemo_importing(excluding=name)
    if ready:
        _register_quietly()
