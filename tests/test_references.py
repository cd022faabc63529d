"""``@name`` references: parsing, validation and in-namespace resolution (``%%ai``)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from jupyter_ai_vision.context.budget import ImagePolicy
from jupyter_ai_vision.context.parts import ImagePart, TextPart
from jupyter_ai_vision.kernel.references import (
    MAX_REFERENCES,
    find_references,
    resolve_in_namespace,
    validate_name,
)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("What is in @df?", ["df"]),
        ("compare @a, @b and @c.", ["a", "b", "c"]),
        ("plot @model.history.loss please", ["model.history.loss"]),
        ("see (@df) and `@fig`", ["df", "fig"]),
        ("is **@df** sorted?", ["df"]),
        ("@df then @df again", ["df"]),
        ("mail me at someone@example.com", []),
        ("a@b.com and @x", ["x"]),
        ("@file:notes.md is a Jupyter AI context command", []),
        ("@_private and @ünïcode", ["_private", "ünïcode"]),
        ("trailing @", []),
    ],
)
def test_find_references(text, names):
    refs = find_references(text)
    assert list(refs) == names
    assert refs.notes == []


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("what does @__import__('os') give", "@__import__('os')"),
        ("look at @df; import os", "@df;"),
        ("first item @x[0]", "@x[0]"),
        ("@obj.__class__ please", "@obj.__class__"),
        ("@a..b", "@a..b"),
        ("@1abc", "@1abc"),
        ("@f(x)", "@f(x)"),
    ],
)
def test_rejected_references_get_one_line_notes(text, shown):
    refs = find_references(text)
    assert list(refs) == []
    assert len(refs.notes) == 1
    note = refs.notes[0]
    assert note.startswith(shown) and "\n" not in note
    assert "not looked up" in note


def test_too_many_references_are_capped():
    refs = find_references(" ".join(f"@v{i}" for i in range(15)))
    assert list(refs) == [f"v{i}" for i in range(MAX_REFERENCES)]
    assert refs.notes == [f"only the first {MAX_REFERENCES} of 15 @references were looked up"]


def test_validate_name():
    assert validate_name("a.b.c") is None
    assert "dunders" in validate_name("__builtins__")
    assert validate_name("x" * 300) is not None
    assert validate_name("") is not None


class Model:
    def __init__(self):
        self.history = type("H", (), {"loss": [0.9, 0.5, 0.2]})()

    @property
    def broken(self):
        raise RuntimeError("nope")


def test_resolve_in_namespace_text_and_missing_names():
    import pandas as pd

    ns = {"df": pd.DataFrame({"a": [1, 2, 3]}), "model": Model()}
    parts, notes = resolve_in_namespace(
        ["df", "model.history.loss", "missing", "model.nope", "model.broken", "x[0]"], ns
    )
    texts = [p.text for p in parts if isinstance(p, TextPart)]
    assert len(texts) == 2
    assert texts[0].startswith('<kernel-variable name="df" type="pandas.DataFrame">')
    assert "3 rows × 1 columns" in texts[0] and texts[0].endswith("</kernel-variable>")
    assert 'name="model.history.loss" type="list"' in texts[1] and "[0.9, 0.5, 0.2]" in texts[1]
    assert all(p.provenance.kind == "kernel-variable" for p in parts)
    assert notes == [
        "@missing: 'missing' is not defined in the kernel",
        "@model.nope: model has no attribute 'nope'",
        "@model.broken: reading model.broken raised RuntimeError: nope",
        "@x[0] was not looked up: only variable names and attributes like @df or @obj.attr "
        "are supported (no calls, indexing or code)",
    ]


def _png(w: int, h: int, colour: str = "blue") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), colour).save(buf, format="PNG")
    return buf.getvalue()


class Picture:
    def __init__(self, w, h, colour="blue"):
        self.data = _png(w, h, colour)

    def _ai_repr_(self, mimetypes=None):
        bundle = {"text/plain": "a picture"}
        if not mimetypes or "image/png" in mimetypes:
            bundle["image/png"] = self.data
        return bundle


def test_images_go_through_prepare_image_and_the_budget():
    ns = {"small": Picture(200, 100), "big": Picture(3000, 1500, "red"), "third": Picture(50, 50)}
    parts, notes = resolve_in_namespace(
        ["small", "big", "third"], ns, policy=ImagePolicy(max_images=2), model="gpt-4o"
    )
    images = [p for p in parts if isinstance(p, ImagePart)]
    assert [(i.width, i.height) for i in images] == [(200, 100), (1024, 512)]
    assert images[1].original_width == 3000 and images[1].caption == "@big"
    assert all(i.provenance.kind == "kernel-variable" and i.tokens > 0 for i in images)
    third = [p for p in parts if isinstance(p, TextPart)][2].text
    assert "[image of @third: 50×50, not sent: budget: 2 images per request]" in third
    assert notes == ["@third: image 50×50, not sent: budget: 2 images per request"]


def test_text_only_model_gets_no_images_and_reprs_are_not_asked_for_them():
    seen = []

    class Spy:
        def _ai_repr_(self, mimetypes=None):
            seen.append(mimetypes)
            return {"text/plain": "spy"}

    parts, _ = resolve_in_namespace(["s"], {"s": Spy()}, supports_images=False)
    assert not any(m.startswith("image/") for m in seen[0])
    parts, _ = resolve_in_namespace(["p"], {"p": Picture(10, 10)}, supports_images=False)
    assert not any(isinstance(p, ImagePart) for p in parts)


def test_bad_image_bytes_become_a_note():
    class Liar:
        def _ai_repr_(self):
            return {"text/plain": "liar", "image/png": b"definitely not a png"}

    parts, notes = resolve_in_namespace(["liar"], {"liar": Liar()})
    assert len(parts) == 1 and "[image of @liar: not sent:" in parts[0].text
    assert notes and notes[0].startswith("@liar: image not sent:")


def _notebook_with_pngs(pngs: list[bytes]) -> dict:
    import base64

    from nbformat.v4 import new_code_cell, new_notebook, new_output

    cells = [
        new_code_cell(
            f"show({i})",
            outputs=[
                new_output("display_data", data={"image/png": base64.b64encode(png).decode()})
            ],
        )
        for i, png in enumerate(pngs)
    ]
    return new_notebook(cells=cells)


def test_references_continue_the_notebook_budget():
    """What the notebook's figures used is what the @name objects no longer have."""
    from jupyter_ai_vision.context.budget import RemainingBudget
    from jupyter_ai_vision.context.builder import build_context

    colours = ["red", "green", "blue", "yellow", "cyan", "magenta", "white", "black", "gray"]
    policy = ImagePolicy(max_images=10)
    ctx = build_context(_notebook_with_pngs([_png(40, 40, c) for c in colours]), policy=policy)
    assert len(ctx.images) == 9
    budget = RemainingBudget.after(ctx)
    assert (budget.count, budget.tokens) == (9, ctx.image_tokens)
    ns = {
        "again": Picture(40, 40, "red"),  # the same pixels as cell 0's figure
        "new": Picture(30, 30, "orange"),
        "one_too_many": Picture(20, 20, "purple"),
    }
    parts, notes = resolve_in_namespace(["again", "new", "one_too_many"], ns, budget=budget)
    assert [p.caption for p in parts if isinstance(p, ImagePart)] == ["@new"]
    texts = [p.text for p in parts if isinstance(p, TextPart)]
    assert "[image of @again: not sent twice: the same image is already" in texts[0]
    assert "budget: 10 images per request]" in texts[2]
    # the user hears about what was lost, not about the duplicate
    assert notes == ["@one_too_many: image 20×20, not sent: budget: 10 images per request"]
    assert budget.count == 10


def test_a_text_only_model_budget_sends_no_reference_image():
    from jupyter_ai_vision.context.budget import RemainingBudget

    budget = RemainingBudget.fresh(model="openai/gpt-3.5-turbo")
    parts, notes = resolve_in_namespace(["p"], {"p": Picture(10, 10)}, budget=budget)
    # the budget's model decides: images are not even asked of the repr
    assert not any(isinstance(p, ImagePart) for p in parts) and notes == []
    assert budget.count == 0
