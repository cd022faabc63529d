"""End to end on Jupyter AI 3.x: Jupyternaut, asked about a plot in a chat document, calls our
``see_notebook`` MCP tool, and the figure reaches the model as an image part, not base64 text.

Everything is real: the Jupyter server with persona-manager, Jupyternaut (LangChain agent,
``langchain_litellm.ChatLiteLLM``), jupyter-server-mcp and langchain-mcp-adapters; a notebook
run by a real kernel and left unsaved; LiteLLM's HTTP path to the recording model server, which
plays a tool-calling model (first reply: a ``see_notebook`` call; then an answer).

What the stack does with the figure (verified here, see docs in B-readme): our tool returns MCP
``ImageContent``; langchain-mcp-adapters makes it a LangChain image block in the ToolMessage;
langchain-litellm converts it to an OpenAI ``image_url`` part; LiteLLM (OpenAI-compatible
providers allow only text in ``role: tool`` messages) moves it into a ``role: user`` message
right after the tool message, introduced as tool output.
"""

from __future__ import annotations

import base64
import io
import json
import re
from typing import Any

import pytest
from fixtures.jupyter_server_3 import JUPYTERNAUT_ID

from jupyter_ai_vision.testing import ToolCall, images_in, text_in, tool_results_in

pytestmark = [pytest.mark.jupyter_ai_3, pytest.mark.server]

PLOT = (
    "import matplotlib.pyplot as plt\n"
    "fig, ax = plt.subplots(figsize=(4, 3), dpi=60)\n"
    "ax.plot([0, 1, 2, 3], [3, 1, 2, 0], color='#ff0000', linewidth=10)\n"
    "ax.set_title('Falling prices')\n"
    "plt.show()"
)
ANSWER = "The line is red and falls from 3 to 0."
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{200,}")


def _red_pixels(img: Any) -> int:
    raw = img.convert("RGB").tobytes()
    return sum(
        1 for i in range(0, len(raw), 3) if raw[i] > 200 and raw[i + 1] < 80 and raw[i + 2] < 80
    )


def _tool_model(path: str) -> Any:
    """The recording server as a tool-calling model: look at the notebook, then answer."""

    def reply(body: dict[str, Any]) -> Any:
        if not tool_results_in(body):
            return ToolCall("see_notebook", {"path": path}, id="call_see_1")
        return ANSWER

    return reply


async def test_jupyternaut_sees_the_plot_through_our_tool(jupyter_server_3, model_server):
    server = jupyter_server_3
    path = server.write_notebook("prices.ipynb", [PLOT])
    model_server.set_reply(_tool_model(path))
    async with server.open_notebook(path, user="alice") as nb:
        await nb.execute(0)  # outputs only in the live document: the file has none
        assert "image/png" not in (server.root / path).read_text()
        async with server.chat_document(user="alice") as chat:
            reply = await chat.ask(
                "What colour is the line in prices.ipynb?", to=JUPYTERNAUT_ID, timeout=120
            )
    assert reply.text.strip() == ANSWER

    first, follow_up = model_server.chat_requests()
    # Jupyternaut offered our tools to the model (loaded from the server's MCP endpoint)
    offered = {t["function"]["name"]: t["function"] for t in first["tools"]}
    assert {"see_notebook", "list_notebook_visuals"} <= set(offered)
    assert "path" in offered["see_notebook"]["parameters"]["properties"]

    # The follow-up request carries the tool call, our tool's text and the figure as an image
    roles = [m["role"] for m in follow_up["messages"]]
    call_at = next(
        i
        for i, m in enumerate(follow_up["messages"])
        if m["role"] == "assistant" and m.get("tool_calls")
    )
    assert follow_up["messages"][call_at]["tool_calls"][0]["function"]["name"] == "see_notebook"
    (tool_message,) = tool_results_in(follow_up)
    assert tool_message["tool_call_id"] == "call_see_1"
    tool_text = json.dumps(tool_message["content"])
    assert "Read from the live notebook" in tool_text and "[figure 1: cell 0" in tool_text
    assert "ax.set_title('Falling prices')" in tool_text  # the cell's source, as text
    # ... and no base64 anywhere as text
    assert not _BASE64_RUN.search(text_in(follow_up))
    assert "data:image" not in text_in(follow_up)
    assert len(text_in(follow_up)) < 20_000  # one plot as base64 text would be tens of thousands

    (img,) = images_in(follow_up)
    assert _red_pixels(img) > 200  # the plotted line, decoded from what the model received
    image_at = next(
        i
        for i, m in enumerate(follow_up["messages"])
        if isinstance(m.get("content"), list)
        and any(p.get("type") == "image_url" for p in m["content"])
    )
    # the image comes right after the tool result, as a user message marked as tool output
    assert roles[image_at] == "user" and roles[image_at - 1] == "tool"
    assert "tool output" in json.dumps(follow_up["messages"][image_at]["content"][0])


def test_images_in_tool_results_reach_an_anthropic_model_inside_the_tool_result(model_server):
    """The same ToolMessage through langchain-litellm to an Anthropic model: LiteLLM keeps the
    image inside the ``tool_result`` block (Anthropic accepts images there)."""
    import litellm
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
    from langchain_litellm import ChatLiteLLM
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 8), (255, 0, 0)).save(buf, format="PNG")
    png = base64.b64encode(buf.getvalue()).decode()
    model = ChatLiteLLM(
        model="anthropic/claude-sonnet-4-5", api_base=model_server.url, api_key="sk-ant-test"
    )
    messages = [
        HumanMessage("what colour?"),
        AIMessage(
            "", tool_calls=[{"name": "see_notebook", "args": {"path": "a.ipynb"}, "id": "t1"}]
        ),
        ToolMessage(
            content=[
                {"type": "text", "text": "[figure 1: cell 0, png, 16×8]"},
                {"type": "image", "base64": png, "mime_type": "image/png"},
            ],
            tool_call_id="t1",
        ),
    ]
    with pytest.raises(litellm.NotFoundError):  # the recording server speaks OpenAI's API only
        model.invoke(messages)
    (record,) = model_server.records
    assert record.path.endswith("/messages")
    tool_result = record.body["messages"][-1]["content"][0]
    assert tool_result["type"] == "tool_result"
    kinds = [block["type"] for block in tool_result["content"]]
    assert kinds == ["text", "image"]
    assert tool_result["content"][1]["source"]["data"] == png
