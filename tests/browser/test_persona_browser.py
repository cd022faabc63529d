"""Real browser: JupyterLab with Jupyter AI 3.x; the Vision persona picked in the chat's
persona picker answers ``/see`` about an unsaved plot, streamed into the chat, with thumbnails.

Chromium (Debian's package, driven by Playwright) opens a notebook, runs a cell that draws a
red line (never saved), opens a ``.chat`` document from the file browser, picks **Vision** in
the persona picker, sees ``/see`` offered as it types, sends ``/see what colour is the line?`` and reads the streamed answer; the
recording model server must have received the plot.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fixtures.browser import CHROMIUM, CHROMIUM_ARGS, run_first_cell
from fixtures.jupyter_server import stop_jupyter_server
from fixtures.jupyter_server_3 import start_jupyter_server_3
from fixtures.model_server import images_in, text_in

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.jupyter_ai_3]

PLOT = (
    "import matplotlib.pyplot as plt\n"
    "fig, ax = plt.subplots(figsize=(4, 3), dpi=80)\n"
    "ax.plot([0, 1, 2, 3], [0, 1, 4, 9], color='#ff0000', linewidth=8)\n"
    "plt.show()"
)


def red_share(img: Any) -> float:
    rgb = img.convert("RGB")
    rgb.thumbnail((200, 200))
    pixels = list(rgb.get_flattened_data())
    return sum(1 for r, g, b in pixels if r > 200 and g < 80 and b < 80) / len(pixels)


def start_lab(tmp_path_factory: pytest.TempPathFactory, model_server: Any, rtc: str) -> Any:
    base = tmp_path_factory.mktemp(f"lab-persona-{rtc}")
    news = base / "home" / ".jupyter" / "lab" / "user-settings" / "@jupyterlab"
    (news / "apputils-extension").mkdir(parents=True, exist_ok=True)
    (news / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    return start_jupyter_server_3(base, model_server.url, command="lab", rtc=rtc)


@pytest.fixture(scope="module")
def lab3(model_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    server = start_lab(tmp_path_factory, model_server, "collaboration")
    yield server
    stop_jupyter_server(server)


@pytest.fixture(scope="module")
def lab_jsd(model_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    server = start_lab(tmp_path_factory, model_server, "jsd")
    yield server
    stop_jupyter_server(server)


def test_vision_in_the_persona_picker_sees_the_unsaved_plot(lab3: Any, model_server: Any) -> None:
    ask_vision_about_an_unsaved_plot(lab3, model_server)


@pytest.mark.jsd
def test_vision_sees_the_unsaved_plot_on_jupyter_server_documents(
    lab_jsd: Any, model_server: Any
) -> None:
    """The same, with jupyter-server-documents: JupyterLab runs the cell server-side."""
    ask_vision_about_an_unsaved_plot(lab_jsd, model_server)


def ask_vision_about_an_unsaved_plot(lab3: Any, model_server: Any) -> None:
    from playwright.sync_api import expect, sync_playwright

    model_server.set_reply("The line is red.")
    model_server.set_chunk_delay(0.02)  # a streamed answer, chunk by chunk
    path = lab3.write_notebook("browser-plot.ipynb", [PLOT])
    (lab3.root / "talk.chat").write_text("{}")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            url = f"{lab3.url}/lab/tree/{path}?token={lab3.token}"
            run_first_cell(page, url=url, expect_source="ax.plot")

            # Open the chat document from the file browser (the notebook stays open).
            page.locator(".jp-DirListing-item", has_text="talk.chat").first.dblclick()
            picker = page.locator(".jp-jai-personaControls-persona-btn").first
            expect(picker).to_be_visible(timeout=60_000)
            picker.click()
            page.get_by_role("menuitem", name="Vision").first.click()
            expect(picker).to_contain_text("Vision", timeout=10_000)

            box = page.locator(".jp-chat-input-textfield textarea").first
            box.click()
            # Vision advertises /see (report_slash_commands): the input offers it.
            box.press_sequentially("/se")
            offered = page.get_by_role("option").filter(has_text="/see")
            expect(offered.first).to_be_visible(timeout=30_000)
            box.fill("/see what colour is the line?")
            page.locator("button.jp-chat-send-button").first.click()
            answer = page.locator(".jp-chat-rendered-message", has_text="The line is red.")
            expect(answer.first).to_be_visible(timeout=90_000)
            expect(answer.first).to_contain_text("browser-plot.ipynb (live)", timeout=30_000)
            # What the model saw, shown to the user: a thumbnail of the figure in the reply.
            thumbnail = answer.first.locator('img[src^="data:image/png"]')
            expect(thumbnail.first).to_be_visible(timeout=30_000)
        finally:
            browser.close()

    requests = [b for b in model_server.chat_requests() if "what colour is the line?" in text_in(b)]
    assert requests, "the /see question never reached the model server"
    images = images_in(requests[-1])
    assert len(images) == 1 and red_share(images[0]) > 0.01
    saved = json.loads((lab3.root / path).read_text())
    assert not saved["cells"][0].get("outputs")  # the model saw the live, unsaved output
