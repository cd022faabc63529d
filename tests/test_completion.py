"""Inline completion: reading the window around the cursor, post-processing, settings.

Real YNotebooks built from a notebook really executed by a kernel; real files on disk.
"""

from __future__ import annotations

import asyncio
import copy
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fixtures.notebooks import cell_index, make_ynotebook, with_markdown_images, write_notebook
from jupyter_ai_magics.models.completion import InlineCompletionRequest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from jupyter_ai_vision.hosts.jupyter_ai_2 import completion
from jupyter_ai_vision.hosts.jupyter_ai_2.completion import (
    CompletionSettings,
    SavedNotebookCache,
    post_process,
    prepare_window,
    read_window,
    settings_for,
    window_from_cells,
    window_from_ynotebook,
)

pytestmark = pytest.mark.jupyter_ai_2


def req(prefix: str = "", suffix: str = "", **kw: Any) -> InlineCompletionRequest:
    fields: dict[str, Any] = {
        "number": 1,
        "prefix": prefix,
        "suffix": suffix,
        "mime": "text/x-ipython",
        "stream": False,
        "language": "python",
    }
    fields.update(kw)
    return InlineCompletionRequest(**fields)


# ----- post-processing ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "prefix", "suffix", "expected"),
    [
        ("```python\nreturn x + 1\n```", "def f(x):\n    ", "", "return x + 1"),
        ("```\nreturn x + 1\n```\nThis adds one.", "def f(x):\n    ", "", "return x + 1"),
        ("  ```py\nreturn 1```", "def g():\n    ", "", "return 1"),
        ("return x + 1\n```", "def f(x):\n    ", "", "return x + 1"),
        # the whole prefix repeated
        (
            "import numpy as np\nimport pandas as pd",
            "import numpy as np\n",
            "",
            "import pandas as pd",
        ),
        # the line being typed repeated
        ("df.groupby('city').mean()", "x = 1\ndf.group", "", "by('city').mean()"),
        # the suffix duplicated at the end
        ("a, b)\nprint(total)", "total = add(", ")\nprint(total)", "a, b"),
        # the first line of the suffix (a closing bracket) duplicated
        ("1, 2, 3]", "values = [", "]\nplot(values)", "1, 2, 3"),
        # the suggestion's own closing bracket is not a copy of the suffix's
        ("g(x)", "f(", ")", "g(x)"),
        ("compute(a, b))", "print(", ")", "compute(a, b)"),
        ("x[0]]", "y = [", "]", "x[0]"),
        # nothing to remove
        ("mean()", "df.", "", "mean()"),
        ("   \n", "x = ", "", ""),
    ],
)
def test_post_process(raw: str, prefix: str, suffix: str, expected: str) -> None:
    assert post_process(raw, req(prefix, suffix)) == expected


def test_post_process_keeps_fences_inside_markdown() -> None:
    raw = "shows the squares:\n\n```python\nplt.plot(x, x**2)\n```\n"
    out = post_process(raw, req("The figure ", "", language="markdown"), markdown=True)
    assert out == raw
    wrapped = "```markdown\nThe chart shows **squares**.\n```"
    assert post_process(wrapped, req("", ""), markdown=True) == "The chart shows **squares**."


# ----- settings -----------------------------------------------------------------------


def test_settings_from_provider_fields_with_defaults() -> None:
    assert settings_for(object()) == CompletionSettings()
    provider = SimpleNamespace(
        completion_images="false", completion_context_cells="3", completion_max_images=2
    )
    s = settings_for(provider)
    assert (s.images, s.context_cells, s.max_images) == (False, 3, 2)
    # out of range values are clamped, invalid ones ignored
    s = settings_for(SimpleNamespace(completion_context_cells=10_000, completion_images="maybe"))
    assert (s.context_cells, s.images) == (50, True)


# ----- paths --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        None,
        "",
        "/etc/passwd.ipynb",
        "../outside.ipynb",
        "a/../../b.ipynb",
        "notes.txt",
        "script.py",
        "~/x.ipynb",
        ".hidden/x.ipynb",
        ".dot.ipynb",
        "C:\\x.ipynb",
        "a\x00.ipynb",
        "text.ipynb",  # a symlink named like a notebook, to a text file
    ],
)
async def test_unsafe_or_non_notebook_paths_give_no_context(
    tmp_path: Path, path: str | None
) -> None:
    """paths.confine with completion's stricter rules: notebooks only, no hidden folders."""
    root = tmp_path / "root"
    nb = new_notebook(cells=[new_code_cell("a = 1", id="a"), new_code_cell("b", id="b")])
    for name in ("../outside.ipynb", "b.ipynb", ".hidden/x.ipynb", ".dot.ipynb"):
        write_notebook(nb, root / name)
    for name in ("notes.txt", "script.py"):
        (root / name).write_text(nbformat_text(nb))
    (root / "text.ipynb").symlink_to(root / "notes.txt")
    window = await read_window(
        req(path=path, cell_id="b"), root_settings(root), CompletionSettings()
    )
    assert window is None


async def test_a_notebook_path_with_spaces_and_dots_is_read(tmp_path: Path) -> None:
    nb = new_notebook(cells=[new_code_cell("a = 1", id="a"), new_code_cell("b", id="b")])
    write_notebook(nb, tmp_path / "sub dir" / "analysis.v2.ipynb")
    for path in ("sub dir/analysis.v2.ipynb", "./sub dir/../sub dir/analysis.v2.ipynb"):
        window = await read_window(
            req(path=path, cell_id="b"), root_settings(tmp_path), CompletionSettings()
        )
        assert window is not None and [c["id"] for c in window.cells] == ["a", "b"]


def root_settings(root: Path) -> dict[str, Any]:
    return {"server_root_dir": str(root)}


def nbformat_text(nb: Any) -> str:
    import nbformat

    return nbformat.writes(nb)


# ----- the window ---------------------------------------------------------------------


def test_window_from_live_ynotebook(executed_notebook: Any) -> None:
    ynb = make_ynotebook(executed_notebook)
    before = ynb.source
    settings = CompletionSettings(context_cells=2)
    window = window_from_ynotebook(ynb, "pandas", settings)
    assert window is not None and window.origin == "live"
    ids = [c["id"] for c in window.cells]
    focus = cell_index(executed_notebook, "pandas")
    assert ids == [c["id"] for c in executed_notebook.cells[focus - 2 : focus + 3]]
    assert window.cells[window.focus]["id"] == "pandas"
    assert window.focus_cell_index == focus
    assert ynb.source == before  # reading never changes the document


def test_window_reaches_up_for_the_most_recent_figure(executed_notebook: Any) -> None:
    """With no figure in the window above the cursor, the nearest figure cell is added."""
    nb = copy.deepcopy(executed_notebook)
    for i in range(6):  # text-only cells between the last figure and the cursor
        nb.cells.append(new_code_cell(f"v{i} = {i}", id=f"plain{i}"))
    # "error" has no figure; the cells before it (stream, long-text) neither; html-img has one
    window = window_from_ynotebook(
        make_ynotebook(nb), "plain5", CompletionSettings(context_cells=3)
    )
    assert window is not None
    assert window.cells[0]["id"] == "html-img"
    assert [c["id"] for c in window.cells[1:]] == ["plain2", "plain3", "plain4", "plain5"]
    # the search is bounded, and skipped when figures are off
    for settings in (
        CompletionSettings(context_cells=3, figure_lookback=2),
        CompletionSettings(context_cells=3, images=False),
    ):
        window = window_from_ynotebook(make_ynotebook(nb), "plain5", settings)
        assert window is not None and window.cells[0]["id"] == "plain2"


def test_live_and_saved_cells_agree_on_which_hold_a_figure(executed_notebook: Any) -> None:
    """The live reader looks only at mime keys (no copy of the figures); it must say what
    the saved-file reader says for every kind of output of the rich notebook."""
    from jupyter_ai_vision.server.completion.window import _LiveCells, _SavedCells

    live = _LiveCells(make_ynotebook(executed_notebook))
    saved = _SavedCells(executed_notebook.cells)
    flags = [saved.has_figure(i) for i in range(len(saved))]
    assert [live.has_figure(i) for i in range(len(live))] == flags
    assert any(flags) and not all(flags)


def test_unknown_cell_id_gives_no_window(executed_notebook: Any) -> None:
    assert (
        window_from_ynotebook(make_ynotebook(executed_notebook), "nope", CompletionSettings())
        is None
    )
    assert window_from_cells(executed_notebook.cells, "nope", CompletionSettings()) is None


def test_prepare_window_hides_cursor_cell_and_outputs_below(executed_notebook: Any) -> None:
    window = window_from_cells(
        executed_notebook.cells, "plotly", CompletionSettings(context_cells=2)
    )
    assert window is not None
    nb = prepare_window(window, CompletionSettings(context_cells=2))
    ids = [c["id"] for c in nb["cells"]]
    assert ids == ["altair-html", "altair-mime", "plotly", "plotly-png", "pandas"]
    focus = nb["cells"][2]
    assert focus["source"] == completion.FOCUS_PLACEHOLDER and focus["outputs"] == []
    assert all(c["outputs"] == [] for c in nb["cells"][3:])
    assert nb["cells"][1]["outputs"]  # the figure above the cursor stays
    # the original notebook is untouched
    assert executed_notebook.cells[cell_index(executed_notebook, "plotly-png")]["outputs"]


def test_markdown_attachments_count_only_above_the_cursor(
    executed_notebook: Any, png_bytes: bytes
) -> None:
    nb = with_markdown_images(executed_notebook, png_bytes)  # md-attach at 1, md-link at 2
    settings = CompletionSettings(context_cells=2)
    below = prepare_window(window_from_cells(nb.cells, "title", settings), settings)  # type: ignore[arg-type]
    assert [c["id"] for c in below["cells"]] == ["title", "md-attach", "md-link"]
    assert "attachments" not in below["cells"][1]
    above = prepare_window(window_from_cells(nb.cells, "setup", settings), settings)  # type: ignore[arg-type]
    assert above["cells"][0]["id"] == "md-attach" and above["cells"][0]["attachments"]


def test_prepare_window_cuts_a_1mb_neighbour() -> None:
    nb = new_notebook()
    nb.cells = [
        new_code_cell("x = '" + "a" * 1_000_000 + "'\nlast_line = 1", id="big"),
        new_code_cell("y = ", id="here"),
        new_code_cell("z = '" + "b" * 1_000_000 + "'", id="after"),
    ]
    settings = CompletionSettings()
    window = window_from_cells(nb.cells, "here", settings)
    assert window is not None
    out = prepare_window(window, settings)
    above, below = out["cells"][0]["source"], out["cells"][2]["source"]
    assert len(above) < settings.max_cell_chars + 100 and above.endswith("last_line = 1")
    assert len(below) < settings.max_cell_chars + 100 and below.startswith("z = 'bbb")


# ----- the saved file, cached by modification time ------------------------------------


def test_saved_notebook_cache_reloads_only_when_the_file_changes(tmp_path: Path) -> None:
    nb = new_notebook(cells=[new_code_cell("a = 1", id="c1")])
    path = write_notebook(nb, tmp_path / "n.ipynb")
    cache = SavedNotebookCache()
    first = cache.get(path)
    assert first is not None and cache.loads == 1
    assert cache.get(path) is first and cache.loads == 1
    nb.cells.append(new_code_cell("b = 2", id="c2"))
    write_notebook(nb, path)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    second = cache.get(path)
    assert second is not None and cache.loads == 2 and len(second["cells"]) == 2


@pytest.mark.parametrize("content", ["", "{not json", '{"cells": 3}', "[1, 2]"])
def test_saved_notebook_cache_rejects_bad_files(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.ipynb"
    path.write_text(content)
    assert SavedNotebookCache().get(path) is None
    assert SavedNotebookCache().get(tmp_path / "missing.ipynb") is None
    assert SavedNotebookCache().get(tmp_path) is None  # a directory


async def test_read_window_falls_back_to_the_saved_file(tmp_path: Path) -> None:
    nb = new_notebook(
        cells=[
            new_markdown_cell("# Sales", id="m"),
            new_code_cell("sales = load()", id="a"),
            new_code_cell("sales.", id="b"),
        ]
    )
    write_notebook(nb, tmp_path / "sub" / "s.ipynb")
    (tmp_path.parent / "outside.ipynb").write_text("{}")
    settings = CompletionSettings()
    server_settings = {"server_root_dir": str(tmp_path)}
    cache = SavedNotebookCache()
    window = await read_window(
        req(path="sub/s.ipynb", cell_id="b"), server_settings, settings, cache=cache
    )
    assert window is not None and window.origin == "file"
    assert [c["id"] for c in window.cells] == ["m", "a", "b"]
    for path, cell_id in [
        ("../outside.ipynb", "b"),
        ("sub/s.ipynb", "unknown"),
        ("sub/missing.ipynb", "b"),
        ("sub/s.py", "b"),
        ("sub/s.ipynb", None),
    ]:
        assert await read_window(req(path=path, cell_id=cell_id), server_settings, settings) is None


async def test_read_window_refuses_a_symlink_out_of_the_root(tmp_path: Path) -> None:
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    root.mkdir()
    write_notebook(new_notebook(cells=[new_code_cell("secret = 1", id="a")]), elsewhere / "x.ipynb")
    (root / "link.ipynb").symlink_to(elsewhere / "x.ipynb")
    got = await read_window(
        req(path="link.ipynb", cell_id="a"), {"server_root_dir": str(root)}, CompletionSettings()
    )
    assert got is None


# ----- prompt assembly (real YNotebook, the shared context builder) -------------------


class _Model:
    """What the completer reads from a provider: the model id and image support."""

    def __init__(self, model_id: str = "openai/gpt-4o", images: bool | None = True, **kw: Any):
        self.model_id = model_id
        self._images = images
        self.__dict__.update(kw)

    def supports_images(self) -> bool | None:
        return self._images


def _content(prompt: Any) -> tuple[str, int]:
    human = prompt.messages[-1].content
    if isinstance(human, str):
        return human, 0
    text = "\n".join(p["text"] for p in human if p["type"] == "text")
    return text, sum(p["type"] == "image_url" for p in human)


async def test_prompt_from_a_live_ynotebook(executed_notebook: Any) -> None:
    ynb = make_ynotebook(executed_notebook)
    settings = CompletionSettings()
    window = window_from_ynotebook(ynb, "pandas", settings)
    r = req("pd.DataFrame({'city': ", "})", path="rich.ipynb", cell_id="pandas")
    prompt = await completion.build_prompt(_Model(), r, window=window, server_settings={})
    text, images = _content(prompt)
    assert prompt.origin == "live" and prompt.images == images == 1
    assert "plt.subplots(figsize=(4, 3))" in text  # a preceding cell
    assert "ellipse" in text  # a following cell's source
    assert "[figure" in text and "<notebook-content>" in text
    assert text.endswith("pd.DataFrame({'city': ")
    assert "})" in text  # the suffix
    # the cursor's cell is shown once, from the request (fresher than the document)
    assert text.count("pd.DataFrame({'city': ['Oslo'") == 0
    assert "code completion" in prompt.messages[0].content


@pytest.mark.parametrize(
    ("model", "kw"),
    [
        (_Model(images=None), {}),  # unknown: no figure (a completion must not fail on it)
        (_Model(images=False), {}),
        (_Model(completion_images=False), {}),
        (_Model(completion_max_images=0), {}),
    ],
)
async def test_prompt_without_figures(executed_notebook: Any, model: Any, kw: Any) -> None:
    settings = completion.settings_for(model)
    window = window_from_ynotebook(make_ynotebook(executed_notebook), "pandas", settings)
    r = req("x", path="rich.ipynb", cell_id="pandas")
    prompt = await completion.build_prompt(model, r, window=window, server_settings={})
    text, images = _content(prompt)
    assert images == 0 and prompt.images == 0 and "plt.subplots(figsize=(4, 3))" in text


async def test_prompt_for_a_markdown_cell(executed_notebook: Any) -> None:
    nb = copy.deepcopy(executed_notebook)
    nb.cells.insert(cell_index(nb, "pil") + 1, new_markdown_cell("The figure shows", id="md"))
    window = window_from_ynotebook(make_ynotebook(nb), "md", CompletionSettings())
    r = req("The figure shows ", mime="text/x-ipythongfm", language="markdown", cell_id="md")
    prompt = await completion.build_prompt(_Model(), r, window=window, server_settings={})
    text, images = _content(prompt)
    assert prompt.markdown and "markdown cell" in prompt.messages[0].content
    assert "Complete the following text" in text and images == 1


async def test_prompt_without_a_notebook_is_prefix_and_suffix_only() -> None:
    r = req("def area(r):\n    return ", "\n\nprint(area(2))")
    prompt = await completion.build_prompt(_Model(), r, server_settings={})
    text, images = _content(prompt)
    assert prompt.origin == "none" and images == 0
    assert "print(area(2))" in text and text.endswith("return ")


async def test_prompt_caps_a_1mb_prefix_and_suffix() -> None:
    r = req("a = '" + "x" * 1_000_000 + "'\nb = ", "\n" + "y" * 1_000_000)
    text, _ = _content(await completion.build_prompt(_Model(), r, server_settings={}))
    assert len(text) < 12_000 and text.endswith("b = ")


# ----- superseded requests ------------------------------------------------------------


async def test_a_newer_request_for_the_same_cell_cancels_the_older_one() -> None:
    table = completion.Supersession(max_tracked=2)
    owner = object()
    old = table.register(owner, "n.ipynb", "c")
    other_cell = table.register(owner, "n.ipynb", "d")
    slow = asyncio.ensure_future(asyncio.sleep(30))
    waiting = asyncio.ensure_future(completion.unless_superseded(slow, old))
    await asyncio.sleep(0)
    table.register(owner, "n.ipynb", "c")  # a newer request for the same cell
    with pytest.raises(completion.Superseded):
        await asyncio.wait_for(waiting, 1)
    assert slow.cancelled() and not other_cell.is_set()
    # bounded: the oldest entries are dropped (and released)
    table.register(owner, "n.ipynb", "e")
    table.register(owner, "n.ipynb", "f")
    assert len(table) == 2 and other_cell.is_set()
    assert await completion.unless_superseded(asyncio.sleep(0, "done"), asyncio.Event()) == "done"


async def test_window_cells_keep_their_notebook_numbers(png_bytes: bytes) -> None:
    """A window of cells 10..14 (plus the figure of cell 3 above it) is labelled with those
    numbers, and the model is told how many cells the whole notebook has."""
    import base64

    from nbformat.v4 import new_output

    cells = [new_code_cell(f"step_{i} = {i}", id=f"c{i}") for i in range(20)]
    cells[3].outputs = [
        new_output("display_data", data={"image/png": base64.b64encode(png_bytes).decode()})
    ]
    settings = CompletionSettings(context_cells=2)
    window = window_from_ynotebook(make_ynotebook(new_notebook(cells=cells)), "c12", settings)
    assert window is not None
    assert window.numbers == [3, 10, 11, 12, 13, 14] and window.total_cells == 20
    assert window.focus_cell_index == 12
    r = req("step_12 = ", path="n.ipynb", cell_id="c12")
    prompt = await completion.build_prompt(_Model(), r, window=window, server_settings={})
    text, images = _content(prompt)
    assert "(20 cells)" in text and "focused on cell 12" in text
    assert "## Cell 12 (code, id c12) <- the cell the user is focused on" in text
    for i in (10, 11, 13, 14):
        assert f"## Cell {i} (code, id c{i})" in text and f"step_{i} = {i}" in text
    assert images == 1 and "[figure 1: cell 3" in text
    assert "## Cell 0 (" not in text and "## Cell 5 (" not in text  # no window positions
