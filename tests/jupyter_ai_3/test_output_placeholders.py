"""Restoring jupyter-server-documents' output placeholders, with JSD's real OutputsManager
(its outputs service writes each output to a file and leaves a URL in the YDoc)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jupyter_ai_vision.server.collaboration import OutputPlaceholders

pytestmark = [pytest.mark.jupyter_ai_3, pytest.mark.jsd]

PNG_OUTPUT = {"output_type": "display_data", "data": {"image/png": "iVBORw0KGgo="}, "metadata": {}}
STREAM = {"output_type": "stream", "name": "stdout", "text": "hello\n"}


@pytest.fixture
def outputs(tmp_path: Path) -> Any:
    from jupyter_server_documents.outputs import OutputsManager

    return OutputsManager(outputs_path=tmp_path / "outputs")


def placeholders_of(outputs: Any, file_id: str, cell_id: str, items: list[dict]) -> list[dict]:
    return [outputs.write(file_id, cell_id, o, asdict=True) for o in items]


def test_placeholders_are_replaced_by_the_stored_outputs(outputs: Any) -> None:
    kept = placeholders_of(outputs, "file-a", "cell-1", [STREAM, PNG_OUTPUT])
    assert all("url" in p["metadata"] and "data" not in p for p in kept)  # what the YDoc holds
    nb = {"cells": [{"cell_type": "code", "id": "cell-1", "source": "", "outputs": kept}]}
    restored = OutputPlaceholders(outputs, "file-a").notebook(nb)
    assert restored["cells"][0]["outputs"] == [STREAM, PNG_OUTPUT]
    assert nb["cells"][0]["outputs"] == kept  # the input is not changed


def test_a_placeholder_only_reads_its_own_cell_of_its_own_notebook(outputs: Any) -> None:
    """A forged URL (another notebook's file id, another cell, a path) is left out with a note;
    the real outputs beside it are kept."""
    secret = placeholders_of(outputs, "file-b", "cell-9", [PNG_OUTPUT])[0]
    other_cell = placeholders_of(outputs, "file-a", "cell-2", [PNG_OUTPUT])[0]
    own = placeholders_of(outputs, "file-a", "cell-1", [STREAM])[0]
    traversal = {"output_type": "display_data", "metadata": {"url": "/api/outputs/../../x"}}
    cell = {"id": "cell-1", "outputs": [secret, other_cell, traversal, own, PNG_OUTPUT]}
    resolver = OutputPlaceholders(outputs, "file-a")
    restored = resolver.cell(cell)
    assert restored["outputs"] == [STREAM, PNG_OUTPUT]
    assert resolver.notes == ["3 outputs of cell cell-1 pointed outside the cell: left out"]


def test_a_missing_stored_output_is_one_note(outputs: Any) -> None:
    kept = placeholders_of(outputs, "file-a", "cell-1", [PNG_OUTPUT, STREAM])
    outputs.clear("file-a", "cell-1")  # the store was wiped (e.g. the runtime dir cleaned)
    resolver = OutputPlaceholders(outputs, "file-a")
    assert resolver.cell({"id": "cell-1", "outputs": kept})["outputs"] == []
    assert resolver.notes == [
        "2 outputs of cell cell-1 could not be read (FileNotFoundError): left out"
    ]
