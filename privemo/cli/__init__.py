"""The commands: ``python -m privemo.reproduce``, ``python -m privemo.export``, ``python -m privemo.distributed`` and
``python -m privemo.audit``, one module each (``main``), with the console scripts ``privemo-<command>``."""

from __future__ import annotations

from privemo._util.lazy import lazy_exports

_SUBMODULES = ("audit", "distributed", "export", "reproduce")

# public name -> module that defines it, resolved on first use (privemo._util.lazy)
_EXPORTS: dict[str, str] = {}  # each command is its module"s ``main``

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS, _SUBMODULES)
