"""The recording model server as a tool-calling model, read back through LiteLLM's real HTTP
path (streamed and not): what agent tests (Jupyternaut on 3.x) rely on."""

from __future__ import annotations

import json

from jupyter_ai_vision.llm.chat_model import import_litellm
from jupyter_ai_vision.testing import ToolCall, tool_results_in


def _ask(model_server, messages, *, stream: bool):
    litellm = import_litellm()
    return litellm.completion(
        model="openai/gpt-4o",
        api_base=model_server.url,
        api_key="sk-test",
        messages=messages,
        stream=stream,
        tools=[{"type": "function", "function": {"name": "see_notebook", "parameters": {}}}],
    )


def _script(body):
    if not tool_results_in(body):
        return [ToolCall("see_notebook", {"path": "a b.ipynb", "cell": 3}, id="c1")]
    return "done: " + tool_results_in(body)[0]["content"]


def test_tool_call_then_answer_not_streamed(model_server):
    model_server.set_reply(_script)
    first = _ask(model_server, [{"role": "user", "content": "look"}], stream=False)
    (call,) = first.choices[0].message.tool_calls
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.id == "c1" and call.function.name == "see_notebook"
    assert json.loads(call.function.arguments) == {"path": "a b.ipynb", "cell": 3}
    follow = [
        {"role": "user", "content": "look"},
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": "c1", "content": "a red line"},
    ]
    answer = _ask(model_server, follow, stream=False)
    assert answer.choices[0].message.content == "done: a red line"


def test_tool_call_streamed_in_pieces(model_server):
    model_server.set_reply(_script)
    chunks = list(_ask(model_server, [{"role": "user", "content": "look"}], stream=True))
    litellm = import_litellm()
    joined = litellm.stream_chunk_builder(chunks)
    (call,) = joined.choices[0].message.tool_calls
    assert call.function.name == "see_notebook" and call.id == "c1"
    assert json.loads(call.function.arguments) == {"path": "a b.ipynb", "cell": 3}
    pieces = [c for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    assert len(pieces) >= 3  # id + name first, then the arguments text in pieces
    (record,) = model_server.records
    assert record.outcome == "completed"
