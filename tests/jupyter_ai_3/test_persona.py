"""The Vision persona on a real Jupyter AI 3.x server: a real chat document (.chat over the
collaboration websocket), live YNotebooks run by real kernels, LiteLLM's real HTTP path to the
recording model server (what the model received is decoded and checked, colours included)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from fixtures.jupyter_server_3 import JUPYTERNAUT_ID, TEXT_ONLY_MODEL, VISION_ID
from fixtures.model_server import images_in, text_in

pytestmark = [pytest.mark.jupyter_ai_3, pytest.mark.server]

RED, GREEN, BLUE = (255, 0, 0), (0, 160, 0), (0, 0, 255)

LINE_CELL = (
    "import matplotlib.pyplot as plt\n"
    "fig, ax = plt.subplots(figsize=(4, 3), dpi=80)\n"
    "ax.plot([0, 1, 2, 3], [0, 1, 4, 9], color='{colour}', linewidth=8)\n"
    "ax.set_title('{title}')\n"
    "plt.show()"
)
BARS_CELL = (
    "import matplotlib.pyplot as plt\n"
    "fig, ax = plt.subplots(figsize=(4, 3), dpi=80)\n"
    "ax.bar(['a', 'b', 'c'], [3, 1, 2], color='#0000ff')\n"
    "ax.set_title('bars')\n"
    "plt.show()"
)


def line(colour: str, title: str = "squares") -> str:
    return LINE_CELL.format(colour=colour, title=title)


def colour_share(img: Any, rgb: tuple[int, int, int], tol: int = 60) -> float:
    """Fraction of pixels within ``tol`` of ``rgb`` (the plot's colour really is in the pixels)."""
    rgb_img = img.convert("RGB")
    rgb_img.thumbnail((200, 200))
    pixels = list(rgb_img.get_flattened_data())
    near = sum(1 for p in pixels if all(abs(a - b) <= tol for a, b in zip(p, rgb, strict=True)))
    return near / len(pixels)


def last_user(request: dict[str, Any]) -> dict[str, Any]:
    return [m for m in request["messages"] if m["role"] == "user"][-1]


def last_user_images(request: dict[str, Any]) -> list[Any]:
    """Images in the request's last user message (what this question added)."""
    return images_in({"messages": [last_user(request)]})


def assert_one_line(text: str) -> None:
    assert "\n" not in text.strip(), text
    assert "Traceback" not in text and "```" not in text, text


async def test_see_an_unsaved_just_run_notebook(jupyter_server_3: Any, model_server: Any) -> None:
    """/see in a real chat document: the live (never saved) figures reach the model as images,
    the answer streams with the footer, thumbnails ride in the reply's MIME bundle, and a
    follow-up carries the conversation without sending the figures again."""
    server = jupyter_server_3
    path = server.write_notebook("analysis.ipynb", ["# md: # Analysis", line("#ff0000"), BARS_CELL])
    model_server.set_reply("The line is red.")
    async with server.open_notebook(path, user="alice") as nb:
        await nb.execute(1)
        await nb.execute(2)
        async with server.chat_document(user="alice") as chat:
            reply = await chat.ask(
                "/see what colour is the line?", until=lambda r: r.message.get("mime_model")
            )
            # Never saved: what the model saw came from the live document.
            disk = json.loads((server.root / path).read_text())
            assert all(not c.get("outputs") for c in disk["cells"])
            request = model_server.chat_requests()[-1]
            images = images_in(request)
            assert len(images) == 2
            assert max(colour_share(i, RED) for i in images) > 0.01
            assert max(colour_share(i, BLUE) for i in images) > 0.05
            assert "squares" in text_in(request) and "what colour is the line?" in text_in(request)
            system = request["messages"][0]
            assert system["role"] == "system" and "You are Vision" in system["content"]
            assert reply.message["sender"] == VISION_ID
            assert reply.text.startswith("The line is red.")
            assert "analysis.ipynb (live)" in reply.text and "Seen: 2 png" in reply.text
            # What the chat renders: the answer, two thumbnails, the footer.
            assert reply.markdown.startswith("The line is red.")
            assert reply.markdown.count("](data:image/png;base64,") == 2
            assert reply.markdown.rstrip().endswith("</sub>")
            assert "data:image" not in reply.text  # the body stays text

            # Follow-up: the conversation is carried, the figures are not sent a second time.
            model_server.set_reply("They are blue.")
            reply2 = await chat.ask("and the bars?")
            request2 = model_server.chat_requests()[-1]
            assert "what colour is the line?" in text_in(request2)  # the earlier turn
            assert any(
                m["role"] == "assistant" and m["content"] == "The line is red."
                for m in request2["messages"]
            )
            assert len(images_in(request2)) == 2  # the two from the earlier turn only
            assert last_user_images(request2) == []
            assert reply2.text.startswith("They are blue.")

            # The user re-runs the plot in green (still unsaved): only the new figure is sent.
            nb.ynotebook.set_cell(1, {**nb.cells[1], "source": line("#00a000")})
            await nb.execute(1)
            await chat.ask("what colour now?")
            fresh = last_user_images(model_server.chat_requests()[-1])
            assert len(fresh) == 1 and colour_share(fresh[0], GREEN) > 0.01
            assert colour_share(fresh[0], RED) < 0.001


async def test_advertises_see_and_shows_in_the_persona_list(jupyter_server_3: Any) -> None:
    """Vision is a user of every chat (name, bot, own avatar served by persona-manager)."""
    async with jupyter_server_3.chat_document(user="alice") as chat:
        users = chat.yusers.to_py()
    vision = users[VISION_ID]
    assert vision["display_name"] == "Vision" and vision["bot"] is True
    assert JUPYTERNAUT_ID in users
    avatar = await jupyter_server_3.request("GET", vision["avatar_url"])
    assert avatar.status_code == 200 and b"<svg" in avatar.content
    assert avatar.headers["content-type"].startswith("image/svg")


@pytest.mark.kernel  # the saved notebook is executed by nbclient
async def test_path_named_anywhere_in_the_message_reads_the_saved_file(
    jupyter_server_3: Any, model_server: Any
) -> None:
    server = jupyter_server_3
    server.write_notebook("saved/plot.ipynb", [line("#0000ff", "saved plot")], outputs=True)
    model_server.set_reply("A blue line.")
    async with server.chat_document(user="carol") as chat:
        reply = await chat.ask("What is drawn in saved/plot.ipynb?")
    request = model_server.chat_requests()[-1]
    images = images_in(request)
    assert len(images) == 1 and colour_share(images[0], BLUE) > 0.01
    assert "What is drawn in saved/plot.ipynb?" in text_in(request)
    assert reply.text.startswith("A blue line.")
    assert "plot.ipynb (saved file)" in reply.text and "not open in JupyterLab" in reply.text


async def test_each_user_gets_the_notebook_they_are_viewing(
    jupyter_server_3: Any, model_server: Any
) -> None:
    """Two users in one chat, each viewing another notebook (global awareness): each question
    is about the sender's notebook; with no awareness and two open, one line lists them."""
    server = jupyter_server_3
    red = server.write_notebook("team/red.ipynb", [line("#ff0000")])
    green = server.write_notebook("team/green.ipynb", [line("#00a000")])
    model_server.set_reply(lambda body: f"saw {len(images_in(body))}")
    async with (
        server.open_notebook(red, user="dana") as nb_red,
        server.open_notebook(green, user="eve") as nb_green,
    ):
        await nb_red.execute(0)
        await nb_green.execute(0)
        async with (
            server.chat_document(user="dana") as dana,
            server.chat_document(dana.path, user="eve") as eve,
        ):
            ra = await dana.ask("which colour?")
            img_a = last_user_images(model_server.chat_requests()[-1])
            rb = await eve.ask("which colour?")
            img_b = last_user_images(model_server.chat_requests()[-1])
            assert "red.ipynb (live)" in ra.text and "green.ipynb (live)" in rb.text
            assert colour_share(img_a[0], RED) > 0.01 and colour_share(img_a[0], GREEN) < 0.001
            assert colour_share(img_b[0], GREEN) > 0.01 and colour_share(img_b[0], RED) < 0.001
            # frank views nothing: two notebooks are open, so he is asked to name one.
            async with server.chat_document(dana.path, user="frank") as frank:
                before = len(model_server.chat_requests())
                reply = await frank.ask("which colour?")
            assert_one_line(reply.text)
            assert "team/green.ipynb" in reply.text and "team/red.ipynb" in reply.text
            assert len(model_server.chat_requests()) == before


async def test_dragged_cells_are_the_focus_and_attached_files_are_seen(
    jupyter_server_3: Any, model_server: Any
) -> None:
    """A cell dragged into the chat makes its notebook the target and the cell the focus; an
    attached PNG and SVG go as images, a text file as text, a path outside the root is refused."""
    from PIL import Image

    server = jupyter_server_3
    path = server.write_notebook("drag.ipynb", ["x = 1", line("#ff0000"), "y = 2"])
    square = server.root / "shots" / "green.png"
    square.parent.mkdir(exist_ok=True)
    Image.new("RGB", (64, 48), GREEN).save(square)
    (server.root / "shots" / "blue.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40">'
        '<rect width="40" height="40" fill="#0000ff"/></svg>'
    )
    (server.root / "notes.md").write_text("The threshold is 0.75 (from the lab notes).")
    model_server.set_reply("Seen.")
    async with server.open_notebook(path, user="gina", current=False) as nb:
        await nb.execute(1)
        cell_id = nb.cells[1]["id"]
        async with server.chat_document(user="gina") as chat:
            ids = [
                chat.attach(
                    {
                        "type": "notebook",
                        "value": path,
                        "cells": [{"id": cell_id, "input_type": "code"}],
                    }
                ),
                chat.attach({"type": "file", "value": "shots/green.png", "mimetype": "image/png"}),
                chat.attach({"type": "file", "value": "shots/blue.svg"}),
                chat.attach({"type": "file", "value": "notes.md", "mimetype": "text/markdown"}),
                chat.attach({"type": "file", "value": "../outside.png"}),
            ]
            reply = await chat.ask("what do these show?", attachments=ids)
    request = model_server.chat_requests()[-1]
    text = text_in(request)
    assert "The user is focused on cell 1." in text
    images = images_in(request)
    assert len(images) == 3  # the notebook's figure, the PNG, the SVG (drawn as PNG)
    assert colour_share(images[0], RED) > 0.01
    assert colour_share(images[1], GREEN) > 0.9 and images[1].size == (64, 48)
    assert colour_share(images[2], BLUE) > 0.5
    assert "attached file: shots/green.png" in text and "attached file: shots/blue.svg" in text
    assert "The threshold is 0.75" in text
    assert text.index("The threshold is 0.75") < text.index("</notebook-content>")
    assert "drag.ipynb (live)" in reply.text
    assert "outside.png not sent" in reply.text and "outside the server root" in reply.text


async def test_text_only_model_gets_text_and_the_user_is_told(
    jupyter_server_3: Any, model_server: Any
) -> None:
    server = jupyter_server_3
    path = server.write_notebook("textonly.ipynb", [line("#ff0000")])
    model_server.set_reply("A text-only answer.")
    async with server.open_notebook(path, user="hugo") as nb:
        await nb.execute(0)
        async with server.chat_document(user="hugo") as chat:
            reply = await chat.ask("what is plotted?", metadata={"model": {"id": TEXT_ONLY_MODEL}})
    request = model_server.chat_requests()[-1]
    assert request["model"] == TEXT_ONLY_MODEL.split("/", 1)[1]
    assert images_in(request) == []
    assert isinstance(last_user(request)["content"], str)  # plain text content
    assert "figure: cell 0" in text_in(request) and "not sent" in text_in(request)
    assert reply.text.startswith("A text-only answer.")
    assert f"{TEXT_ONLY_MODEL} does not accept images" in reply.text


async def test_images_setting_and_model_that_refuses_images(
    jupyter_server_3: Any, model_server: Any
) -> None:
    """The persona's "images" setting overrides LiteLLM's flag; a model that refuses images
    after all is asked again in text, and the user is told so."""
    server = jupyter_server_3
    path = server.write_notebook("refuse.ipynb", [line("#ff0000")])
    model_server.set_reply("Answered.")
    model_server.fail("no_images", times=1)
    async with server.open_notebook(path, user="ivy") as nb:
        await nb.execute(0)
        async with server.chat_document(user="ivy") as chat:
            reply = await chat.ask("what is plotted?")
            first, second = model_server.chat_requests()[-2:]
            assert len(images_in(first)) == 1 and images_in(second) == []
            assert reply.text.startswith("Answered.")
            assert "refused the images: answered from text only" in reply.text
            reply = await chat.ask("again?", metadata={"settings": {"images": "off"}})
            assert images_in(model_server.chat_requests()[-1]) == []
            assert "does not accept images" in reply.text


async def test_stop_closes_the_model_stream_and_the_next_request_works(
    jupyter_server_3: Any, model_server: Any
) -> None:
    server = jupyter_server_3
    path = server.write_notebook("stop.ipynb", [line("#ff0000")])
    model_server.set_reply(" ".join(f"word{i}" for i in range(300)))
    model_server.set_chunk_delay(0.05)
    async with server.open_notebook(path, user="jack") as nb:
        await nb.execute(0)
        async with server.chat_document(user="jack") as chat:
            human = chat.send("describe at length")
            first = await chat.wait_reply(human, until=lambda r: "word3" in r.text)
            assert first.text.startswith("word0")
            resp = await chat.stop()
            assert resp.status_code == 200 and VISION_ID in resp.json()["cancelled"]
            assert model_server.wait_for(
                lambda records: records[-1].outcome == "client_closed", timeout=10
            )
            rest = await chat.wait_reply(human)
            assert "*(stopped)*" in rest.text and "word299" not in rest.text
            assert model_server.records[-1].chunks_sent < 200
            model_server.set_chunk_delay(0)
            model_server.set_reply("Back again.")
            again = await chat.ask("still there?")
            assert again.text.startswith("Back again.")


async def test_at_name_from_the_notebooks_kernel(jupyter_server_3: Any, model_server: Any) -> None:
    """``@name`` is read from the notebook's own kernel, inside the notebook-content markers."""
    server = jupyter_server_3
    path = server.write_notebook(
        "vars.ipynb",
        [
            "import pandas as pd\n"
            "sales = pd.DataFrame({'region_marker': ['north', 'south'], 'n': [3, 4]})",
            line("#ff0000"),
        ],
    )
    model_server.set_reply("Two regions.")
    async with server.open_notebook(path, user="kim") as nb:
        await nb.execute(0)
        await nb.execute(1)
        async with server.chat_document(user="kim") as chat:
            reply = await chat.ask("what is in @sales? and @os.system('x')")
    text = text_in(model_server.chat_requests()[-1])
    assert '<kernel-variable name="sales"' in text and "region_marker" in text and "north" in text
    assert text.index("region_marker") < text.index("</notebook-content>")
    assert reply.text.startswith("Two regions.")
    assert "only variable names" in reply.text


async def test_post_api_ai_message(jupyter_server_3: Any, model_server: Any) -> None:
    """persona-manager's ``POST /api/ai/message/Vision`` (a temporary chat, no awareness): a
    path in the message names the notebook; a live one is read live."""
    server = jupyter_server_3
    path = server.write_notebook("api/live.ipynb", [line("#ff0000")])
    model_server.set_reply("Red, over REST.")
    async with server.open_notebook(path, user="lena", current=False) as nb:
        await nb.execute(0)
        resp = await server.message_persona("Vision", "/see api/live.ipynb what colour?")
    assert resp.status_code == 200, resp.text
    answer = resp.json()["response"]
    assert answer.startswith("Red, over REST.")
    assert "live.ipynb (live)" in answer
    images = images_in(model_server.chat_requests()[-1])
    assert len(images) == 1 and colour_share(images[0], RED) > 0.01


@pytest.mark.parametrize(
    "mode, expected",
    [("401", "API key"), ("404", "model"), ("429", "rate"), ("context", "context")],
)
async def test_model_faults_are_one_line(
    jupyter_server_3: Any, model_server: Any, mode: str, expected: str
) -> None:
    server = jupyter_server_3
    path = server.write_notebook(f"err-{mode}.ipynb", [line("#ff0000")])
    mark = server.log_mark()
    model_server.fail(mode)
    async with server.open_notebook(path, user="mia") as nb:
        await nb.execute(0)
        async with server.chat_document(user="mia") as chat:
            reply = await chat.ask("what is this?")
            assert_one_line(reply.text)
            assert expected.lower() in reply.text.lower(), reply.text
            assert "sk-test-key" not in reply.text
            log = server.log_text(since=mark)
            assert "Vision failed" in log and "sk-test-key" not in log
            model_server.fail(None)
            model_server.set_reply("fine")
            assert (await chat.ask("again?")).text.startswith("fine")


async def test_notebook_problems_are_one_line(jupyter_server_3: Any, model_server: Any) -> None:
    server = jupyter_server_3
    (server.root / "broken.ipynb").write_text("{ this is not json")
    async with server.chat_document(user="nora") as chat:
        broken = await chat.ask("what is in broken.ipynb?")
        missing = await chat.ask("/see nowhere/none.ipynb what?")
        outside = await chat.ask("/see ../../etc/x.ipynb what?")
    for reply in (broken, missing, outside):
        assert_one_line(reply.text)
    assert "broken.ipynb" in broken.text and "not a valid notebook" in broken.text
    assert "not found" in missing.text.lower()
    assert "Jupyter root" in outside.text
    assert model_server.chat_requests() == []


async def test_several_personas_do_not_interfere(jupyter_server_3: Any, model_server: Any) -> None:
    """A message to Jupyternaut is not answered by Vision (routing by metadata.to_persona)."""
    model_server.set_reply("Hello from Jupyternaut's model.")
    async with jupyter_server_3.chat_document(user="otto") as chat:
        human = chat.send("hello", to=JUPYTERNAUT_ID)
        reply = await chat.wait_reply(human, sender=JUPYTERNAUT_ID, timeout=120)
        await asyncio.sleep(0.5)
        assert not chat._reply_to(human, VISION_ID).messages
    assert reply.text
