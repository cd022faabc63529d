"""Inline completion on a REAL Jupyter server: jupyter-ai's completion websocket
(``/api/ai/completion/inline``) with the ``vision`` provider as the completion model,
a notebook open collaboratively (outputs and edits only in the live document) and the
recording model server behind LiteLLM.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from fixtures.jupyter_server import VISION_MODEL
from fixtures.model_server import images_in, text_in

pytestmark = [pytest.mark.server, pytest.mark.asyncio(loop_scope="module")]

MODEL = f"vision:{VISION_MODEL}"


class CompletionClient:
    """What JupyterLab's inline completer does on ``/api/ai/completion/inline``."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.received: list[dict[str, Any]] = []

    async def send(self, number: int, prefix: str, suffix: str = "", **kw: Any) -> None:
        request = {
            "number": number,
            "prefix": prefix,
            "suffix": suffix,
            "mime": "text/x-ipython",
            "language": "python",
            "stream": False,
            **kw,
        }
        await self.ws.send(json.dumps(request))

    async def next(self, timeout: float = 30) -> dict[str, Any]:
        msg = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        self.received.append(msg)
        return msg

    async def complete(self, number: int, prefix: str, suffix: str = "", **kw: Any) -> dict:
        """Send a non-streaming request and wait for its reply."""
        await self.send(number, prefix, suffix, **kw)
        while True:
            msg = await self.next()
            if msg.get("reply_to") == number:
                return msg

    async def stream(self, number: int, prefix: str, suffix: str = "", **kw: Any) -> list[dict]:
        """Send a streaming request; every message answering it, up to ``done``."""
        await self.send(number, prefix, suffix, stream=True, **kw)
        messages: list[dict[str, Any]] = []
        while True:
            msg = await self.next()
            if msg.get("reply_to") != number:
                continue
            messages.append(msg)
            if msg.get("type") == "stream" and msg["done"]:
                return messages


@contextlib.asynccontextmanager
async def completion_socket(server: Any, user: str = "alice") -> AsyncIterator[CompletionClient]:
    import websockets

    url = server.ws_url("/api/ai/completion/inline", user)
    async with websockets.connect(url, max_size=None) as ws:
        yield CompletionClient(ws)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def completion_server(jupyter_server: Any) -> Any:
    """The session's server with the vision provider chosen as the completion model."""
    current = (await jupyter_server.request("GET", "/api/ai/config")).json()
    body = {
        "completions_model_provider_id": MODEL,
        "completions_fields": {MODEL: {}},
        "last_read": current["last_read"],
    }
    resp = await jupyter_server.request("POST", "/api/ai/config", json_body=body)
    assert resp.status_code < 400, resp.text
    return jupyter_server


FIGURE = (
    "import matplotlib.pyplot as plt\n"
    "fig, ax = plt.subplots(figsize=(4, 3))\n"
    "ax.plot([1, 2, 3], [30, 10, 20], color='red')\n"
    "ax.set_title('Revenue by month')\n"
    "plt.show()"
)
CELLS = [
    "# md: ## Revenue analysis",
    FIGURE,
    "revenue_total = 60\nprint('total revenue', revenue_total)",
    "rev",
    "following_marker = 'after the cursor'",
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live_notebook(completion_server: Any) -> AsyncIterator[Any]:
    """``comp/live.ipynb`` open collaboratively, cells 1-2 executed (outputs live only)
    and one unsaved cell appended."""
    path = completion_server.write_notebook("comp/live.ipynb", CELLS)
    opened: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    close = asyncio.Event()

    async def hold_open() -> None:
        # one task enters and leaves the collaborative session (pycrdt's task group)
        try:
            async with completion_server.open_notebook(path, user="alice") as nb:
                await nb.execute(1)
                await nb.execute(2)
                await nb.append_cell("unsaved_cell_marker = 7")
                opened.set_result(nb)
                await close.wait()
        except BaseException as exc:
            if not opened.done():
                opened.set_exception(exc)
            raise

    task = asyncio.create_task(hold_open())
    yield await opened
    close.set()
    await task


def _cell_id(nb: Any, index: int) -> str:
    return str(nb.cells[index]["id"])


async def test_completion_sees_live_cells_outputs_and_figure(
    completion_server: Any, live_notebook: Any, model_server: Any
) -> None:
    model_server.set_reply("enue_total * 2")
    async with completion_socket(completion_server) as client:
        reply = await client.complete(
            1, "rev", "", path=live_notebook.path, cell_id=_cell_id(live_notebook, 3)
        )
    assert reply["error"] is None
    assert reply["list"]["items"][0]["insertText"] == "enue_total * 2"
    body = model_server.chat_requests()[-1]
    text = text_in(body)
    assert "Revenue analysis" in text  # a preceding markdown cell
    assert "total revenue 60" in text  # a preceding cell's output (only in the live doc)
    assert "following_marker" in text  # a following cell
    assert "unsaved_cell_marker" in text  # an unsaved edit: the live document was read
    assert "Complete the following code" in text and "rev" in text
    images = images_in(body)
    assert len(images) == 1  # the figure above the cursor, within the small budget
    assert max(images[0].size) <= 768
    # the model was asked with the right model id, not streaming
    assert body["model"].endswith(VISION_MODEL.split("/")[-1]) and not body.get("stream")


async def test_streaming_completion(
    completion_server: Any, live_notebook: Any, model_server: Any
) -> None:
    model_server.set_reply("```python\nrevenue_total / 3\n```")
    cell_id = _cell_id(live_notebook, 3)
    async with completion_socket(completion_server) as client:
        messages = await client.stream(7, "", "", path=live_notebook.path, cell_id=cell_id)
    first, chunks = messages[0], messages[1:]
    item = first["list"]["items"][0]
    assert item["isIncomplete"] is True and item["insertText"] == "" and item["token"]
    assert chunks and all(c["type"] == "stream" for c in chunks)
    assert {c["response"]["token"] for c in chunks} == {item["token"]}
    assert [c["done"] for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert chunks[-1]["response"]["insertText"] == "revenue_total / 3"  # fences removed
    assert chunks[-1]["error"] is None
    body = model_server.chat_requests()[-1]
    assert body.get("stream") is True and "total revenue 60" in text_in(body)
    # another stream gets another token
    async with completion_socket(completion_server) as client:
        again = await client.stream(7, "", "", path=live_notebook.path, cell_id=cell_id)
    assert again[0]["list"]["items"][0]["token"] != item["token"]


async def test_stale_request_does_not_hold_up_a_newer_one(
    completion_server: Any, live_notebook: Any, model_server: Any
) -> None:
    arrived = threading.Event()  # the stale request reached the model...
    release = threading.Event()  # ...whose answer hangs until the end of the test

    def reply(body: dict[str, Any]) -> str:
        if "slow_marker" in text_in(body):
            arrived.set()
            release.wait(30)
            return "old"
        return "new"

    model_server.set_reply(reply)
    cell_id = _cell_id(live_notebook, 3)
    try:
        async with completion_socket(completion_server) as client:
            await client.send(20, "slow_marker = ", path=live_notebook.path, cell_id=cell_id)
            assert await asyncio.to_thread(arrived.wait, 10)
            await client.send(21, "fast = ", path=live_notebook.path, cell_id=cell_id)
            replies = {}
            while len(replies) < 2:
                msg = await client.next(timeout=10)
                replies[msg["reply_to"]] = msg
            # both answers arrived while the stale model call still hangs: not held up by it
            assert not release.is_set()
            assert replies[21]["list"]["items"][0]["insertText"] == "new"
            # the stale request was cancelled: an empty completion, never an error
            stale = replies[20]
            assert stale["error"] is None and stale["list"]["items"][0]["insertText"] == ""
    finally:
        release.set()


async def test_saved_file_is_used_when_the_notebook_is_not_open(
    completion_server: Any, model_server: Any
) -> None:
    path = completion_server.write_notebook(
        "comp/closed.ipynb", ["saved_only_marker = 1", "saved_only_marker."]
    )
    nb = json.loads((completion_server.root / path).read_text())
    model_server.set_reply("bit_length()")
    async with completion_socket(completion_server) as client:
        reply = await client.complete(
            2, "saved_only_marker.", path=path, cell_id=nb["cells"][1]["id"]
        )
    assert reply["error"] is None and reply["list"]["items"][0]["insertText"] == "bit_length()"
    assert "saved_only_marker = 1" in text_in(model_server.chat_requests()[-1])


@pytest.mark.parametrize(
    ("path", "cell"),
    [
        ("comp/never-written.ipynb", "abc"),  # not open, not on disk
        ("comp/script.py", "abc"),  # not a notebook
        ("../outside.ipynb", "abc"),  # outside the root
        ("/etc/passwd", "abc"),
        ("comp/live.ipynb", "no-such-cell"),  # unknown cell id
        (None, None),
    ],
)
async def test_bad_targets_give_a_plain_completion(
    completion_server: Any, live_notebook: Any, model_server: Any, path: Any, cell: Any
) -> None:
    (completion_server.root / "comp" / "script.py").write_text("x = 1\n")
    model_server.set_reply("plain")
    async with completion_socket(completion_server) as client:
        reply = await client.complete(3, "x = ", path=path, cell_id=cell)
    assert reply["error"] is None and reply["list"]["items"][0]["insertText"] == "plain"
    text = text_in(model_server.chat_requests()[-1])
    assert "x = " in text and "total revenue" not in text  # prefix/suffix only


async def test_a_1mb_cell_is_cut_not_sent_whole(
    completion_server: Any, live_notebook: Any, model_server: Any
) -> None:
    big = "data = '" + "z" * 1_000_000 + "'\nda"
    model_server.set_reply("ta.upper()")
    async with completion_socket(completion_server) as client:
        reply = await client.complete(
            4,
            big,
            "\n" + "y" * 1_000_000,
            path=live_notebook.path,
            cell_id=_cell_id(live_notebook, 3),
        )
    assert reply["error"] is None and reply["list"]["items"][0]["insertText"] == "ta.upper()"
    text = text_in(model_server.chat_requests()[-1])
    assert len(text) < 60_000 and text.rstrip().endswith("da")


async def test_cancelled_requests_leave_the_server_working(
    completion_server: Any, live_notebook: Any, model_server: Any
) -> None:
    model_server.set_reply("one two three four five six seven eight")
    model_server.set_chunk_delay(0.3)
    cell_id = _cell_id(live_notebook, 3)
    async with completion_socket(completion_server) as client:
        await client.send(30, "words = ", path=live_notebook.path, cell_id=cell_id, stream=True)
        opening = await client.next()
        assert opening["list"]["items"][0]["isIncomplete"] is True
        chunk = await client.next()  # streaming has started
        assert chunk["type"] == "stream" and not chunk["done"]
    # the browser went away mid-stream: the model stream is closed, the next request works
    assert await asyncio.to_thread(
        model_server.wait_for, lambda recs: recs and recs[-1].outcome == "client_closed", 15
    )
    model_server.set_chunk_delay(0)
    model_server.set_reply("ok")
    async with completion_socket(completion_server) as client:
        reply = await client.complete(31, "x = ", path=live_notebook.path, cell_id=cell_id)
    assert reply["error"] is None and reply["list"]["items"][0]["insertText"] == "ok"
    log = completion_server.log_text()
    ours = [t for t in log.split("Traceback")[1:] if "jupyter_ai_vision" in t[:3000]]
    assert not ours, ours[0][:3000]
