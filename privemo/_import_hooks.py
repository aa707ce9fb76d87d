"""Run privemo's code around or after the first import of another package, without importing that package early.

``import privemo`` stays light (no TensorFlow), yet two things must happen when TensorFlow or Keras does get imported,
whoever imports it: TensorFlow's start-up log is filtered (``privemo._quiet``) and privemo's Keras classes are registered
so that ``keras.saving.load_model`` finds them (``privemo._registration``). A ``sys.meta_path`` finder does both: for a
watched module name it asks the other finders for the real spec and wraps the loader, so that the module's own code runs
inside the registered context managers and the registered callbacks run once it has finished. The module sees its real
loader while it executes, and nothing else about the import changes. The finder removes itself once no hook is left.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import types
from typing import Callable, ContextManager

_lock = threading.RLock()
_around: dict[str, list[Callable[[str], ContextManager]]] = {}
_after: dict[str, list[Callable[[], None]]] = {}
_busy = threading.local()  # names this thread is looking up, so that our own find_spec calls do not recurse


def around_import(name: str, context: Callable[[str], ContextManager], *, prefix: bool = False) -> None:
    """Run the import of module ``name`` inside ``context(fullname)`` (a context manager factory given the imported
    module's name): once (the next time ``name`` is imported), or, with
    ``prefix``, for every module whose name starts with ``name`` until ``remove_hooks(name, prefix=True)``."""
    with _lock:
        _around.setdefault(("*" if prefix else "") + name, []).append(context)
        _install()


def after_import(name: str, callback: Callable[[], None]) -> None:
    """Call ``callback()`` once module ``name`` has been imported: at once if it already is, else right after its code
    has run (once; the hook is then removed)."""
    module = sys.modules.get(name)
    if module is not None and not initializing(module):
        callback()
        return
    with _lock:
        _after.setdefault(name, []).append(callback)
        _install()


def remove_hooks(name: str, *, prefix: bool = False) -> None:
    """Drop the ``around_import`` hooks of ``name`` (and the finder, once no hook is left)."""
    with _lock:
        _around.pop(("*" if prefix else "") + name, None)
        _uninstall_if_idle()


def initializing(module: types.ModuleType) -> bool:
    """True while ``module``'s own code is still running (an import in progress, maybe further up this thread's stack)."""
    return bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


def _around_hooks(fullname: str, *, take: bool = False) -> list[Callable[[str], ContextManager]]:
    with _lock:
        around = list(_around.pop(fullname, ()) if take else _around.get(fullname, ()))
        for key, contexts in _around.items():
            if key.startswith("*") and fullname.startswith(key[1:]):
                around += contexts
        return around


def _watched(fullname: str) -> bool:
    with _lock:
        return fullname in _after or bool(_around_hooks(fullname))


def _take_after_hooks(fullname: str) -> list[Callable[[], None]]:
    with _lock:
        after = _after.pop(fullname, [])
        _uninstall_if_idle()
        return after


class _Finder:  # the MetaPathFinder protocol (importlib.abc not imported: it costs more than this module)
    """Finds nothing itself: wraps the loader that the other finders return for a watched module."""

    def find_spec(self, fullname, path, target=None):
        busy = getattr(_busy, "names", None)
        if busy is None:
            busy = _busy.names = set()
        if fullname in busy or not _watched(fullname):
            return None
        busy.add(fullname)
        try:
            spec = None
            for finder in list(sys.meta_path):
                find = getattr(finder, "find_spec", None)
                if finder is self or find is None:
                    continue
                spec = find(fullname, path, target)
                if spec is not None:
                    break
        finally:
            busy.discard(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        # hooks are looked up when the module executes: a find_spec without an import (importlib.util.find_spec, as
        # libraries use to check what is installed) must not use them up
        spec.loader = _Loader(spec.loader, fullname)
        return spec


class _Loader:  # the Loader protocol
    """Delegates to the real loader; runs the module's code inside the ``around`` contexts, then the ``after`` calls."""

    def __init__(self, loader, name: str) -> None:
        self._loader = loader
        self._name = name

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        # the module sees its real loader (importlib.resources, inspect, pkgutil use it)
        module.__spec__.loader = self._loader
        module.__loader__ = self._loader
        with contextlib.ExitStack() as stack:
            for context in _around_hooks(self._name, take=True):
                stack.enter_context(context(self._name))
            self._loader.exec_module(module)
        for callback in _take_after_hooks(self._name):
            callback()

    def __getattr__(self, name):
        return getattr(self._loader, name)


_FINDER = _Finder()


def _install() -> None:
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def _uninstall_if_idle() -> None:
    if not _around and not _after:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(_FINDER)
