"""keras-tuner's state files written atomically, and a damaged one reported by name.

keras-tuner 1.4 writes ``oracle.json``, every ``trial_*/trial.json``, ``build_config.json`` and ``<tuner_id>.json``
through ``keras_tuner.src.utils.save_json``, which opens the file for writing (emptying it) and then writes: a run
killed in between leaves an empty or truncated file, and ``--resume`` then fails deep inside keras-tuner with a bare
``JSONDecodeError``. Importing this module (``privemo.search.tuning`` does) replaces keras-tuner's ``save_json`` and
``load_json`` (every keras-tuner module calls them as ``utils.save_json`` / ``utils.load_json``, so the module attribute
is the one place to change):

* ``save_json`` writes a temporary file in the same folder and renames it into place (``privemo._io``), so a reader sees
  the old file or the new one, never half of one. Remote paths (``gs://...``, written through ``tf.io.gfile``) keep
  keras-tuner's own write, as a rename there is not atomic anyway.
* ``load_json`` raises ``TunerStateError`` naming the file, and what to do, when a file is not valid JSON (e.g. one
  written by an older privemo, or damaged on disk).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from keras_tuner.src import utils as _kt_utils

from privemo._io import atomic_write_text
from privemo._validation import UserError


class TunerStateError(UserError):
    """A keras-tuner state file that cannot be read. ``python -m privemo.reproduce`` reports it in one line (a user
    error: the fix is to rerun, not to change code)."""


_ORIGINAL = {
    "save_json": getattr(_kt_utils.save_json, "_privemo_original", _kt_utils.save_json),
    "load_json": getattr(_kt_utils.load_json, "_privemo_original", _kt_utils.load_json),
}


def _remote(path: str) -> bool:
    return "://" in path


def save_json(path: str | os.PathLike, obj: Any) -> str:
    """keras-tuner's ``save_json`` (same JSON text, same return value: the text), written atomically."""
    path = os.fspath(path)
    if _remote(path):
        return _ORIGINAL["save_json"](path, obj)
    text = json.dumps(obj)
    atomic_write_text(path, text)
    return text


def load_json(path: str | os.PathLike) -> Any:
    """keras-tuner's ``load_json``; a file that is not valid JSON raises ``TunerStateError`` naming it."""
    try:
        return _ORIGINAL["load_json"](os.fspath(path))
    except (ValueError, UnicodeDecodeError) as exc:  # json.JSONDecodeError is a ValueError
        raise TunerStateError(damaged_message(path, exc)) from None


def damaged_message(path: str | os.PathLike, exc: BaseException) -> str:
    """The error text for a damaged keras-tuner state file: the file, what is wrong, and how to go on."""
    path = Path(path)
    project = path.parent.parent if path.parent.name.startswith("trial_") else path.parent
    what = "it is empty" if isinstance(exc, json.JSONDecodeError) and not exc.doc.strip() else f"not valid JSON ({exc})"
    return (f"{path}: damaged keras-tuner state file: {what}; it was probably cut short when a run was killed. "
            f"Rerun without --resume to start over, or delete the tuner project folder {project} and rerun with "
            "--resume to redo only that project's trials.")


def install() -> None:
    """Put ``save_json`` and ``load_json`` into keras-tuner (idempotent; done when this module is imported)."""
    for name, ours in (("save_json", save_json), ("load_json", load_json)):
        ours._privemo_original = _ORIGINAL[name]  # type: ignore[attr-defined]
        setattr(_kt_utils, name, ours)


install()

__all__ = ["TunerStateError", "save_json", "load_json", "damaged_message", "install"]
