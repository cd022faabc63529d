"""0.1's import paths keep working for one minor release (and are the same objects)."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest

from jupyter_ai_vision._compat import MOVED


def _param(old: str) -> object:
    """Old paths of the 2.x adapters import Jupyter AI 2.x's API: tested on that host only."""
    if MOVED[old].startswith("jupyter_ai_vision.hosts.jupyter_ai_2."):
        return pytest.param(old, marks=pytest.mark.jupyter_ai_2)
    return old


@pytest.mark.parametrize("old", [_param(old) for old in sorted(MOVED)])
def test_old_path_is_the_module_at_its_new_home(old):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert module is importlib.import_module(MOVED[old])
    assert sys.modules[old] is module
    assert (
        any(
            issubclass(w.category, DeprecationWarning) and "moved to" in str(w.message)
            for w in caught
        )
        or old in sys.modules
    )


@pytest.mark.jupyter_ai_2  # the 0.1 template generated a Jupyter AI 2.x module
def test_the_imports_the_0_1_template_generated_still_work():
    code = (
        "from jupyter_ai_vision.provider import VisionProvider\n"
        "from jupyter_ai_vision.see import SeeChatHandler\n"
        "from jupyter_ai_vision import completion\n"
        "from jupyter_ai_vision.hosts.jupyter_ai_2 import provider, see\n"
        "assert VisionProvider is provider.VisionProvider\n"
        "assert SeeChatHandler is see.SeeChatHandler\n"
        "assert callable(completion.generate) and callable(completion.stream)\n"
        "import jupyter_ai_vision.magics as m\n"
        "assert callable(m.load_ipython_extension)\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "ok"
