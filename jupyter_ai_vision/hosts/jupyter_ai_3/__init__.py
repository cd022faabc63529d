"""Jupyter AI 3.x: the Vision persona (``jupyter_ai.personas``) and MCP tools
(``jupyter_server_mcp.tools``)."""
