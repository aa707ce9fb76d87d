"""privemo's private helpers, shared by every stage: ``validation`` (argument checks with Keras-style messages and
``UserError``, the one error type the commands print as a single line), ``io`` (atomic writes, ``WriteError``),
``processes`` (worker pools that never hang, ``available_cpus``), ``progress`` (progress lines), ``quiet``
(TensorFlow's quiet start), ``seed`` (``set_seed``) and ``lazy`` (the lazy re-exports of every package's
``__init__``). Not public API: import them from their modules."""

from __future__ import annotations

from privemo._util.lazy import lazy_exports

_SUBMODULES = ("io", "lazy", "processes", "progress", "quiet", "seed", "validation")

# public name -> module that defines it, resolved on first use (privemo._util.lazy)
_EXPORTS: dict[str, str] = {}  # a private package: nothing re-exported

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS, _SUBMODULES)
