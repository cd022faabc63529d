"""Old import paths (0.1's flat modules) keep working for one minor release.

0.2 moved the flat modules into packages by where they run (see the README's development
section). ``import jupyter_ai_vision.provider`` and ``from jupyter_ai_vision.see import
SeeChatHandler`` still work: this finder hands out the module at its new home under the old
name too (the same module object, so ``isinstance`` and monkeypatching behave), with a
DeprecationWarning. Remove in 0.3.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from types import ModuleType

#: old dotted name -> new dotted name; the one table of moved modules
MOVED: dict[str, str] = {
    f"jupyter_ai_vision.{old}": f"jupyter_ai_vision.{new}"
    for old, new in {
        "parts": "context.parts",
        "snapshot": "context.snapshot",
        "extract": "context.extract",
        "builder": "context.builder",
        "budget": "context.budget",
        "images": "media.raster",
        "svg": "media.svg",
        "vega": "media.vega",
        "plotly_figures": "media.plotly",
        "html_text": "media.html",
        "markdown_images": "media.markdown",
        "chat_model": "llm.chat_model",
        "embeddings": "hosts.jupyter_ai_2.embeddings",
        "provider": "hosts.jupyter_ai_2.provider",
        "see": "hosts.jupyter_ai_2.see",
        "completion": "hosts.jupyter_ai_2.completion",
        "live": "server.notebooks",
        "kernel_query": "server.kernels",
        "magics": "kernel.extension",
        "references": "kernel.references",
        "report": "cli.report",
    }.items()
}


class _Alias(importlib.abc.Loader):
    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warnings.warn(
            f"{spec.name} moved to {self.new}; the old path goes away in 0.3",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module(self.new)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module was executed at its new home."""


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.util.spec_from_loader(fullname, _Alias(new))


def install() -> None:
    """Add the finder once (idempotent, so reloading the package does not stack finders)."""
    if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedModuleFinder())
