"""The code base's floor plan, checked.

- The library (``retrain/``) never imports the Prefect layer (``retrain_prefect``, the
  repository's ``flows/`` and ``deployments/``) or Prefect itself, by statement or by name.
- Modules import each other without cycles, counting imports inside functions too, so no
  function-level import can be hiding one.
- A function-level import is either a command loading its subject when it runs (the command
  line's modules) or a heavy library loaded late on purpose, with a comment that says so.
- The built wheel installs only ``retrain*`` top-level names.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("retrain", "retrain_prefect")
UPPER_LAYERS = ("prefect", "flows", "deployments", "retrain_prefect")
# Modules whose functions import what a command needs when the command runs (start-up).
COMMAND_MODULES = re.compile(r"^retrain\.cli\.|^retrain_prefect\.cli$")


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the imported module (or name, for a from-import of a non-module)
    line: int
    in_function: bool
    late_comment: bool  # "late" in a comment of the function before (or on) the import's line


def module_files() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue  # Alembic loads the revisions by path
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


MODULES = module_files()


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base[:len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


LATE = re.compile(r"\blate\b", re.IGNORECASE)  # the word, not "related" or "translated"


def imports_of(module: str) -> list[Import]:
    path = MODULES[module]
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source)
    function_start: dict[int, int] = {}  # line -> first line of the innermost function
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for line in range(node.lineno, node.end_lineno + 1):
                function_start[line] = max(function_start.get(line, 0), node.lineno)

    def make(target: str, line: int) -> Import:
        start = function_start.get(line)
        window = lines[start - 1:line] if start else []
        comment = any(LATE.search(text.split("#", 1)[1]) for text in window if "#" in text)
        return Import(module, target, line, start is not None, comment)

    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [make(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, node, path.name == "__init__.py")
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                out.append(make(submodule if submodule in MODULES else base, node.lineno))
        elif isinstance(node, ast.Call):  # importlib.import_module("x"), __import__("x")
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__", "find_spec") and node.args \
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                out.append(make(node.args[0].value, node.lineno))
    return out


ALL_IMPORTS = {module: imports_of(module) for module in MODULES}


def test_the_checks_see_the_code():
    assert {"retrain.pipeline.run", "retrain.promotion.switch", "retrain_prefect.runner",
            "retrain.cli.main"} <= set(MODULES)
    assert any(i.target == "retrain.pipeline.steps" for i in ALL_IMPORTS["retrain.pipeline.run"])


def test_the_library_never_imports_the_prefect_layer():
    reaching_up = [f"{MODULES[i.module].relative_to(ROOT)}:{i.line} imports {i.target}"
                   for module, found in ALL_IMPORTS.items() if module.split(".")[0] == "retrain"
                   for i in found if i.target.split(".")[0] in UPPER_LAYERS]
    assert reaching_up == []


def test_a_string_import_of_the_prefect_layer_would_be_caught(tmp_path):
    """The check reads ``importlib.import_module("...")`` too, not only import statements."""
    probe = "retrain.cli.probe"
    MODULES[probe] = tmp_path / "probe.py"
    MODULES[probe].write_text("import importlib\n\ndef run():\n"
                              "    return importlib.import_module('retrain_prefect.flows.pipeline')\n")
    try:
        assert [i.target for i in imports_of(probe)] == ["importlib", "retrain_prefect.flows.pipeline"]
    finally:
        del MODULES[probe]


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles_even_through_function_level_imports():
    edges = {module: {i.target for i in found if i.target in MODULES and i.target != module}
             for module, found in ALL_IMPORTS.items()}
    assert _cycles(edges) == []


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_function_level_imports_are_commands_or_late_heavy_loads():
    assert _unexplained(ALL_IMPORTS) == []


def test_an_unexplained_function_level_import_would_be_caught(tmp_path):
    probe = "retrain.stats.probe"
    MODULES[probe] = tmp_path / "probe.py"
    MODULES[probe].write_text("def run():\n    # the related numbers\n    import scipy\n"
                              "    return scipy\n\n\ndef later():\n"
                              "    import numpy  # late: heavy\n    return numpy\n")
    try:
        found = {probe: imports_of(probe)}
        assert [line.split()[-1] for line in _unexplained(found)] == ["scipy"]
    finally:
        del MODULES[probe]


def _unexplained(imports: dict[str, list[Import]]) -> list[str]:
    unexplained = []
    for module, found in imports.items():
        for i in found:
            if not i.in_function or COMMAND_MODULES.search(module):
                continue
            own = i.target.split(".")[0] in PACKAGES
            if own or not i.late_comment:
                unexplained.append(f"{MODULES[module]}:{i.line} {i.target}")
    return unexplained


@pytest.mark.slow
def test_the_wheel_installs_only_retrain_names(tmp_path):
    """``pip wheel --no-deps .`` on a copy of the sources (the repository's top-level
    ``flows/`` and ``deployments/`` included, so that their exclusion is what is tested)."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("retrain", "retrain_prefect", "flows", "deployments"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                            "-w", str(tmp_path / "dist"), "."],
                           cwd=source, capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr
    [wheel] = (tmp_path / "dist").glob("retrain-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
        entry_points = next(zf.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    assert top_level == {"retrain", "retrain_prefect"}
    assert "retrain = retrain_prefect.cli:main" in entry_points
    assert "retrain/registry/migrations/versions/0001_initial.py" in names
