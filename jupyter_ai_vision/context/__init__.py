"""The pure pipeline: notebook -> VisionContext (snapshot, extraction, budget, the wire format).

Runs anywhere. Never imports jupyter_server, jupyter_ai, litellm or langchain; Pillow and
vl-convert only inside functions (through media/)."""
