"""Notebook snapshot: one consistent, read-only copy of a notebook's cells.

Accepts a live ``jupyter_ydoc.YNotebook`` (the server's unsaved state), an nbformat
``NotebookNode`` / plain dict, or a path to an ``.ipynb`` file. The source is never modified:
the YNotebook is read inside one transaction without cell-id de-duplication (which would write
new ids back into the live document), dicts are copied cell by cell, files are only read.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from jupyter_ai_vision.errors import NotebookError

SUPPORTED = "a .ipynb file, an nbformat notebook / dict or a jupyter_ydoc YNotebook"


@dataclass
class NotebookSnapshot:
    """A read-only copy of a notebook: nbformat v4 cell dicts (each with an ``id`` key)."""

    cells: list[dict[str, Any]]
    path: Path | None = None
    root_dir: Path | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str | None:
        return str(self.path) if self.path is not None else None

    @property
    def notebook_dir(self) -> Path | None:
        """Directory that relative markdown links are resolved against."""
        if self.path is not None:
            return self.path.parent
        return self.root_dir


def load_notebook(
    notebook: Any, *, path: str | os.PathLike[str] | None = None, root_dir: Any = None
) -> NotebookSnapshot:
    """Take a snapshot of ``notebook`` (YNotebook, dict / NotebookNode or path).

    ``path`` names the notebook when it is given as an object (for relative markdown links);
    ``root_dir`` bounds local links (defaults to the notebook's directory).
    """
    nb_path = Path(path).absolute() if path is not None else None
    if isinstance(notebook, (str, os.PathLike)):
        nb_path = Path(notebook).absolute()
        data = _read_file(nb_path)
    elif _is_ynotebook(notebook):
        data = _read_ynotebook(notebook)
    elif isinstance(notebook, Mapping):
        data = notebook
    else:
        raise NotebookError(
            f"unsupported notebook object {type(notebook).__name__}: pass {SUPPORTED}"
        )
    label = str(nb_path) if nb_path else "notebook"
    cells, metadata = _validated_cells(data, label)
    root = Path(root_dir).absolute() if root_dir is not None else None
    if root is None and nb_path is not None:
        root = nb_path.parent
    return NotebookSnapshot(cells=cells, path=nb_path, root_dir=root, metadata=metadata)


def _read_file(path: Path) -> Any:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise NotebookError(f"{path}: no such notebook; pass the path to a .ipynb file") from None
    except IsADirectoryError:
        raise NotebookError(f"{path}: is a directory; pass the path to a .ipynb file") from None
    except OSError as exc:
        raise NotebookError(f"{path}: cannot read the notebook ({exc.strerror})") from None
    if not raw.strip():
        raise NotebookError(f"{path}: the file is empty; a notebook is a JSON (.ipynb) document")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        msg = str(exc).splitlines()[0]
        raise NotebookError(f"{path}: not valid notebook JSON ({msg})") from None


def _is_ynotebook(obj: Any) -> bool:
    # Duck-typed so that importing this module never imports jupyter_ydoc / pycrdt.
    return type(obj).__name__ == "YNotebook" and hasattr(obj, "ycells") and hasattr(obj, "get")


def _read_ynotebook(ynb: Any) -> dict[str, Any]:
    """Read a live YNotebook once, consistently, without writing to it.

    ``get()`` de-duplicates cell ids by writing new ids into the document, so it is called with
    ``deduplicate=False``; one transaction gives a consistent view of all cells.
    """
    try:
        with ynb.ydoc.transaction():
            return dict(ynb.get(deduplicate=False))
    except Exception as exc:  # a document torn down mid-read, a broken model
        raise NotebookError(f"cannot read the live notebook: {exc}") from None


def _validated_cells(data: Any, label: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    if not isinstance(data, Mapping):
        raise NotebookError(f"{label}: not a notebook (top level is not a JSON object)")
    major = data.get("nbformat")
    if major is None or "cells" not in data and "worksheets" not in data:
        raise NotebookError(f"{label}: not a notebook (no 'nbformat' / 'cells'); pass {SUPPORTED}")
    if major != 4:
        data = _convert(data, label)
    _validate_schema(data, label)
    cells = [_normalize_cell(c, i) for i, c in enumerate(data["cells"])]
    return cells, copy.deepcopy(dict(data.get("metadata") or {}))


def _convert(data: Mapping[str, Any], label: str) -> Mapping[str, Any]:
    """Upgrade v1-v3 notebooks to v4 (on a copy)."""
    import nbformat

    try:
        nb = nbformat.from_dict(copy.deepcopy(dict(data)))
        return nbformat.convert(nb, 4)
    except Exception as exc:
        raise NotebookError(
            f"{label}: unsupported notebook format {data.get('nbformat')!r} ({exc}); "
            "only nbformat 3 and 4 notebooks are read"
        ) from None


_CELL_TYPES = ("code", "markdown", "raw")
_OUTPUT_TYPES = ("execute_result", "display_data", "stream", "error")


def _validate_schema(data: Mapping[str, Any], label: str) -> None:
    """Check the nbformat v4 structure this package relies on, without modifying anything.

    Not the full JSON schema on purpose: Altair 6 emits ``application/vnd.vegalite.v6.json``
    as a JSON object, which the schema rejects but JupyterLab stores, and users' notebooks
    with it must still be readable.
    """
    cells = data.get("cells")
    if not isinstance(cells, list):
        _invalid(label, "'cells' is not a list")
    for i, cell in enumerate(cells):
        if not isinstance(cell, Mapping):
            _invalid(label, f"cell {i} is not an object")
        kind = cell.get("cell_type")
        if kind not in _CELL_TYPES:
            _invalid(label, f"cell {i} has cell_type {kind!r} (expected code, markdown or raw)")
        if not _is_text(cell.get("source")):
            _invalid(label, f"cell {i} has no text 'source'")
        if kind == "code":
            _check_outputs(cell.get("outputs"), i, label)
        attachments = cell.get("attachments")
        if attachments is not None and not isinstance(attachments, Mapping):
            _invalid(label, f"cell {i} 'attachments' is not an object")


def _check_outputs(outputs: Any, i: int, label: str) -> None:
    if not isinstance(outputs, list):
        _invalid(label, f"code cell {i} has no 'outputs' list")
    for j, out in enumerate(outputs):
        if not isinstance(out, Mapping) or out.get("output_type") not in _OUTPUT_TYPES:
            _invalid(label, f"cell {i} output {j} has no valid output_type")
        if "data" in out and not isinstance(out["data"], Mapping):
            _invalid(label, f"cell {i} output {j} 'data' is not an object")


def _invalid(label: str, what: str) -> NoReturn:
    raise NotebookError(
        f"{label}: invalid notebook ({what}); open and re-save it in Jupyter, "
        "or check it with `jupyter nbconvert --to notebook`"
    )


def _is_text(value: Any) -> bool:
    return isinstance(value, str) or _is_lines(value)


def _normalize_cell(cell: Mapping[str, Any], index: int) -> dict[str, Any]:
    """A private copy of one cell with multi-line strings joined and an ``id`` key."""
    out: dict[str, Any] = {
        "cell_type": cell.get("cell_type"),
        "id": cell.get("id"),
        "source": _join(cell.get("source", "")),
        "metadata": copy.deepcopy(dict(cell.get("metadata") or {})),
    }
    if "attachments" in cell:
        out["attachments"] = {
            name: dict(bundle) for name, bundle in (cell.get("attachments") or {}).items()
        }
    if cell.get("cell_type") == "code":
        out["execution_count"] = cell.get("execution_count")
        out["outputs"] = [_normalize_output(o) for o in cell.get("outputs") or []]
    return out


def _normalize_output(output: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(output)
    if "text" in out:
        out["text"] = _join(out["text"])
    if isinstance(out.get("data"), Mapping):
        # Text mimetypes may be stored as lists of lines; base64 too (decode_base64 takes both).
        out["data"] = {
            mime: (_join(value) if _is_lines(value) else value)
            for mime, value in out["data"].items()
        }
    if "traceback" in out:
        out["traceback"] = list(out["traceback"] or [])
    return out


def _is_lines(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _join(value: Any) -> str:
    if isinstance(value, str):
        return value
    if _is_lines(value):
        return "".join(value)
    return "" if value is None else str(value)
