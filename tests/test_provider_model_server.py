"""The recording model server itself, driven through LiteLLM's real HTTP path."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import time

import httpx
import litellm
import pytest
from PIL import Image

from jupyter_ai_vision.testing import images_in, text_in

MODEL = "openai/gpt-4o-mini"


def _png(color: tuple[int, int, int], size: tuple[int, int] = (40, 20)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


async def test_streams_reply_with_usage_and_records_request(model_server):
    model_server.set_reply("A red square.")
    content = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": _png((255, 0, 0))}},
    ]
    stream = await litellm.acompletion(
        model=MODEL,
        api_base=model_server.url,
        api_key="sk-model-server-test",
        messages=[{"role": "user", "content": content}],
        stream=True,
        stream_options={"include_usage": True},
        max_retries=0,
    )
    text, usage = "", None
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        usage = getattr(chunk, "usage", None) or usage
    assert text == "A red square."
    assert usage is not None and usage.completion_tokens == 3
    (record,) = model_server.records
    assert record.headers["authorization"] == "Bearer sk-model-server-test"
    assert record.outcome == "completed"
    assert text_in(record.body) == "what is this?"
    (img,) = images_in(record.body)
    assert img.size == (40, 20) and img.convert("RGB").getpixel((5, 5)) == (255, 0, 0)


def test_non_streaming_and_reply_function(model_server):
    model_server.set_reply(lambda body: "echo: " + text_in(body))
    reply = litellm.completion(
        model=MODEL,
        api_base=model_server.url,
        api_key="sk-x",
        messages=[{"role": "user", "content": "ping"}],
        max_retries=0,
    )
    assert reply.choices[0].message.content == "echo: ping"
    assert not model_server.requests[0].get("stream")


def test_embeddings_are_deterministic(model_server):
    result = litellm.embedding(
        model="openai/text-embedding-3-small",
        api_base=model_server.url,
        api_key="sk-x",
        input=["a", "b", "a"],
    )
    vectors = [d["embedding"] for d in result.data]
    assert len(vectors) == 3 and vectors[0] == vectors[2] != vectors[1]
    assert model_server.records[0].path.endswith("/embeddings")


@pytest.mark.parametrize(
    ("mode", "exc"),
    [
        ("401", litellm.AuthenticationError),
        ("404", litellm.NotFoundError),
        ("429", litellm.RateLimitError),
        ("503", litellm.ServiceUnavailableError),
        ("no_images", litellm.BadRequestError),
        ("context", litellm.ContextWindowExceededError),
    ],
)
def test_fail_modes_raise_the_matching_litellm_error(model_server, mode, exc):
    model_server.fail(mode, times=1)
    with pytest.raises(exc):
        litellm.completion(
            model=MODEL,
            api_base=model_server.url,
            api_key="sk-x",
            messages=[{"role": "user", "content": "hi"}],
            max_retries=0,
        )
    # times=1: the next request succeeds
    ok = litellm.completion(
        model=MODEL,
        api_base=model_server.url,
        api_key="sk-x",
        messages=[{"role": "user", "content": "hi"}],
    )
    assert ok.choices[0].message.content
    assert [r.outcome for r in model_server.records] == [f"failed:{mode}", "completed"]


@pytest.mark.parametrize("mode", ["midstream", "malformed"])
async def test_broken_streams_raise(model_server, mode):
    model_server.fail(mode)
    stream = await litellm.acompletion(
        model=MODEL,
        api_base=model_server.url,
        api_key="sk-x",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        max_retries=0,
    )
    with pytest.raises(litellm.exceptions.MidStreamFallbackError):
        async for _ in stream:
            pass


async def test_records_when_the_client_closes_a_stream(model_server):
    model_server.set_reply(" ".join(["word"] * 30))
    model_server.set_chunk_delay(0.05)
    stream = await litellm.acompletion(
        model=MODEL,
        api_base=model_server.url,
        api_key="sk-x",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        max_retries=0,
    )
    async for _ in stream:
        break
    await stream.aclose()
    assert await model_server.wait_for_async(lambda rs: rs[-1].outcome != "pending", 3)
    assert model_server.records[-1].outcome == "client_closed"
    assert model_server.records[-1].chunks_sent < 30


def test_runnable_as_a_module(tmp_path):
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_ai_vision.testing.model_server",
            "--port",
            str(port),
            "--reply",
            "from the script",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/v1" in line
        deadline = time.monotonic() + 5
        while True:
            try:
                r = httpx.post(
                    f"http://127.0.0.1:{port}/v1/chat/completions",
                    json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
                )
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert r.json()["choices"][0]["message"]["content"] == "from the script"
        assert httpx.get(f"http://127.0.0.1:{port}/v1/models").json()["data"]
    finally:
        proc.terminate()
        proc.wait(5)


def test_unknown_fail_mode_is_rejected(model_server):
    with pytest.raises(ValueError, match="unknown fail mode"):
        model_server.fail("418")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
