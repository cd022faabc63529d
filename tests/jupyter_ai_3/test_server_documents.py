"""Vision and the MCP tools on a REAL Jupyter AI 3.x server whose collaboration layer is
jupyter-server-documents (Jupyter AI's ``rtc-jsd`` extra), in both of JSD's output modes.

Cells run the way JupyterLab runs them on JSD: server-side (``POST /api/kernels/<id>/execute``),
the server's kernel client writing outputs into the live YDoc (or, with the outputs service,
into its output store with placeholders in the YDoc). Nothing is saved. What the recording
model server received is decoded: the figures' colours come from the live notebook.
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest
from fixtures.jupyter_server_3 import mcp_session
from fixtures.jupyter_server_jsd import run_cell
from fixtures.model_server import images_in, text_in

from jupyter_ai_vision.context import messages

pytestmark = [pytest.mark.jupyter_ai_3, pytest.mark.server, pytest.mark.kernel, pytest.mark.jsd]

RED, BLUE = (255, 0, 0), (0, 0, 255)


def band(colour: str) -> str:
    return (
        "import matplotlib.pyplot as plt\n"
        "fig, ax = plt.subplots(figsize=(3, 2), dpi=60)\n"
        f"ax.axhspan(0, 1, color='{colour}')\nax.set_axis_off()\nplt.show()"
    )


def centre(img: Any) -> tuple[int, int, int]:
    rgb = img.convert("RGB")
    return rgb.getpixel((rgb.width // 2, rgb.height // 2))


def near(rgb: tuple[int, int, int], want: tuple[int, int, int], tol: int = 40) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(rgb, want, strict=True))


def assert_outputs_kept_as_jsd_does(server: Any, loaded_cell: dict[str, Any]) -> None:
    """The mode really is what the test claims: a saved output, once JSD loaded the notebook,
    is a placeholder with the outputs service and the output itself otherwise (so both of our
    reading paths are exercised). JSD writes outputs of cells run now into the YDoc in both."""
    output = loaded_cell["outputs"][0]
    if server.outputs_service:
        assert "data" not in output and output["metadata"]["url"].startswith("/api/outputs/")
    else:
        assert "image/png" in output["data"]


async def test_vision_sees_the_unsaved_notebook_on_jupyter_server_documents(
    jupyter_server_jsd: Any, model_server: Any
) -> None:
    """Yesterday's saved blue figure and a red one just run (never saved) reach the model; the
    saved figure the red one replaced (green) does not."""
    server = jupyter_server_jsd
    path = server.write_notebook(
        f"jsd-{id(server)}.ipynb", [band("#0000ff"), band("#00a000")], outputs=True
    )
    model_server.set_reply("A blue band and a red one.")
    async with server.open_notebook(path, user="alice") as nb:
        assert_outputs_kept_as_jsd_does(server, nb.cells[0])
        nb.ynotebook.set_cell(1, {**nb.cells[1], "source": band("#ff0000")})
        await server.wait_live(path, lambda live: "#ff0000" in live["cells"][1]["source"])
        done = await run_cell(nb, 1)
        assert "image/png" in done["outputs"][0]["data"]
        async with server.chat_document(user="alice") as chat:
            reply = await chat.ask("/see what colours are the bands?")
        request = model_server.chat_requests()[-1]
    disk = json.loads((server.root / path).read_text())
    assert "#ff0000" not in json.dumps(disk)  # never saved
    colours = [centre(i) for i in images_in(request)]
    assert len(colours) == 2, (colours, reply.text)
    assert any(near(c, BLUE) for c in colours) and any(near(c, RED) for c in colours), colours
    assert "what colours are the bands?" in text_in(request)
    assert reply.text.startswith("A blue band and a red one.")
    assert f"{path} (live)" in reply.text and "Seen: 2 png" in reply.text
    assert "saved file" not in reply.text


async def test_the_notebook_the_user_is_viewing_is_found_through_jsd_awareness(
    jupyter_server_jsd: Any, model_server: Any
) -> None:
    """Two notebooks open; alice looks at the blue one (JSD's global awareness room)."""
    server = jupyter_server_jsd
    red = server.write_notebook(f"red-{id(server)}.ipynb", [band("#ff0000")])
    blue = server.write_notebook(f"blue-{id(server)}.ipynb", [band("#0000ff")])
    model_server.set_reply("Blue.")
    async with (
        server.open_notebook(red, user="alice", current=False) as nb_red,
        server.open_notebook(blue, user="alice", current=False) as nb_blue,
    ):
        await run_cell(nb_red, 0)
        await run_cell(nb_blue, 0)
        async with (
            server.awareness("alice", current=blue, documents=[red, blue]),
            server.chat_document(user="alice") as chat,
        ):
            reply = await chat.ask("/see which colour?")
        request = model_server.chat_requests()[-1]
    images = images_in(request)
    assert len(images) == 1 and near(centre(images[0]), BLUE)
    assert f"{blue} (live)" in reply.text


async def test_mcp_see_notebook_reads_the_live_jsd_document(jupyter_server_jsd: Any) -> None:
    from PIL import Image

    server = jupyter_server_jsd
    path = server.write_notebook(f"mcp-{id(server)}.ipynb", [band("#0000ff")])
    async with server.open_notebook(path, user="alice") as nb:
        await run_cell(nb, 0)
        async with mcp_session(server.mcp_url) as mcp:
            listed = await mcp.call_tool("list_notebook_visuals", {"path": path})
            result = await mcp.call_tool("see_notebook", {"path": path})
    listing = " ".join(c.text for c in listed.content if c.type == "text")
    assert "png" in listing, listing
    images = [c for c in result.content if c.type == "image"]
    assert len(images) == 1
    img = Image.open(io.BytesIO(base64.b64decode(images[0].data)))
    assert near(centre(img), BLUE)
    text = " ".join(c.text for c in result.content if c.type == "text")
    assert messages.READ_LIVE in text and messages.READ_SAVED not in text
