"""llm.stream.stream_chat (plain litellm, no LangChain) through LiteLLM's real HTTP path to the
recording model server: streaming, the retry policy, closing on early stop, one-line errors."""

from __future__ import annotations

import base64
import contextlib
import io

import litellm
import pytest
from PIL import Image

from jupyter_ai_vision.errors import ModelError, VisionError
from jupyter_ai_vision.llm.stream import stream_chat
from jupyter_ai_vision.testing import images_in, text_in

KEY = "sk-stream-chat-key-0123456789"


def ask(server, messages=None, **kw):
    messages = messages or [{"role": "user", "content": "what is it?"}]
    params = {"model": "openai/gpt-4o-mini", "api_base": server.url, "api_key": KEY, **kw}
    return stream_chat(messages, **params)


async def collect(stream) -> list[str]:
    async with contextlib.aclosing(stream) as pieces:
        return [p async for p in pieces]


async def settled(server) -> list[str]:
    """The requests' outcomes once the server has recorded them (it does so after writing the
    last byte, which the client may have read first)."""
    await server.wait_for_async(lambda rs: all(r.outcome != "pending" for r in rs), 3)
    return [r.outcome for r in server.records]


def _png_url() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (40, 20), (0, 0, 220)).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


async def test_streams_text_pieces_with_images_and_per_call_credentials(model_server):
    model_server.set_reply("A blue rectangle, wider than tall.")
    content = [
        {"type": "text", "text": "Describe the figure."},
        {"type": "image_url", "image_url": {"url": _png_url()}},
    ]
    pieces = await collect(ask(model_server, [{"role": "user", "content": content}]))
    assert "".join(pieces) == "A blue rectangle, wider than tall." and len(pieces) > 2
    body = model_server.chat_requests()[0]
    assert body["stream"] is True and "Describe the figure." in text_in(body)
    (image,) = images_in(body)
    assert image.size == (40, 20) and image.convert("RGB").getpixel((1, 1)) == (0, 0, 220)
    assert model_server.records[0].headers["authorization"] == f"Bearer {KEY}"
    assert await settled(model_server) == ["completed"]
    # nothing was written onto litellm's module globals
    assert litellm.api_key is None and litellm.api_base is None


async def test_extra_parameters_reach_the_model_but_cannot_override_the_call(model_server):
    extra = {"temperature": 0.2, "max_tokens": 30, "model": "openai/other", "stream": False}
    await collect(ask(model_server, extra=extra))
    body = model_server.chat_requests()[0]
    assert body["temperature"] == 0.2 and body["max_tokens"] == 30
    assert body["model"] == "gpt-4o-mini" and body["stream"] is True


async def test_rate_limits_are_retried_before_the_first_token(model_server):
    model_server.fail("429", times=2)
    pieces = await collect(ask(model_server, max_retries=2))
    assert "".join(pieces) == "Hello from the recording model server."
    assert await settled(model_server) == ["failed:429", "failed:429", "completed"]


async def test_retries_are_bounded_and_the_error_is_one_line(model_server):
    model_server.fail("503")
    with pytest.raises(ModelError) as info:
        await collect(ask(model_server, max_retries=1))
    assert len(model_server.records) == 2
    error = info.value
    assert isinstance(error, VisionError) and error.kind == "ServiceUnavailableError"
    assert str(error).startswith("The model service is unavailable") and "\n" not in str(error)
    assert error.__cause__ is None and error.__suppress_context__


async def test_a_failure_after_the_first_token_is_not_retried(model_server):
    model_server.fail("midstream", times=1)
    received = []
    with pytest.raises(ModelError) as info:
        async with contextlib.aclosing(ask(model_server, max_retries=2)) as pieces:
            async for piece in pieces:
                received.append(piece)
    assert received  # the user saw part of the answer: asking again would repeat it
    assert await settled(model_server) == ["failed:midstream"]
    assert "\n" not in str(info.value)


async def test_auth_errors_are_not_retried_and_never_show_the_key(model_server):
    model_server.fail("401")
    with pytest.raises(ModelError) as info:
        await collect(ask(model_server, max_retries=2))
    assert len(model_server.records) == 1
    assert info.value.kind == "AuthenticationError" and "API key" in str(info.value)
    assert KEY not in str(info.value) and KEY not in repr(info.value.args)


async def test_a_refused_image_is_reported_as_such(model_server):
    model_server.fail("no_images", times=1)
    content = [{"type": "image_url", "image_url": {"url": _png_url()}}]
    with pytest.raises(ModelError) as info:
        await collect(ask(model_server, [{"role": "user", "content": content}]))
    assert info.value.images_refused and "does not accept images" in str(info.value)


async def test_a_timeout_is_retried_then_one_line(model_server):
    model_server.fail("timeout")
    model_server.set_timeout_sleep(3)
    with pytest.raises(ModelError) as info:
        await collect(ask(model_server, timeout=0.5, max_retries=1))
    assert info.value.kind == "Timeout" and "did not answer in time" in str(info.value)
    assert len(model_server.records) == 2


async def test_stopping_early_closes_the_upstream_stream(model_server):
    model_server.set_reply(" ".join(f"w{i}" for i in range(60)))
    model_server.set_chunk_delay(0.05)
    received = []
    async with contextlib.aclosing(ask(model_server)) as pieces:
        async for piece in pieces:
            received.append(piece)
            if len(received) == 3:
                break
    assert await model_server.wait_for_async(lambda rs: rs[-1].outcome != "pending", 3)
    record = model_server.records[-1]
    assert record.outcome == "client_closed" and record.chunks_sent < 20
    model_server.set_chunk_delay(0)
    assert "".join(await collect(ask(model_server))).startswith("w0")  # the next one works


async def test_an_unreachable_server_is_one_line_without_retries(model_server):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ModelError) as info:
        await collect(ask(model_server, api_base=f"http://127.0.0.1:{port}/v1", max_retries=2))
    assert str(info.value).startswith("Could not reach the model server")


async def test_max_retries_is_bounded(model_server):
    with pytest.raises(ValueError, match="max_retries"):
        await collect(ask(model_server, max_retries=99))
    assert model_server.records == []
