"""Paths that are not regular notebook files (issue 11, class 7).

A FIFO (reading blocked forever), ``/dev/zero`` (MemoryError), a 2 GB sparse file (read whole:
2.6 GB RSS), a directory, a symlink to any of them: each is refused before anything is read,
with one line, by the one reader (``context.snapshot.read_notebook_file``) that the CLI,
``/see``'s disk fallback (``server.notebooks.read_disk``, with and without a real contents
manager) and inline completion's saved-notebook cache all use. Notebooks over
``limits.MAX_NOTEBOOK_BYTES`` (512 MB, configurable) are refused with the limit in the line.
A good notebook, executed by a real kernel, is still read by every path; nothing outside the
root is opened.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest
from fixtures.hostile import MAX_RSS_MB, assert_one_line_error, run_inspect
from fixtures.notebooks import write_notebook

from jupyter_ai_vision import limits
from jupyter_ai_vision.context.snapshot import (
    NotebookError,
    load_notebook,
    read_notebook_file,
    read_notebook_json,
)
from jupyter_ai_vision.errors import NotebookNotFound, NotebookUnreadable
from jupyter_ai_vision.server import notebooks
from jupyter_ai_vision.server.completion.window import SavedNotebookCache

#: Peak RSS of a CLI run that refuses a file: Python and our imports, nothing read (~25 MB).
REFUSED_RSS_MB = 100


@pytest.fixture
def root(tmp_path):
    """A server root holding a good notebook, a FIFO, a 2 GB sparse file, a directory and
    symlinks to /dev/zero and to a notebook outside the root."""
    root = tmp_path / "root"
    root.mkdir()
    os.mkfifo(root / "fifo.ipynb")
    with (root / "sparse.ipynb").open("wb") as f:
        f.truncate(2 * 1024**3)
    (root / "folder.ipynb").mkdir()
    (root / "zero.ipynb").symlink_to("/dev/zero")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.ipynb").write_text(json.dumps({"nbformat": 4, "cells": []}))
    (root / "escape.ipynb").symlink_to(outside / "secret.ipynb")
    return root


@pytest.fixture
def good(executed_notebook, root):
    return write_notebook(executed_notebook, root / "good.ipynb")


REFUSALS = [
    ("fifo.ipynb", "not a regular file (a FIFO / named pipe)"),
    ("zero.ipynb", "not a regular file (a character device)"),
    ("sparse.ipynb", "the file is 2,048 MB, over the 512 MB limit for notebooks"),
    ("folder.ipynb", "is a directory"),
]


@pytest.mark.parametrize(("name", "expected"), REFUSALS)
def test_the_reader_refuses_before_reading(root, name, expected):
    with pytest.raises(NotebookError) as info:
        read_notebook_file(root / name)
    assert expected in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(("name", "expected"), [*REFUSALS, ("/dev/zero", "character device")])
def test_cli_refuses_with_one_line_and_exit_2(root, name, expected):
    run = run_inspect(root / name)  # "/dev/zero" stays absolute
    assert_one_line_error(run, expected)
    assert run.peak_rss_mb < REFUSED_RSS_MB


def test_the_limit_is_configurable_and_stated(good):
    size_mb = good.stat().st_size / 1024**2
    assert size_mb > 0.05
    with pytest.raises(NotebookError, match=r"over the [\d,]+ bytes limit"):
        read_notebook_file(good, max_bytes=50_000)
    run = run_inspect(good, "--max-notebook-mb", "1", "--json")
    assert run.returncode == 0  # the rich notebook is well under 1 MB
    tiny = good.with_name("tiny.ipynb")
    tiny.write_bytes(good.read_bytes() + b" " * (1024**2))
    assert_one_line_error(
        run_inspect(tiny, "--max-notebook-mb", "1"), "over the 1 MB limit for notebooks"
    )
    assert_one_line_error(
        run_inspect(tiny, env={"JUPYTER_AI_VISION_MAX_NOTEBOOK_MB": "1"}),
        "JUPYTER_AI_VISION_MAX_NOTEBOOK_MB",
    )
    assert limits.MAX_NOTEBOOK_BYTES == 512 * 1024**2


def test_a_good_notebook_is_read_by_the_cli_within_the_memory_bound(good):
    run = run_inspect(good, "--json", "--cell", "mpl")
    assert run.returncode == 0, run.stderr[-2000:]
    sent = [item["cell_id"] for item in run.json()["items"]]
    assert sent[0] == "mpl" and len(sent) >= 5
    assert run.peak_rss_mb < MAX_RSS_MB


# --- /see's disk fallback --------------------------------------------------------------------


def _read_disk(root: Path, name: str, cm: object = None) -> dict:
    settings = {"contents_manager": cm} if cm is not None else None
    return asyncio.run(notebooks.read_disk(settings, name, str(root)))


@pytest.mark.parametrize(("name", "expected"), REFUSALS[:3])
def test_see_disk_fallback_refuses_with_one_line(root, name, expected):
    with pytest.raises((NotebookUnreadable, NotebookNotFound)) as info:
        _read_disk(root, name)
    assert "\n" not in str(info.value)
    if isinstance(info.value, NotebookUnreadable):
        assert expected in str(info.value)


def test_see_disk_fallback_through_a_real_contents_manager(root, good):
    from jupyter_server.services.contents.filemanager import FileContentsManager

    cm = FileContentsManager(root_dir=str(root))
    with pytest.raises(NotebookUnreadable, match="over the 512 MB limit"):
        _read_disk(root, "sparse.ipynb", cm)
    with pytest.raises(NotebookNotFound):  # not a file to the contents manager either
        _read_disk(root, "fifo.ipynb", cm)
    nb = _read_disk(root, "good.ipynb", cm)
    assert load_notebook(nb).cells[1]["id"] == "setup"


def test_see_disk_fallback_reads_a_good_notebook_and_nothing_outside_the_root(root, good):
    opened: list[str] = []

    def audit(event: str, args: tuple) -> None:
        if event == "open" and isinstance(args[0], str | bytes | os.PathLike):
            opened.append(os.fsdecode(args[0]))

    sys.addaudithook(audit)  # hooks cannot be removed: it only appends to this list
    nb = _read_disk(root, "good.ipynb")
    assert [c["id"] for c in load_notebook(nb).cells][:3] == ["title", "setup", "mpl"]
    with pytest.raises(NotebookNotFound):
        _read_disk(root, "escape.ipynb")
    outside = str(root.parent / "outside")
    assert not [p for p in opened if p.startswith(outside)]
    assert any(p.endswith("good.ipynb") for p in opened)
    opened.clear()


# --- inline completion's saved-notebook cache --------------------------------------------------


def test_completion_cache_refuses_special_and_huge_files_and_reads_a_good_one(root, good):
    cache = SavedNotebookCache()
    for name in ("fifo.ipynb", "zero.ipynb", "sparse.ipynb", "folder.ipynb"):
        assert cache.get(root / name) is None
    nb = cache.get(good)
    assert nb is not None and nb["cells"][1]["id"] == "setup"
    assert cache.loads == 1


def test_deep_json_file_is_cut_not_a_recursion_error(tmp_path):
    path = tmp_path / "deep.ipynb"
    deep = "[" * 300_000 + "]" * 300_000
    path.write_text(
        '{"nbformat": 4, "nbformat_minor": 5, "metadata": {"x": ' + deep + '}, "cells": []}'
    )
    data = read_notebook_json(path)
    assert data["cells"] == [] and isinstance(data["metadata"]["x"], list)
    snap = load_notebook(path)
    assert snap.notes == [
        f"notebook metadata is nested deeper than {limits.MAX_JSON_DEPTH} levels; ignored"
    ]


def test_completion_reads_a_malformed_saved_notebook_through_the_normaliser(tmp_path):
    from jupyter_ai_vision.server.completion.window import CompletionSettings, window_from_cells

    path = tmp_path / "malformed.ipynb"
    good = {"cell_type": "code", "id": "b", "source": "print(1)", "outputs": [], "metadata": {}}
    bad = {"cell_type": "code", "id": "a", "source": {"x": 1}, "outputs": 5, "metadata": []}
    path.write_text(json.dumps({"nbformat": 4, "metadata": [1], "cells": [None, bad, good]}))
    nb = SavedNotebookCache().get(path)
    assert nb is not None and [c["id"] for c in nb["cells"]] == [None, "a", "b"]
    window = window_from_cells(nb["cells"], "b", CompletionSettings())
    assert window is not None
