"""``jupyter-ai-vision inspect``: table, --json shape, --html report, exit codes."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from jupyter_ai_vision.cli import main

SCRIPT = Path(sys.executable).with_name("jupyter-ai-vision")


@pytest.fixture(scope="module")
def rich_path(rich_notebook_dir) -> Path:
    return rich_notebook_dir / "rich.ipynb"


def test_inspect_prints_items_skipped_and_totals(rich_path, capsys):
    assert main(["inspect", str(rich_path), "--model", "gpt-4o", "--cell", "pil"]) == 0
    out = capsys.readouterr().out
    assert f"Notebook: {rich_path}" in out and "Model: gpt-4o" in out
    assert re.search(r"1\. cell 1 +attachment", out)  # the markdown attachment comes first
    assert re.search(r"\d\. cell \d+ \[\d+\] output 0 +png", out)
    assert re.search(r"1601×988 -> 1023×631 +[\d.]+ kB +\d+ tokens +id=mpl-big", out)
    assert "Left out (" in out and "budget: 10 images per request" in out
    assert re.search(r"Totals: 10 images, \d+ image tokens, ~\d+ text tokens", out)


def test_inspect_json_has_the_documented_shape(rich_path, capsys):
    args = [
        "inspect",
        str(rich_path),
        "--json",
        "--model",
        "claude-3-5-sonnet",
        "--cell",
        "mpl-big",
    ]
    assert main(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"notebook", "model", "items", "skipped", "renders", "captions", "totals"}
    assert data["captions"] == {}  # only a text-only model with a caption model gets captions
    assert data["notebook"] == str(rich_path) and data["model"] == "claude-3-5-sonnet"
    item_keys = {"cell_index", "cell_id", "kind", "mime", "width", "height", "sent_width"}
    item_keys |= {"sent_height", "bytes", "tokens", "sha256"}
    assert data["items"] and all(set(i) == item_keys for i in data["items"])
    assert all(set(s) == {"cell_index", "kind", "reason"} for s in data["skipped"])
    totals = data["totals"]
    assert totals["images"] == len(data["items"]) == 10
    assert totals["image_tokens"] == sum(i["tokens"] for i in data["items"]) > 0
    assert totals["text_tokens"] > 100
    big = next(i for i in data["items"] if i["cell_id"] == "mpl-big")
    assert (big["width"], big["height"], big["sent_width"]) == (1601, 988, 1023)


def test_inspect_html_report_shows_exactly_what_is_sent(rich_path, tmp_path, capsys):
    out = tmp_path / "report" / "r.html"
    assert main(["inspect", str(rich_path), "--html", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    assert not re.search(r"(src|href)=['\"]?(https?:|//|file:)", page)  # self-contained
    thumbs = re.findall(
        r"<img class='thumb' alt='figure \d+' src='data:(image/\w+);base64,([^']+)'", page
    )
    assert len(thumbs) == data["totals"]["images"]
    for (_mime, b64), item in zip(thumbs, data["items"], strict=True):
        raw = base64.b64decode(b64)
        assert len(raw) == item["bytes"]
    for skipped in data["skipped"]:
        assert skipped["reason"].replace("'", "&#x27;") in page


def test_no_images_flag_gives_stubs_only(rich_path, capsys):
    assert main(["inspect", str(rich_path), "--no-images", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["items"] == [] and data["totals"]["images"] == 0


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "the file is empty"),
        (b"{oops", "not valid notebook JSON"),
        (b'{"nbformat": 4, "cells": 3}', "invalid notebook"),
    ],
)
def test_unusable_notebook_exits_2_with_one_line(tmp_path, capsys, content, expected):
    path = tmp_path / "bad.ipynb"
    path.write_bytes(content)
    assert main(["inspect", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith("jupyter-ai-vision: error: ") and expected in line


def test_unknown_cell_exits_2(rich_path, capsys):
    assert main(["inspect", str(rich_path), "--cell", "no-such-cell"]) == 2
    assert "no cell with id 'no-such-cell'" in capsys.readouterr().err


def test_console_script_end_to_end(rich_path, tmp_path):
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    ok = subprocess.run(
        [str(SCRIPT), "inspect", str(rich_path), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["totals"]["images"] == 10
    missing = subprocess.run(
        [str(SCRIPT), "inspect", str(tmp_path / "missing.ipynb")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.strip().count("\n") == 0 and "no such notebook" in missing.stderr
