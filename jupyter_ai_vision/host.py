"""Which Jupyter AI is installed, from package metadata.

Jupyter AI 2.x and 3.x are both the distribution ``jupyter-ai`` and both import as
``jupyter_ai``, so importing tells nothing: the version in the metadata does. A leaf module
(stdlib only); nothing here imports a host.
"""

from __future__ import annotations

import importlib.metadata


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def jupyter_ai_major() -> int | None:
    """The installed Jupyter AI's major version (2, 3, ...), or None when it is not installed."""
    version = _version("jupyter-ai")
    if version is None:
        return None
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else None


def has_jupyter_ai_magics() -> bool:
    """Whether Jupyter AI 2.x's ``%%ai`` (the ``jupyter-ai-magics`` distribution) is installed."""
    return _version("jupyter-ai-magics") is not None


def uses_own_ai_magic() -> bool:
    """Whether ``%load_ext jupyter_ai_vision`` registers our own ``%%ai`` (Jupyter AI 3.x, whose
    ``%%ai`` sends strings only, or no Jupyter AI 2.x magics at all) instead of loading
    jupyter-ai-magics with the ``vision`` provider."""
    major = jupyter_ai_major()
    return (major is not None and major >= 3) or not has_jupyter_ai_magics()
