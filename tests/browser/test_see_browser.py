"""Real browser: JupyterLab + jupyter-ai's chat panel + ``/see`` on an unsaved plot.

Chromium (Debian's package, driven by Playwright) opens a notebook, runs a cell that draws a
red line (never saved), types ``/see what colour is the line?`` in the chat panel, clicks send
and reads the streamed answer; the recording model server must have received the plot.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fixtures.browser import CHROMIUM, CHROMIUM_ARGS, run_first_cell
from fixtures.jupyter_server import start_jupyter_server, stop_jupyter_server
from fixtures.model_server import images_in, text_in

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.jupyter_ai_2]

PLOT = (
    "import matplotlib.pyplot as plt\n"
    "fig, ax = plt.subplots(figsize=(4, 3), dpi=80)\n"
    "ax.plot([0, 1, 2, 3], [0, 1, 4, 9], color='#ff0000', linewidth=8)\n"
    "plt.show()"
)


def red_share(img: Any) -> float:
    rgb = img.convert("RGB")
    rgb.thumbnail((200, 200))
    pixels = list(rgb.getdata())
    return sum(1 for r, g, b in pixels if r > 200 and g < 80 and b < 80) / len(pixels)


@pytest.fixture(scope="module")
def lab(model_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    base = tmp_path_factory.mktemp("lab-see")
    news = base / "home" / ".jupyter" / "lab" / "user-settings" / "@jupyterlab"
    (news / "apputils-extension").mkdir(parents=True, exist_ok=True)
    (news / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    server = start_jupyter_server(base, model_server.url, command="lab")
    yield server
    stop_jupyter_server(server)


def test_see_in_the_chat_panel_sees_the_unsaved_plot(lab: Any, model_server: Any) -> None:
    from playwright.sync_api import expect, sync_playwright

    model_server.set_reply("The line is red.")
    path = lab.write_notebook("browser-plot.ipynb", [PLOT])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            url = f"{lab.url}/lab/tree/{path}?token={lab.token}"
            run_first_cell(page, url=url, expect_source="ax.plot")

            page.locator('li[data-id="jupyter-ai::chat"]').click()
            chat = page.locator("#jupyter-ai\\:\\:chat")
            box = chat.locator("textarea").first
            expect(box).to_be_visible(timeout=30_000)
            box.click()
            box.fill("/see what colour is the line?")
            # Enter may pick the slash-command autocomplete: click the send button instead.
            send = chat.locator("button:has(svg[data-testid='SendIcon'])")
            if send.count() == 0:
                send = chat.locator('[aria-label^="Send message"]')
            send.first.click()
            answer = chat.locator(".jp-ai-rendermime-markdown", has_text="The line is red.")
            expect(answer.first).to_be_visible(timeout=90_000)
            expect(chat).to_contain_text("browser-plot.ipynb (live)", timeout=30_000)
        finally:
            browser.close()

    requests = [b for b in model_server.chat_requests() if "what colour is the line?" in text_in(b)]
    assert requests, "the /see question never reached the model server"
    images = images_in(requests[-1])
    assert len(images) == 1 and red_share(images[0]) > 0.01
    saved = json.loads((lab.root / path).read_text())
    assert not saved["cells"][0].get("outputs")  # the model saw the live, unsaved output
