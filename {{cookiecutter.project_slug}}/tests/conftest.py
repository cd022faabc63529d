"""Fixtures: jupyter-ai-vision's recording model server (an OpenAI-compatible server on
127.0.0.1: no API key, no network) and a notebook with a figure."""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from jupyter_ai_vision.testing import ModelServer

# LiteLLM must not fetch its remote model cost map during tests.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

#: A LiteLLM model name; ``api_base`` sends it to the recording server.
MODEL = "openai/gpt-4o"


@pytest.fixture(scope="session")
def model_server() -> Iterator[ModelServer]:
    with ModelServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_model_server(request: pytest.FixtureRequest) -> None:
    if "model_server" in request.fixturenames:
        request.getfixturevalue("model_server").reset()


def red_square_png(size: int = 64) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (220, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def notebook_dir(tmp_path: Path) -> Path:
    """A server root holding ``plots.ipynb``: a code cell whose output is a red square."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("plt.imshow(red)", execution_count=1)
    cell.outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={
                "image/png": base64.b64encode(red_square_png()).decode(),
                "text/plain": "<Figure size 640x480 with 1 Axes>",
            },
        )
    ]
    nb.cells = [nbformat.v4.new_markdown_cell("# Red"), cell]
    nbformat.write(nb, tmp_path / "plots.ipynb")
    return tmp_path
