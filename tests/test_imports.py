"""The project's import graph: no cycles (imports inside functions count), lazy imports only where
they keep a heavy library out of a process, and jobs/ holding only its core outside subpackages.

These read the source with `ast`; the last two start a fresh interpreter to show that the web
process really stays free of torch, which is what the lazy imports are for.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ("rftconsole", "jobs", "rewards", "playground")

# Imports of our own modules made inside a function, each with why it may not be at the top.
# Keeping torch or transformers (or another heavy library) out of a process is the only reason;
# a lazy import that merely hides a cycle does not belong here.
LAZY_IMPORTS: dict[tuple[str, str], str] = {
    ("jobs.tasks", "jobs.training.engine"): "torch stays out of the default-queue worker",
    ("playground.inference.streaming", "playground.inference.generate"): (
        "torch stays out of the web process until a model answers"
    ),
    (
        "rewards.graders.configurable",
        "rewards.graders.embeddings",
    ): "loads torch weights, only when asked",
    ("rewards.judge.scoring", "rewards.judge.clients"): "openai (and torch) only when a judge runs",
    ("rewards.openai_graders.model_graders", "rewards.judge.clients"): (
        "openai (and torch) only when a model grader runs"
    ),
    (
        "rewards.judge.scoring",
        "rftconsole.security.outbound",
    ): "httpx2 only when a judge's host is checked",
    ("rftconsole.apps", "rftconsole.security.audit"): "Django: signal receivers connect in ready()",
    ("jobs.training.rank", "jobs.training.rank_job"): "a rank process sets Django up first",
    (
        "rftconsole.apps",
        "rftconsole.security.crypto",
    ): "Django: checks run in ready(), after settings",
}

# Outside its subpackages, jobs/ holds the app's core only.
JOBS_CORE = {
    "actions", "api", "apps", "consumers", "events", "health", "models", "page_cache", "summary",
    "tasks", "urls", "views",
}  # fmt: skip
JOBS_PACKAGES = {
    "datasets", "management", "migrations", "registry", "starter", "templatetags", "training",
    "wizard",
}  # fmt: skip


@dataclass(frozen=True)
class Edge:
    importer: str
    imported: str
    lazy: bool  # made inside a function or method
    line: int


def module_files(root: Path, apps: tuple[str, ...]) -> dict[str, Path]:
    found = {}
    for app in apps:
        for path in (root / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(root).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _targets(
    node: ast.Import | ast.ImportFrom, package: str, modules: dict[str, Path]
) -> list[str]:
    """What one import statement loads: `from pkg import mod` counts as pkg.mod alone, while
    `from pkg.mod import name` counts as pkg.mod."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        parts = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join(parts + ([base] if base else []))
    submodules = [f"{base}.{alias.name}" for alias in node.names]
    found = [name for name in submodules if name in modules]
    return found + ([base] if len(found) < len(submodules) else [])


def _known(target: str, modules: dict[str, Path]) -> str | None:
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target or None


def import_edges(modules: dict[str, Path]) -> list[Edge]:
    """Every import of a project module by a project module, at any depth of the file."""
    edges = []
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text())
        in_function = {
            id(inner)
            for outer in ast.walk(tree)
            if isinstance(outer, ast.FunctionDef | ast.AsyncFunctionDef)
            for inner in ast.walk(outer)
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for target in _targets(node, package, modules):
                known = _known(target, modules)
                if known and known != name:
                    edges.append(Edge(name, known, id(node) in in_function, node.lineno))
    return edges


def find_cycles(edges: list[Edge]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.importer, set()).add(edge.imported)
        graph.setdefault(edge.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
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
                        cycles.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return cycles


def project_edges() -> list[Edge]:
    return import_edges(module_files(ROOT, APPS))


def test_the_project_has_no_import_cycle_counting_imports_inside_functions() -> None:
    edges = project_edges()
    assert len({edge.importer for edge in edges}) > 90  # the whole project was read
    assert any(edge.lazy for edge in edges)  # function-level imports are in the graph
    assert find_cycles(edges) == []


def test_the_cycle_finder_finds_a_cycle_closed_inside_a_function(tmp_path: Path) -> None:
    """Control: two modules that import each other, one of them only inside a function."""
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")
    (tmp_path / "app" / "a.py").write_text("from app.b import thing\n")
    (tmp_path / "app" / "b.py").write_text("def thing():\n    from app import a\n    return a\n")
    (tmp_path / "app" / "c.py").write_text("from app import a\n")
    edges = import_edges(module_files(tmp_path, ("app",)))
    assert find_cycles(edges) == [["app.a", "app.b"]]
    assert Edge("app.b", "app.a", lazy=True, line=2) in edges


def test_every_lazy_import_of_our_own_code_is_listed_with_its_reason() -> None:
    lazy = {(edge.importer, edge.imported) for edge in project_edges() if edge.lazy}
    unlisted = sorted(lazy - LAZY_IMPORTS.keys())
    stale = sorted(LAZY_IMPORTS.keys() - lazy)
    assert unlisted == [], "import these at the top, or list them with the reason"
    assert stale == [], "these lazy imports are gone: take them off the list"


def test_jobs_holds_only_its_core_outside_its_subpackages() -> None:
    top = {path.stem for path in (ROOT / "jobs").glob("*.py")} - {"__init__"}
    packages = {path.parent.name for path in (ROOT / "jobs").glob("*/__init__.py")}
    assert top == JOBS_CORE
    assert packages == JOBS_PACKAGES


def test_every_package_says_what_lives_there_and_what_it_may_import() -> None:
    quiet = []
    for init in sorted(ROOT.glob("*/**/__init__.py")):
        relative = init.relative_to(ROOT)
        if relative.parts[0] not in APPS or {"migrations", "management", "commands"} & {
            *relative.parts
        }:
            continue
        if relative.parent.name == "templatetags":
            continue
        docstring = ast.get_docstring(ast.parse(init.read_text())) or ""
        if "\nImports: " not in docstring:
            quiet.append(str(relative))
    assert quiet == []


def _modules_after(imports: list[str]) -> set[str]:
    """The top-level packages loaded in a fresh interpreter after Django starts and `imports`."""
    script = (
        "import django, json, sys, importlib\n"
        "django.setup()\n"
        f"for name in {imports!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


WEB_PROCESS = [
    "rftconsole.asgi",
    "rftconsole.urls",
    "rftconsole.routing",
    "jobs.tasks",
    "rewards.tasks",
    "playground.tasks",
    "rftconsole.tasks",
]


def test_the_web_process_and_the_default_worker_never_import_torch() -> None:
    loaded = _modules_after(WEB_PROCESS)
    assert "django" in loaded and "jobs" in loaded
    assert not {"torch", "transformers", "trl", "peft"} & loaded


def test_the_trainer_does_import_torch() -> None:
    """Control: the same probe sees torch when the training engine is imported."""
    assert {"torch", "transformers", "trl"} <= _modules_after(["jobs.training.engine"])
