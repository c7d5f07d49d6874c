"""Imports flow one way: app/ -> agents/ -> tables/ -> models/ (docs/design.md, "Layers").

`tables/wire/` is the bottom layer every process shares (records, topic and changelog names,
the model-updates format, dead letters); `models/errors.py` is the exception tree. A gateway
process must not load Faust, the worker, the learner or the trainers.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STREAMING = {"faust", "aiohttp", "aiokafka", "prometheus_client"}
# What a gateway process may never load (directly or through anything it imports).
NOT_IN_GATEWAY = ("faust", "agents", "app.worker", "app.learner", "app.learner_timer", "app.search_pipeline",
                  "app.jobs", "models.search_training", "models.rec.training")


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, runtime_only: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.iter_child_nodes(tree):
        if runtime_only and isinstance(node, ast.If) and _is_type_checking(node):
            yield from (n for body in node.orelse for n in _imports(ast.Module([body], []), runtime_only))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        else:
            yield from _imports(node, runtime_only)


def imported_modules(path: Path, runtime_only: bool = False) -> set[str]:
    """Dotted names a file imports; `from pkg import mod` counts as `pkg.mod` when mod is a module.

    With `runtime_only`, imports under `if TYPE_CHECKING:` are left out (they never load).
    """
    out: set[str] = set()
    for node in _imports(ast.parse(path.read_text()), runtime_only):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif node.module and node.level == 0:
            out.add(node.module)
            base = ROOT.joinpath(*node.module.split("."))
            out |= {f"{node.module}.{a.name}" for a in node.names
                    if (base / f"{a.name}.py").exists() or (base / a.name / "__init__.py").exists()}
    return out


def roots(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def files(folder: str) -> list[Path]:
    found = sorted((ROOT / folder).rglob("*.py"))
    assert found, folder
    return found


def violations(folder: str, forbidden: set[str], runtime_only: bool = False) -> dict[str, set[str]]:
    """{file: forbidden modules it imports}, matching `forbidden` by dotted prefix."""
    def bad(module: str) -> bool:
        return any(module == f or module.startswith(f + ".") for f in forbidden)

    out = {str(f.relative_to(ROOT)): {m for m in imported_modules(f, runtime_only) if bad(m)} for f in files(folder)}
    return {k: v for k, v in out.items() if v}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_models_import_only_the_pure_stack():
    assert violations("models", STREAMING | {"app", "agents", "tables"}) == {}


def test_tables_import_neither_the_streaming_stack_nor_app_nor_agents():
    assert violations("tables", STREAMING | {"app", "agents"}) == {}


def test_the_bottom_layer_imports_only_models_and_tables():
    assert violations("tables/wire", STREAMING | {"app", "agents"}) == {}


def test_agents_never_import_app():
    # Not even for types: agents name what they are handed with agents/context.py.
    assert violations("agents", {"app", "aiohttp"}) == {}


def test_gateway_modules_never_import_the_worker_the_learner_or_the_trainers():
    assert violations("app/gateway", set(NOT_IN_GATEWAY)) == {}


def test_a_gateway_process_does_not_load_faust_or_the_trainers():
    code = ("import sys, app.gateway.app, app.jobs.gateway as _\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'faust' or m.startswith(%r))\n"
            "bad = [m for m in bad if m not in ('app.jobs', 'app.jobs.gateway')]  # its own entry point\n"
            "print(bad)" % (NOT_IN_GATEWAY[1:],))
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "[]"


def test_no_import_cycles_in_models_and_tables():
    graph: dict[str, set[str]] = {}
    for folder in ("models", "tables"):
        for f in files(folder):
            graph[module_name(f)] = imported_modules(f)
    for mod in graph:
        graph[mod] = {m for m in graph[mod] if m in graph and m != mod}
    assert _cycles(graph) == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected part of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            part = []
            while True:
                top = stack.pop()
                part.append(top)
                if top == node:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_rules_can_fail(tmp_path):
    # The checks above are only worth something if a real violation is seen.
    assert "app.worker" in imported_modules(ROOT / "app" / "main.py")
    typed = tmp_path / "typed.py"
    typed.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from app.worker import Worker\n")
    assert "app.worker" not in imported_modules(typed, runtime_only=True)
    assert "app.worker" in imported_modules(typed)
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
