"""LiteLLM loads tiktoken's encodings off the event loop (``llm/_litellm.py``, tokenizer warm-up).

``litellm.acompletion(stream=True)`` prices the stream before returning it, which the first
time in a process loads tiktoken's BPE files (0.7-1 s) on the calling thread: on the Jupyter
server, its event loop. Each streaming test runs in a fresh interpreter (the encodings are
loaded once per process, and this test session has loaded them long ago), streams a reply
from the recording model server through one of our entry points, and records on which thread
every tiktoken encoding was built. Timings are the benchmark's business (bench_see's
"first reply" figure); here, only which thread did the work.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import uuid

import pytest

from jupyter_ai_vision.llm import _litellm

_SCRIPT = r"""
import asyncio, contextlib, json, sys, threading

import tiktoken.core

loads = []
_init = tiktoken.core.Encoding.__init__

def _recording_init(self, name, *args, **kwargs):
    loads.append([name, threading.get_ident()])
    _init(self, name, *args, **kwargs)

tiktoken.core.Encoding.__init__ = _recording_init

from jupyter_ai_vision.testing import ModelServer

async def reply(entry, url):
    messages = [{"role": "user", "content": "what is plotted?"}]
    if entry == "stream_chat":
        from jupyter_ai_vision.llm.stream import stream_chat
        pieces = stream_chat(messages, model="openai/gpt-4o", api_base=url, api_key="sk-test")
        async with contextlib.aclosing(pieces) as it:
            return "".join([p async for p in it])
    from jupyter_ai_vision.llm.chat_model import LiteLLMChatModel
    chat = LiteLLMChatModel(model="openai/gpt-4o", api_base=url, api_key="sk-test")
    return "".join([str(c.content) async for c in chat.astream("what is plotted?")])

async def main(entry):
    loop_thread = threading.get_ident()
    with ModelServer() as server:
        server.set_reply("a line chart")
        text = [await reply(entry, server.url) for _ in range(2)]
    await asyncio.sleep(0.5)  # anything litellm does after the replies, on the loop
    on_loop = [name for name, ident in loads if ident == loop_thread]
    print(json.dumps({"text": text, "loaded": [n for n, _ in loads], "on_loop": on_loop}))

asyncio.run(main(sys.argv[1]))
"""


@pytest.mark.parametrize("entry", ["stream_chat", "chat_model"])
def test_the_first_streamed_reply_loads_tiktoken_off_the_event_loop(entry, tmp_path):
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    out = subprocess.run(  # cwd: the package this session imports, not the one in the cwd
        [sys.executable, "-c", _SCRIPT, entry],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["text"] == ["a line chart"] * 2
    # the probe works: litellm did load encodings during these replies...
    assert "cl100k_base" in result["loaded"], result
    # ...and none of them on the event loop's thread
    assert result["on_loop"] == [], result


class FakeLitellm:
    """Records token_counter calls; ``fail`` makes them raise, ``gate`` makes them wait."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail = fail
        self.gate = threading.Event()
        self.gate.set()

    def token_counter(self, *, model: str, text: str) -> int:
        self.gate.wait(10)
        self.calls.append((model, threading.current_thread().name))
        if self.fail:
            raise ValueError("no tokenizer for this name")
        return 1


def _name() -> str:
    return f"openai/warm-test-{uuid.uuid4().hex}"


def test_warm_up_runs_once_per_model_name_in_a_worker_thread():
    fake, model = FakeLitellm(), _name()
    first = _litellm.warm_tokenizer(fake, model)
    first.result(10)
    assert _litellm.warm_tokenizer(fake, model) is first  # remembered: no second thread
    bare = model.split("/", 1)[1]
    assert [m for m, _ in fake.calls] == [model, bare]  # as called, and without the provider
    assert {t for _, t in fake.calls} == {"jupyter-ai-vision-tokenizer"}


def test_a_failing_warm_up_still_completes():
    fake = FakeLitellm(fail=True)
    done = _litellm.warm_tokenizer(fake, _name())
    assert done.result(10) is None and len(fake.calls) == 2


async def test_a_cancelled_request_does_not_cancel_the_shared_warm_up(monkeypatch):
    fake, model = FakeLitellm(), _name()
    fake.gate.clear()  # the warm-up is still loading when the request is stopped

    async def imported():
        return fake

    monkeypatch.setattr(_litellm, "import_litellm_async", imported)

    waiting = asyncio.create_task(_litellm.litellm_for_chat(model, stream=True))
    await asyncio.sleep(0.05)
    waiting.cancel()  # the stop button
    with pytest.raises(asyncio.CancelledError):
        await waiting
    done = _litellm.warm_tokenizer(fake, model)
    assert not done.cancelled() and not done.done()
    fake.gate.set()
    # the next request waits for the same warm-up, which completes
    assert await _litellm.litellm_for_chat(model, stream=True) is fake
    assert done.done() and len(fake.calls) == 2


async def test_a_call_without_stream_does_not_wait_for_the_warm_up(monkeypatch):
    fake, model = FakeLitellm(), _name()
    fake.gate.clear()

    async def imported():
        return fake

    monkeypatch.setattr(_litellm, "import_litellm_async", imported)

    assert await _litellm.litellm_for_chat(model, stream=False) is fake
    done = _litellm.warm_tokenizer(fake, model)
    assert not done.done()  # started, not waited for
    fake.gate.set()
    await asyncio.wrap_future(done)
