"""/see on a real Jupyter server: stale figures from the notebook's kernel, and captions from a
caption model for a text-only chat model (the recording model server plays both models)."""

from __future__ import annotations

from typing import Any

import pytest
from fixtures.model_server import images_in, text_in
from test_see import LINE_CELL, switch_model  # noqa: F401  (a fixture)

from jupyter_ai_vision.context import messages
from jupyter_ai_vision.llm.captions import CAPTION_PROMPT

pytestmark = pytest.mark.server


async def test_a_figure_whose_cell_was_edited_after_it_ran_is_flagged_stale(
    jupyter_server: Any, model_server: Any
) -> None:
    server = jupyter_server
    path = server.write_notebook(
        "stale.ipynb", [LINE_CELL.format(colour="#ff0000"), LINE_CELL.format(colour="#0000ff")]
    )
    model_server.set_reply("The second figure is stale.")
    async with server.open_notebook(path, user="sam") as nb:
        await nb.execute_all()
        # The user edits the second cell (green now) but does not run it again.
        nb.ynotebook.set_cell(1, {**nb.cells[1], "source": LINE_CELL.format(colour="#00a000")})
        async with server.chat("sam") as chat:
            await chat.clear()
            reply = await chat.ask("/see why is the curve not green?")
    text = text_in(model_server.chat_requests()[-1])
    markers = [line for line in text.splitlines() if line.startswith("[figure ")]
    assert len(markers) == 2
    assert messages.STALE not in markers[0] and messages.STALE in markers[1]
    assert "1 stale (cell edited after it ran)" in reply.text  # the footer says so too


async def test_a_text_only_model_gets_captions_once_per_figure(
    jupyter_server: Any,
    model_server: Any,
    switch_model: Any,  # noqa: F811
) -> None:
    server = jupyter_server
    await switch_model(
        "vision:openai/gpt-3.5-turbo",  # LiteLLM knows it takes no images
        {
            "api_base": model_server.url,
            "api_key": "sk-test-key",
            "caption_model": "openai/gpt-4o-mini",
            "caption_api_base": model_server.url,
        },
    )

    def reply(body: dict[str, Any]) -> str:
        return "A thick red line rising." if CAPTION_PROMPT in text_in(body) else "It rises."

    model_server.set_reply(reply)
    path = server.write_notebook("captioned.ipynb", [LINE_CELL.format(colour="#ff0000")])
    async with server.open_notebook(path, user="tess") as nb:
        await nb.execute_all()
        async with server.chat("tess") as chat:
            await chat.clear()
            first = await chat.ask("/see what does the figure show?")
            second = await chat.ask("/see and again?")
    requests = model_server.chat_requests()
    captions = [r for r in requests if CAPTION_PROMPT in text_in(r)]
    chats = [r for r in requests if CAPTION_PROMPT not in text_in(r)]
    assert len(captions) == 1 and len(images_in(captions[0])) == 1  # one figure, captioned once
    assert len(chats) == 2 and all(images_in(r) == [] for r in chats)  # the chat model: text only
    assert all("caption: A thick red line rising." in text_in(r) for r in chats)
    assert first.text.startswith("It rises.") and second.text.startswith("It rises.")
