"""The inline completion override: jupyter-ai-vision's completions plus the house rule."""

from __future__ import annotations

from conftest import MODEL
from jupyter_ai_magics.models.completion import (
    InlineCompletionReply,
    InlineCompletionRequest,
    InlineCompletionStreamChunk,
)
from jupyter_ai_vision.testing import ModelServer, text_in

from {{ cookiecutter.package_name }}.provider import {{ cookiecutter.__class_prefix }}Provider, house_style

REQUEST = InlineCompletionRequest(
    number=1,
    stream=False,
    path="analysis.ipynb",
    mime="text/x-ipython",
    prefix="import numpy as np\nx = np.linspace(0, 1, 50)\ny = ",
    suffix="",
    language="python",
    cell_id="c1",
)


def provider(model_server: ModelServer) -> {{ cookiecutter.__class_prefix }}Provider:
    return {{ cookiecutter.__class_prefix }}Provider(model_id=MODEL, api_base=model_server.url, api_key="sk-test")


def test_house_style_strips_trailing_whitespace_only() -> None:
    assert house_style("a = 1   \n  b = 2\t\n") == "a = 1\n  b = 2\n"


async def test_generate_applies_the_house_rule(model_server: ModelServer) -> None:
    model_server.set_reply("np.sin(x)   \nplt.plot(x, y)  ")
    reply = await provider(model_server).generate_inline_completions(REQUEST)
    assert [item.insertText for item in reply.list.items] == ["np.sin(x)\nplt.plot(x, y)"]
    (request,) = model_server.chat_requests()
    assert "x = np.linspace(0, 1, 50)" in text_in(request)  # the prefix reached the model


async def test_stream_applies_the_house_rule(model_server: ModelServer) -> None:
    model_server.set_reply("np.cos(x)    ")
    messages = [m async for m in provider(model_server).stream_inline_completions(REQUEST)]
    assert isinstance(messages[0], InlineCompletionReply)
    assert messages[0].list.items[0].isIncomplete
    chunks = [m for m in messages if isinstance(m, InlineCompletionStreamChunk)]
    assert chunks[-1].done and chunks[-1].response.insertText == "np.cos(x)"
    assert all(not c.response.insertText.endswith(" ") for c in chunks)
