"""``_ai_repr_``: objects describe themselves to the AI (JEP 129).

>>> from jupyter_ai_vision.ai_repr import ai_repr, register
>>> ai_repr(df)                      # {"text/plain": "pandas.DataFrame: 1,000 rows × 3 columns ..."}
>>> old = register("mylib.Thing", lambda obj, **kw: {"text/plain": obj.describe()})

Importing this package imports nothing heavy (no pandas, numpy, matplotlib, PIL...).
"""

from __future__ import annotations

from jupyter_ai_vision.ai_repr.registry import (
    AiReprRegistry,
    ReprResult,
    ai_repr,
    ai_repr_async,
    register,
    registry,
    unregister,
)

__all__ = [
    "AiReprRegistry",
    "ReprResult",
    "ai_repr",
    "ai_repr_async",
    "register",
    "registry",
    "unregister",
    "formatter",
]

#: The JEP's name for the registry: ``formatter(obj)`` is ``ai_repr(obj)``.
formatter = registry


def _install_builtins() -> None:
    # Records dotted class names only: none of those libraries is imported.
    from jupyter_ai_vision.ai_repr.builtins import install

    install(registry)


_install_builtins()
