"""Notebook snapshots: every accepted input, read-only, one-line errors for unusable notebooks."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from fixtures.notebooks import make_ynotebook, write_notebook

from jupyter_ai_vision.context.snapshot import NOTES_KEY, NotebookError, load_notebook


def _digest(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def _cells_summary(snapshot: Any) -> list[tuple[Any, ...]]:
    return [
        (c["id"], c["cell_type"], c["source"], len(c.get("outputs", [])), c.get("execution_count"))
        for c in snapshot.cells
    ]


def test_path_dict_node_and_ynotebook_give_the_same_cells(executed_notebook, tmp_path):
    path = write_notebook(executed_notebook, tmp_path / "nb.ipynb")
    from_path = load_notebook(path)
    from_dict = load_notebook(json.loads(path.read_text()))
    from_node = load_notebook(executed_notebook)
    from_ydoc = load_notebook(make_ynotebook(executed_notebook))
    expected = _cells_summary(from_path)
    assert [c[0] for c in expected][:3] == ["title", "setup", "mpl"]
    assert _cells_summary(from_dict) == expected
    assert _cells_summary(from_node) == expected
    assert _cells_summary(from_ydoc) == expected
    assert from_path.path == path.absolute() and from_path.root_dir == tmp_path.absolute()
    # Outputs survive (including Altair 6's non-"+json" Vega-Lite mime, which nbformat's
    # schema rejects but JupyterLab stores).
    mimes = {m for c in from_ydoc.cells for o in c.get("outputs", []) for m in o.get("data", {})}
    assert "application/vnd.vegalite.v6.json" in mimes and "image/png" in mimes


def test_reading_never_modifies_the_file(executed_notebook, tmp_path):
    path = write_notebook(executed_notebook, tmp_path / "nb.ipynb")
    before = _digest(path)
    load_notebook(path)
    load_notebook(str(path))
    assert _digest(path) == before


def test_reading_never_modifies_the_ynotebook_even_with_duplicate_ids(executed_notebook):
    nb = copy.deepcopy(executed_notebook)
    dup = copy.deepcopy(nb.cells[2])
    dup.source += "\n# edited copy"
    nb.cells.append(dup)  # same id, different content: YNotebook.get() would re-id it
    ynb = make_ynotebook(nb)
    before = ynb.get(deduplicate=False)
    snapshot = load_notebook(ynb)
    assert ynb.get(deduplicate=False) == before
    assert [c["id"] for c in snapshot.cells].count(nb.cells[2].id) == 2


def test_snapshot_is_a_private_copy(executed_notebook):
    nb = copy.deepcopy(executed_notebook)
    snapshot = load_notebook(nb)
    snapshot.cells[2]["source"] = "changed"
    snapshot.cells[2]["outputs"].clear()
    assert nb.cells[2].source != "changed" and nb.cells[2].outputs


def test_multiline_sources_and_outputs_are_joined(tmp_path):
    nb = {
        "nbformat": 4,
        "nbformat_minor": 4,
        "metadata": {},
        "cells": [
            {
                "cell_type": "code",
                "metadata": {},
                "execution_count": 1,
                "source": ["a = 1\n", "a"],
                "outputs": [
                    {"output_type": "stream", "name": "stdout", "text": ["x\n", "y\n"]},
                    {
                        "output_type": "execute_result",
                        "execution_count": 1,
                        "metadata": {},
                        "data": {"text/plain": ["1\n", "2"]},
                    },
                ],
            }
        ],
    }
    cell = load_notebook(nb).cells[0]
    assert cell["source"] == "a = 1\na"
    assert cell["id"] is None  # nbformat 4.4 has no ids
    assert cell["outputs"][0]["text"] == "x\ny\n"
    assert cell["outputs"][1]["data"]["text/plain"] == "1\n2"


def test_v3_notebook_is_upgraded():
    v3 = nbformat.v3.new_notebook(
        worksheets=[nbformat.v3.new_worksheet(cells=[nbformat.v3.new_code_cell(input="1 + 1")])]
    )
    snapshot = load_notebook(json.loads(nbformat.writes(v3, version=3)))
    assert [c["source"] for c in snapshot.cells] == ["1 + 1"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "the file is empty"),
        (b"   \n", "the file is empty"),
        (b"{not json", "not valid notebook JSON"),
        (b"\xff\xfe\x00garbage", "not valid notebook JSON"),
        (b"[1, 2]", "top level is not a JSON object"),
        (b"{}", "not a notebook"),
        (
            b'{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": {}}',
            "'cells' is not a list",
        ),
    ],
)
def test_unusable_notebooks_raise_one_line_errors(tmp_path, content, expected):
    path = tmp_path / "bad.ipynb"
    path.write_bytes(content)
    with pytest.raises(NotebookError) as info:
        load_notebook(path)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message and str(path) in message


@pytest.mark.parametrize(
    ("cell", "note"),
    [
        ({"cell_type": "bogus", "source": "x"}, "cell_type 'bogus' is not code, markdown or raw"),
        ({"cell_type": "code", "source": "x", "outputs": 3}, "'outputs' is not a list"),
        (
            {"cell_type": "code", "source": "x", "outputs": [{"output_type": "nope"}]},
            "output 0 has no valid output_type",
        ),
        ({"cell_type": "markdown", "source": {"a": 1}}, "source is not text (an object)"),
    ],
)
def test_a_broken_cell_is_read_with_a_note_and_the_next_cell_still_is(cell, note):
    good = {"cell_type": "markdown", "source": "# still here", "metadata": {}}
    nb = {"nbformat": 4, "nbformat_minor": 4, "metadata": {}, "cells": [cell, good]}
    snapshot = load_notebook(nb)
    (got,) = snapshot.cells[0][NOTES_KEY]
    assert note in got and "\n" not in got
    assert snapshot.cells[1]["source"] == "# still here" and NOTES_KEY not in snapshot.cells[1]


def test_missing_path_and_directory_and_unsupported_object(tmp_path):
    with pytest.raises(NotebookError, match="no such notebook"):
        load_notebook(tmp_path / "missing.ipynb")
    with pytest.raises(NotebookError, match="is a directory"):
        load_notebook(tmp_path)
    with pytest.raises(NotebookError, match="unsupported notebook object int"):
        load_notebook(42)
