"""/see end to end on a real Jupyter server: live notebooks, real kernels, the chat websocket,
LiteLLM's real HTTP path to the recording model server."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import pytest
from fixtures.model_server import images_in, text_in

pytestmark = pytest.mark.server

RED, GREEN, BLUE = (255, 0, 0), (0, 160, 0), (0, 0, 255)

LINE_CELL = (
    "import matplotlib.pyplot as plt\n"
    "fig, ax = plt.subplots(figsize=(4, 3), dpi=80)\n"
    "ax.plot([0, 1, 2, 3], [0, 1, 4, 9], color='{colour}', linewidth=8)\n"
    "ax.set_title('squares')\n"
    "plt.show()"
)
ALTAIR_CELL = (
    "import altair as alt, pandas as pd\n"
    "alt.Chart(pd.DataFrame({'x': ['a', 'b', 'c'], 'y': [3, 1, 2]}), width=200, height=150)"
    ".mark_bar(color='#0000ff').encode(x='x:N', y='y:Q')"
)


def colour_share(img: Any, rgb: tuple[int, int, int], tol: int = 60) -> float:
    """Fraction of pixels within ``tol`` of ``rgb`` (the plot's colour really is in the pixels)."""
    rgb_img = img.convert("RGB")
    rgb_img.thumbnail((200, 200))
    pixels = list(rgb_img.getdata())
    near = sum(1 for p in pixels if all(abs(a - b) <= tol for a, b in zip(p, rgb, strict=True)))
    return near / len(pixels)


def last_user_images(request: dict[str, Any]) -> list[Any]:
    """Images in the request's last user message (what this question added)."""
    user = [m for m in request["messages"] if m["role"] == "user"]
    return images_in({"messages": user[-1:]})


def assert_one_line(text: str) -> None:
    assert "\n" not in text.strip(), text
    assert "Traceback" not in text and "```" not in text, text


async def test_live_unsaved_outputs_are_seen_and_followups_do_not_resend(
    jupyter_server: Any, model_server: Any
) -> None:
    server = jupyter_server
    path = server.write_notebook(
        "analysis.ipynb",
        ["# md: # Analysis", LINE_CELL.format(colour="#ff0000"), ALTAIR_CELL, "x = 41 + 1\nx"],
    )
    model_server.set_reply("The line is red.")
    async with server.open_notebook(path, user="alice") as nb:
        await nb.execute_all()
        async with server.chat("alice") as chat:
            reply = await chat.ask("/see what colour is the line?")

            # The file on disk was never saved: what the model saw came from the live document.
            disk = json.loads((server.root / path).read_text())
            assert all(not c.get("outputs") for c in disk["cells"])
            request = model_server.chat_requests()[-1]
            images = images_in(request)
            assert len(images) == 2
            assert max(colour_share(i, RED) for i in images) > 0.01
            assert max(colour_share(i, BLUE) for i in images) > 0.05
            assert "squares" in text_in(request) and "what colour is the line?" in text_in(request)
            assert reply.pending == ["Looking at 2 figures in analysis.ipynb"]
            assert reply.complete and reply.text.startswith("The line is red.")
            assert "analysis.ipynb (live)" in reply.text and "Seen:" in reply.text

            # Follow-up: the conversation is kept, the figures are not sent a second time.
            model_server.set_reply("They are blue.")
            reply2 = await chat.ask("/see and the bars?")
            request2 = model_server.chat_requests()[-1]
            assert "what colour is the line?" in text_in(request2)  # history
            assert "The line is red." in text_in(request2)
            assert len(images_in(request2)) == 2  # the two from the history only
            assert last_user_images(request2) == []
            assert reply2.text.startswith("They are blue.")

            # The user re-runs the plot in green (still unsaved): the changed figure is sent.
            nb.ynotebook.set_cell(2, {**nb.cells[2], "source": LINE_CELL.format(colour="#00a000")})
            await nb.execute(2)
            await chat.ask("/see what colour now?")
            fresh = last_user_images(model_server.chat_requests()[-1])
            assert len(fresh) == 1 and colour_share(fresh[0], GREEN) > 0.01
            assert colour_share(fresh[0], RED) < 0.001


async def test_disk_fallback_with_explicit_path(
    jupyter_server: Any, model_server: Any, executed_notebook: Any
) -> None:
    nb = copy.deepcopy(executed_notebook)
    target = jupyter_server.root / "saved" / "rich.ipynb"
    target.parent.mkdir(exist_ok=True)
    target.write_text(json.dumps(nb))
    model_server.set_reply("Squares and fruit.")
    async with jupyter_server.chat("carol") as chat:
        reply = await chat.ask("/see saved/rich.ipynb what is plotted?")
    request = model_server.chat_requests()[-1]
    assert len(images_in(request)) >= 2
    assert "Squares" in text_in(request)
    assert reply.text.startswith("Squares and fruit.")
    assert "rich.ipynb (saved file)" in reply.text
    assert "not open in JupyterLab" in reply.text


async def test_two_users_two_notebooks_each_sees_their_own(
    jupyter_server: Any, model_server: Any
) -> None:
    server = jupyter_server
    red = server.write_notebook("team/red.ipynb", [LINE_CELL.format(colour="#ff0000")])
    blue = server.write_notebook("team/blue.ipynb", [LINE_CELL.format(colour="#0000ff")])
    model_server.set_reply(lambda body: f"{len(images_in(body))} figure(s)")
    async with (
        server.open_notebook(red, user="alice") as nb_a,
        server.open_notebook(blue, user="bob") as nb_b,
    ):
        await nb_a.execute(0)
        await nb_b.execute(0)
        async with server.chat("alice") as chat_a, server.chat("bob") as chat_b:
            await chat_a.clear()  # one shared chat history: start from a clean one
            id_a = await chat_a.send("/see which colour?")
            id_b = await chat_b.send("/see which colour?")
            ra, rb = await asyncio.gather(chat_a.wait_reply(id_a), chat_b.wait_reply(id_b))
    assert "red.ipynb (live)" in ra.text and "blue.ipynb (live)" in rb.text
    by_file = {}
    for request in model_server.chat_requests()[-2:]:
        (img,) = last_user_images(request)
        by_file["red" if colour_share(img, RED) > 0.01 else "blue"] = img
    assert colour_share(by_file["blue"], BLUE) > 0.01
    assert set(by_file) == {"red", "blue"}


async def test_only_open_notebook_without_awareness_and_selection_focus(
    jupyter_server: Any, model_server: Any
) -> None:
    server = jupyter_server
    path = server.write_notebook(
        "solo.ipynb", [LINE_CELL.format(colour="#ff0000"), "print('hello')"]
    )
    async with server.open_notebook(path, user="dave", current=False) as nb:
        await nb.execute(0)
        async with server.chat("erin") as chat:  # erin has no awareness state at all
            await chat.clear()
            reply = await chat.ask(
                "/see explain this", selection={"type": "cell", "source": "print('hello')"}
            )
    assert "solo.ipynb (live)" in reply.text
    request = model_server.chat_requests()[-1]
    assert len(images_in(request)) == 1
    assert "explain this" in text_in(request)


async def test_help(jupyter_server: Any) -> None:
    async with jupyter_server.chat("alice") as chat:
        reply = await chat.ask("/see -h")
    assert "/see" in reply.text and "plots" in reply.text


async def test_stop_mid_stream_closes_upstream_and_next_request_works(
    jupyter_server: Any, model_server: Any
) -> None:
    server = jupyter_server
    path = server.write_notebook("stop.ipynb", [LINE_CELL.format(colour="#ff0000")])
    model_server.set_reply(" ".join(f"word{i}" for i in range(200)))
    model_server.set_chunk_delay(0.05)
    async with server.open_notebook(path, user="frank") as nb:
        await nb.execute(0)
        async with server.chat("frank") as chat:
            human = await chat.send("/see describe at length")
            first = await chat.wait_reply(human, until_first_chunk=True)
            assert first.text.startswith("word0")
            await chat.stop()
            rest = await chat.wait_reply(human, timeout=20)
            assert rest.text.endswith("(AI response stopped by user)")
            assert "word199" not in rest.text
            assert model_server.wait_for(
                lambda recs: recs and recs[-1].outcome == "client_closed", timeout=10
            ), model_server.records[-1].outcome
            assert model_server.records[-1].chunks_sent < 150

            model_server.set_chunk_delay(0.0)
            model_server.set_reply("Back again.")
            again = await chat.ask("/see still there?")
            assert again.text.startswith("Back again.")


async def test_no_notebook_open(jupyter_server: Any, model_server: Any) -> None:
    async with jupyter_server.chat("grace") as chat:
        reply = await chat.ask("/see what is this?")
    assert reply.text.startswith("No notebook is open")
    assert_one_line(reply.text)
    assert model_server.chat_requests() == []


async def test_several_open_lists_them(jupyter_server: Any, model_server: Any) -> None:
    server = jupyter_server
    a = server.write_notebook("many/a.ipynb", ["1"])
    b = server.write_notebook("many/b.ipynb", ["2"])
    async with (
        server.open_notebook(a, user="hank", current=False),
        server.open_notebook(b, user="ivan", current=False),
        server.chat("judy") as chat,
    ):
        reply = await chat.ask("/see what is this?")
    assert_one_line(reply.text)
    assert "many/a.ipynb" in reply.text and "many/b.ipynb" in reply.text
    assert model_server.chat_requests() == []


@pytest.mark.parametrize(
    "path, expected",
    [
        ("missing.ipynb", "Notebook not found: missing.ipynb"),
        ("../outside.ipynb", "relative to the Jupyter root"),
        ("/etc/passwd.ipynb", "relative to the Jupyter root"),
    ],
)
async def test_bad_paths(jupyter_server: Any, model_server: Any, path: str, expected: str) -> None:
    async with jupyter_server.chat("kate") as chat:
        reply = await chat.ask(f"/see {path} why?")
    assert expected in reply.text
    assert_one_line(reply.text)
    assert model_server.chat_requests() == []


async def test_nothing_visual_answers_anyway(jupyter_server: Any, model_server: Any) -> None:
    path = jupyter_server.write_notebook("plain.ipynb", ["total = sum(range(10))\nprint(total)"])
    model_server.set_reply("It sums 0..9.")
    async with jupyter_server.open_notebook(path, user="leo") as nb:
        await nb.execute(0)
        async with jupyter_server.chat("leo") as chat:
            await chat.clear()
            reply = await chat.ask("/see what does it do?")
    request = model_server.chat_requests()[-1]
    assert images_in(request) == []
    assert "sum(range(10))" in text_in(request) and "45" in text_in(request)
    assert reply.pending == ["Looking at the code and text in plain.ipynb"]
    assert reply.text.startswith("It sums 0..9.")
    assert "no figures in this notebook" in reply.text


@pytest.mark.parametrize(
    "mode, expected",
    [
        ("no_images", "image"),
        ("401", "API key"),
        ("404", "model"),
        ("429", "rate"),
        ("503", "unavailable"),
        ("context", "context"),
        ("midstream", ""),
        ("malformed", ""),
    ],
)
async def test_model_errors_are_one_line(
    jupyter_server: Any, model_server: Any, mode: str, expected: str
) -> None:
    path = jupyter_server.write_notebook(f"err-{mode}.ipynb", [LINE_CELL.format(colour="#ff0000")])
    mark = jupyter_server.log_mark()
    model_server.fail(mode)
    async with jupyter_server.open_notebook(path, user="mia") as nb:
        await nb.execute(0)
        async with jupyter_server.chat("mia") as chat:
            reply = await chat.ask("/see what is this?")
    error = reply.text.split("(AI response", 1)[0].strip()
    # midstream / malformed: the partial answer (if any) is followed by the one-line error.
    last = [line for line in error.splitlines() if line.strip()][-1]
    assert expected.lower() in last.lower(), reply.text
    assert "Traceback" not in reply.text and "```" not in reply.text
    assert "sk-test-key" not in reply.text
    log = jupyter_server.log_text(since=mark)
    assert "/see failed" in log  # details in the server log ...
    assert "sk-test-key" not in log  # ... but never the API key
    model_server.fail(None)
    # The next request works.
    model_server.set_reply("fine")
    async with jupyter_server.open_notebook(path, user="mia"), jupyter_server.chat("mia") as chat:
        assert (await chat.ask("/see again?")).text.startswith("fine")


@pytest.fixture
async def switch_model(jupyter_server: Any) -> Any:
    """Switch jupyter-ai's chat model for one test (``POST /api/ai/config``), then restore."""
    original = (await jupyter_server.request("GET", "/api/ai/config")).json()
    switched: list[str] = []

    async def switch(model: str, fields: dict[str, Any] | None = None) -> None:
        await jupyter_server.set_chat_model(model, fields)
        switched.append(model)

    yield switch
    if switched:
        await jupyter_server.set_chat_model(
            original["model_provider_id"], original["fields"].get(original["model_provider_id"])
        )


async def test_another_chat_provider_that_takes_images(
    jupyter_server: Any, model_server: Any, switch_model: Any
) -> None:
    """LangChain's ChatLiteLLM behind a third-party jupyter-ai provider gets the same images."""
    from fixtures.jupyter_server import OTHER_CHAT_MODEL

    await switch_model(OTHER_CHAT_MODEL)
    path = jupyter_server.write_notebook("other.ipynb", [LINE_CELL.format(colour="#ff0000")])
    model_server.set_reply("Red, via another provider.")
    async with jupyter_server.open_notebook(path, user="olga") as nb:
        await nb.execute(0)
        async with jupyter_server.chat("olga") as chat:
            await chat.clear()
            reply = await chat.ask("/see what colour?")
    request = model_server.chat_requests()[-1]
    assert request["model"] == "gpt-4o-mini"
    (img,) = images_in(request)
    assert colour_share(img, RED) > 0.01
    assert reply.text.startswith("Red, via another provider.")


async def test_text_only_model_answers_and_explains(
    jupyter_server: Any, model_server: Any, switch_model: Any
) -> None:
    from fixtures.jupyter_server import TEXT_ONLY_MODEL

    await switch_model(TEXT_ONLY_MODEL)
    path = jupyter_server.write_notebook("textonly.ipynb", [LINE_CELL.format(colour="#ff0000")])
    async with jupyter_server.open_notebook(path, user="pete") as nb:
        await nb.execute(0)
        async with jupyter_server.chat("pete") as chat:
            reply = await chat.ask("/see what colour?")
    assert reply.text.startswith("A text-only answer.")
    assert "does not accept images" in reply.text and "vision model" in reply.text
    assert model_server.chat_requests() == []  # a text LLM: nothing went to a vision endpoint


async def test_timeout_is_one_line(
    jupyter_server: Any, model_server: Any, switch_model: Any
) -> None:
    from fixtures.jupyter_server import VISION_MODEL

    fields = {"api_base": model_server.url, "api_key": "sk-test-key", "timeout": 1}
    await switch_model(f"vision:{VISION_MODEL}", {**fields, "max_retries": 0})
    model_server.set_timeout_sleep(4)
    model_server.fail("timeout")
    path = jupyter_server.write_notebook("slow.ipynb", ["1 + 1"])
    async with jupyter_server.open_notebook(path, user="quinn") as nb:
        await nb.execute(0)
        async with jupyter_server.chat("quinn") as chat:
            reply = await chat.ask("/see hello?", timeout=60)
    assert_one_line(reply.text)
    assert "did not answer in time" in reply.text
    assert "sk-test-key" not in reply.text


async def test_at_name_pulls_a_kernel_variable(jupyter_server: Any, model_server: Any) -> None:
    """``@name`` is looked up in the notebook's own running kernel (via _ai_repr_)."""
    path = jupyter_server.write_notebook(
        "vars.ipynb",
        [
            "import pandas as pd\nsales = pd.DataFrame({'region_marker': ['north', 'south'], 'n': [3, 4]})"
        ],
    )
    async with jupyter_server.open_notebook(path, user="rita") as nb:
        await nb.execute(0)
        async with jupyter_server.chat("rita") as chat:
            reply = await chat.ask("/see what is in @sales? and @os.system('x')")
    request = text_in(model_server.chat_requests()[-1])
    assert "region_marker" in request and "north" in request
    assert reply.complete
    assert "only variable names" in reply.text  # the call-like reference was refused, said once


async def test_at_name_images_share_the_notebooks_image_budget(
    jupyter_server: Any, model_server: Any
) -> None:
    """10 figures in the live notebook fill the request's budget (max_images 10): @fig from
    the kernel is described but its image is not sent, and the user is told why."""
    figures = (
        "import matplotlib.pyplot as plt\n"
        "for i in range(10):\n"
        "    f, a = plt.subplots(figsize=(2, 2), dpi=40)\n"
        "    a.bar([0], [i + 1], color=f'C{i}')\n"
        "    plt.show()\n"
        "fig, ax = plt.subplots(figsize=(3, 2), dpi=40)\n"
        "ax.plot([0, 1], [1, 0]); ax.set_title('kernel_only_marker')\n"
        "plt.close(fig)"
    )
    path = jupyter_server.write_notebook("budget.ipynb", [figures])
    async with jupyter_server.open_notebook(path, user="uma") as nb:
        await nb.execute(0)
        async with jupyter_server.chat("uma") as chat:
            reply = await chat.ask("/see compare the bars with @fig")
    body = model_server.chat_requests()[-1]
    assert len(images_in(body)) == 10
    request = text_in(body)
    assert "kernel_only_marker" in request  # @fig's text still went, inside the framing
    assert request.index('<kernel-variable name="fig"') < request.rindex("</notebook-content>")
    assert "budget: 10 images per request" in request and reply.complete
    assert "@fig: image" in reply.text and "budget: 10 images per request" in reply.text


async def test_invalid_notebook_file_is_one_line(jupyter_server: Any, model_server: Any) -> None:
    (jupyter_server.root / "broken.ipynb").write_text("{ this is not json")
    async with jupyter_server.chat("sam") as chat:
        reply = await chat.ask("/see broken.ipynb what?")
    assert_one_line(reply.text)
    assert "broken.ipynb" in reply.text and "not a valid notebook" in reply.text, reply.text
    assert model_server.chat_requests() == []
