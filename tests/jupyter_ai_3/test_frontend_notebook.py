"""The live notebook from the browser when the server has NO real-time collaboration (Jupyter
AI 3.2's default install): jupyterlab-commands-toolkit's event round trip and
jupyterlab-ai-commands' ``get-notebook-content``, through
:mod:`jupyter_ai_vision.server.frontend_notebook`.

Real parts only: a real JupyterLab server with Jupyter AI 3.x and RTC off (server extension and
lab extensions), Debian's chromium driven by Playwright, a matplotlib cell run in the browser
and never saved. ``lab.probe()`` runs ``query_frontend`` inside the server (a test-only handler,
see fixtures/jupyter_server_3_nortc.py); the end-to-end test goes through the Vision persona
(``POST /api/ai/message/Vision``) and the MCP tool ``see_notebook``, and the recording model
server must receive the unsaved figure.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import io
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fixtures.browser import CHROMIUM, CHROMIUM_ARGS, run_first_cell
from fixtures.jupyter_server import stop_jupyter_server
from fixtures.jupyter_server_3 import mcp_session
from fixtures.jupyter_server_3_nortc import NoRtcServer, start_jupyter_server_3_nortc
from fixtures.model_server import images_in, text_in

pytestmark = [pytest.mark.jupyter_ai_3, pytest.mark.server]

RED, BLUE = (255, 0, 0), (0, 0, 255)
PLOT = (
    "import matplotlib.pyplot as plt\n"
    "fig, ax = plt.subplots(figsize=(3, 2), dpi=60)\n"
    "ax.axhspan(0, 1, color='#ff0000')\nax.set_axis_off()\nplt.show()"
)


@pytest.fixture(scope="module")
def lab(model_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NoRtcServer]:
    server = start_jupyter_server_3_nortc(tmp_path_factory.mktemp("lab-nortc"), model_server.url)
    yield server
    stop_jupyter_server(server)


def _png(colour: tuple[int, int, int]) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (120, 80), colour).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _saved_with_figure(lab: NoRtcServer, path: str, colour: tuple[int, int, int]) -> str:
    """A notebook file whose saved output is a figure of ``colour`` (no kernel needed)."""
    cell = {
        "cell_type": "code",
        "id": "saved-cell",
        "metadata": {},
        "execution_count": 1,
        "source": "show()",
        "outputs": [
            {
                "output_type": "display_data",
                "metadata": {},
                "data": {"image/png": _png(colour), "text/plain": "<Figure>"},
            }
        ],
    }
    return lab.write_notebook(path, [cell])


def _colour_of(b64: str) -> tuple[int, int, int]:
    from PIL import Image

    img = Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB")
    return img.getpixel((img.width // 2, img.height // 2))


def _share(img: Any, colour: tuple[int, int, int]) -> float:
    rgb = img.convert("RGB")
    rgb.thumbnail((200, 200))
    pixels = list(rgb.get_flattened_data())
    close = sum(1 for p in pixels if all(abs(a - b) < 60 for a, b in zip(p, colour, strict=True)))
    return close / len(pixels)


def _figures(nb: dict[str, Any]) -> list[str]:
    return [
        o["data"]["image/png"]
        for c in nb.get("cells", [])
        for o in c.get("outputs", [])
        if "image/png" in o.get("data", {})
    ]


def _ask_vision(lab: NoRtcServer, message: str) -> tuple[str, float]:
    started = time.monotonic()
    r = httpx.post(
        f"{lab.url}/api/ai/message/Vision",
        headers=lab.headers(),
        json={"message": message},
        timeout=120,
        trust_env=False,
    )
    assert r.status_code == 200, r.text
    return str(r.json()["response"]), time.monotonic() - started


def _in_thread(coro: Any) -> Any:
    """Run ``coro`` on its own loop (Playwright's sync API owns this thread's loop)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _see_notebook(url: str, path: str) -> Any:
    async with mcp_session(url) as session:
        return await session.call_tool("see_notebook", {"path": path})


def _open_and_run(page: Any, lab: NoRtcServer, path: str) -> None:
    """Open ``path`` in JupyterLab and run its first cell there; never saved.

    Each notebook in a workspace of its own: the default workspace would bring back the
    previous test's tabs, whose cell (the same source) could be the one that runs."""
    workspace = path.replace("/", "-").removesuffix(".ipynb")
    url = f"{lab.url}/lab/workspaces/{workspace}/tree/{path}?token={lab.token}"
    run_first_cell(page, url=url, expect_source="axhspan")


def _client_id(page: Any) -> str:
    return str(
        page.evaluate(
            "() => window.jupyterapp.commands.execute("
            "'jupyterlab-commands-toolkit:get-web-client-id')"
        )
    )


# ----- the server ----------------------------------------------------------------------------
def test_the_server_has_no_rtc_but_the_commands_toolkit(lab: NoRtcServer) -> None:
    info = lab.settings_probe()
    assert not info["jupyter_server_ydoc"] and not info["yroom_manager"]
    assert "jupyter_server_ydoc" not in info["enabled"]
    assert "jupyterlab_commands_toolkit" in info["enabled"] and info["event_logger"]


def test_no_browser_answers_at_once_and_vision_reads_the_saved_file(
    lab: NoRtcServer, model_server: Any
) -> None:
    path = _saved_with_figure(lab, "saved-only.ipynb", BLUE)
    probed = lab.probe(path)
    assert probed["status"] == "no browser" and probed["notebook"] is None
    assert probed["seconds"] < 0.5  # nothing is sent, nothing is waited for

    model_server.set_reply("Blue, from the file.")
    answer, seconds = _ask_vision(lab, f"/see {path} what colour?")
    assert answer.startswith("Blue, from the file.")
    assert f"{path} (saved file)" in answer
    assert seconds < 15
    images = images_in(model_server.chat_requests()[-1])
    assert len(images) == 1 and _share(images[0], BLUE) > 0.5


# ----- a browser -----------------------------------------------------------------------------
@pytest.mark.browser
def test_the_unsaved_plot_comes_from_the_browser(lab: NoRtcServer) -> None:
    from playwright.sync_api import sync_playwright

    path = lab.write_notebook("browser-plot.ipynb", [PLOT])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            _open_and_run(page, lab, path)

            probed = lab.probe(path)
            assert probed["status"] == "live" and probed["dirty"], probed["errors"]
            assert probed["answers"] == 1
            figures = _figures(probed["notebook"])
            assert len(figures) == 1 and _colour_of(figures[0]) == RED
            assert probed["notebook"]["cells"][0]["execution_count"] == 1
            assert probed["seconds"] < 1.0
            rounds = [lab.probe(path)["seconds"] for _ in range(5)]
            print(f"browser round trip: {sorted(rounds)[2] * 1000:.0f} ms (median of 5)")

            # The browser is asked only about files that exist (a missing one would make it
            # show the user an error).
            missing = lab.probe("no-such.ipynb")
            assert missing["status"] == "no such file" and missing["answers"] == 0

            # Which notebook the user is looking at, and the active cell, without awareness.
            viewed = lab.probe(viewed="1")["view"]
            assert viewed["path"] == path and viewed["active_cell_id"]

            # A second tab without the notebook answers with the saved file (no outputs, but
            # also "dirty"): the tab that has it open wins.
            other = browser.new_page(viewport={"width": 1200, "height": 800})
            other.goto(f"{lab.url}/lab?reset&token={lab.token}", timeout=90_000)
            other.wait_for_function(
                "() => window.jupyterapp && window.jupyterapp.commands.hasCommand("
                "'jupyterlab-ai-commands:get-notebook-content')",
                timeout=60_000,
            )
            both = lab.probe(path)
            for _ in range(100):  # until the new tab has subscribed to the server's events
                if both["answers"] == 2:
                    break
                time.sleep(0.1)
                both = lab.probe(path)
            assert both["status"] == "live" and both["answers"] == 2
            assert [_colour_of(f) for f in _figures(both["notebook"])] == [RED]

            # Asking one tab (a chat message's web_client_id): only that tab answers.
            first, second = _client_id(page), _client_id(other)
            assert first != second
            assert lab.probe(path, client_id=first)["status"] == "live"
            not_open = lab.probe(path, client_id=second)
            assert not_open["status"] == "not open" and not_open["answers"] == 1
            assert not_open["notebook"] is None
        finally:
            browser.close()

    # The browser is gone: no waiting at all.
    gone = lab.probe(path)
    assert gone["status"] == "no browser" and gone["seconds"] < 0.5
    saved = json.loads((lab.root / path).read_text())
    assert not saved["cells"][0].get("outputs")  # nothing was ever saved


@pytest.mark.browser
def test_vision_and_mcp_see_the_unsaved_plot_from_the_browser(
    lab: NoRtcServer, model_server: Any
) -> None:
    from playwright.sync_api import sync_playwright

    path = lab.write_notebook("e2e-plot.ipynb", [PLOT])
    model_server.set_reply("The band is red.")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            _open_and_run(page, lab, path)
            answer, seconds = _ask_vision(lab, f"/see {path} what colour is the band?")
            tool = _in_thread(_see_notebook(lab.mcp_url, path))
            # No path, no awareness (no RTC): the notebook the browser tab shows.
            unnamed, _ = _ask_vision(lab, "which colour has the band?")
        finally:
            browser.close()

    assert answer.startswith("The band is red."), answer
    assert f"{path} (live, from your browser)" in answer  # the footer says where from
    assert f"{path} (live, from your browser)" in unnamed
    requests = [b for b in model_server.chat_requests() if "colour is the band" in text_in(b)]
    images = images_in(requests[0])
    assert len(images) == 1 and _share(images[0], RED) > 0.5
    print(f"Vision reply over the browser read: {seconds:.2f} s")

    pictures = [c for c in tool.content if getattr(c, "type", "") == "image"]
    assert len(pictures) == 1 and _colour_of(pictures[0].data) == RED
    assert "browser" in next(c.text for c in tool.content if getattr(c, "type", "") == "text")
