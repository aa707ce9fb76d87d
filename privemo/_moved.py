"""Old import paths of privemo's flat layout (before the subpackages) keep working.

``import privemo.attacks`` or ``from privemo.models import build_model`` (names from notebooks, scripts and pickles
written before the move) import the module's new home and bind it under the old name too: both names give the same
module object. A ``DeprecationWarning`` names the new path; the three commands (``python -m privemo.reproduce``,
``privemo.distributed``, ``privemo.export``) are permanent names and do not warn.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import warnings

MOVED: dict[str, str] = {
    "privemo.labels": "privemo.data.labels",
    "privemo.folds": "privemo.data.folds",
    "privemo.pipeline": "privemo.data.pipeline",
    "privemo.layers": "privemo.nn.layers",
    "privemo.models": "privemo.nn.models",
    "privemo.training": "privemo.nn.training",
    "privemo.encoder": "privemo.nn.encoder",
    "privemo.device": "privemo.nn.device",
    "privemo.leace": "privemo.removal.leace",
    "privemo.grids": "privemo.search.grids",
    "privemo.tuning": "privemo.search.tuning",
    "privemo.selection": "privemo.search.selection",
    "privemo.attacks": "privemo.privacy",
    "privemo.privacy.attacks": "privemo.privacy",
    "privemo.verification": "privemo.privacy.verification",
    "privemo.reporting": "privemo.experiment.reporting",
    "privemo.manifest": "privemo.experiment.manifest",
    "privemo.reference": "privemo.experiment.reference",
    "privemo.reproduce": "privemo.cli.reproduce",
    "privemo.export": "privemo.cli.export",
    "privemo.distributed": "privemo.cli.distributed",
}
COMMANDS = frozenset({"privemo.reproduce", "privemo.export", "privemo.distributed"})


class _AliasLoader:  # the Loader protocol; get_code lets `python -m privemo.reproduce` run the new module as __main__
    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec):
        return None

    def exec_module(self, module) -> None:
        # importlib supports a module replacing itself in sys.modules while it executes: the import returns the new one
        sys.modules[module.__name__] = importlib.import_module(self.new)

    def get_code(self, fullname: str):
        return importlib.util.find_spec(self.new).loader.get_code(self.new)

    def is_package(self, fullname: str) -> bool:
        return False


class _AliasFinder:  # the MetaPathFinder protocol
    def find_spec(self, fullname: str, path=None, target=None):
        new = MOVED.get(fullname)
        if new is None:
            return None
        if fullname not in COMMANDS:
            warnings.warn(f"{fullname} moved to {new}; import it from there (the old path will go in a later release).",
                          DeprecationWarning, stacklevel=2)
        origin = importlib.util.find_spec(new).origin  # runpy sets sys.argv[0] to it under `python -m`
        return importlib.util.spec_from_loader(fullname, _AliasLoader(new), origin=origin)


def install() -> None:
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.append(_AliasFinder())
