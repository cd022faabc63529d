"""Real browser: JupyterLab with the ``vision`` provider as the completion model.

Typing in a cell shows a ghost-text suggestion served by the local recording model server
(through jupyter-ai's completion websocket, the vision provider and LiteLLM); Tab accepts it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fixtures.browser import CHROMIUM, CHROMIUM_ARGS
from fixtures.jupyter_server import VISION_MODEL, start_jupyter_server, stop_jupyter_server
from fixtures.model_server import text_in

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.jupyter_ai_2]

SUGGESTION = "sum(x_values_marker) / len(x_values_marker)"


def _inline_completer_settings(home: Path) -> None:
    """Enable jupyter-ai's inline completer (off by default) in the user's lab settings."""
    settings = home / ".jupyter" / "lab" / "user-settings" / "@jupyterlab" / "completer-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "inline-completer.jupyterlab-settings").write_text(
        json.dumps(
            {
                "providers": {
                    "@jupyterlab/jupyter-ai": {
                        "enabled": True,
                        "debouncerDelay": 100,
                        "triggerKind": "any",
                        "streaming": "never",
                        "timeout": 20000,
                    },
                    "@jupyterlab/inline-completer:history": {"enabled": False},
                },
                "showWidget": "never",
            }
        )
    )
    # No "what's new" / news popups stealing focus.
    news = home / ".jupyter" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True, exist_ok=True)
    (news / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )


@pytest.fixture(scope="module")
def lab(model_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    base = tmp_path_factory.mktemp("lab-completion")
    _inline_completer_settings(base / "home")
    extra = f"\nc.AiExtension.default_completions_model = 'vision:{VISION_MODEL}'\n"
    server = start_jupyter_server(base, model_server.url, command="lab", extra_config=extra)
    try:
        _warm_up(server)
        yield server
    finally:
        stop_jupyter_server(server)


def _warm_up(server: Any) -> None:
    """One completion before the browser types: the server imports LiteLLM on first use,
    which can take longer than JupyterLab's inline completion timeout on a busy machine."""
    from websockets.sync.client import connect

    with connect(server.ws_url("/api/ai/completion/inline"), open_timeout=30) as ws:
        request = {
            "number": 1,
            "prefix": "x = ",
            "suffix": "",
            "mime": "text/x-ipython",
            "stream": False,
            "language": "python",
        }
        ws.send(json.dumps(request))
        reply = json.loads(ws.recv(timeout=120))
        assert reply["reply_to"] == 1 and reply["error"] is None, reply


def test_ghost_text_from_the_vision_provider_accepted_with_tab(lab: Any, model_server: Any) -> None:
    from playwright.sync_api import expect, sync_playwright

    def reply(body: dict[str, Any]) -> str:
        # completion requests only (JupyterLab may also ask for other things)
        return SUGGESTION if "Complete the following code" in text_in(body) else "ok"

    model_server.set_reply(reply)
    path = lab.write_notebook(
        "typing.ipynb", ["x_values_marker = [3, 4, 5]\nprint('defined x_values_marker')", ""]
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{lab.url}/lab/tree/{path}?token={lab.token}", timeout=60_000)
            editors = page.locator(".jp-Notebook .jp-Cell .cm-content")
            expect(editors).to_have_count(2, timeout=60_000)
            target = editors.nth(1)
            target.click()
            page.keyboard.type("mean = ", delay=30)
            ghost = page.locator(".jp-GhostText")
            expect(ghost).to_contain_text(SUGGESTION, timeout=30_000)
            page.keyboard.press("Tab")
            expect(target).to_have_text(f"mean = {SUGGESTION}", timeout=10_000)
            expect(ghost).to_have_count(0)
        finally:
            browser.close()
    # the suggestion came from the model server, which was shown the other cell
    completions = [
        b for b in model_server.chat_requests() if "Complete the following code" in text_in(b)
    ]
    assert completions, "no completion request reached the model server"
    assert "x_values_marker = [3, 4, 5]" in text_in(completions[-1])
