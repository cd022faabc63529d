"""Markdown images: references, attachments, and local links confined to the server root."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures.scaling import assert_linear
from nbformat.v4 import new_markdown_cell
from PIL import Image

from jupyter_ai_vision.errors import MarkdownImageError, MissingAttachment, UnsafeLink
from jupyter_ai_vision.media import markdown as mdi
from jupyter_ai_vision.media.markdown import ImageRef


def png_bytes(color: str = "red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (30, 20), color).save(buf, format="PNG")
    return buf.getvalue()


# --- finding references ------------------------------------------------------------------


def test_inline_reference_forms() -> None:
    source = (
        "# Plots\n"
        '![Squares](img/plot.png "The title")\n'
        "Text ![with \\] bracket](<my plot.png>) and ![](attachment:image%201.png)\n"
        "![remote](https://example.invalid/x.png) ![paren](a_(1).png)\n"
    )
    assert mdi.find_image_refs(source) == [
        ImageRef("img/plot.png", "Squares", "The title", "local"),
        ImageRef("my plot.png", "with ] bracket", "", "local"),
        ImageRef("image 1.png", "", "", "attachment"),
        ImageRef("https://example.invalid/x.png", "remote", "", "remote"),
        ImageRef("a_(1).png", "paren", "", "local"),
    ]


def test_reference_style_and_html_img() -> None:
    source = (
        "![Full][fig1] then ![Collapsed][] and ![shortcut]\n"
        '<img src="attachment:pasted.png" alt="pasted" width=200>\n'
        "<IMG SRC='data:image/png;base64,AAAA'>\n"
        "\n"
        '[fig1]: figures/one.png "One"\n'
        "[collapsed]: <figures/two.png>\n"
        "[Shortcut]: figures/three.png\n"
    )
    assert mdi.find_image_refs(source) == [
        ImageRef("figures/one.png", "Full", "One", "local"),
        ImageRef("figures/two.png", "Collapsed", "", "local"),
        ImageRef("figures/three.png", "shortcut", "", "local"),
        ImageRef("pasted.png", "pasted", "", "attachment"),
        ImageRef("data:image/png;base64,AAAA", "", "", "data"),
    ]


def test_code_blocks_and_links_are_not_images() -> None:
    source = "```md\n![not me](x.png)\n```\n[a link](y.png) ~~~ ![yes](z.png)\n"
    assert mdi.find_image_refs(source) == [ImageRef("z.png", "yes", "", "local")]
    assert mdi.find_image_refs(["![a](", "b.png)"]) == [ImageRef("b.png", "a", "", "local")]  # type: ignore[arg-type]


# --- attachments ---------------------------------------------------------------------------


def test_attachment_is_decoded() -> None:
    data = png_bytes()
    cell = new_markdown_cell(
        "![](attachment:plot.png)",
        attachments={"plot.png": {"image/png": base64.b64encode(data).decode()}},
    )
    assert mdi.load_attachment(cell, "plot.png") == ("image/png", data)


def test_attachment_as_list_of_lines_and_svg_text() -> None:
    b64 = base64.b64encode(png_bytes("blue")).decode()
    svg = '<svg xmlns="http://www.w3.org/2000/svg" width="5" height="5"/>'
    cell = new_markdown_cell(
        "x",
        attachments={
            "a.png": {"image/png": [b64[:20] + "\n", b64[20:]]},
            "b.svg": {"image/svg+xml": svg},
        },
    )
    assert mdi.load_attachment(cell, "a.png") == ("image/png", png_bytes("blue"))
    assert mdi.load_attachment(cell, "b.svg") == ("image/svg+xml", svg.encode())


def test_missing_attachment_is_a_one_line_error() -> None:
    cell = new_markdown_cell(
        "![](attachment:gone.png)", attachments={"other.png": {"image/png": "AAAA"}}
    )
    with pytest.raises(MissingAttachment) as err:
        mdi.load_attachment(cell, "gone.png")
    msg = str(err.value)
    assert msg == (
        "attachment 'gone.png' not found in the cell (it has: other.png); "
        "paste or drag the image into the markdown cell again"
    )
    with pytest.raises(MissingAttachment, match="it has no attachments"):
        mdi.load_attachment(new_markdown_cell("x"), "gone.png")


@pytest.mark.parametrize(
    ("bundle", "match"),
    [
        ({"image/png": "@@@not base64@@@"}, "not valid base64"),
        ({"text/plain": "hello"}, "not an image"),
        ({"image/png": "A" * 101}, "too large"),
    ],
)
def test_bad_attachments(bundle: dict, match: str) -> None:
    cell = new_markdown_cell("x", attachments={"x.png": bundle})
    with pytest.raises(MarkdownImageError, match=match) as err:
        mdi.load_attachment(cell, "x.png", max_base64_chars=100)
    assert "\n" not in str(err.value)


# --- local links ---------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """root/ with notebooks/nb-dir, images, hidden files, and a secret outside the root."""
    root = tmp_path / "root"
    nb_dir = root / "project" / "notebooks"
    (nb_dir / "img").mkdir(parents=True)
    (root / "project" / "shared").mkdir()
    (nb_dir / "img" / "plot.png").write_bytes(png_bytes())
    (nb_dir / "my plot.png").write_bytes(png_bytes("green"))
    (root / "project" / "shared" / "logo.png").write_bytes(png_bytes("blue"))
    (nb_dir / ".secret.png").write_bytes(png_bytes())
    (nb_dir / ".hidden").mkdir()
    (nb_dir / ".hidden" / "x.png").write_bytes(png_bytes())
    (nb_dir / "notes.txt").write_text("not an image")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(png_bytes("black"))
    os.symlink(outside / "secret.png", nb_dir / "escape.png")
    os.symlink(outside, nb_dir / "escape_dir")
    os.symlink(nb_dir / "img" / "plot.png", nb_dir / "alias.png")
    return {"root": root, "nb_dir": nb_dir, "outside": outside}


def resolve(target: str, tree: dict[str, Path]) -> Path:
    return mdi.resolve_local_image(target, notebook_dir=tree["nb_dir"], root_dir=tree["root"])


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("img/plot.png", "img/plot.png"),
        ("./img/plot.png", "img/plot.png"),
        ("my%20plot.png", "my plot.png"),
        ("my plot.png", "my plot.png"),
        ("img/plot.png?v=2#frag", "img/plot.png"),
        ("../shared/logo.png", "../shared/logo.png"),  # up, but still inside the root
        ("alias.png", "img/plot.png"),  # symlink inside the root
    ],
)
def test_legit_local_links(tree: dict[str, Path], target: str, expected: str) -> None:
    path = resolve(target, tree)
    assert path == (tree["nb_dir"] / expected).resolve()
    assert mdi.mime_for_path(path) == "image/png"
    assert path.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("../../../../../../../../etc/passwd", "points outside the server root"),
        ("../../etc/passwd", "is not an image file (no suffix)"),  # root/etc/passwd: inside
        ("../../../outside/secret.png", "points outside the server root"),
        ("%2e%2e/%2e%2e/%2e%2e/outside/secret.png", "points outside the server root"),
        ("%2E%2E%2F%2E%2E%2F%2E%2E%2Foutside%2Fsecret.png", "points outside the server root"),
        ("/etc/passwd", "is an absolute path"),
        ("%2Fetc%2Fpasswd", "is an absolute path"),
        ("file:///etc/passwd", "uses the file: scheme"),
        ("FILE://localhost/etc/passwd", "uses the file: scheme"),
        ("~/x.png", "starts with ~ (home directory)"),
        ("\\\\server\\share\\x.png", "is a UNC/network path"),
        ("//server/share/x.png", "is a UNC/network path"),
        ("C:\\Windows\\x.png", "is an absolute path"),
        ("escape.png", "points outside the server root"),
        ("escape_dir/secret.png", "points outside the server root"),
        (".secret.png", "names a hidden file or directory"),
        (".hidden/x.png", "names a hidden file or directory"),
        ("notes.txt", "is not an image file (.txt)"),
        ("img", "is not an image file (no suffix)"),
        ("missing.png", "file not found"),
        ("javascript:alert(1)", "uses the javascript: scheme"),
        ("img/plot.png%00.txt", "contains a NUL byte"),
    ],
)
def test_unsafe_local_links_are_rejected(tree: dict[str, Path], target: str, problem: str) -> None:
    with pytest.raises(UnsafeLink) as err:
        resolve(target, tree)
    msg = str(err.value)
    assert problem in msg and "\n" not in msg
    if problem != "file not found":
        assert msg.endswith(
            "allowed: image files (png, jpeg, gif, webp, svg) inside the notebook server's root"
        )


def test_remote_links_are_never_fetched(tree: dict[str, Path]) -> None:
    server = (
        "import http.server\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        print(self.path, flush=True); self.send_response(404); self.end_headers()\n"
        "    def log_message(self, *a): pass\n"
        "s = http.server.HTTPServer(('127.0.0.1', 0), H)\n"
        "print(s.server_address[1], flush=True)\n"
        "s.serve_forever()\n"
    )
    proc = subprocess.Popen([sys.executable, "-u", "-c", server], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = f"http://127.0.0.1:{int(proc.stdout.readline())}/plot.png"
        [ref] = mdi.find_image_refs(f"![chart]({url})")
        assert ref.kind == "remote"
        with pytest.raises(UnsafeLink) as err:
            resolve(url, tree)
        assert "not fetched" in str(err.value) and "\n" not in str(err.value)
        time.sleep(0.3)
    finally:
        proc.kill()
    out, _ = proc.communicate()
    assert out.strip() == ""  # no request arrived


def test_oversized_file_is_rejected(tree: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mdi, "MAX_FILE_BYTES", 50)
    with pytest.raises(UnsafeLink, match="larger than"):
        resolve("img/plot.png", tree)


@pytest.mark.parametrize(
    "source",
    ["![" * 50_000, "<img" * 30_000, "![a](" + "(" * 50_000, "![a][" * 30_000, "[x]: " * 30_000],
)
def test_hostile_sources_are_scanned_in_linear_time(source: str) -> None:
    assert mdi.find_image_refs(source) == []
    assert_linear(lambda n: source[: len(source) * n // 8], mdi.find_image_refs, 1)
