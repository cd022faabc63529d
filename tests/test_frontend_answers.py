"""What a browser tab answers is untrusted notebook JSON: checked like a file before use.

The answers here are what ``jupyterlab-ai-commands:get-notebook-content`` sends back through
jupyterlab-commands-toolkit's ``lab_command_result`` event, written by hand in the shapes a
hostile or broken page could send. The round trip with a real browser is in
tests/jupyter_ai_3/test_frontend_notebook.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from jupyter_ai_vision import limits
from jupyter_ai_vision.context.snapshot import load_notebook
from jupyter_ai_vision.errors import NotebookUnreadable
from jupyter_ai_vision.server import frontend_notebook as fn


def notebook(source: str = "print(1)") -> dict[str, Any]:
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {},
        "cells": [
            {
                "cell_type": "code",
                "id": "c1",
                "metadata": {},
                "source": source,
                "execution_count": 3,
                "outputs": [],
            }
        ],
    }


def answer(path: str, content: Any, *, success: bool = True) -> dict[str, Any]:
    return {
        "requestId": "r1",
        "success": True,
        "result": {"success": success, "notebookPath": path, "content": content, "isDirty": True},
    }


def test_an_answer_about_the_asked_notebook_is_used() -> None:
    got = fn.FrontendAnswer(path="a.ipynb")
    result = fn._result(answer("a.ipynb", notebook()), got, "/a.ipynb")
    assert result is not None and result["content"]["cells"][0]["id"] == "c1"
    assert got.errors == []


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (answer("other.ipynb", notebook()), "the answer is about another notebook"),
        (answer("a.ipynb", "not a dict"), "no notebook content in the answer"),
        (answer("a.ipynb", notebook(), success=False), "no notebook content in the answer"),
        ({"requestId": "r1", "success": False, "error": "x" * 5000}, "x" * 200),
        ({"requestId": "r1", "success": True, "result": ["a", "list"]}, "the command failed"),
    ],
)
def test_an_unusable_answer_is_noted_in_one_line_and_skipped(data: Any, why: str) -> None:
    got = fn.FrontendAnswer(path="a.ipynb")
    assert fn._result(data, got, "/a.ipynb") is None
    assert got.errors == [why]  # bounded: a page cannot flood the log with its error text


def test_the_copy_is_private_and_huge_integers_become_floats() -> None:
    sent = notebook()
    sent["cells"][0]["execution_count"] = int("9" * (limits.MAX_INT_DIGITS + 1))
    copy = fn._private_copy(sent, "a.ipynb")
    assert copy is not sent and copy["cells"][0] is not sent["cells"][0]
    assert isinstance(copy["cells"][0]["execution_count"], float)
    snapshot = load_notebook(copy, path="a.ipynb")  # the same normaliser as a file
    assert [c["source"] for c in snapshot.cells] == ["print(1)"]


def test_an_oversized_browser_notebook_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(limits, "MAX_NOTEBOOK_BYTES", 10_000)
    with pytest.raises(NotebookUnreadable) as err:
        fn._private_copy(notebook("x" * 20_000), "big.ipynb")
    message = str(err.value)
    assert message.startswith("big.ipynb: ") and "limit" in message and "\n" not in message


@pytest.mark.parametrize("levels", [limits.MAX_JSON_DEPTH + 10, 100_000])
def test_a_deeply_nested_browser_notebook_is_refused_in_one_line(levels: int) -> None:
    deep: Any = "leaf"
    for _ in range(levels):
        deep = [deep]
    sent = notebook()
    sent["metadata"]["deep"] = deep
    with pytest.raises(NotebookUnreadable) as err:
        fn._private_copy(sent, "deep.ipynb")
    assert str(err.value).startswith("deep.ipynb: the browser's notebook cannot be read (")


def test_paths_are_compared_in_one_spelling() -> None:
    assert fn._norm("./sub/a.ipynb") == "sub/a.ipynb"
    assert fn._norm("/sub\\a.ipynb") == "sub/a.ipynb"


def test_without_the_commands_toolkit_nothing_is_asked() -> None:
    import asyncio

    got = asyncio.run(fn.query_frontend({}, "a.ipynb", timeout=5))
    assert got.status == "unavailable" and got.notebook is None and got.answers == 0
    # with RTC the live document is the truth: the browser is never asked
    rtc = {"jupyter_server_ydoc": object(), "event_logger": object()}
    assert fn._channel(rtc) is None
