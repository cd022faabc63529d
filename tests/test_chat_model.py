"""LiteLLMChatModel through LiteLLM's real HTTP path to the recording model server."""

from __future__ import annotations

import asyncio
import base64
import io
import logging

import litellm
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from PIL import Image

from jupyter_ai_vision.llm.chat_model import LiteLLMChatModel
from jupyter_ai_vision.testing import ModelServer, images_in, text_in

KEY = "sk-chat-model-key-0123456789"


def model(server, **kw) -> LiteLLMChatModel:
    params = {"model": "openai/gpt-4o-mini", "api_base": server.url, "api_key": KEY}
    return LiteLLMChatModel(**{**params, **kw})


def _png(color, size=(64, 32)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


async def test_stream_has_text_and_usage(model_server):
    model_server.set_reply("Two bars, the second taller.")
    full = None
    async for chunk in model(model_server).astream("what is it?"):
        full = chunk if full is None else full + chunk
    assert full is not None and full.content == "Two bars, the second taller."
    assert full.usage_metadata is not None
    assert full.usage_metadata["output_tokens"] == 5
    assert full.usage_metadata["total_tokens"] == (
        full.usage_metadata["input_tokens"] + full.usage_metadata["output_tokens"]
    )
    body = model_server.chat_requests()[0]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


async def test_multimodal_messages_arrive_in_openai_format(model_server):
    messages = [
        SystemMessage("You look at figures."),
        HumanMessage(
            content=[
                {"type": "text", "text": "Compare"},
                {"type": "image_url", "image_url": {"url": _png((0, 200, 0))}},
                {"type": "image_url", "image_url": {"url": _png((0, 0, 200), (16, 16))}},
            ]
        ),
        AIMessage("They differ."),
        HumanMessage("How?"),
    ]
    reply = await model(model_server).ainvoke(messages)
    assert reply.content and reply.usage_metadata
    body = model_server.chat_requests()[0]
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    green, blue = images_in(body)
    assert green.size == (64, 32) and green.convert("RGB").getpixel((1, 1)) == (0, 200, 0)
    assert blue.size == (16, 16) and blue.convert("RGB").getpixel((1, 1)) == (0, 0, 200)
    assert "Compare" in text_in(body)


def test_sync_invoke_and_stream(model_server):
    model_server.set_reply("sync reply")
    m = model(model_server)
    assert m.invoke("hi").content == "sync reply"
    assert "".join(c.content for c in m.stream("hi")) == "sync reply"
    assert [r.outcome for r in model_server.records] == ["completed", "completed"]


async def test_stop_mid_stream_closes_the_upstream_connection(model_server):
    """What jupyter-ai's stop button does: break out of the chain's astream."""
    model_server.set_reply(" ".join(f"w{i}" for i in range(60)))
    model_server.set_chunk_delay(0.05)
    chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | model(model_server)
    chain = chain | StrOutputParser()
    received = []
    async for piece in chain.astream({"q": "long answer please"}):
        received.append(piece)
        if len(received) == 3:
            break
    assert await model_server.wait_for_async(lambda rs: rs[-1].outcome != "pending", 3)
    record = model_server.records[-1]
    assert record.outcome == "client_closed"
    assert record.chunks_sent < 20
    # and the next request works
    model_server.set_chunk_delay(0)
    assert (await model(model_server).ainvoke("again")).content.startswith("w0")


async def test_explicit_aclose_closes_the_stream(model_server):
    model_server.set_reply(" ".join(["x"] * 60))
    model_server.set_chunk_delay(0.05)
    stream = model(model_server).astream("hi")
    await stream.__anext__()
    await stream.aclose()
    assert await model_server.wait_for_async(lambda rs: rs[-1].outcome == "client_closed", 3)


async def test_concurrent_models_use_their_own_key_and_base(model_server):
    other = ModelServer().start()
    try:
        model_server.set_reply("from A")
        other.set_reply("from B")
        model_server.set_chunk_delay(0.01)
        other.set_chunk_delay(0.01)
        a = model(model_server, api_key="sk-key-A-000000")
        b = model(other, api_key="sk-key-B-111111")

        async def collect(m):
            return "".join([c.content async for c in m.astream("hi")])

        results = await asyncio.gather(*(collect(m) for m in [a, b] * 4))
        assert results == ["from A", "from B"] * 4
        assert {r.headers["authorization"] for r in model_server.records} == {
            "Bearer sk-key-A-000000"
        }
        assert {r.headers["authorization"] for r in other.records} == {"Bearer sk-key-B-111111"}
        assert len(model_server.records) == len(other.records) == 4
        # nothing was written onto litellm's module globals
        assert litellm.api_key is None and litellm.api_base is None
    finally:
        other.stop()


async def test_retries_rate_limits_then_succeeds(model_server):
    model_server.fail("429", times=2)
    reply = await model(model_server, max_retries=2).ainvoke("hi")
    assert reply.content
    assert [r.outcome for r in model_server.records] == ["failed:429", "failed:429", "completed"]


async def test_retries_are_bounded(model_server):
    model_server.fail("503")
    with pytest.raises(litellm.ServiceUnavailableError):
        await model(model_server, max_retries=1).ainvoke("hi")
    assert len(model_server.records) == 2


@pytest.mark.parametrize(
    ("mode", "exc"),
    [
        ("401", litellm.AuthenticationError),
        ("404", litellm.NotFoundError),
        ("no_images", litellm.BadRequestError),
    ],
)
async def test_no_retry_for_client_errors(model_server, mode, exc):
    model_server.fail(mode)
    with pytest.raises(exc):
        await model(model_server, max_retries=3).ainvoke("hi")
    assert len(model_server.records) == 1


async def test_timeout_is_per_call_and_retried(model_server):
    model_server.fail("timeout", times=1)
    model_server.set_timeout_sleep(2)
    reply = await model(model_server, timeout=0.3, max_retries=1).ainvoke("hi")
    assert reply.content
    assert [r.outcome for r in model_server.records][-1] == "completed"


async def test_key_never_in_repr_logs_or_params(model_server, caplog):
    caplog.set_level(logging.DEBUG)
    m = model(model_server)
    await m.ainvoke("hi")
    assert KEY not in repr(m) and KEY not in str(m._identifying_params)
    assert KEY not in caplog.text
    assert model_server.records[0].headers["authorization"] == f"Bearer {KEY}"
    assert KEY not in str(model_server.records[0].body)


def test_sync_stream_closed_early_closes_the_connection(model_server):
    model_server.set_reply(" ".join(["w"] * 60))
    model_server.set_chunk_delay(0.05)
    chunks = model(model_server).stream("hi")
    next(chunks)
    chunks.close()
    assert model_server.wait_for(lambda rs: rs[-1].outcome != "pending", 5)
    assert model_server.records[-1].outcome == "client_closed"
