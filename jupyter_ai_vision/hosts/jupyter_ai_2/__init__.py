"""Jupyter AI 2.x: the vision provider, the ``/see`` slash command, inline completion and
the embeddings provider (entry points ``jupyter_ai.model_providers``, ``jupyter_ai.chat_handlers``,
``jupyter_ai.embeddings_model_providers``)."""
