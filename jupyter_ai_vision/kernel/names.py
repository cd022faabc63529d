"""Which ``@name`` texts may reach a kernel: plain dotted identifiers, nothing else.

Shared by the kernel side (``references``, ``ai_repr.kernel_side``) and the server side
(``server.kernels``), which checks again before sending (defence in depth). Stdlib only.
"""

from __future__ import annotations

MAX_NAME_CHARS = 200


def validate_name(name: str) -> str | None:
    """None when ``name`` is a plain dotted identifier, else a one-line reason."""
    shown = name if len(name) <= 40 else name[:39] + "…"
    if not isinstance(name, str) or not name or len(name) > MAX_NAME_CHARS:
        return f"@{shown} was not looked up: names must be 1-{MAX_NAME_CHARS} characters"
    parts = name.split(".")
    if not all(p.isidentifier() for p in parts):
        return (
            f"@{shown} was not looked up: only variable names and attributes like "
            "@df or @obj.attr are supported (no calls, indexing or code)"
        )
    if any(p.startswith("__") and p.endswith("__") for p in parts):
        return (
            f"@{shown} was not looked up: names with double underscores (dunders) are not supported"
        )
    return None
