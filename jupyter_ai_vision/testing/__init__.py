"""Test helpers: a local recording OpenAI-compatible model server (no network beyond 127.0.0.1)."""

from jupyter_ai_vision.testing.model_server import (
    FAIL_MODES,
    ModelServer,
    RecordedRequest,
    ToolCall,
    image_urls_in,
    images_in,
    text_in,
    tool_results_in,
)

__all__ = [
    "FAIL_MODES",
    "ModelServer",
    "RecordedRequest",
    "ToolCall",
    "image_urls_in",
    "images_in",
    "text_in",
    "tool_results_in",
]
