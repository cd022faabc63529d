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
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from jupyter_ai_vision import limits
from jupyter_ai_vision.errors import NotebookError
from jupyter_ai_vision.media.markdown import ATTACHMENT_PROBLEMS

SUPPORTED = "a .ipynb file, an nbformat notebook / dict or a jupyter_ydoc YNotebook"


@dataclass
class NotebookSnapshot:
    """A read-only copy of a notebook: nbformat v4 cell dicts (each with an ``id`` key)."""

    cells: list[dict[str, Any]]
    path: Path | None = None
    root_dir: Path | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    #: one-line notes on notebook-level fields that were left out (cells carry their own,
    #: under :data:`NOTES_KEY`)
    notes: list[str] = field(default_factory=list)
    #: when the snapshot is a window of a bigger notebook (inline completion): each cell's
    #: index in the whole notebook, and how many cells the whole notebook has
    numbers: list[int] | None = None
    total_cells: int | None = None

    def number(self, position: int | None) -> int | None:
        """The notebook index of the cell at ``position`` in :attr:`cells`."""
        if position is None or self.numbers is None:
            return position
        return self.numbers[position]

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
    notebook: Any,
    *,
    path: str | os.PathLike[str] | None = None,
    root_dir: Any = None,
    max_bytes: int | None = None,
) -> NotebookSnapshot:
    """Take a snapshot of ``notebook`` (YNotebook, dict / NotebookNode or path).

    ``path`` names the notebook when it is given as an object (for relative markdown links);
    ``root_dir`` bounds local links (defaults to the notebook's directory); ``max_bytes``
    bounds a file's size (see :func:`read_notebook_file`).
    """
    nb_path = Path(path).absolute() if path is not None else None
    if isinstance(notebook, (str, os.PathLike)):
        nb_path = Path(notebook).absolute()
        data = read_notebook_json(nb_path, max_bytes)
    elif _is_ynotebook(notebook):
        data = read_ynotebook(notebook)
    elif isinstance(notebook, Mapping):
        data = notebook
    else:
        raise NotebookError(
            f"unsupported notebook object {type(notebook).__name__}: pass {SUPPORTED}"
        )
    label = str(nb_path) if nb_path else "notebook"
    notes: list[str] = []
    cells, metadata = _validated_cells(data, label, notes)
    root = Path(root_dir).absolute() if root_dir is not None else None
    if root is None and nb_path is not None:
        root = nb_path.parent
    return NotebookSnapshot(
        cells=cells, path=nb_path, root_dir=root, metadata=metadata, notes=notes
    )


# O_NONBLOCK: a FIFO swapped in after the stat cannot block the open (POSIX only, like FIFOs).
_OPEN_FLAGS = os.O_RDONLY | sum(
    getattr(os, flag, 0) for flag in ("O_NONBLOCK", "O_NOCTTY", "O_CLOEXEC", "O_BINARY")
)


def read_notebook_file(
    path: str | os.PathLike[str], max_bytes: int | None = None, *, name: str | None = None
) -> bytes:
    """The bytes of a notebook file, refusing before reading anything that is not a regular
    file (a FIFO would block forever, ``/dev/zero`` never ends) or is larger than
    ``max_bytes`` (default :data:`~jupyter_ai_vision.limits.MAX_NOTEBOOK_BYTES`).

    The one place notebooks are read from disk (CLI, ``/see``'s and completion's disk
    fallbacks). Opened with ``O_NONBLOCK`` and checked again with ``fstat`` on the open file,
    so a path swapped for a FIFO after the first check cannot block either. Raises
    :class:`NotebookError` with one line naming the file as ``name`` (default: ``path``).
    """
    label = name or str(path)
    limit = limits.MAX_NOTEBOOK_BYTES if max_bytes is None else max_bytes
    try:
        _check_file(label, os.stat(path), limit)  # before open(): opening a device may act
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise NotebookError(f"{label}: no such notebook; pass the path to a .ipynb file") from None
    except OSError as exc:
        raise NotebookError(f"{label}: cannot read the notebook ({exc.strerror})") from None
    try:
        opened = os.fstat(fd)
        _check_file(label, opened, limit)
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(opened.st_size + 1)
            if len(data) > opened.st_size:  # it grew since the check: read on, up to the limit
                data += f.read(limit + 1 - len(data))
    except OSError as exc:
        raise NotebookError(f"{label}: cannot read the notebook ({exc.strerror})") from None
    finally:
        os.close(fd)
    check_notebook_size(len(data), limit, name=label)
    return data


def read_notebook_json(
    path: str | os.PathLike[str], max_bytes: int | None = None, *, name: str | None = None
) -> Any:
    """The parsed JSON of a notebook file (:func:`read_notebook_file`): integers too long for
    ``int()`` become floats, values nested past the parser's limit are cut (the normaliser
    then leaves their field out with a note). Raises :class:`NotebookError` (one line)."""
    label = name or str(path)
    raw = read_notebook_file(path, max_bytes, name=label)
    if not raw.strip():
        raise NotebookError(f"{label}: the file is empty; a notebook is a JSON (.ipynb) document")
    try:
        try:
            return json.loads(raw, parse_int=limits.bounded_int)
        except RecursionError:  # nested past the parser's limit: cut the deep values, retry
            return json.loads(_cut_deep_values(raw.decode("utf-8")), parse_int=limits.bounded_int)
    except RecursionError:
        raise NotebookError(
            f"{label}: not a usable notebook (its JSON is nested too deeply to parse)"
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        msg = str(exc).splitlines()[0]
        raise NotebookError(f"{label}: not valid notebook JSON ({msg})") from None


def check_notebook_size(size: int, max_bytes: int | None = None, *, name: str) -> None:
    """Refuse (:class:`NotebookError`, one line) a notebook of ``size`` bytes over the limit:
    for readers that learn the size another way (a contents manager's model)."""
    limit = limits.MAX_NOTEBOOK_BYTES if max_bytes is None else max_bytes
    if size > limit:
        raise NotebookError(
            f"{name}: the file is {_megabytes(size)}, over the {_megabytes(limit)} limit for "
            "notebooks (set JUPYTER_AI_VISION_MAX_NOTEBOOK_MB to raise it)"
        )


def _check_file(label: str, st: os.stat_result, limit: int) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise NotebookError(f"{label}: is a directory; pass the path to a .ipynb file")
    if not stat.S_ISREG(st.st_mode):
        raise NotebookError(
            f"{label}: not a regular file ({_file_kind(st.st_mode)}); "
            "a notebook is a .ipynb file on disk"
        )
    check_notebook_size(st.st_size, limit, name=label)


def _file_kind(mode: int) -> str:
    kinds = [
        (stat.S_ISFIFO, "a FIFO / named pipe"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ]
    return next((name for test, name in kinds if test(mode)), "a special file")


def _megabytes(n: int) -> str:
    return f"{n / (1024 * 1024):,.0f} MB" if n >= 1024 * 1024 else f"{n:,} bytes"


# A JSON string (possessive, and even a lone trailing backslash matches, so an unclosed one
# runs to the end in one step instead of being rescanned from every quote) or a bracket.
_JSON_TOKEN = re.compile(r'"(?:[^"\\]++|\\.?)*+(?:"|\Z)|[\[\]{}]', re.DOTALL)


def _cut_deep_values(text: str) -> str:
    """``text`` with every JSON value nested deeper than ``MAX_JSON_DEPTH + 8`` replaced by
    ``null``: the field holding it (at most 7 levels below the top: cells, outputs, data) is
    then still too deep, so the normaliser leaves it out with a note, and the rest of the
    notebook is read. One pass over strings and brackets (linear)."""
    cut_depth = limits.MAX_JSON_DEPTH + 8
    out: list[str] = []
    depth, pos, cut_from = 0, 0, -1
    for token in _JSON_TOKEN.finditer(text):
        char = token.group()[0]
        if char in "[{":
            depth += 1
            if depth == cut_depth and cut_from < 0:
                cut_from = token.start()
        elif char in "]}":
            if depth == cut_depth and cut_from >= 0:
                out += [text[pos:cut_from], "null"]
                pos, cut_from = token.end(), -1
            depth -= 1
    return text if cut_from >= 0 else "".join(out) + text[pos:]  # unclosed: json says why


def _is_ynotebook(obj: Any) -> bool:
    # Duck-typed so that importing this module never imports jupyter_ydoc / pycrdt.
    return type(obj).__name__ == "YNotebook" and hasattr(obj, "ycells") and hasattr(obj, "get")


def read_ynotebook(ynb: Any) -> dict[str, Any]:
    """Read a live YNotebook once, consistently, without writing to it.

    ``get()`` de-duplicates cell ids by writing new ids into the document, so it is called with
    ``deduplicate=False``; one transaction gives a consistent view of all cells.
    """
    try:
        with ynb.ydoc.transaction():
            return dict(ynb.get(deduplicate=False))
    except Exception as exc:  # a document torn down mid-read, a broken model
        raise NotebookError(f"cannot read the live notebook: {exc}") from None


def _validated_cells(
    data: Any, label: str, notes: list[str]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The notebook's cells, normalised; only a notebook without a cell list is unusable."""
    if not isinstance(data, Mapping):
        raise NotebookError(f"{label}: not a notebook (top level is not a JSON object)")
    major = data.get("nbformat")
    if major is None or "cells" not in data and "worksheets" not in data:
        raise NotebookError(f"{label}: not a notebook (no 'nbformat' / 'cells'); pass {SUPPORTED}")
    if major != 4:
        data = _convert(data, label)
    cells = data.get("cells")
    if not isinstance(cells, list):
        _invalid(label, "'cells' is not a list")
    metadata = _json_object(data.get("metadata"), "notebook metadata", notes)
    return [_Normaliser(i).cell(c) for i, c in enumerate(cells)], metadata


def _convert(data: Mapping[str, Any], label: str) -> Mapping[str, Any]:
    """Upgrade v1-v3 notebooks to v4 (on a copy)."""
    import nbformat

    try:
        nb = nbformat.from_dict(copy.deepcopy(dict(data)))
        return nbformat.convert(nb, 4)
    except Exception as exc:  # RecursionError included: a copy of absurdly deep JSON
        raise NotebookError(
            f"{label}: unsupported notebook format {_short(data.get('nbformat'))} "
            f"({_short(exc)}); only nbformat 3 and 4 notebooks are read"
        ) from None


def _invalid(label: str, what: str) -> NoReturn:
    raise NotebookError(
        f"{label}: invalid notebook ({what}); open and re-save it in Jupyter, "
        "or check it with `jupyter nbconvert --to notebook`"
    )


# --- the schema-tolerant normaliser -------------------------------------------------------
#
# Every field of a notebook is untrusted. Each cell is copied into the shape the rest of the
# package relies on (strings are strings, lists are lists, JSON no deeper than
# limits.MAX_JSON_DEPTH); a field of the wrong type is dropped or replaced by an empty value,
# with a one-line note on the cell (NOTES_KEY), and the rest of the notebook is still used.

#: Key of a normalised cell holding one-line notes on what was left out of it; the
#: extraction reports each as a skipped item.
NOTES_KEY = "_vision_notes"

_CELL_TYPES = ("code", "markdown", "raw")
_OUTPUT_TYPES = ("execute_result", "display_data", "stream", "error")
_MAX_ID_CHARS = 200  # nbformat's ids are at most 64 characters


class _Normaliser:
    """Normalises one cell (index ``index``), collecting its notes."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.notes: list[str] = []

    def note(self, what: str) -> None:
        if len(self.notes) < 20:  # one broken cell must not flood the skipped list
            self.notes.append(what)

    def cell(self, cell: Any) -> dict[str, Any]:
        if not isinstance(cell, Mapping):
            self.note(f"cell {self.index} is not a JSON object ({_type(cell)}); left out")
            return self.done({"cell_type": "raw", "id": None, "source": "", "metadata": {}})
        kind = cell.get("cell_type")
        if kind not in _CELL_TYPES:
            self.note(f"cell_type {_short(kind)} is not code, markdown or raw; read as raw")
            kind = "raw"
        out: dict[str, Any] = {
            "cell_type": kind,
            "id": self.cell_id(cell.get("id")),
            "source": self.text(cell.get("source", ""), "source"),
            "metadata": _json_object(cell.get("metadata"), "metadata", self.notes),
        }
        if "attachments" in cell:
            out["attachments"], problems = self.attachments(cell.get("attachments"))
            if problems:
                out[ATTACHMENT_PROBLEMS] = problems
        if kind == "code":
            out["execution_count"] = self.count(cell.get("execution_count"), "execution_count")
            outputs = cell.get("outputs")
            if not isinstance(outputs, list):
                if outputs is not None:
                    self.note(f"'outputs' is not a list ({_type(outputs)}); outputs left out")
                outputs = []
            out["outputs"] = [self.output(j, o) for j, o in enumerate(outputs)]
        return self.done(out)

    def done(self, cell: dict[str, Any]) -> dict[str, Any]:
        if self.notes:
            cell[NOTES_KEY] = self.notes
        return cell

    # --- fields -------------------------------------------------------------------------

    def cell_id(self, value: Any) -> str | None:
        if value is None or isinstance(value, str) and len(value) <= _MAX_ID_CHARS:
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)[:_MAX_ID_CHARS]  # e.g. a numeric id written by some tool
        self.note(f"cell id is not a short string ({_type(value)}); ignored")
        return None

    def count(self, value: Any, what: str) -> int | None:
        if value is None or isinstance(value, int) and not isinstance(value, bool):
            return value if value is None or abs(value) < 10**18 else None
        self.note(f"{what} is not a whole number ({_short(value)}); ignored")
        return None

    def text(self, value: Any, what: str) -> str:
        """A string field: str, or a list of lines (nbformat's multiline strings)."""
        if isinstance(value, str):
            return value
        if isinstance(value, list):
            lines = [v if isinstance(v, str) else _scalar_text(v) for v in value]
            if any(line is None for line in lines):
                self.note(f"{what}: a line is not text; those lines left out")
            return "".join(line for line in lines if line is not None)
        if value is not None:
            if (scalar := _scalar_text(value)) is not None:
                return scalar
            self.note(f"{what} is not text ({_type(value)}); left out")
        return ""

    def attachments(self, value: Any) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """Usable attachment bundles, and why each other one is not (said only if a
        markdown link uses it: see ``markdown.load_attachment``)."""
        if not isinstance(value, Mapping):
            if value is not None:
                self.note(f"'attachments' is not an object ({_type(value)}); left out")
            return {}, {}
        usable, problems = {}, {}
        for name, bundle in value.items():
            if not isinstance(bundle, Mapping):
                problems[str(name)] = f"is not a mime bundle ({_type(bundle)})"
                continue
            dropped: list[str] = []
            kept = self.bundle(bundle, "", dropped)
            if dropped or not kept:
                why = dropped[0].removeprefix(": ").removesuffix("; left out") if dropped else ""
                problems[str(name)] = f"is unusable: {why}" if why else "is empty"
            else:
                usable[str(name)] = kept
        return usable, problems

    def bundle(
        self, bundle: Mapping[Any, Any], where: str, notes: list[str] | None = None
    ) -> dict[str, Any]:
        """A mime bundle: text and base64 mimes as strings, JSON mimes bounded in depth;
        what is dropped is noted in ``notes`` (default: the cell's notes)."""
        note = self.note if notes is None else notes.append
        out: dict[str, Any] = {}
        for mime, value in bundle.items():
            mime = str(mime)
            if _is_lines(value):
                out[mime] = "".join(value)
            elif isinstance(value, str) or _is_json_mime(mime) and _scalar_text(value) is not None:
                out[mime] = value
            elif _is_json_mime(mime) and isinstance(value, dict | list):
                if limits.json_depth_exceeds(value):
                    note(
                        f"{where}: {_short(mime)} is nested deeper than "
                        f"{limits.MAX_JSON_DEPTH} levels; left out"
                    )
                else:
                    out[mime] = value
            else:
                note(f"{where}: {_short(mime)} is not text ({_type(value)}); left out")
        return out

    def output(self, j: int, output: Any) -> dict[str, Any]:
        where = f"output {j}"
        if not isinstance(output, Mapping) or output.get("output_type") not in _OUTPUT_TYPES:
            kind = output.get("output_type") if isinstance(output, Mapping) else None
            self.note(
                f"{where} has no valid output_type ({_short(kind) if kind else _type(output)}); left out"
            )
            return {"output_type": "invalid"}
        kind = output["output_type"]
        out: dict[str, Any] = {"output_type": kind}
        if kind == "stream":
            name = output.get("name")
            out["name"] = name if isinstance(name, str) and len(name) <= 40 else "stdout"
            out["text"] = self.text(output.get("text", ""), f"{where} text")
        elif kind == "error":
            out["ename"] = self.text(output.get("ename", "Error"), f"{where} ename")
            out["evalue"] = self.text(output.get("evalue", ""), f"{where} evalue")
            out["traceback"] = self.traceback(output.get("traceback"), where)
        else:
            data = output.get("data")
            if not isinstance(data, Mapping):
                if data is not None:
                    self.note(f"{where}: 'data' is not a mime bundle ({_type(data)}); left out")
                    return {"output_type": "invalid"}
                data = {}
            out["data"] = self.bundle(data, where)
            if data and not out["data"]:  # every representation was unusable (noted)
                return {"output_type": "invalid"}
            metadata = output.get("metadata")
            out["metadata"] = _json_object(metadata, f"{where} metadata", self.notes)
            if "execution_count" in output:
                out["execution_count"] = self.count(
                    output["execution_count"], f"{where} execution_count"
                )
        return out

    def traceback(self, value: Any, where: str) -> list[str]:
        if isinstance(value, list):
            lines = [v if isinstance(v, str) else _scalar_text(v) for v in value]
            if any(line is None for line in lines):
                self.note(f"{where}: traceback lines that are not text left out")
            return [line for line in lines if line is not None]
        if value is not None:
            self.note(f"{where}: 'traceback' is not a list of lines ({_type(value)}); left out")
        return []


def _json_object(value: Any, what: str, notes: list[str]) -> dict[str, Any]:
    """A private copy of a JSON object field; ``{}`` (with a note) when it is something
    else or nested deeper than :data:`~jupyter_ai_vision.limits.MAX_JSON_DEPTH`."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        notes.append(f"{what} is not an object ({_type(value)}); ignored")
        return {}
    if limits.json_depth_exceeds(dict(value)):
        notes.append(f"{what} is nested deeper than {limits.MAX_JSON_DEPTH} levels; ignored")
        return {}
    return copy.deepcopy(dict(value))


def _is_json_mime(mime: str) -> bool:
    return mime.endswith(("json", "+json")) or mime == "application/json"


def _scalar_text(value: Any) -> str | None:
    """A number or boolean as text (a notebook writer may store them); None otherwise."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value) if not isinstance(value, int) or abs(value) < 10**100 else "(huge number)"
    return None


def _type(value: Any) -> str:
    names = {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }
    return names.get(type(value), "null" if value is None else f"a {type(value).__name__}")


def _short(value: Any) -> str:
    from jupyter_ai_vision._text import quoted

    return quoted(value, 60)


def _is_lines(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)
