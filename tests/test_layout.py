"""The package layout is the architecture: these rules are written down here, once, and
checked on every run.

- ``LAYERS``: which of our packages each package may import (at any depth, including imports
  inside functions). Leaf modules (``errors``, ``mimes``, ``limits``, ...) import only the
  standard library and each other.
- ``HEAVY``: third-party modules that importing a package must not pull in (the Jupyter
  server imports every entry point at start-up; the pure pipeline must run anywhere).
- No import cycles between modules.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "jupyter_ai_vision"
LEAVES = {"errors", "_text", "_lru", "mimes", "limits", "paths", "host", "_compat"}
_ANY_HOST_INDEPENDENT = {"leaf", "media", "context", "llm", "kernel", "ai_repr", "server"}

#: package -> the packages it may import
LAYERS: dict[str, set[str]] = {
    "leaf": set(),
    "media": {"leaf"},
    "context": {"leaf", "media"},
    "llm": {"leaf", "context"},
    # code that runs in the user's kernel (ai_repr's path is frozen: kernels import it by name)
    "kernel": {"leaf", "media", "context", "ai_repr"},
    "ai_repr": {"leaf", "media", "kernel"},
    "server": {"leaf", "media", "context", "llm", "kernel", "ai_repr"},
    "cli": {"leaf", "media", "context", "llm", "server"},
    "testing": {"leaf"},
    "hosts.jupyter_ai_2": _ANY_HOST_INDEPENDENT,
    "hosts.jupyter_ai_3": _ANY_HOST_INDEPENDENT,
    "hosts": set(),
    # %load_ext jupyter_ai_vision picks the host's %%ai (lazily, inside the function)
    "root": {"leaf", "context", "kernel", "hosts.jupyter_ai_3"},
}

#: importing the module must not import these
HEAVY: dict[str, set[str]] = {
    "jupyter_ai_vision": {"PIL", "litellm", "jupyter_server", "jupyter_ai", "langchain_core"},
    "jupyter_ai_vision.context": {
        "PIL",
        "vl_convert",
        "litellm",
        "jupyter_server",
        "jupyter_ai",
        "jupyter_ai_magics",
        "langchain_core",
        "tornado",
    },
    "jupyter_ai_vision.context.builder": {"PIL", "vl_convert", "litellm", "jupyter_server"},
    "jupyter_ai_vision.media.load": {"PIL", "vl_convert", "litellm", "jupyter_server"},
    "jupyter_ai_vision.media.vega": {"vl_convert", "PIL"},
    "jupyter_ai_vision.server.notebooks": {"litellm", "jupyter_ai", "PIL"},
    "jupyter_ai_vision.kernel.extension": {"litellm", "PIL", "jupyter_server"},
    "jupyter_ai_vision.cli": {"litellm", "jupyter_server", "PIL"},
}


def _package_of(module: str) -> str:
    parts = module.split(".")[1:]
    if not parts:
        return "root"
    if parts[0] == "hosts" and len(parts) > 1:
        return f"hosts.{parts[1]}"
    return "leaf" if parts[0] in LEAVES else parts[0]


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    return ".".join(rel.parts).removesuffix(".__init__")


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "jupyter_ai_vision":
                found.update(f"jupyter_ai_vision.{a.name}" for a in node.names)
            elif node.module.startswith("jupyter_ai_vision."):
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("jupyter_ai_vision"))
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {m: {d for d in _imports(p) if d in modules and d != m} for m, p in modules.items()}


def test_every_package_has_a_rule():
    packages = {_package_of(m) for m in _graph()}
    assert packages <= set(LAYERS), packages - set(LAYERS)


def test_packages_import_only_what_their_layer_allows():
    broken = [
        f"{m} -> {d}"
        for m, deps in _graph().items()
        for d in deps
        if _package_of(d) != _package_of(m) and _package_of(d) not in LAYERS[_package_of(m)]
    ]
    assert broken == []


def test_there_are_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = defaultdict(int)  # 0 new, 1 on the stack, 2 done
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state[dep] == 1:
                cycles.append([*stack[stack.index(dep) :], dep])
            elif state[dep] == 0:
                visit(dep, [*stack, dep])
        state[node] = 2

    for module in sorted(graph):
        if state[module] == 0:
            visit(module, [module])
    assert cycles == []


#: a host's API, which the other host's adapters must never import
HOST_API = {
    "hosts.jupyter_ai_2": (
        "jupyter_ai",
        "jupyter_ai_magics",
        "langchain_core",
        "langchain_community",
    ),
    "hosts.jupyter_ai_3": (
        "jupyter_ai_persona_manager",
        "jupyterlab_chat",
        "jupyter_server_mcp",
        "jupyter_ai_jupyternaut",
        "jupyter_ai_router",
    ),
}


def _third_party_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
    return found


def test_no_host_module_imports_the_other_hosts_api():
    offenders = []
    for path in (PACKAGE / "hosts").rglob("*.py"):
        mine = _package_of(_module_name(path))
        if mine == "hosts":
            continue
        other = next(h for h in HOST_API if h != mine)
        offenders += [
            f"{path.name}: {m}" for m in _third_party_imports(path) & set(HOST_API[other])
        ]
    assert offenders == []


@pytest.mark.parametrize("module", sorted(HEAVY))
def test_importing_does_not_pull_in_heavy_libraries(module):
    code = (
        "import importlib, json, sys; importlib.import_module(sys.argv[1]); "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, module], capture_output=True, text=True, check=True
    ).stdout
    loaded = set(json.loads(out))
    assert loaded & HEAVY[module] == set()
