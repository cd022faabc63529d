"""``%%ai vision:...`` in a REAL kernel: @name references, recent figures, bad inputs.

One ipykernel for the module; every cell goes through jupyter-ai-magics' real ``%%ai`` and
LiteLLM's real HTTP path to the recording model server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fixtures.kernel import Kernel

from jupyter_ai_vision.context import messages
from jupyter_ai_vision.testing import images_in, text_in

pytestmark = [pytest.mark.jupyter_ai_2, pytest.mark.kernel]

KEY = "sk-magics-test-key-0123456789"


@pytest.fixture(scope="module")
def kernel() -> Iterator[Kernel]:
    k = Kernel()
    setup = k.run(
        "%load_ext jupyter_ai_vision\n"
        "import matplotlib.pyplot as plt\n"
        "fig, ax = plt.subplots(figsize=(4, 3), dpi=50)\n"
        "ax.plot([0, 1, 2], [0, 2, 1], color='#ff0000', linewidth=8)\n"
        "plt.close(fig)\n"
        "secret_number = 41\n"
    )
    assert setup["error"] is None, setup["error"]
    yield k
    k.close()


def ai(model_server: Any, prompt: str, *, model: str = "openai/gpt-4o-mini", **params: Any) -> str:
    params = {"api_base": model_server.url, "api_key": KEY, **params}
    # jupyter-ai-magics splits the line on spaces: the JSON must have none
    return f"%%ai vision:{model} -m {json.dumps(params, separators=(',', ':'))}\n{prompt}\n"


def _red_pixels(img: Any) -> int:
    rgb = img.convert("RGB")
    return sum(1 for r, g, b in rgb.getdata() if r > 200 and g < 80 and b < 80)


def test_at_name_sends_the_figure(kernel, model_server):
    model_server.set_reply("A red line that rises then falls.")
    out = kernel.run(ai(model_server, "Describe @fig in one sentence."))
    assert out["error"] is None, out["error"]
    shown = json.dumps(out["data"])
    assert "A red line that rises then falls." in shown
    (body,) = model_server.chat_requests()
    record = model_server.records[-1]
    assert record.headers["authorization"] == f"Bearer {KEY}"
    (img,) = images_in(body)
    assert _red_pixels(img) > 100  # the plotted line, decoded from what the model received
    text = text_in(body)
    assert "Describe @fig in one sentence." in text
    # the object is framed like notebook content: data, not instructions
    assert messages.DATA_NOT_INSTRUCTIONS in text and messages.OPEN in text
    assert text.index(messages.OPEN) < text.index('<kernel-variable name="fig"')
    assert text.index('<kernel-variable name="fig"') < text.index(messages.CLOSE)
    assert KEY not in out["stdout"] + out["stderr"] + shown


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
    rgb = img.convert("RGB")
    blue = sum(1 for r, g, b in rgb.getdata() if b > 200 and r < 80 and g < 80)
    assert blue > 100


def test_curly_interpolation_keeps_jupyter_ai_behaviour(kernel, model_server):
    out = kernel.run(ai(model_server, "Add one to {secret_number}."))
    assert out["error"] is None, out["error"]
    body = model_server.chat_requests()[-1]
    assert "Add one to 41." in text_in(body)
    assert images_in(body) == []


@pytest.mark.parametrize(
    ("prompt", "note"),
    [
        ("Explain @missing_var please", "'missing_var' is not defined"),
        ("Run @__import__('os') now", "was not looked up"),
        ("Show @x; import os", "was not looked up"),
    ],
)
def test_bad_references_give_one_line_notes_and_are_never_evaluated(
    kernel, model_server, prompt, note
):
    kernel.run("x = 5\nimport sys\n_before = set(sys.modules)")
    out = kernel.run(ai(model_server, prompt))
    assert out["error"] is None, out["error"]
    lines = [line for line in out["stderr"].splitlines() if note in line]
    assert len(lines) == 1, out["stderr"]
    body = model_server.chat_requests()[-1]
    assert "<kernel-variable" not in text_in(body)  # nothing was resolved
    assert images_in(body) == []
    # the question still reached the model, with the note
    assert note in text_in(body)


def test_wrong_parameter_type_is_one_line(kernel, model_server):
    out = kernel.run(ai(model_server, "hi", timeout="soon"))
    assert out["error"] is not None
    assert out["error"]["traceback"] == [
        "ModelParameterError: timeout must be a number >= 0.001, not 'soon'"
    ]
    assert model_server.requests == []


def test_invalid_key_is_one_line_without_the_key(kernel, model_server):
    model_server.fail("401")
    out = kernel.run(ai(model_server, "hi", max_retries=0))
    assert out["error"] is not None
    (line,) = out["error"]["traceback"]
    assert "update your API key in the chat settings" in line
    assert KEY not in json.dumps(out)
    assert out["stdout"].strip() == ""  # no LiteLLM banners in the notebook


def test_non_vision_model_gets_text_and_is_told(kernel, model_server):
    out = kernel.run(ai(model_server, "Describe @fig", model="openai/gpt-3.5-turbo"))
    assert out["error"] is None, out["error"]
    body = model_server.chat_requests()[-1]
    assert images_in(body) == []
    assert "Figure" in text_in(body)  # the figure's text representation still went
    shown = json.dumps(out["data"])
    assert "Images were not sent" in shown and "supports_vision" in shown


def test_override_sends_images_to_an_unlisted_model(kernel, model_server):
    out = kernel.run(
        ai(model_server, "Describe @fig", model="openai/gpt-3.5-turbo", supports_vision=True)
    )
    assert out["error"] is None, out["error"]
    assert len(images_in(model_server.chat_requests()[-1])) == 1


def test_last_figure_from_a_cell_result(kernel, model_server):
    shown = kernel.run("from PIL import Image\nImage.new('RGB', (24, 24), (0, 255, 0))")
    assert any("image/png" in d for d in shown["data"])
    out = kernel.run(ai(model_server, "Colour of @last_figure?"))
    assert out["error"] is None, out["error"]
    (img,) = images_in(model_server.chat_requests()[-1])
    assert img.convert("RGB").getpixel((5, 5)) == (0, 255, 0)


def test_many_figures_in_one_question_share_one_image_budget(kernel, model_server):
    """Named figures and @figures count against the same per-request budget (10 images)."""
    shown = kernel.run(
        "import matplotlib.pyplot as plt\n"
        "for i in range(12):\n"
        "    globals()[f'f{i}'], _a = plt.subplots(figsize=(2, 2), dpi=30)\n"
        "    _a.bar([0], [i + 1], color=f'C{i % 10}'); _a.set_title(f'figure {i}')\n"
        "for i in range(9, 12):\n"
        "    display(globals()[f'f{i}'])\n"  # the three remembered for @figures
        "plt.close('all')\n"
    )
    assert shown["error"] is None, shown["error"]
    names = " ".join(f"@f{i}" for i in range(9))  # 9 names + @figures: 10 references
    out = kernel.run(ai(model_server, f"Compare {names} and @figures."))
    assert out["error"] is None, out["error"]
    body = model_server.chat_requests()[-1]
    assert len(images_in(body)) == 10
    budget_notes = [n for n in out["stderr"].splitlines() if "budget: 10 images per request" in n]
    assert len(budget_notes) == 2 and all(n.startswith("@figures: image ") for n in budget_notes)
    assert "budget: 10 images per request" in text_in(body)  # the model is told as well
