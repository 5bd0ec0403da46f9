"""The layering holds: only adapters (and, for mlflow only, the MLflow server app) touch mlflow, dvc, git and
evidently; no cycles; one room per capability in the facade; the facade exports what it names."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mlops_layer"
CORE = ("api", "audit", "drift", "governance", "monitoring", "report")
CORE_FILES = ("config.py", "lineage.py", "retrain.py", "locks.py", "scaffold.py", "tags.py")
FORBIDDEN = ("mlflow", "dvc", "git", "evidently", "pyspark")
TOOLS = ("git", "dvc")


def _modules(parts: tuple[str, ...], files: tuple[str, ...] = ()) -> list[Path]:
    found = [p for part in parts for p in sorted((PACKAGE / part).rglob("*.py"))]
    return found + [PACKAGE / f for f in files if (PACKAGE / f).exists()]


def _imports(tree: ast.AST) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, node.lineno))
    return out


def _tool_calls(tree: ast.AST) -> list[int]:
    """Lines that start `git` or `dvc` as a program: a list/tuple literal whose first item is the tool's name."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.List, ast.Tuple)) and node.elts:
            first = node.elts[0]
            if isinstance(first, ast.Constant) and first.value in TOOLS and len(node.elts) > 1:
                lines.append(node.lineno)
    return lines


@pytest.mark.parametrize("path", _modules(CORE, CORE_FILES), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_core_and_facade_touch_no_backend(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bad = [f"{path.name}:{line} imports {name}" for name, line in _imports(tree) if name.split(".")[0] in FORBIDDEN]
    bad += [f"{path.name}:{line} runs git/dvc as a subprocess" for line in _tool_calls(tree)]
    assert not bad, "only mlops_layer/adapters may talk to these tools: " + "; ".join(bad)


@pytest.mark.parametrize("path", _modules(("server",)), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_server_plugs_into_mlflow_but_leaves_git_and_dvc_to_adapters(path: Path) -> None:
    """The governing server is an MLflow app (it may import mlflow and flask); git, DVC and the rest go through
    mlops_layer/adapters, so no server module starts a subprocess at all."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    allowed = {"mlflow"}
    bad = [
        f"{path.name}:{line} imports {name}"
        for name, line in _imports(tree)
        if name.split(".")[0] in set(FORBIDDEN) - allowed or name.split(".")[0] == "subprocess"
    ]
    bad += [f"{path.name}:{line} runs git/dvc as a subprocess" for line in _tool_calls(tree)]
    assert not bad, "server/ talks to git and dvc through mlops_layer/adapters only: " + "; ".join(bad)


def test_the_server_is_scanned() -> None:
    assert {p.name for p in _modules(("server",))} >= {"source.py", "guard.py", "app.py"}


def test_the_check_catches_what_it_looks_for(tmp_path: Path) -> None:
    """The scanner itself: an import inside a function and a subprocess call are both seen."""
    tree = ast.parse(
        "def f():\n    import mlflow.sklearn\n    import subprocess\n    subprocess.run(['git', 'config', 'x'])\n"
    )
    assert [n for n, _ in _imports(tree)] == ["mlflow.sklearn", "subprocess"]
    assert _tool_calls(tree) == [4]


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _top_level_imports(path: Path) -> set[str]:
    """Imports executed when the module is imported: module level, not under TYPE_CHECKING, not in functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return {n for n in names if n.startswith("mlops_layer")}


def test_no_import_cycles() -> None:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {
        name: {dep for dep in _top_level_imports(path) if dep in modules and dep != name}
        for name, path in modules.items()
    }
    # importing a submodule imports its packages first
    for name in list(graph):
        parts = name.split(".")
        graph[name] |= {".".join(parts[:i]) for i in range(2, len(parts)) if ".".join(parts[:i]) in modules}
    seen: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        seen[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if seen.get(dep) == 1:
                if not dep.startswith(node + ".") and not node.startswith(dep + "."):
                    cycles.append([*stack[stack.index(dep) :], dep])
            elif dep not in seen:
                visit(dep)
        stack.pop()
        seen[node] = 2

    for node in sorted(graph):
        if node not in seen:
            visit(node)
    assert not cycles, "import cycles: " + " | ".join(" -> ".join(c) for c in cycles)


def test_one_room_per_capability_in_the_facade() -> None:
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in (PACKAGE / "api").glob("*.py")}
    assert {"training.py", "status.py", "governance.py", "drift.py", "monitoring.py", "retrain.py", "audit.py"} <= set(
        sizes
    )
    assert all(n <= 500 for n in sizes.values()), f"api modules over 500 lines: {sizes}"


def test_governance_modules_stay_small() -> None:
    """The governance core stays in modules of one responsibility each: none grows past 600 lines."""
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in (PACKAGE / "governance").glob("*.py")}
    assert {"promotion.py", "rules.py", "policy.py"} <= set(sizes)
    too_long = {name: n for name, n in sizes.items() if n > 600}
    assert not too_long, f"governance modules over 600 lines (split them by responsibility): {too_long}"


def test_the_facade_exports_what_it_names() -> None:
    api = importlib.import_module("mlops_layer.api")
    assert sorted(api.__all__) == sorted(set(api.__all__))
    for name in api.__all__:
        assert getattr(api, name) is not None, name
    # api.status and api.retrain are the functions, not the submodules of the same names
    assert callable(api.status) and callable(api.retrain)
    public = {
        n for n, v in vars(api).items() if not n.startswith("_") and n != "annotations" and not inspect.ismodule(v)
    }
    assert public == set(api.__all__)
