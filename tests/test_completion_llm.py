"""Inline completion through the real ``vision`` provider, LiteLLM's HTTP path and the
recording model server: what the model was given, the reply contract, streaming tokens,
superseded requests, errors.
"""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import pytest
from fixtures.model_server import images_in, text_in
from fixtures.notebooks import write_notebook
from jupyter_ai_magics.models.completion import (
    InlineCompletionReply,
    InlineCompletionRequest,
    InlineCompletionStreamChunk,
)
from nbformat.v4 import new_code_cell, new_markdown_cell

from jupyter_ai_vision.hosts.jupyter_ai_2 import completion

pytestmark = pytest.mark.jupyter_ai_2


def make_provider(model_server: Any, model: str = "openai/gpt-4o", **kw: Any) -> Any:
    from jupyter_ai_vision.hosts.jupyter_ai_2.provider import VisionProvider

    return VisionProvider(model_id=model, api_base=model_server.url, api_key="sk-secret-1234", **kw)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, executed_notebook: Any) -> Path:
    """A server root holding the executed rich notebook plus a cell to complete."""
    root = tmp_path_factory.mktemp("completion-root")
    nb = copy.deepcopy(executed_notebook)
    at = next(i for i, c in enumerate(nb.cells) if c.get("id") == "pandas") + 1
    nb.cells.insert(at, new_code_cell("df.", id="here"))
    nb.cells.insert(at + 1, new_markdown_cell("The chart above shows ", id="prose"))
    write_notebook(nb, root / "rich.ipynb")
    return root


def req(
    root: Path | None = None, cell_id: str | None = "here", **kw: Any
) -> InlineCompletionRequest:
    fields: dict[str, Any] = {
        "number": 1,
        "prefix": "df.",
        "suffix": "",
        "mime": "text/x-ipython",
        "stream": False,
        "language": "python",
        "path": "rich.ipynb" if root is not None else None,
        "cell_id": cell_id if root is not None else None,
    }
    fields.update(kw)
    return InlineCompletionRequest(**fields)


def settings(root: Path) -> dict[str, Any]:
    return {"server_root_dir": str(root)}


async def test_generate_sends_neighbours_outputs_and_the_nearest_figure(
    model_server: Any, root: Path
) -> None:
    model_server.set_reply("```python\ndf.groupby('city').mean()\n```")
    reply = await completion.generate(
        make_provider(model_server), req(root), server_settings=settings(root)
    )
    assert isinstance(reply, InlineCompletionReply) and reply.error is None
    assert reply.reply_to == 1
    # fences gone, the repeated "df." gone
    assert [i.insertText for i in reply.list.items] == ["groupby('city').mean()"]
    (body,) = model_server.chat_requests()
    text = text_in(body)
    assert "'city': ['Oslo', 'Lima']" in text  # the preceding cell's source
    assert "Oslo" in text and "19.0" in text  # ... and its text output
    assert "The chart above shows" in text  # a following cell
    assert "Complete the following code" in text and text.rstrip().endswith("df.")
    images = images_in(body)
    assert len(images) == 1  # the most recent figure above the cursor (the 4x3 in bar chart)
    assert images[0].size == (400, 300)
    assert "<notebook-content>" in text  # notebook content marked as data


async def test_stream_contract_and_unique_tokens(model_server: Any, root: Path) -> None:
    model_server.set_reply("groupby('city')['temp'].mean()")
    provider = make_provider(model_server)
    r = req(root, number=5, stream=True)
    messages = [m async for m in completion.stream(provider, r, server_settings=settings(root))]
    first, chunks = messages[0], messages[1:]
    assert isinstance(first, InlineCompletionReply)
    (item,) = first.list.items
    assert item.isIncomplete is True and item.insertText == "" and item.token
    assert len(chunks) >= 2 and all(isinstance(c, InlineCompletionStreamChunk) for c in chunks)
    assert {c.response.token for c in chunks} == {item.token}
    assert [c.done for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert all(c.reply_to == 5 for c in messages)
    # each chunk holds the suggestion so far; the last one is complete
    texts = [c.response.insertText for c in chunks]
    assert texts[-1] == "groupby('city')['temp'].mean()"
    assert all(texts[-1].startswith(t) for t in texts)
    assert model_server.chat_requests()[-1]["stream"] is True
    again = [m async for m in completion.stream(provider, r, server_settings=settings(root))]
    assert again[0].list.items[0].token != item.token  # a unique token per stream


async def test_markdown_cell_gets_a_markdown_completion(model_server: Any, root: Path) -> None:
    model_server.set_reply("a red ellipse on a white background.\n\n```python\nim\n```")
    r = req(
        root,
        cell_id="prose",
        prefix="The chart above shows ",
        mime="text/x-ipythongfm",
        language="markdown",
    )
    reply = await completion.generate(
        make_provider(model_server), r, server_settings=settings(root)
    )
    # fences inside a markdown answer are content, kept
    assert reply.list.items[0].insertText.startswith("a red ellipse on a white background.")
    assert "```python" in reply.list.items[0].insertText
    body = model_server.chat_requests()[-1]
    assert "markdown cell" in body["messages"][0]["content"]
    assert "Complete the following text" in text_in(body)


async def test_superseded_stream_ends_at_once_and_closes_the_model_stream(
    model_server: Any, root: Path
) -> None:
    provider = make_provider(model_server)
    model_server.set_reply("one two three four five six seven eight nine ten")
    model_server.set_chunk_delay(0.4)
    old = req(root, number=1, stream=True)
    received: list[Any] = []

    async def consume() -> None:
        async for m in completion.stream(provider, old, server_settings=settings(root)):
            received.append(m)

    task = asyncio.create_task(consume())
    assert await asyncio.to_thread(model_server.wait_for, lambda recs: len(recs) == 1, 10)
    await asyncio.sleep(0.5)  # a chunk or two arrived
    model_server.set_chunk_delay(0)
    model_server.set_reply("newer")
    newer = await completion.generate(provider, req(root, number=2), server_settings=settings(root))
    await asyncio.wait_for(task, 10)
    assert newer.list.items[0].insertText == "newer"
    last = received[-1]
    assert isinstance(last, InlineCompletionStreamChunk) and last.done and last.error is None
    assert len(last.response.insertText) < len("one two three four five six seven eight nine ten")
    assert await asyncio.to_thread(
        model_server.wait_for, lambda recs: recs[0].outcome == "client_closed", 10
    )


async def test_model_errors_give_an_empty_completion_and_one_line(model_server: Any) -> None:
    provider = make_provider(model_server)
    model_server.fail("401")
    reply = await completion.generate(provider, req())
    assert reply.list.items == [] and reply.error is not None
    assert "\n" not in reply.error.title and "sk-secret-1234" not in reply.error.title
    assert reply.error.traceback == ""
    messages = [m async for m in completion.stream(provider, req(stream=True))]
    assert messages[-1].done and messages[-1].error is not None
    assert messages[-1].response.insertText == ""


async def test_a_model_refusing_images_is_retried_without_them(
    model_server: Any, root: Path
) -> None:
    model_server.set_reply("head()")
    model_server.fail("no_images", times=1)
    reply = await completion.generate(
        make_provider(model_server), req(root), server_settings=settings(root)
    )
    assert reply.error is None and reply.list.items[0].insertText == "head()"
    first, retry = model_server.chat_requests()
    assert len(images_in(first)) == 1 and images_in(retry) == []
    assert "Oslo" in text_in(retry)


async def test_a_streamed_completion_refused_with_images_gets_no_note_in_the_code(
    model_server: Any, root: Path
) -> None:
    """The provider retries without images and reports it in machine-readable notes; the
    suggestion inserted into the cell is the model's own text only."""
    model_server.set_reply("head()")
    model_server.fail("no_images", times=1)
    replies = [
        m
        async for m in completion.stream(
            make_provider(model_server), req(root, stream=True), server_settings=settings(root)
        )
    ]
    last = replies[-1]
    assert isinstance(last, InlineCompletionStreamChunk) and last.done and last.error is None
    assert last.response.insertText == "head()"
    first, retry = model_server.chat_requests()
    assert len(images_in(first)) == 1 and images_in(retry) == []


@pytest.mark.parametrize(
    ("model", "kw"),
    [
        ("openai/gpt-4o", {"completion_images": False}),
        ("openai/gpt-4o", {"completion_max_images": 0}),
        ("openai/gpt-4o", {"completion_image_tokens": 10}),  # below one figure's cost
        ("openai/gpt-3.5-turbo", {}),  # not a vision model
    ],
)
async def test_no_figure_when_disabled_or_not_a_vision_model(
    model_server: Any, root: Path, model: str, kw: dict[str, Any]
) -> None:
    model_server.set_reply("head()")
    provider = make_provider(model_server, model, **kw)
    await completion.generate(provider, req(root), server_settings=settings(root))
    body = model_server.chat_requests()[-1]
    assert images_in(body) == [] and "Oslo" in text_in(body)


async def test_context_cells_setting(model_server: Any, root: Path) -> None:
    model_server.set_reply("head()")
    provider = make_provider(model_server, completion_context_cells=1, completion_images=False)
    await completion.generate(provider, req(root), server_settings=settings(root))
    text = text_in(model_server.chat_requests()[-1])
    assert "Oslo" in text and "The chart above shows" in text
    assert "ellipse" not in text  # two cells down: outside a 1-cell window


async def test_completion_settings_are_fields_never_sent_to_the_chat_api(model_server: Any) -> None:
    from langchain_core.messages import HumanMessage

    from jupyter_ai_vision.hosts.jupyter_ai_2.provider import ModelParameterError, VisionProvider

    keys = {f.key for f in VisionProvider.fields}
    assert set(completion.SETTING_NAMES) <= keys  # shown in the Jupyter AI settings
    provider = make_provider(model_server, completion_images="false", completion_context_cells="2")
    assert provider.completion_images is False and provider.completion_context_cells == 2
    assert completion.settings_for(provider).context_cells == 2

    model_server.set_reply("hello")
    await provider.ainvoke([HumanMessage(content="hi")])
    body = model_server.chat_requests()[-1]
    assert not any(key.startswith("completion_") for key in body)

    with pytest.raises(ModelParameterError, match="completion_context_cells must be a whole"):
        make_provider(model_server, completion_context_cells="many")


async def test_a_text_only_completion_model_gets_the_figure_as_a_caption(
    model_server: Any, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jupyter_ai_vision.llm import captions

    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(captions, "_store", None)

    def reply(body: dict[str, Any]) -> str:
        return "A bar chart of temperature by city." if images_in(body) else "head()"

    model_server.set_reply(reply)
    provider = make_provider(
        model_server,
        "openai/gpt-3.5-turbo",  # takes no images
        caption_model="openai/gpt-4o-mini",
        caption_api_base=model_server.url,
    )
    # The first completion may not wait for a cold caption (1.5 s budget): it keeps the stub
    # and the caption is stored when it arrives; the next completion has it.
    await completion.generate(provider, req(root), server_settings=settings(root))
    assert await model_server.wait_for_async(
        lambda records: any(images_in(r.body) and r.outcome for r in records), timeout=60
    )
    store = captions.default_store()  # then the caption is written to the store
    for _ in range(600):
        if len(store):
            break
        await asyncio.sleep(0.05)
    await completion.generate(provider, req(root), server_settings=settings(root))
    requests = model_server.chat_requests()
    caption_requests = [r for r in requests if images_in(r)]
    completions = [r for r in requests if not images_in(r)]
    assert len(caption_requests) == 1 and len(completions) == 2
    assert "caption: A bar chart of temperature by city." in text_in(completions[-1])
