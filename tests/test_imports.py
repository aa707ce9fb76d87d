"""privemo's import graph: no circle between modules and no arrow from an earlier stage of the data flow to a later one.

The graph is read from the source with ``ast``: every ``import privemo...`` and ``from privemo... import ...`` in a
module, also inside functions and under ``if TYPE_CHECKING:`` (a lazy or type-only import is still a dependency a reader
follows). ``from package import name`` counts as an import of the submodule ``package.name`` when that is a module,
else of ``package`` itself. The lazy re-exports of the packages' ``__init__`` files (``privemo._util.lazy``) are not
imports.

The stages, in the order data flows through them (README code map; each may import only from its own stage and the
ones before it):

0. the base: the package itself (``privemo/__init__.py``: ``__version__`` and lazy re-exports only), the private helpers
   in one package, ``privemo._util`` (``io``, ``validation``, ``processes``, ...), ``privemo.metrics``;
1. ``privemo.corpora`` (corpus tables), 2. ``privemo.features`` (log-mels, word vectors, the feature cache),
3. ``privemo.data`` (labels, folds, tf.data), 4. ``privemo.nn`` (layers, the model factory, training, the encoder),
5. ``privemo.removal`` (attribute-removal networks and erasers; builds on nn's models),
6. ``privemo.privacy`` (fresh attackers on frozen h; NumPy in, reports out),
7. ``privemo.search`` (grids, the HyperModel, oracle and tuners; scores trials with privacy's speaker verifier),
8. ``privemo.experiment`` (config, folds of the protocol, workers, reporting),
9. ``privemo.audit`` (the attacks on any representation; reuses the experiment's verdict rule),
10. the commands: ``privemo.cli`` and the thin ``python -m`` files (``privemo/reproduce.py``, ``export.py``,
    ``distributed.py``, ``privemo/audit/__main__.py``).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "privemo"

STAGES: tuple[tuple[str, ...], ...] = (
    ("privemo", "privemo._util", "privemo.metrics"),
    ("privemo.corpora",),
    ("privemo.features",),
    ("privemo.data",),
    ("privemo.nn",),
    ("privemo.removal",),
    ("privemo.privacy",),
    ("privemo.search",),
    ("privemo.experiment",),
    ("privemo.audit",),
    ("privemo.cli", "privemo.reproduce", "privemo.export", "privemo.distributed", "privemo.audit.__main__"),
)

#: (importer, imported) -> why this arrow back is allowed. Keep each one explicit.
ALLOWED_BACK_ARROWS: dict[tuple[str, str], str] = {
    ("privemo.nn.encoder", "privemo.removal.saving"):
        "an exported encoder may hold a removal method's layer (NullspaceProjection, AffineErasure): loading it "
        "registers privemo's Keras classes, which live in nn and removal",
}

#: (module, module) pairs allowed to import each other (a circle), with the reason
ALLOWED_CIRCLES: dict[tuple[str, str], str] = {}


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> the privemo modules it imports (see the module docstring)."""
    mods = modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names if alias.name.split(".")[0] == "privemo"}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(parent + ([base] if base else []))
                if base.split(".")[0] != "privemo":
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.add(sub if sub in mods else base)
        graph[name] = {t for t in targets if t in mods and t != name}
    return graph


def stage(module: str) -> int:
    best, best_len = None, -1
    for i, prefixes in enumerate(STAGES):
        for prefix in prefixes:
            if prefix.endswith("*"):
                hit = module.startswith(prefix[:-1]) and "." not in module[len(prefix) - 1:]
            else:
                hit = module == prefix or module.startswith(prefix + ".")
            if hit and len(prefix) > best_len:
                best, best_len = i, len(prefix)
    assert best is not None, f"{module}: in no stage of STAGES; add it"
    return best


def test_every_module_has_a_stage():
    for module in modules():
        stage(module)


def test_no_arrow_back_to_an_earlier_stage():
    back = sorted((a, b) for a, targets in import_graph().items() for b in targets
                  if stage(a) < stage(b) and (a, b) not in ALLOWED_BACK_ARROWS)
    assert not back, "imports from a later stage: " + ", ".join(f"{a} -> {b}" for a, b in back)


def test_allowed_exceptions_are_still_needed():
    graph = import_graph()
    stale = [pair for pair in {**ALLOWED_BACK_ARROWS, **ALLOWED_CIRCLES} if pair[1] not in graph.get(pair[0], ())]
    assert not stale, f"allowed exceptions no longer in the code (remove them): {stale}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_circle_between_modules():
    graph = import_graph()
    for a, b in ALLOWED_CIRCLES:
        graph[a] = graph[a] - {b}
    cycles = _cycles(graph)
    assert not cycles, "import circles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_commands_are_files_and_console_scripts():
    import configparser
    import importlib
    import importlib.util

    for command, path in (("privemo.reproduce", "reproduce.py"), ("privemo.export", "export.py"),
                          ("privemo.distributed", "distributed.py"), ("privemo.audit.__main__", "audit/__main__.py")):
        assert importlib.util.find_spec(command).origin == str(PACKAGE / path)
    setup = configparser.ConfigParser()
    setup.read(PACKAGE.parent / "setup.cfg")
    scripts = dict(line.split(" = ") for line in setup["options.entry_points"]["console_scripts"].split("\n") if line)
    assert set(scripts) == {"privemo-reproduce", "privemo-export", "privemo-distributed", "privemo-audit"}
    for script, target in scripts.items():
        module, _, function = target.partition(":")
        assert module == f"privemo.cli.{script.removeprefix('privemo-')}" and function == "main"
        assert callable(getattr(importlib.import_module(module), function)), target


def test_no_import_machinery():
    """No finder on ``sys.meta_path`` and no alias loader anywhere in privemo (README: a command is a file you can open)."""
    for module, path in modules().items():
        text = path.read_text()
        assert "meta_path" not in text and "spec_from_loader" not in text, module


def test_every_package_init_has_one_style():
    """Every ``__init__.py`` of privemo: a docstring, then the package's public names re-exported lazily
    (``_SUBMODULES``, ``_EXPORTS``: name -> the module that defines it, ``__all__``, ``lazy_exports``), and nothing else."""
    for module, path in modules().items():
        if path.name != "__init__.py":
            continue
        tree = ast.parse(path.read_text(), str(path))
        body = tree.body
        assert ast.get_docstring(tree), f"{module}: no docstring"
        assigned = [t.id for node in body if isinstance(node, (ast.Assign, ast.AnnAssign))
                    for t in (node.targets if isinstance(node, ast.Assign) else [node.target]) if isinstance(t, ast.Name)]
        imports = [ast.unparse(node) for node in body if isinstance(node, (ast.Import, ast.ImportFrom))]
        others = [type(node).__name__ for node in body[1:]
                  if not isinstance(node, (ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign))]
        assert imports[-1].endswith("import lazy_exports") and len(imports) == 2, f"{module}: imports {imports}"
        assert {"_SUBMODULES", "_EXPORTS", "__all__"} <= set(assigned), f"{module}: assigns {assigned}"
        assert set(assigned) - {"_SUBMODULES", "_EXPORTS", "__all__", "__version__"} == set(), f"{module}: {assigned}"
        assert not others, f"{module}: {others} in its __init__"
        last = body[-1]
        assert isinstance(last, ast.Assign) and ast.unparse(last.value).startswith("lazy_exports(__name__, globals(), "
                                                                                    "_EXPORTS, _SUBMODULES)"), module


def test_every_lazy_export_resolves_to_the_module_that_defines_it():
    import importlib

    for module, path in modules().items():
        if path.name != "__init__.py":
            continue
        package = importlib.import_module(module)
        for name, source in package._EXPORTS.items():
            value = getattr(importlib.import_module(source), name)
            assert getattr(package, name) is value, f"{module}.{name}"
        for sub in package._SUBMODULES:
            assert getattr(package, sub) is importlib.import_module(f"{module}.{sub}"), f"{module}.{sub}"
        assert set(package.__all__) <= set(package._EXPORTS) | set(package._SUBMODULES) | {"__version__"}, module
