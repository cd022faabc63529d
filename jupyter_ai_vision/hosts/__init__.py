"""Host adapters. Each subpackage imports only its own host's API and is loaded only from its
own entry points: ``jupyter_ai_2`` (Jupyter AI 2.x) and ``jupyter_ai_3`` (Jupyter AI 3.x)."""
