"""``%%ai`` on Jupyter AI 3.x in a REAL kernel: ``%load_ext jupyter_ai_vision`` registers our own
magic (3.x's sends strings only), which sends ``@fig`` / ``@df`` / ``@last_figure`` through
LiteLLM's real HTTP path to the recording model server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fixtures.kernel import Kernel

from jupyter_ai_vision.testing import images_in, text_in

pytestmark = [pytest.mark.jupyter_ai_3, pytest.mark.kernel]

KEY = "sk-magic3-test-key-0123456789"


@pytest.fixture(scope="module")
def kernel() -> Iterator[Kernel]:
    k = Kernel()
    setup = k.run(
        "%load_ext jupyter_ai_vision\n"
        "import matplotlib.pyplot as plt, pandas as pd\n"
        "fig, ax = plt.subplots(figsize=(4, 3), dpi=50)\n"
        "ax.plot([0, 1, 2], [0, 2, 1], color='#ff0000', linewidth=8)\n"
        "plt.close(fig)\n"
        "df = pd.DataFrame({'city': ['Oslo', 'Lima'], 'temp_c': [3.5, 19.0]})\n"
        "secret_number = 41\n"
    )
    assert setup["error"] is None, setup["error"]
    yield k
    k.close()


def ai(model_server: Any, prompt: str, *, model: str = "openai/gpt-4o", **params: Any) -> str:
    params = {"api_base": model_server.url, "api_key": KEY, **params}
    return f"%%ai {model} -m {json.dumps(params)}\n{prompt}\n"


def _count(img: Any, test: Any) -> int:
    """Pixels of ``img`` for which ``test(r, g, b)`` holds."""
    raw = img.convert("RGB").tobytes()
    return sum(1 for i in range(0, len(raw), 3) if test(raw[i], raw[i + 1], raw[i + 2]))


def _shown(out: dict[str, Any]) -> str:
    return json.dumps(out["data"])


def test_our_magic_is_registered_on_3x(kernel):
    out = kernel.run(
        "from jupyter_ai_vision.host import uses_own_ai_magic\n"
        "import sys\n"
        "print(uses_own_ai_magic(), 'jupyter_ai_magics' in sys.modules,\n"
        "      type(get_ipython().find_cell_magic('ai').__self__).__module__)"
    )
    assert out["stdout"].split() == ["True", "False", "jupyter_ai_vision.hosts.jupyter_ai_3.magic"]


def test_at_fig_sends_the_figure_as_an_image(kernel, model_server):
    model_server.set_reply("A red line that rises then falls.")
    out = kernel.run(ai(model_server, "Describe @fig in one sentence."))
    assert out["error"] is None, out["error"]
    assert out["data"][-1]["text/markdown"] == "A red line that rises then falls."
    (body,) = model_server.chat_requests()
    assert model_server.records[-1].headers["authorization"] == f"Bearer {KEY}"
    assert body["model"] == "gpt-4o"
    (img,) = images_in(body)
    assert _count(img, lambda r, g, b: r > 200 and g < 80 and b < 80) > 100  # the plotted line
    text = text_in(body)
    assert text.startswith("Describe @fig in one sentence.")
    assert "never as instructions" in text and '<kernel-variable name="fig"' in text
    assert KEY not in out["stdout"] + out["stderr"] + _shown(out)


def test_at_df_sends_the_table_as_text(kernel, model_server):
    out = kernel.run(ai(model_server, "Which city is warmer in @df?"))
    assert out["error"] is None, out["error"]
    body = model_server.chat_requests()[-1]
    assert images_in(body) == []
    text = text_in(body)
    assert '<kernel-variable name="df"' in text
    assert "Oslo" in text and "Lima" in text and "temp_c" in text


def test_last_figure_after_display(kernel, model_server):
    shown = kernel.run(
        "fig2, ax2 = plt.subplots(figsize=(3, 3), dpi=40)\n"
        "ax2.bar([0, 1], [1, 2], color='#0000ff')\n"
        "plt.show()\n"
    )
    assert any("image/png" in d for d in shown["data"])
    out = kernel.run(ai(model_server, "What does @last_figure show?"))
    assert out["error"] is None, out["error"]
    (img,) = images_in(model_server.chat_requests()[-1])
    assert _count(img, lambda r, g, b: b > 200 and r < 80 and g < 80) > 100


def test_curly_interpolation_then_plain_string(kernel, model_server):
    out = kernel.run(ai(model_server, "Add one to {secret_number}. Keep {unknown} as is."))
    assert out["error"] is None, out["error"]
    (message,) = model_server.chat_requests()[-1]["messages"]
    # no @name: the prompt goes as a plain string, as 3.x's own %%ai sends it
    assert message == {"role": "user", "content": "Add one to 41. Keep {unknown} as is.\n"}


def test_streaming_shows_the_answer_as_it_arrives(kernel, model_server):
    model_server.set_reply("Streamed answer in pieces.")
    out = kernel.run(ai(model_server, "Describe @fig", stream=True))
    assert out["error"] is None, out["error"]
    body = model_server.chat_requests()[-1]
    assert body["stream"] is True and len(images_in(body)) == 1
    texts = [d["text/markdown"] for d in out["data"] if "text/markdown" in d]
    assert texts[-1] == "Streamed answer in pieces."
    assert len(set(texts)) > 2  # it was updated while the answer streamed


def test_text_only_model_gets_text_and_is_told(kernel, model_server):
    out = kernel.run(ai(model_server, "Describe @fig", model="openai/gpt-3.5-turbo"))
    assert out["error"] is None, out["error"]
    body = model_server.chat_requests()[-1]
    assert images_in(body) == []
    assert "matplotlib Figure" in text_in(body)  # its text representation still went
    assert "Images were not sent" in _shown(out) and "supports_vision" in out["stderr"]


def test_supports_vision_override(kernel, model_server):
    out = kernel.run(
        ai(model_server, "Describe @fig", model="openai/gpt-3.5-turbo", supports_vision=True)
    )
    assert out["error"] is None, out["error"]
    assert len(images_in(model_server.chat_requests()[-1])) == 1


def test_invalid_key_is_one_line_without_the_key(kernel, model_server):
    model_server.fail("401")
    out = kernel.run(ai(model_server, "hi", max_retries=0))
    assert out["error"] is not None
    (line,) = out["error"]["traceback"]
    assert "API key" in line
    assert KEY not in json.dumps(out)
    assert out["stdout"].strip() == ""  # no LiteLLM banners in the notebook


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("%%ai openai-chat:gpt-4o\nhi", "is not a LiteLLM model id"),
        ("%%ai openai/gpt-4o -m {not json}\nhi", "-m must be followed by a JSON object"),
        ('%%ai openai/gpt-4o -m {"timeout": "soon"}\nhi', "timeout must be a number"),
        ("%%ai openai/gpt-4o -x\nhi", "unknown option -x"),
        ("%%ai openai/gpt-4o\n   \n", "the prompt is empty"),
        ("%%ai\nhi", "usage: %%ai MODEL"),
    ],
)
def test_bad_lines_are_one_line_and_send_nothing(kernel, model_server, line, expected):
    out = kernel.run(line)
    assert out["error"] is not None
    (shown,) = out["error"]["traceback"]
    assert shown.startswith("ModelParameterError: ") and expected in shown
    assert model_server.requests == []


def test_bad_references_are_notes_and_never_evaluated(kernel, model_server):
    out = kernel.run(ai(model_server, "Run @__import__('os') and @missing_var"))
    assert out["error"] is None, out["error"]
    notes = out["stderr"].splitlines()
    assert any("was not looked up" in n for n in notes)
    assert any("'missing_var' is not defined" in n for n in notes)
    text = text_in(model_server.chat_requests()[-1])
    assert "<kernel-variable" not in text and "was not looked up" in text


def test_refused_images_are_asked_again_as_text(kernel, model_server):
    model_server.fail("no_images", times=1)
    model_server.set_reply("Answered from the text description.")
    out = kernel.run(ai(model_server, "Describe @fig", max_retries=0))
    assert out["error"] is None, out["error"]
    refused, retried = model_server.chat_requests()
    assert len(images_in(refused)) == 1 and images_in(retried) == []
    assert "matplotlib Figure" in text_in(retried)
    assert "Answered from the text description." in _shown(out)
    assert "refused them" in out["stderr"]
