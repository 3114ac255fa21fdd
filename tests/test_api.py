"""The package's internal API is explicit, and its layers depend on each other one way.

* every module declares ``__all__``;
* a module imports from another vecalchemy module only names that module lists in
  ``__all__`` (shared helpers live in private ``_modules``);
* a public module exports only what ``vecalchemy`` (or its own public package) re-exports;
* every public name has a docstring;
* lower layers never import higher ones: metrics, vectors, schema and the query builders
  import nothing from search, collection or cli.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

import vecalchemy

ROOT = Path(vecalchemy.__file__).parent


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(("vecalchemy", *parts)).removesuffix(".__init__")
        out.append((name, path))
    return out


MODULES = _modules()
#: Every module but the entry point of ``python -m vecalchemy``, which exports nothing.
LIBRARY = [(m, p) for m, p in MODULES if m != "vecalchemy.__main__"]


def _declares_all(tree: ast.Module) -> bool:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            getattr(t, "id", None) == "__all__" for t in node.targets
        ):
            return True
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "__all__":
            return True
    return False


def _imports(tree: ast.Module) -> list[tuple[str, str]]:
    return [
        (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 0
        and node.module is not None and node.module.startswith("vecalchemy")
        for alias in node.names
    ]  # fmt: skip


def _is_private(name: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in name.split("."))


@pytest.mark.parametrize(("name", "path"), LIBRARY, ids=[m for m, _ in LIBRARY])
def test_every_module_declares_its_exports(name: str, path: Path) -> None:
    assert _declares_all(ast.parse(path.read_text())), f"{name} has no __all__"


def test_modules_import_only_exported_names() -> None:
    """No module reaches into another's internals (the 17 imports the issue counted)."""
    wrong = []
    for name, path in MODULES:
        for source, imported in _imports(ast.parse(path.read_text())):
            module = importlib.import_module(source)
            if imported in getattr(module, "__all__", ()):
                continue
            try:
                importlib.import_module(f"{source}.{imported}")  # a submodule
            except ImportError:
                wrong.append(f"{name}: from {source} import {imported}")
    assert wrong == []


def test_public_modules_export_only_what_is_re_exported() -> None:
    """A public module's __all__ is re-exported by vecalchemy or by its public package."""
    top = set(vecalchemy.__all__)
    extra = []
    for name, _ in MODULES:
        if _is_private(name) or name.endswith("__main__"):
            continue
        module = importlib.import_module(name)
        package = name if name.count(".") == 0 else name.rsplit(".", 1)[0]
        if hasattr(module, "__path__"):
            package = name
        shared = set(importlib.import_module(package).__all__) if package != "vecalchemy" else set()
        extra += [f"{name}.{n}" for n in module.__all__ if n not in top | shared]
    assert extra == []


def test_every_public_name_has_a_docstring() -> None:
    missing = []
    for name in vecalchemy.__all__:
        value = getattr(vecalchemy, name)
        if (inspect.isclass(value) or inspect.isfunction(value)) and not inspect.getdoc(value):
            missing.append(name)
    assert missing == []


LOWER = ("metrics", "_vectors", "_sql", "_distance", "schema", "_fulltext", "fulltext", "query")
HIGHER = ("vecalchemy.search", "vecalchemy.collection", "vecalchemy.bench", "vecalchemy.cli")


def test_lower_layers_never_import_higher_ones() -> None:
    wrong = []
    for name, path in MODULES:
        layer = name.split(".")[1] if name.count(".") else ""
        if layer not in LOWER:
            continue
        for source, imported in _imports(ast.parse(path.read_text())):
            if source.startswith(HIGHER):
                wrong.append(f"{name}: from {source} import {imported}")
    assert wrong == []


def test_top_level_names_resolve_and_are_sorted() -> None:
    assert all(hasattr(vecalchemy, n) for n in vecalchemy.__all__)
    assert len(set(vecalchemy.__all__)) == len(vecalchemy.__all__)
