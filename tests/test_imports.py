"""The package's layers and the absence of import cycles, as import-linter checks them (pyproject's
``[tool.importlinter]``): library <- client, migrations <- worker, api <- cli, and no cycle at any depth.

import-linter reads every import statement, those inside functions included; the checks below make
sure nothing reaches a module around it (``importlib.import_module`` with a name built at run time).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "autopeft"


def _contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]["contracts"]


def test_the_import_contracts_hold() -> None:
    run = subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert f"Contracts: {len(_contracts())} kept, 0 broken." in run.stdout


def test_every_top_level_module_is_in_a_layer_or_the_library() -> None:
    """A new module cannot escape the contracts: it is a role (a layer) or part of the library."""
    named: set[str] = set()
    for contract in _contracts():
        for layer in contract.get("layers", ()):
            named.update(part.strip() for part in layer.split("|"))
        if contract["name"] == "The library imports no role":
            named.update(contract["source_modules"])
    top = {f"autopeft.{p.stem if p.is_file() else p.name}" for p in PACKAGE.iterdir()}
    top = {m for m in top if not m.endswith(("__init__", "__pycache__"))}
    assert top - named == set()


def _lazy_exports(tree: ast.Module) -> dict[str, str] | None:
    """A package's ``_EXPORTS`` table (name -> its module in the package), None when it has none."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_EXPORTS" for t in node.targets):
            return ast.literal_eval(node.value)
    return None


def _type_checking_imports(tree: ast.Module) -> set[tuple[str, str]]:
    """(module, name) of every ``from module import name`` under ``if TYPE_CHECKING:``."""
    out = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom):
                    out.update((stmt.module or "", alias.name) for alias in stmt.names)
    return out


def test_no_module_imports_around_the_checker() -> None:
    """``importlib.import_module`` only with a literal, over the cli's own command modules, or in a package's
    lazy ``__getattr__`` whose ``if TYPE_CHECKING:`` block imports every name it hands out (import-linter counts
    those imports, so the graph holds the same arrows as the lazy lookups)."""
    allowed = {PACKAGE / "cli" / "__init__.py"}
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        exports = _lazy_exports(tree) if path.name == "__init__.py" else None
        if exports is not None:
            package = ".".join(path.parent.relative_to(ROOT).parts)
            declared = _type_checking_imports(tree)
            assert {(f"{package}.{module}", name) for name, module in exports.items()} <= declared, path
            continue
        if path in allowed:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and re.search(r"import_module|__import__", ast.unparse(node.func)):
                assert all(isinstance(a, ast.Constant) for a in node.args), f"{path}:{node.lineno}"


def test_the_checker_sees_imports_inside_functions() -> None:
    """The reader itself: an import inside a function counts (the app imports the proposer in its lifespan)."""
    import grimp

    graph = grimp.build_graph("autopeft")
    assert graph.direct_import_exists(importer="autopeft.api.main", imported="autopeft.api.proposer")
