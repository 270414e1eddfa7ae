"""Every script in benchmarks/ still imports, and every zoo name it imports (inside main too) still exists: a
benchmark is run by hand, rarely, so a moved or removed module would otherwise break it silently."""
from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py"))


def test_the_benchmarks_are_found():
    assert {"bench_eval.py", "bench_sweep.py", "bench_convert.py"} <= {p.name for p in BENCHMARKS}


@pytest.mark.parametrize("path", BENCHMARKS, ids=[p.name for p in BENCHMARKS])
def test_the_script_imports_as_a_module(path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))  # the scripts put the repository (and tests/) first
    spec = importlib.util.spec_from_file_location(f"benchmark_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # not as __main__: main() does not run
    assert callable(module.main)


@pytest.mark.parametrize("path", BENCHMARKS, ids=[p.name for p in BENCHMARKS])
def test_every_zoo_name_the_script_imports_exists(path):
    """Imports inside functions too (most scripts import zoo lazily, in main)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "zoo":
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name) or importlib.util.find_spec(f"{node.module}.{alias.name}"), \
                    f"{path.name}: from {node.module} import {alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "zoo":
                    importlib.import_module(alias.name)
