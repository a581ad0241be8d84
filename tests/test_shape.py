"""The code's shape: no import circle, imports point down the layers, no file too long.

The import graph is read from the code's own `import` statements under bot/
and handlers/, at module level, inside functions and under `if TYPE_CHECKING:`
alike (each is a dependency a reader has to hold in mind), as
../shared/tools/shape.py reads it.
"""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = ("bot", "handlers")
MAX_LINES = 600

# The layers, lowest first; a module belongs to the longest prefix that names it.
# A module may import its own layer and those below it, never one above.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # What every other layer reads: the config's types and its TOML reader, the
    # snapshot of config and locales, normalized events and effects, small helpers.
    ("types", ("bot", "bot.config", "bot.config.types", "bot.config.reader",
               "bot.config.snapshot", "bot.clock", "bot.content", "bot.effects",
               "bot.eventloop", "bot.events", "bot.heap", "bot.locales", "bot.logs",
               "bot.metrics", "bot.numbers", "bot.roles", "bot.userids")),
    ("store", ("bot.store",)),
    # Decisions over the store: the inbound pipeline and its handlers, forwarding
    # to subscribers, the reply window and templates, the services, the provider
    # interface (a provider package itself sits above the web toolkit it uses).
    ("core", ("bot.pipeline", "bot.dispatch", "handlers", "bot.forwarding", "bot.window",
              "bot.templates", "bot.subscribers", "bot.profile", "bot.services", "bot.notices",
              "bot.providers.base", "bot.providers.json_fields")),
    ("workers", ("bot.workers",)),
    ("web", ("bot.web",)),
    # A provider: its config part, its sender, and its inbound routes built on the
    # web side's helpers (bot/web/errors.py, keys.py, snapshot.py).
    ("providers", ("bot.providers",)),
    # What wires it all: the config loader (it asks the provider registry), the
    # app, the reloader, the processes and the command line.
    ("app", ("bot.config.load", "bot.runtime", "bot.app", "bot.processes", "bot.cli",
             "bot.__main__")),
)

# The imports allowed to run up the layers (at most 3), each with its reason.
UPWARD_ALLOWED: dict[tuple[str, str], str] = {
    # /openapi.json documents the sandbox's routes with the sandbox's own limits.
    ("bot.web.openapi", "bot.providers.sandbox"): "the sandbox's routes in the API document",
    ("bot.web.openapi", "bot.providers.sandbox.inbound"): "the same import, its module",
}

# Files over MAX_LINES today, each to be split (issue 20): a shrinking list. A
# file that falls under the limit or goes away must leave this list.
LONG_FILES_ALLOWED: frozenset[str] = frozenset()


def python_files(root: Path = ROOT) -> Iterator[Path]:
    for package in PACKAGES:
        yield from sorted((root / package).rglob("*.py"))


def module_of(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def import_graph(root: Path = ROOT) -> dict[str, dict[str, int]]:
    """module -> {imported module of ours: first line}."""
    modules = {module_of(p, root): p for p in python_files(root)}
    graph: dict[str, dict[str, int]] = {}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        edges = graph.setdefault(module, {})
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = module.split(".")[: None if is_package else -1]
                    parts = parts[: len(parts) - (node.level - 1)]
                    base = ".".join(parts + ([node.module] if node.module else []))
                # `from a import b` imports a (its __init__) and b, if b is a module
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:  # the module a name lives in
                    target = target.rpartition(".")[0]
                if target and target != module:
                    edges.setdefault(target, node.lineno)
    return graph


def circles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def layer_of(module: str) -> int:
    best: tuple[int, int] | None = None  # (prefix length, layer)
    for number, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (
                    best is None or len(prefix) > best[0]):
                best = (len(prefix), number)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best[1]


def test_the_import_graph_has_no_circle() -> None:
    graph = import_graph()
    found = circles(graph)
    assert not found, "import circles (module -> the imports that close it):\n" + "\n".join(
        f"  {m} -> {t} (line {graph[m][t]})" for comp in found for m in comp
        for t in graph[m] if t in comp)


def test_imports_run_down_the_layers() -> None:
    assert len(UPWARD_ALLOWED) <= 3
    graph = import_graph()
    upward = {(m, t): line for m, edges in graph.items() for t, line in edges.items()
              if layer_of(t) > layer_of(m)}
    unexpected = sorted(set(upward) - set(UPWARD_ALLOWED))
    assert not unexpected, "imports up the layers:\n" + "\n".join(
        f"  {m} ({LAYERS[layer_of(m)][0]}) -> {t} ({LAYERS[layer_of(t)][0]}), line "
        f"{upward[m, t]}" for m, t in unexpected)
    gone = sorted(set(UPWARD_ALLOWED) - set(upward))
    assert not gone, f"no longer imported: remove from UPWARD_ALLOWED: {gone}"


def test_no_file_is_too_long() -> None:
    lines = {str(p.relative_to(ROOT)): len(p.read_bytes().splitlines())
             for p in python_files()}
    long = {path for path, n in lines.items() if n > MAX_LINES}
    assert long <= LONG_FILES_ALLOWED, (
        f"over {MAX_LINES} lines: " + ", ".join(f"{p} ({lines[p]})"
                                                for p in sorted(long - LONG_FILES_ALLOWED)))
    shrunk = sorted(LONG_FILES_ALLOWED - long)
    assert not shrunk, f"now at most {MAX_LINES} lines or gone: remove from LONG_FILES_ALLOWED: " \
                       f"{shrunk}"


def test_reading_the_config_loads_neither_the_web_side_nor_the_store() -> None:
    """`wagate check-config` and the loader read the providers' config parts only:
    their HTTP sides (and the app's hub, the pipeline, the store) load with an app."""
    heavy = ("bot.web", "bot.store", "bot.pipeline", "bot.workers", "bot.app", "aiosqlite",
             "asyncpg")
    code = ("import sys\n"
            "from bot.config.load import load_config\n"
            "load_config('config.example.toml')\n"
            f"print(sorted(m for m in sys.modules if m.startswith({heavy!r})))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    assert done.stdout == "[]\n"


def test_the_checks_see_lazy_and_type_checking_imports_and_their_circles(
        tmp_path: Path) -> None:
    """The graph reader and the circle finder on a tree made to fail them."""
    (tmp_path / "bot" / "sub").mkdir(parents=True)
    (tmp_path / "handlers").mkdir()
    files = {
        "bot/__init__.py": "",
        "bot/a.py": "def f():\n    from bot.sub import b\n",
        "bot/sub/__init__.py": "",
        "bot/sub/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                        "    from ..c import C\n",
        "bot/c.py": "import os\n\nimport bot.a\n",
        "handlers/__init__.py": "from bot.c import os\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    graph = import_graph(tmp_path)
    assert graph == {"bot": {}, "bot.a": {"bot.sub": 2, "bot.sub.b": 2},
                     "bot.sub": {}, "bot.sub.b": {"bot.c": 3}, "bot.c": {"bot.a": 3},
                     "handlers": {"bot.c": 1}}
    assert circles(graph) == [["bot.a", "bot.c", "bot.sub.b"]]
    assert layer_of("bot.web.send") > layer_of("bot.pipeline") > layer_of("bot.store.rules")
    assert layer_of("bot.providers.base") < layer_of("bot.providers.meta.inbound")
