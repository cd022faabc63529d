"""Shared pytest configuration. Fixtures live in tests/fixtures/, one module per area."""

import os

# LiteLLM must never fetch its remote cost map (no network beyond 127.0.0.1).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

pytest_plugins = [
    "fixtures.model_server",  # local OpenAI-compatible recording server
    "fixtures.notebooks",  # notebooks really executed by a kernel (nbclient)
    "fixtures.jupyter_server",  # a real Jupyter server with jupyter-ai loaded
]
