"""The code's layout, checked from its own imports: floors, no cycles, pure selection, no
file doing five jobs.

Every ``import`` is read from the source (those inside functions and under ``TYPE_CHECKING``
too) without importing anything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "taskgrouper"
PACKAGE = "taskgrouper"

#: Floors, bottom first: a module may import its own package and the floors below, never one
#: above. Packages on one floor stand beside each other and do not import each other.
FLOORS: list[set[str]] = [
    {"errors"},
    {"io", "tasks"},
    {"config"},
    {"data"},
    {"models", "balancing", "grouping"},
    {"evaluate"},
    {"train"},
    {"runs"},
    {"report"},
    {"experiments"},
    {"cli", "__init__", "__main__"},
]
#: What the selection floor must never reach, directly or through another module.
PURE = "grouping"
FORBIDDEN_FOR_PURE = {"torch", f"{PACKAGE}.runs", f"{PACKAGE}.train", f"{PACKAGE}.models",
                      f"{PACKAGE}.data", f"{PACKAGE}.report", f"{PACKAGE}.experiments",
                      f"{PACKAGE}.evaluate", f"{PACKAGE}.balancing", f"{PACKAGE}.cli"}
MAX_LINES = 800


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The module of ours ``name`` refers to (a package, a module, or a name in one)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str) -> set[str]:
    """Every module ``module`` imports (ours by name, others by their top-level name)."""
    path = MODULES[module]
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[:len(base) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            found.add(origin)
            found.update(f"{origin}.{alias.name}" for alias in node.names)
    out = set()
    for name in found:
        ours = _resolve(name) if name.split(".")[0] == PACKAGE else None
        if ours is not None:
            if ours != module:
                out.add(ours)
        elif name.split(".")[0] != PACKAGE:
            out.add(name.split(".")[0])
    # "from taskgrouper.x import y" names both taskgrouper.x and taskgrouper.x.y: keep the
    # deepest module of ours each import names
    return {m for m in out if not any(o != m and o.startswith(m + ".") for o in out)
            or m not in MODULES or MODULES[m].name != "__init__.py"}


GRAPH = {m: imports_of(m) for m in MODULES}


def _room(module: str) -> str:
    """The package (or top-level module) a module belongs to: ``taskgrouper.train.x`` ->
    ``train``; ``taskgrouper`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _floor(room: str) -> int:
    for level, rooms in enumerate(FLOORS):
        if room in rooms:
            return level
    raise AssertionError(f"'{room}' is on no floor: add it to FLOORS in {__file__}")


def test_every_room_has_a_floor():
    for module in MODULES:
        _floor(_room(module))


def test_imports_point_down_the_floors():
    wrong = []
    for module, deps in GRAPH.items():
        here = _room(module)
        for dep in deps:
            if not dep.startswith(PACKAGE) or dep == PACKAGE and here == "__init__":
                continue
            there = _room(dep)
            if there != here and _floor(there) >= _floor(here):
                wrong.append(f"{module} -> {dep} ({here} is on floor {_floor(here)}, "
                             f"{there} on {_floor(there)})")
    assert not wrong, "imports that do not point down:\n" + "\n".join(sorted(wrong))


def _cycles() -> list[list[str]]:
    ours = {m: {d for d in deps if d in MODULES} for m, deps in GRAPH.items()}
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in ours[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in ours:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    cycles = _cycles()
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def _reach(start: str) -> dict[str, str]:
    """Everything ``start`` reaches through imports, each with the module that imports it."""
    seen, todo = {start: ""}, [start]
    while todo:
        m = todo.pop()
        for dep in GRAPH.get(m, ()):
            if dep not in seen:
                seen[dep] = m
                todo.append(dep)
    return seen


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _room(m) == PURE))
def test_selection_reaches_neither_torch_nor_the_training_side(module):
    reached = _reach(module)
    bad = sorted(d for d in reached for f in FORBIDDEN_FOR_PURE
                 if d == f or d.startswith(f + "."))
    chains = []
    for d in bad:
        chain, m = [d], d
        while reached[m]:
            m = reached[m]
            chain.append(m)
        chains.append(" <- ".join(chain))
    assert not bad, "\n".join(chains)


def test_no_source_file_above_the_line_limit():
    long = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"files above {MAX_LINES} lines: {long}"


def test_the_checker_sees_function_level_imports_and_cycles(tmp_path, monkeypatch):
    """The checker itself: a cycle hidden in a function is found."""
    a = "from __future__ import annotations\n\ndef f():\n    from taskgrouper.b import g\n"
    b = "from taskgrouper.a import f\n"
    pkg = tmp_path / "taskgrouper"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text(a)
    (pkg / "b.py").write_text(b)
    monkeypatch.setattr(__import__(__name__), "SRC", pkg)
    modules = {"taskgrouper": pkg / "__init__.py", "taskgrouper.a": pkg / "a.py",
               "taskgrouper.b": pkg / "b.py"}
    monkeypatch.setattr(__import__(__name__), "MODULES", modules)
    graph = {m: imports_of(m) for m in modules}
    monkeypatch.setattr(__import__(__name__), "GRAPH", graph)
    assert graph["taskgrouper.a"] == {"taskgrouper.b", "__future__"}
    assert _cycles() == [["taskgrouper.a", "taskgrouper.b"]]
