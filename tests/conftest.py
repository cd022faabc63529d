"""Shared pytest configuration. Fixtures live in tests/fixtures/, one module per area.

Tiers (markers, see pyproject.toml): ``kernel`` and ``server`` are added here from the fixtures a
test uses (and by hand for tests that start kernels or servers themselves), ``browser`` by the
browser tests. The fast command deselects all three: ``bash scripts/test.sh --fast``.

Hosts: the suite runs once per Jupyter AI host (2.x in .venv, 3.x in .venv-jai3). Tests marked
``jupyter_ai_2`` / ``jupyter_ai_3`` (or living in tests/jupyter_ai_2/ / tests/jupyter_ai_3/, or
using that host's server fixture) are deselected on the other host, never skipped. A module that
cannot even be imported on the other host declares ``pytestmark = pytest.mark.jupyter_ai_N`` at
top level; it is then not imported there at all.
"""

from __future__ import annotations

import ast
import asyncio
import concurrent.futures
import importlib.metadata
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# LiteLLM must never fetch its remote cost map (no network beyond 127.0.0.1).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

HOST_MARKERS = ("jupyter_ai_2", "jupyter_ai_3")


def _host_major() -> int | None:
    """The installed Jupyter AI's major version, from package metadata (both import as jupyter_ai)."""
    try:
        return int(importlib.metadata.version("jupyter-ai").split(".")[0])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


HOST = _host_major()
#: jupyter-server-documents replaces jupyter-collaboration (its config disables it): its
#: environment (.venv-jai3-jsd) runs only the tests marked ``jsd``, and only it runs them.
JSD = _installed("jupyter-server-documents")
#: The host marker of the installed Jupyter AI; tests marked with the other one are deselected.
THIS_HOST = f"jupyter_ai_{HOST}" if HOST in (2, 3) else None
OTHER_HOSTS = tuple(m for m in HOST_MARKERS if m != THIS_HOST)

pytest_plugins = [
    "fixtures.network",  # fails any test that reaches a non-loopback address
    "fixtures.tiers",  # notices tests that start a kernel/server/browser without the marker
    "fixtures.model_server",  # local OpenAI-compatible recording server
    "fixtures.notebooks",  # notebooks really executed by a kernel (nbclient)
    "fixtures.jupyter_server",  # a real Jupyter server with jupyter-ai 2.x loaded
]
if HOST == 3 and (Path(__file__).parent / "fixtures" / "jupyter_server_3.py").exists():
    pytest_plugins.append("fixtures.jupyter_server_3")  # a real Jupyter server with Jupyter AI 3.x
if HOST == 3 and JSD:
    pytest_plugins.append("fixtures.jupyter_server_jsd")  # ... on jupyter-server-documents

#: Fixtures whose use puts a test in a tier: the session servers (and their host), and any
#: fixture whose code calls one of these (``fixtures.notebooks.execute`` runs a real kernel).
SERVER_FIXTURES = {
    "jupyter_server": "jupyter_ai_2",
    "jupyter_server_3": "jupyter_ai_3",
    "jupyter_server_jsd": "jupyter_ai_3",
}
TIER_CALLS = {
    "kernel": {"execute", "start_new_kernel", "start_new_async_kernel", "start_kernel"},
    "server": {"start_jupyter_server"},
}


def _fixture_tiers(item: pytest.Item) -> set[str]:
    """Tiers implied by the fixtures the test uses, directly or through other fixtures."""
    info = getattr(item, "_fixtureinfo", None)
    tiers = set()
    for defs in info.name2fixturedefs.values() if info else ():
        for fixturedef in defs:
            names = set(getattr(getattr(fixturedef.func, "__code__", None), "co_names", ()))
            tiers |= {tier for tier, calls in TIER_CALLS.items() if names & calls}
    return tiers


def _module_host_marker(path: Path) -> str | None:
    """``jupyter_ai_N`` if the module's top level says ``pytestmark = pytest.mark.jupyter_ai_N``
    (read without importing it: it may import that host's API)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None  # let pytest report it
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            for sub in ast.walk(node.value):
                if isinstance(sub, ast.Attribute) and sub.attr in HOST_MARKERS:
                    return sub.attr
    return None


def _directory_host_marker(path: Path) -> str | None:
    tests = Path(__file__).parent
    for marker in HOST_MARKERS:
        if path.is_relative_to(tests / marker):
            return marker
    return None


_not_imported: list[str] = []


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """The other host's directory and modules are not imported (their API is not installed)."""
    marker = _directory_host_marker(collection_path)
    if (
        marker is None
        and collection_path.suffix == ".py"
        and collection_path.name.startswith("test_")
    ):
        marker = _module_host_marker(collection_path)
    if marker in OTHER_HOSTS:
        relative = str(collection_path.relative_to(Path(__file__).parent.parent))
        if relative not in _not_imported:
            _not_imported.append(relative)
        return True
    return None


@pytest.hookimpl(tryfirst=True)  # before -m selects by the markers added here
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Adds tier and host markers from fixture use and location; deselects the other host's tests."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        for tier in _fixture_tiers(item):
            item.add_marker(getattr(pytest.mark, tier))
        for fixture, host in SERVER_FIXTURES.items():
            if fixture in names:
                item.add_marker(pytest.mark.server)
                item.add_marker(getattr(pytest.mark, host))
        marker = _directory_host_marker(Path(str(item.path)))
        if marker:
            item.add_marker(getattr(pytest.mark, marker))
        if "jupyter_server_jsd" in names:
            item.add_marker(pytest.mark.jsd)
    keep, drop = [], []
    for item in items:
        other_host = any(item.get_closest_marker(m) for m in OTHER_HOSTS)
        other_rtc = bool(item.get_closest_marker("jsd")) != JSD
        (drop if other_host or other_rtc else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_report_header(config: pytest.Config) -> list[str]:
    version = importlib.metadata.version("jupyter-ai") if HOST else "not installed"
    lines = [f"Jupyter AI host: {version}; deselected: tests marked {', '.join(OTHER_HOSTS)}"]
    lines.append(
        "jupyter-server-documents installed: only tests marked jsd run"
        if JSD
        else "deselected: tests marked jsd (they run in the jupyter-server-documents env)"
    )
    return lines


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _not_imported:
        terminalreporter.write_line(
            f"not imported on Jupyter AI {HOST}.x (other host's tests): {', '.join(_not_imported)}"
        )


@pytest.fixture(autouse=True)
def _fresh_chat(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tests on the 2.x session server start with an empty chat: tests count the images in the
    conversation history, which would otherwise depend on the tests that ran before."""
    if "jupyter_server" in request.fixturenames:
        server = request.getfixturevalue("jupyter_server")

        async def clear() -> None:
            async with server.chat(user="alice") as chat:
                await chat.clear()

        # on a thread of its own: the test's event loop (pytest-asyncio) is not disturbed
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, clear()).result(timeout=60)
    yield
