"""A local OpenAI-compatible model server that records every request (for tests and demos).

It implements ``/v1/chat/completions`` (SSE streaming with a usage chunk, and non-streaming),
``/v1/embeddings`` and ``/v1/models`` on 127.0.0.1, records each request (path, headers,
JSON body) and can be told to fail: ``401``, ``429``, ``503``, ``timeout``, ``no_images``
(400 "does not support images"), ``midstream`` (an error event after a few chunks),
``malformed`` (invalid SSE) and ``disconnect`` (connection dropped mid-stream).

The reply can also be a tool call (:class:`ToolCall`, or a list of them), streamed as OpenAI's
``tool_calls`` deltas, so an agent's tool loop can be driven: a reply function sees the whole
request, e.g. it calls a tool first and answers once the request carries the tool's result
(:func:`tool_results_in`).

Run it::

    python -m jupyter_ai_vision.testing.model_server --port 8765 --reply "Hello"

then point any OpenAI-compatible client (or ``api_base``) at ``http://127.0.0.1:8765/v1``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import io
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAIL_MODES = (
    "401",
    "404",
    "429",
    "500",
    "503",
    "timeout",
    "no_images",
    "context",
    "midstream",
    "malformed",
    "disconnect",
)

_ERRORS: dict[str, tuple[int, str, str]] = {
    "401": (401, "Incorrect API key provided.", "invalid_request_error"),
    "404": (404, "The model does not exist or you do not have access to it.", "not_found"),
    "429": (429, "Rate limit reached for requests.", "rate_limit_exceeded"),
    "500": (500, "The server had an error while processing your request.", "server_error"),
    "503": (503, "The server is overloaded or not ready yet.", "server_error"),
    "no_images": (
        400,
        "This model does not support images. Invalid content type: image_url.",
        "invalid_request_error",
    ),
    "context": (
        400,
        "This model's maximum context length is 8192 tokens. However, your messages resulted "
        "in 20000 tokens. Please reduce the length of the messages.",
        "context_length_exceeded",
    ),
}


@dataclass(frozen=True)
class ToolCall:
    """A scripted assistant tool call (``arguments`` is sent as its JSON text)."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str = "call_test_1"

    def to_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": json.dumps(self.arguments)},
        }


#: What a reply may be: text, one tool call or several (parallel tool calls).
Reply = str | ToolCall | list[ToolCall]


@dataclass
class RecordedRequest:
    """One request as the server received it."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    #: "completed", "client_closed" (the client hung up mid-stream), "failed:<mode>"
    outcome: str = "pending"
    chunks_sent: int = 0


@dataclass
class _State:
    reply: Reply | Callable[[dict[str, Any]], Reply] = "Hello from the recording model server."
    chunk_delay: float = 0.0
    fail_mode: str | None = None
    fail_times: int | None = None  # None: every request fails
    timeout_sleep: float = 30.0
    embedding_dim: int = 8
    records: list[RecordedRequest] = field(default_factory=list)


class ModelServer:
    """The recording server; ``start()`` runs it in a daemon thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._state = _State()
        self._lock = threading.Condition()
        self._stopping = threading.Event()
        server = ThreadingHTTPServer((host, port), _make_handler(self))
        server.daemon_threads = True
        self._server = server
        self._thread: threading.Thread | None = None

    # ----- lifecycle -------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The ``api_base`` to use: ``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> ModelServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="model-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----- configuration ---------------------------------------------------------------
    def set_reply(self, text: Reply | Callable[[dict[str, Any]], Reply]) -> None:
        """The assistant's reply: a string or :class:`ToolCall` (list), or a function of the
        request body returning one."""
        with self._lock:
            self._state.reply = text

    def set_chunk_delay(self, seconds: float) -> None:
        """Delay between streamed chunks (for stop-mid-stream tests)."""
        with self._lock:
            self._state.chunk_delay = seconds

    def fail(self, mode: str | int | None, *, times: int | None = None) -> None:
        """Fail the next ``times`` requests (all when None) with ``mode`` (see FAIL_MODES)."""
        mode = None if mode is None else str(mode)
        if mode is not None and mode not in FAIL_MODES:
            raise ValueError(f"unknown fail mode {mode!r}; one of {', '.join(FAIL_MODES)}")
        with self._lock:
            self._state.fail_mode = mode
            self._state.fail_times = times

    def set_timeout_sleep(self, seconds: float) -> None:
        with self._lock:
            self._state.timeout_sleep = seconds

    def reset(self) -> None:
        """Back to defaults: default reply, no delay, no failures, no recorded requests."""
        with self._lock:
            self._state = _State()

    # ----- inspection ------------------------------------------------------------------
    @property
    def records(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._state.records)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Recorded JSON bodies, oldest first."""
        return [r.body for r in self.records]

    def chat_requests(self) -> list[dict[str, Any]]:
        return [r.body for r in self.records if r.path.endswith("/chat/completions")]

    def wait_for(
        self, predicate: Callable[[list[RecordedRequest]], bool], timeout: float = 5.0
    ) -> bool:
        """Wait until ``predicate(records)`` is true; returns whether it became true."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(list(self._state.records)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)
            return True

    async def wait_for_async(
        self, predicate: Callable[[list[RecordedRequest]], bool], timeout: float = 5.0
    ) -> bool:
        """:meth:`wait_for` without blocking the event loop (closing a stream needs the loop)."""
        import asyncio

        return await asyncio.to_thread(self.wait_for, predicate, timeout)

    # ----- internals used by the handler ----------------------------------------------
    def _record(self, rec: RecordedRequest) -> tuple[_State, str | None]:
        with self._lock:
            self._state.records.append(rec)
            self._lock.notify_all()
            state = self._state
            mode = state.fail_mode
            if mode is not None and state.fail_times is not None:
                state.fail_times -= 1
                if state.fail_times <= 0:
                    state.fail_mode = None
                    state.fail_times = None
            return state, mode

    def _update(self, rec: RecordedRequest, *, outcome: str | None = None) -> None:
        with self._lock:
            if outcome is not None:
                rec.outcome = outcome
            self._lock.notify_all()


# ----- helpers for tests ----------------------------------------------------------------
_DATA_URI = re.compile(r"^data:(?P<mime>[\w/+.-]+);base64,(?P<data>.*)$", re.S)


def image_urls_in(request: dict[str, Any]) -> list[str]:
    """Every ``image_url`` URL in a chat request's messages, in order."""
    urls: list[str] = []
    for message in request.get("messages", []):
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "image_url":
                    image_url = part.get("image_url")
                    url = image_url.get("url") if isinstance(image_url, dict) else image_url
                    urls.append(str(url))
    return urls


def images_in(request: dict[str, Any]) -> list[Any]:
    """Decode every data-URI image in a chat request into a ``PIL.Image`` (RGB/RGBA kept)."""
    from PIL import Image

    images = []
    for url in image_urls_in(request):
        match = _DATA_URI.match(url)
        if not match:
            raise ValueError(f"not a base64 data URI: {url[:60]}")
        img = Image.open(io.BytesIO(base64.b64decode(match["data"])))
        img.load()
        images.append(img)
    return images


def text_in(request: dict[str, Any]) -> str:
    """All the text of a chat request's messages, joined by newlines."""
    texts: list[str] = []
    for message in request.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(
                str(p.get("text", ""))
                for p in content
                if isinstance(p, dict) and p.get("type") == "text"
            )
    return "\n".join(texts)


def tool_results_in(request: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``role: tool`` messages of a chat request (results of earlier tool calls)."""
    return [m for m in request.get("messages", []) if m.get("role") == "tool"]


def fake_embedding(text: str, dim: int) -> list[float]:
    """A deterministic unit-free vector for ``text`` (same text, same vector)."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return [(digest[i % len(digest)] - 128) / 128.0 for i in range(dim)]


# ----- HTTP handler ---------------------------------------------------------------------
def _make_handler(server: ModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.1 with chunked streams, like real model servers (aiohttp, which LiteLLM uses,
        # only drops the connection of an unfinished HTTP/1.1 body when a stream is closed).
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: tests read the records instead

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/models"):
                self._json(200, {"object": "list", "data": [{"id": "test-model"}]})
            else:
                self._json(404, {"error": {"message": "not found", "type": "not_found"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                self._json(400, {"error": {"message": "invalid JSON body", "type": "invalid"}})
                return
            rec = RecordedRequest(
                path=self.path, headers={k.lower(): v for k, v in self.headers.items()}, body=body
            )
            state, mode = server._record(rec)
            if mode == "timeout":
                server._stopping.wait(state.timeout_sleep)
                server._update(rec, outcome="failed:timeout")
                self._try_json(504, {"error": {"message": "timed out", "type": "timeout"}})
                return
            if mode in _ERRORS:
                status, message, etype = _ERRORS[mode]
                server._update(rec, outcome=f"failed:{mode}")
                self._json(status, {"error": {"message": message, "type": etype, "code": etype}})
                return
            path = self.path.rstrip("/")
            if path.endswith("/chat/completions"):
                self._chat(rec, body, state, mode)
            elif path.endswith("/embeddings"):
                self._embeddings(rec, body, state)
            else:
                self._json(404, {"error": {"message": "not found", "type": "not_found"}})

        # -- responses
        def _json(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
            self.close_connection = True

        def _try_json(self, status: int, payload: dict[str, Any]) -> None:
            with contextlib.suppress(OSError):  # the client gave up first
                self._json(status, payload)

        def _embeddings(self, rec: RecordedRequest, body: dict[str, Any], state: _State) -> None:
            inputs = body.get("input", [])
            if isinstance(inputs, str):
                inputs = [inputs]
            dim = int(body.get("dimensions") or state.embedding_dim)
            data = [
                {"object": "embedding", "index": i, "embedding": fake_embedding(str(t), dim)}
                for i, t in enumerate(inputs)
            ]
            tokens = sum(len(str(t).split()) for t in inputs)
            server._update(rec, outcome="completed")
            self._json(
                200,
                {
                    "object": "list",
                    "data": data,
                    "model": body.get("model", "test-embedding"),
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                },
            )

        def _chat(
            self, rec: RecordedRequest, body: dict[str, Any], state: _State, mode: str | None
        ) -> None:
            reply = state.reply(body) if callable(state.reply) else state.reply
            model = body.get("model", "test-model")
            prompt_tokens = max(1, len(text_in(body)) // 4) + 85 * len(image_urls_in(body))
            completion_tokens = len(reply.split()) if isinstance(reply, str) else 10
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            }
            if not body.get("stream"):
                # Recorded before the last byte goes out: a client that has read the reply
                # must find the outcome already there.
                server._update(rec, outcome="completed")
                try:
                    self._json(200, _completion(model, reply, usage))
                except OSError:  # BrokenPipe / ConnectionReset: the client gave up first
                    server._update(rec, outcome="client_closed")
                return
            self._stream(rec, body, state, mode, reply, usage)

        def _stream(
            self,
            rec: RecordedRequest,
            body: dict[str, Any],
            state: _State,
            mode: str | None,
            reply: Reply,
            usage: dict[str, int],
        ) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.close_connection = True
            model = body.get("model", "test-model")

            def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
                return {
                    "id": "chatcmpl-test",
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                }

            events: list[bytes] = [_sse(chunk({"role": "assistant", "content": ""}))]
            if isinstance(reply, str):
                pieces = re.findall(r"\S+\s*|\s+", reply) or [""]
                events += [_sse(chunk({"content": p})) for p in pieces]
                events.append(_sse(chunk({}, "stop")))
            else:
                events += [_sse(chunk({"tool_calls": [d]})) for d in _tool_call_deltas(reply)]
                events.append(_sse(chunk({}, "tool_calls")))
            if (body.get("stream_options") or {}).get("include_usage"):
                events.append(_sse({**chunk({}), "choices": [], "usage": usage}))
            events.append(b"data: [DONE]\n\n")
            try:
                for i, event in enumerate(events):
                    if mode in ("midstream", "malformed", "disconnect") and i == 2:
                        self._break_stream(rec, mode)
                        return
                    if i and state.chunk_delay and server._stopping.wait(state.chunk_delay):
                        return
                    if i == len(events) - 1:  # [DONE]: the client may stop reading after it
                        server._update(rec, outcome="completed")
                    self._write_chunk(event)
                    rec.chunks_sent += 1
            except OSError:  # BrokenPipe / ConnectionReset: the client closed the stream
                server._update(rec, outcome="client_closed")
                return
            with contextlib.suppress(OSError):  # the client may already have hung up
                self._write_chunk(b"")  # end of the chunked body

        def _write_chunk(self, data: bytes) -> None:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        def _break_stream(self, rec: RecordedRequest, mode: str) -> None:
            if mode == "midstream":
                error = {
                    "error": {"message": "The model crashed mid-stream.", "type": "server_error"}
                }
                self._write_chunk(_sse(error))
            elif mode == "malformed":
                self._write_chunk(b'data: {"id": "chatcmpl-test", "choices": [{"delta": {"con\n\n')
            if mode != "disconnect":
                self._write_chunk(b"")
            server._update(rec, outcome=f"failed:{mode}")
            # "disconnect": returning closes the connection without [DONE]

    return Handler


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def _tool_calls(reply: ToolCall | list[ToolCall]) -> list[ToolCall]:
    return [reply] if isinstance(reply, ToolCall) else list(reply)


def _tool_call_deltas(reply: ToolCall | list[ToolCall]) -> list[dict[str, Any]]:
    """Streamed tool calls as OpenAI sends them: id and name first, then the arguments text
    in two pieces (clients must join them)."""
    deltas: list[dict[str, Any]] = []
    for index, call in enumerate(_tool_calls(reply)):
        arguments = json.dumps(call.arguments)
        half = len(arguments) // 2
        deltas.append(
            {
                "index": index,
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
        )
        for piece in (arguments[:half], arguments[half:]):
            deltas.append({"index": index, "function": {"arguments": piece}})
    return deltas


def _completion(model: str, reply: Reply, usage: dict[str, int]) -> dict[str, Any]:
    """A non-streaming chat completion body."""
    if not isinstance(reply, str):
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None,
            "tool_calls": [call.to_openai() for call in _tool_calls(reply)],
        }
        finish = "tool_calls"
    else:
        message, finish = {"role": "assistant", "content": reply}, "stop"
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--reply", default=_State.reply)
    parser.add_argument("--chunk-delay", type=float, default=0.0)
    parser.add_argument("--fail", choices=FAIL_MODES, default=None)
    args = parser.parse_args(argv)
    server = ModelServer(args.host, args.port)
    server.set_reply(args.reply)
    server.set_chunk_delay(args.chunk_delay)
    server.fail(args.fail)
    server.start()
    print(f"recording model server on {server.url} (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
