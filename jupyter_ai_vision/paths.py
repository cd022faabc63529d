"""Path confinement: the one rule for "this path names a file inside the server root".

Every path that comes from a request or a notebook (a ``/see`` path, an inline completion's
notebook, a markdown image link, an MCP tool's argument) goes through :func:`confine`. It
refuses, with one line each:

- empty paths and NUL bytes;
- UNC / network paths (``\\\\server\\share``, ``//server/share``), ``~`` (home directory),
  absolute paths (``/etc``, ``\\x``, ``C:\\x``, ``C:x``);
- anything whose lexical form (``..`` applied, backslashes read as separators) **or** whose
  real form (every symlink resolved) leaves the root;
- on request: hidden files or folders (``allow_hidden=False``), other suffixes than the allowed
  ones (``notebooks_only=True`` or ``suffixes=``), missing or non-regular files
  (``must_exist=True``).

``url=True`` reads ``path`` as a URL path (a markdown link): ``?query`` and ``#fragment`` are
dropped and percent-encoding is decoded *before* the checks, so ``%2e%2e%2f`` is ``../``.

A leaf module: stdlib only. It touches the file system (``realpath``, ``stat``): call it in
a worker thread from async code when the tree may be slow (network file systems).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Collection
from pathlib import Path
from urllib.parse import unquote

from jupyter_ai_vision._text import quoted
from jupyter_ai_vision.errors import UnsafePath

_DRIVE = re.compile(r"^[a-zA-Z]:")


def confine(
    root: str | os.PathLike[str],
    path: str,
    *,
    base: str | os.PathLike[str] | None = None,
    notebooks_only: bool = False,
    allow_hidden: bool = True,
    must_exist: bool = False,
    suffixes: Collection[str] | None = None,
    file_kind: str = "an allowed file type",
    url: bool = False,
) -> Path:
    """The real (symlink-free) path of ``path`` inside ``root``, or :class:`UnsafePath`.

    ``path`` is relative to ``base`` (a directory inside the root, e.g. the notebook's
    folder; default: the root). ``suffixes`` (lower case, with the dot) are the file types
    allowed, ``file_kind`` names them in the refusal ("an image file").
    ``str(error)`` is one line: ``'<path as given>' <reason>``.
    """
    shown = quoted(path)
    text = path.strip() if isinstance(path, str) else ""
    if url:
        text = unquote(text.split("#", 1)[0].split("?", 1)[0])
    problem = _form_problem(text)
    if problem:
        raise UnsafePath(f"{shown} {problem}")
    relative = text.replace("\\", "/")
    real_root = Path(os.path.realpath(root))
    start = Path(os.path.realpath(base)) if base is not None else real_root
    lexical = Path(os.path.normpath(os.path.join(start, relative)))
    real = Path(os.path.realpath(lexical))
    if not (_inside(lexical, real_root) and _inside(real, real_root)):
        raise UnsafePath(f"{shown} points outside the server root")
    if not allow_hidden and _hidden(real, lexical, real_root):
        raise UnsafePath(f"{shown} names a hidden file or directory")
    allowed = {".ipynb"} if notebooks_only else suffixes
    if allowed is not None and real.suffix.lower() not in allowed:
        kind = "a notebook (.ipynb)" if notebooks_only else file_kind
        raise UnsafePath(f"{shown} is not {kind} ({real.suffix.lower() or 'no suffix'})")
    if must_exist and not _is_regular_file(real):
        raise UnsafePath(f"{shown}: file not found")
    return real


def relative_posix(root: str | os.PathLike[str], confined: Path) -> str:
    """``confined`` (a result of :func:`confine`) as a server-relative POSIX path."""
    return confined.relative_to(os.path.realpath(root)).as_posix()


def _form_problem(text: str) -> str | None:
    """What is wrong with the written form of a path, before it is joined to anything."""
    if not text:
        return "is empty"
    if "\x00" in text:
        return "contains a NUL byte"
    if text.startswith(("\\\\", "//")):
        return "is a UNC/network path"
    if text.startswith("~"):
        return "starts with ~ (home directory)"
    if text.startswith(("/", "\\")) or _DRIVE.match(text):
        return "is an absolute path"
    return None


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _hidden(real: Path, lexical: Path, root: Path) -> bool:
    parts = (*real.relative_to(root).parts, *lexical.relative_to(root).parts)
    return any(part.startswith(".") for part in parts)


def _is_regular_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False
