"""Lazy re-exports for a package's ``__init__``: public names resolved from their modules on first use (PEP 562), so
importing the package does not import what the names need (TensorFlow, scikit-learn) until one is used."""

from __future__ import annotations

import importlib
from typing import Any, Callable, Iterable


def lazy_exports(package: str, namespace: dict, exports: dict[str, str],
                 submodules: Iterable[str] = ()) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for package ``package`` whose globals are ``namespace``: ``exports`` maps a public
    name to the module defining it; ``submodules`` are importable as attributes too."""
    submodules = tuple(submodules)

    def __getattr__(name: str) -> Any:
        if name in submodules:
            return importlib.import_module(f"{package}.{name}")
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(exports) | set(submodules) | set(namespace))

    return __getattr__, __dir__
