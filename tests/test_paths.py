"""paths.confine: the one "inside the server root" rule, every refusal and every option."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jupyter_ai_vision.errors import UnsafePath, VisionError
from jupyter_ai_vision.paths import confine, relative_posix


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.ipynb").write_text("{}")
    (root / "b.ipynb").write_text("{}")
    (root / "plot.png").write_bytes(b"\x89PNG")
    (root / "notes.txt").write_text("text")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "c.ipynb").write_text("{}")
    (root / ".d.ipynb").write_text("{}")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.ipynb").write_text("{}")
    os.symlink(outside / "secret.ipynb", root / "escape.ipynb")
    os.symlink(outside, root / "escape_dir")
    os.symlink(root / "sub" / "a.ipynb", root / "alias.ipynb")
    os.symlink(root / "notes.txt", root / "text.ipynb")  # a notebook name for a text file
    os.symlink(root / ".hidden" / "c.ipynb", root / "visible.ipynb")
    return {"root": root, "outside": outside}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("sub/a.ipynb", "sub/a.ipynb"),
        ("./sub/a.ipynb", "sub/a.ipynb"),
        ("sub/../b.ipynb", "b.ipynb"),  # ".." that stays inside is fine
        ("sub\\a.ipynb", "sub/a.ipynb"),  # backslashes are separators
        ("  b.ipynb ", "b.ipynb"),
        ("alias.ipynb", "sub/a.ipynb"),  # a symlink inside the root: its target
        ("not-yet.ipynb", "not-yet.ipynb"),  # existence is only checked on request
    ],
)
def test_paths_inside_the_root(tree: dict[str, Path], path: str, expected: str) -> None:
    real = confine(tree["root"], path)
    assert real == (tree["root"] / expected).resolve()
    assert relative_posix(tree["root"], real) == expected


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("a\x00.ipynb", "contains a NUL byte"),
        ("\\\\server\\share\\x.ipynb", "is a UNC/network path"),
        ("//server/share/x.ipynb", "is a UNC/network path"),
        ("~/x.ipynb", "starts with ~ (home directory)"),
        ("~root/x.ipynb", "starts with ~ (home directory)"),
        ("/etc/passwd", "is an absolute path"),
        ("\\etc\\passwd", "is an absolute path"),
        ("C:\\x.ipynb", "is an absolute path"),
        ("c:x.ipynb", "is an absolute path"),
        ("../outside/secret.ipynb", "points outside the server root"),
        ("sub/../../outside/secret.ipynb", "points outside the server root"),
        ("sub\\..\\..\\outside\\secret.ipynb", "points outside the server root"),
        ("escape.ipynb", "points outside the server root"),  # symlink out of the root
        ("escape_dir/secret.ipynb", "points outside the server root"),
    ],
)
def test_refusals(tree: dict[str, Path], path: str, problem: str) -> None:
    with pytest.raises(UnsafePath) as info:
        confine(tree["root"], path)
    message = str(info.value)
    assert problem in message and "\n" not in message
    assert isinstance(info.value, VisionError)  # one line every surface shows as it is


def test_a_symlink_out_is_refused_even_when_the_lexical_path_looks_fine(
    tree: dict[str, Path],
) -> None:
    # the lexical check alone would accept it; the real path is outside
    with pytest.raises(UnsafePath, match="points outside"):
        confine(tree["root"], "sub/../escape.ipynb")


def test_a_root_given_through_a_symlink_is_resolved(tree: dict[str, Path], tmp_path: Path) -> None:
    os.symlink(tree["root"], tmp_path / "root-link")
    real = confine(tmp_path / "root-link", "sub/a.ipynb")
    assert real == (tree["root"] / "sub" / "a.ipynb").resolve()


@pytest.mark.parametrize("path", [".hidden/c.ipynb", ".d.ipynb", "visible.ipynb"])
def test_hidden_files_and_folders_on_request(tree: dict[str, Path], path: str) -> None:
    assert confine(tree["root"], path)  # allowed by default
    with pytest.raises(UnsafePath, match="names a hidden file or directory"):
        confine(tree["root"], path, allow_hidden=False)


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("notes.txt", "is not a notebook (.ipynb) (.txt)"),
        ("sub", "is not a notebook (.ipynb) (no suffix)"),
        ("text.ipynb", "is not a notebook (.ipynb) (.txt)"),  # by what it really is
    ],
)
def test_notebooks_only(tree: dict[str, Path], path: str, problem: str) -> None:
    with pytest.raises(UnsafePath) as info:
        confine(tree["root"], path, notebooks_only=True)
    assert problem in str(info.value)
    assert confine(tree["root"], "sub/../New.IPYNB", notebooks_only=True).name == "New.IPYNB"


def test_suffixes(tree: dict[str, Path]) -> None:
    assert confine(tree["root"], "plot.png", suffixes={".png"}).name == "plot.png"
    with pytest.raises(UnsafePath, match=r"is not an allowed file type \(\.txt\)"):
        confine(tree["root"], "notes.txt", suffixes={".png"})


def test_must_exist(tree: dict[str, Path]) -> None:
    assert confine(tree["root"], "b.ipynb", must_exist=True)
    for missing in ("missing.ipynb", "sub"):  # absent, or not a regular file
        with pytest.raises(UnsafePath, match="file not found"):
            confine(tree["root"], missing, must_exist=True)


def test_base_directory(tree: dict[str, Path]) -> None:
    sub = tree["root"] / "sub"
    assert confine(tree["root"], "a.ipynb", base=sub) == (sub / "a.ipynb").resolve()
    assert confine(tree["root"], "../b.ipynb", base=sub).name == "b.ipynb"
    with pytest.raises(UnsafePath, match="points outside"):
        confine(tree["root"], "../../outside/secret.ipynb", base=sub)


@pytest.mark.parametrize(
    ("path", "result"),
    [
        ("sub/a.ipynb?v=2#frag", "sub/a.ipynb"),
        ("su%62/a.ipynb", "sub/a.ipynb"),
        ("%2e%2e/outside/secret.ipynb", "points outside the server root"),
        ("%2E%2E%2Foutside%2Fsecret.ipynb", "points outside the server root"),
        ("%2Fetc%2Fpasswd", "is an absolute path"),
        ("%7E/x.ipynb", "starts with ~"),
        ("b.ipynb%00.txt", "contains a NUL byte"),
    ],
)
def test_url_paths_are_decoded_before_the_checks(
    tree: dict[str, Path], path: str, result: str
) -> None:
    if result.endswith(".ipynb"):
        assert confine(tree["root"], path, url=True) == (tree["root"] / result).resolve()
        return
    with pytest.raises(UnsafePath, match=result):
        confine(tree["root"], path, url=True)


def test_percent_signs_are_literal_without_url(tree: dict[str, Path]) -> None:
    (tree["root"] / "50%2e.ipynb").write_text("{}")
    assert confine(tree["root"], "50%2e.ipynb", must_exist=True).name == "50%2e.ipynb"
    # "%2e%2e" is a folder name here, not "..": inside the root
    assert confine(tree["root"], "%2e%2e/x.ipynb").parent.name == "%2e%2e"


def test_long_paths_are_shown_shortened(tree: dict[str, Path]) -> None:
    with pytest.raises(UnsafePath) as info:
        confine(tree["root"], "/" + "x" * 500)
    assert len(str(info.value)) < 120
