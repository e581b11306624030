"""No import cycles between the modules of koine_sdk and koine_jupyter, type-only imports (under
``TYPE_CHECKING``) and imports inside functions included: each module can be read, tested and
moved on its own, and a newcomer follows imports one way.

A package's ``__init__`` re-exporting its submodules is not a cycle (``a.b`` importing ``a``'s
other submodule ``a.c`` goes to ``a.c``, not through ``a``)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("koine_sdk", "koine_jupyter")

# Cycles still to be broken, each named by the modules it runs through and who owns it. The test
# fails when one disappears from this list without being removed here, or a new one appears.
KNOWN: set[frozenset[str]] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _targets(node: ast.ImportFrom | ast.Import, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".")
        if not is_package:
            base = base[:-1]
        base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
        prefix = ".".join(base)
        target = f"{prefix}.{node.module}" if node.module else prefix
    else:
        target = node.module or ""
    return [f"{target}.{alias.name}" for alias in node.names] + [target]


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for target in _targets(node, name, is_package):
                # the module itself, or the longest known module it names
                while target and target not in files:
                    target = target.rpartition(".")[0]
                if not target or target == name:
                    continue
                if name.startswith(target + "."):
                    continue  # a submodule importing its own package: the package's __init__
                graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp: list[str] = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_there_are_no_import_cycles() -> None:
    graph = _graph()
    assert len(graph) > 50, "the scan found too few modules"
    found = {frozenset(c) for c in _cycles(graph)}
    new = found - KNOWN
    assert not new, "import cycles: " + "; ".join(" <-> ".join(sorted(c)) for c in new)
    gone = KNOWN - found
    assert not gone, "fixed cycles still listed as known: " + str([sorted(c) for c in gone])


def test_the_jupyter_half_uses_only_the_public_sdk() -> None:
    """koine_jupyter imports koine_sdk's public modules only (no ``koine_sdk._x``): the SDK may
    change its private modules without breaking the notebook half."""
    private: list[str] = []
    for path in (ROOT / "koine_jupyter").rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            for name in names:
                if name.startswith("koine_sdk") and any(p.startswith("_") for p in name.split(".")):
                    private.append(f"{path.relative_to(ROOT)}: {name}")
    assert private == []
