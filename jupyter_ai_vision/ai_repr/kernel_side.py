"""Runs inside the kernel: the fixed entry point the Jupyter server calls for ``@name``.

The server sends, as a ``user_expressions`` entry of a silent ``execute_request``::

    __import__('jupyter_ai_vision.ai_repr.kernel_side', fromlist=['fetch']).fetch(globals(), '<json>')

The names travel inside the JSON string literal (data, never code); :func:`fetch` validates
them again and walks them with ``getattr`` against the user namespace.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

#: Repr kwargs the server may set; anything else in the payload is ignored.
_ALLOWED_KWARGS = ("mimetypes", "max_chars", "max_bytes", "timeout")


class Reply:
    """Displays as ``application/json`` so IPython ships the entries without re-encoding."""

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self.entries = entries

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {"application/json": {"entries": self.entries}}

    def __repr__(self) -> str:
        return f"<jupyter-ai-vision reply: {len(self.entries)} entries>"


def fetch(namespace: Mapping[str, Any], payload: str) -> Reply:
    """``ai_repr`` of each requested name in ``namespace``; see :mod:`jupyter_ai_vision.kernel.references`."""
    from jupyter_ai_vision.kernel.references import fetch_entries

    request = json.loads(payload)
    names = [n for n in request.get("names", []) if isinstance(n, str)]
    kwargs = {k: v for k, v in (request.get("kwargs") or {}).items() if k in _ALLOWED_KWARGS}
    return Reply(fetch_entries(names, namespace, **kwargs))
