"""The layering rules of docs/architecture.md, read from the modules' own import statements.

- no import circle between modules of `videop2r/` (function-local imports count too: a circle
  hidden inside a function is still a circle);
- `services/` wraps the library: it never imports the driver (`videop2r.train`) or the CLI;
- `videop2r.cot` and `videop2r.eval` never import the driver either.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FORBIDDEN = {
    "services": ("videop2r.train", "videop2r.cli"),
    "videop2r.cot": ("videop2r.train",),
    "videop2r.eval": ("videop2r.train",),
}


def _modules() -> dict[str, Path]:
    found = {}
    for top in ("videop2r", "services"):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Modules of the project that `name` imports (a `from pkg import sub` names the submodule)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            candidates = [module] + [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        targets.update(c for c in candidates if c in known and c != name)
    return targets


def _graph() -> dict[str, set[str]]:
    known = _modules()
    return {name: _imports(name, path, known) for name, path in known.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
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


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_no_import_circle_in_the_library() -> None:
    graph = {name: {t for t in targets if _within(t, "videop2r")}
             for name, targets in _graph().items() if _within(name, "videop2r")}
    assert _cycles(graph) == []


def test_layering_rules() -> None:
    offending = sorted(
        f"{name} imports {target}"
        for name, targets in _graph().items()
        for layer, banned in FORBIDDEN.items() if _within(name, layer)
        for target in targets if any(_within(target, b) for b in banned)
    )
    assert offending == []


def test_the_checks_see_a_circle_and_a_forbidden_import() -> None:
    # The checks themselves can fail: a two-module circle and a service importing the driver.
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    graph = _graph()
    assert "videop2r.config" in graph["videop2r.train.loop"]  # the reader resolves real imports
