"""The architecture as a checked fact: zoo's import graph (function-local imports included) has no cycle, and
no stage imports a later one (base → cards → artifacts → measure → results → engine → the facade → the CLI).

The sweep engine comes after results: it records each run and looks up runs to reuse (zoo.results.store),
while no results module needs to run a sweep."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "zoo"
STAGES = ["base", "cards", "artifacts", "measure", "results", "engine", "facade", "cli"]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """zoo modules imported anywhere in the file (top level or inside functions)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "zoo"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] != "zoo":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else base)
    return {m for m in found if m in known and m != name}


def stage(module: str) -> str:
    if module == "zoo":
        return "facade"
    part = module.split(".")[1]
    return part if part in STAGES else "base"


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def test_no_stage_imports_a_later_one(graph):
    upward = [f"{m} -> {d}" for m, deps in graph.items() for d in deps
              if STAGES.index(stage(d)) > STAGES.index(stage(m))]
    assert upward == []


def test_the_import_graph_has_no_cycle(graph):
    state: dict[str, int] = {}
    cycles = []

    def visit(node, trail):
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append(" -> ".join(trail[trail.index(dep):] + [dep]) if dep in trail else f"{node} -> {dep}")
            elif dep not in state:
                visit(dep, trail + [dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_the_checker_sees_function_local_and_relative_imports(tmp_path):
    # The graph must not miss what it exists to catch: a local import inside a function, and a relative one.
    source = "def f():\n    from zoo.results import store\n\nfrom .index import Entry\n"
    path = tmp_path / "zoo" / "cards" / "example.py"
    path.parent.mkdir(parents=True)
    path.write_text(source)
    found = _imports("zoo.cards.example", path, {"zoo.results.store", "zoo.cards.index"})
    assert found == {"zoo.results.store", "zoo.cards.index"}
    assert STAGES.index(stage("zoo.results.store")) > STAGES.index(stage("zoo.cards.example"))


def _string_imports(path: Path) -> list[str]:
    """Ways a file could load a zoo module the graph cannot see: string constants that name a zoo module (or
    "module:attribute") whole, as importlib.import_module or a loader table would take them."""
    import re

    return [f"{path.name}:{node.lineno} {node.value!r}" for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and re.fullmatch(r"zoo\.(artifacts|cards|measure|results|engine|cli)(\.\w+)*(:\w+)?", node.value)]


def test_no_zoo_module_is_loaded_by_a_string():
    found = [hit for path in _modules().values() for hit in _string_imports(path)]
    assert found == []


def test_the_string_check_sees_importlib_and_module_paths(tmp_path):
    path = tmp_path / "example.py"
    path.write_text('import importlib\nLOADER = "zoo.measure.runtimes.onnxruntime:OnnxRuntime"\n'
                    'def f():\n    return importlib.import_module("zoo.results.store")\n')
    assert len(_string_imports(path)) == 2
