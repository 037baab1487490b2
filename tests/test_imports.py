"""The import graph of the product's packages, read from the source (nothing is imported).

No module takes part in an import cycle (imports inside functions count: they run too;
``if TYPE_CHECKING:`` blocks do not), the migrations import nothing of the app, and the core
library imports neither the server nor the worker (only its command line puts them together).
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("autopeft", "api", "worker", "migrations")


@cache
def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _type_checking_only(tree: ast.AST) -> set[int]:
    """Ids of the nodes inside ``if TYPE_CHECKING:`` blocks."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        test = getattr(node, "test", None)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(test):  # type: ignore[arg-type]
            skipped.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
    return skipped


def _imported_names(module: str) -> set[str]:
    path = modules()[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_checking_only(tree)
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module if path.name == "__init__.py" else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}" if base else package
            names.update(
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules() else base for alias in node.names
            )
    return names


@cache
def imports(module: str) -> frozenset[str]:
    """The product modules ``module`` imports (the deepest module each import names)."""
    out = set()
    for name in _imported_names(module):
        while name and name not in modules():
            name = name.rpartition(".")[0]
        if name and name != module:
            out.add(name)
    return frozenset(out)


def cycles() -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for start in sorted(modules()):
        if start in index:
            continue
        work = [(start, iter(sorted(imports(start))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(imports(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def test_the_graph_sees_the_imports_it_must() -> None:
    """The reader itself: lazy imports count, TYPE_CHECKING imports do not."""
    assert "api.startup" in imports("api.main")  # imported inside the lifespan
    assert "api.proposer" in imports("api.main")
    assert "api.schemas.studies" not in imports("api.study_spec")  # only under TYPE_CHECKING


def test_no_import_cycles() -> None:
    assert [sorted(c) for c in cycles()] == []


def test_the_migrations_import_nothing_of_the_app() -> None:
    """Alembic's env.py and the upgrade run without the server: tables and engines live in migrations/."""
    for module in modules():
        if module.startswith("migrations"):
            assert not {m for m in imports(module) if m.split(".")[0] in ("api", "worker")}, module


def test_the_core_library_imports_neither_server_nor_worker() -> None:
    for module in modules():
        if module.startswith("autopeft") and not module.startswith("autopeft.cli"):
            assert not {m for m in imports(module) if m.split(".")[0] in ("api", "worker")}, module


def test_the_worker_does_not_import_the_server() -> None:
    for module in modules():
        if module.startswith("worker"):
            assert not {m for m in imports(module) if m.startswith("api")}, module
