"""live.py: finding the notebook and cell a user looks at, and reading it.

The path/selection helpers are tested directly; the awareness and room logic through a real
Jupyter server (collaborative rooms and global awareness joined like JupyterLab does),
observed through what /see reads.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from fixtures.model_server import text_in
from fixtures.notebooks import make_ynotebook

from jupyter_ai_vision.server import notebooks as live


@pytest.mark.parametrize(
    "question, expected",
    [
        ("analysis.ipynb why is the curve flat?", ("analysis.ipynb", "why is the curve flat?")),
        ('"my notes/run 1.ipynb" what now?', ("my notes/run 1.ipynb", "what now?")),
        ("sub/dir/x.IPYNB hi", ("sub/dir/x.IPYNB", "hi")),
        ("why is analysis.ipynb slow?", (None, "why is analysis.ipynb slow?")),
        ("what colour is the line?", (None, "what colour is the line?")),
        ("", (None, "")),
    ],
)
def test_split_path(question: str, expected: tuple[str | None, str]) -> None:
    assert live.split_path(question) == expected


def test_safe_path_stays_inside_the_root(tmp_path: Path) -> None:
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "a.ipynb").write_text("{}")
    outside = tmp_path.parent / "outside.ipynb"
    outside.write_text("{}")
    os.symlink(outside, tmp_path / "link.ipynb")
    assert live.safe_path("ok/a.ipynb", str(tmp_path)) == "ok/a.ipynb"
    assert live.safe_path("ok/./a.ipynb", str(tmp_path)) == "ok/a.ipynb"
    for bad in ("../outside.ipynb", "/etc/x.ipynb", "~/x.ipynb", "ok/../../x.ipynb", "C:\\x.ipynb"):
        with pytest.raises(live.NotebookNotFound, match="relative to the Jupyter root"):
            live.safe_path(bad, str(tmp_path))
    # a symlink out of the root: refused by where it really points (paths.confine)
    with pytest.raises(live.NotebookNotFound, match="'link.ipynb' points outside the server root"):
        live.safe_path("link.ipynb", str(tmp_path))


def test_focus_active_then_selection_then_last_executed() -> None:
    cells = [
        {"id": "a", "cell_type": "code", "source": "x = 1", "execution_count": 3},
        {"id": "b", "cell_type": "code", "source": "plot(x)\nshow()", "execution_count": 5},
        {"id": "c", "cell_type": "markdown", "source": "# notes"},
        {"id": "d", "cell_type": "code", "source": "y = 2", "execution_count": None},
    ]
    assert live.pick_focus(cells, active="d", selection="x = 1") == ("d", "awareness")
    assert live.pick_focus(cells, active=None, selection="x = 1") == ("a", "selection")
    assert live.pick_focus(cells, active=None, selection="plot(x)\nsh") == ("b", "selection")
    # too short to be told apart by containment: falls back to the last executed cell
    assert live.pick_focus(cells[:1] + cells[2:], active=None, selection="x =") == (
        "a",
        "last executed",
    )
    assert live.pick_focus(cells, active=None, selection="nothing like it") == (
        "b",
        "last executed",
    )
    assert live.pick_focus([cells[2]], active=None, selection=None) == (None, "none")


def test_live_state_round_trips_through_an_update(executed_notebook: Any) -> None:
    ynb = make_ynotebook(executed_notebook)
    before = ynb.get()
    update = bytes(ynb.ydoc.get_update())
    copy = live.notebook_from_update(update)
    assert copy.get() == before
    copy.set_cell(0, {**before["cells"][0], "source": "changed"})
    assert ynb.get() == before  # reading never changes the shared document


async def test_disk_read_needs_an_existing_notebook(tmp_path: Path) -> None:
    with pytest.raises(live.NotebookNotFound, match="Notebook not found: nope.ipynb"):
        await live.read_disk(None, "nope.ipynb", str(tmp_path))
    (tmp_path / "folder.ipynb").mkdir()  # not a regular file
    with pytest.raises(live.NotebookNotFound, match="Notebook not found: folder.ipynb"):
        await live.read_disk(None, "folder.ipynb", str(tmp_path))


async def test_disk_read_runs_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.ipynb").write_text(
        '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
    )
    loop_thread = threading.get_ident()
    seen: list[int] = []
    original = live._read_file

    def spy(root_dir: str, path: str) -> dict[str, Any]:
        seen.append(threading.get_ident())
        return original(root_dir, path)

    monkeypatch.setattr(live, "_read_file", spy)  # the real reader, watched
    nb = await live.read_disk(None, "a.ipynb", str(tmp_path))
    assert nb["cells"] == [] and seen and seen[0] != loop_thread


async def test_no_notebook_anywhere_raises_one_line() -> None:
    with pytest.raises(live.NoNotebookOpen) as info:
        await live.resolve({}, username="x", root_dir="/tmp")
    assert "\n" not in str(info.value) and "/see analysis.ipynb" in str(info.value)


@pytest.mark.server
async def test_most_recent_tab_of_a_user_wins_and_focus_from_selection(
    jupyter_server: Any, model_server: Any
) -> None:
    """One user with two tabs: the tab updated last decides (as JupyterLab renews its state)."""
    server = jupyter_server
    first = server.write_notebook("tabs/first.ipynb", ["first_marker = 1"])
    second = server.write_notebook("tabs/second.ipynb", ["second_marker = 2", "zzz = 3"])
    async with (
        server.open_notebook(first, user="nina", current=False),
        server.open_notebook(second, user="nina", current=False),
        server.awareness("nina", current=first),
    ):
        await asyncio.sleep(0.05)
        async with server.awareness("nina", current=second), server.chat("nina") as chat:
            await chat.clear()
            reply = await chat.ask("/see which?", selection={"type": "cell", "source": "zzz = 3"})
    assert "second.ipynb (live)" in reply.text
    request = text_in(model_server.chat_requests()[-1])
    assert "second_marker" in request and "first_marker" not in request
