"""LiteLLM adapters, host-independent: the LangChain chat model (``chat_model``), plain-litellm
streaming for hosts without LangChain (``stream``), embeddings, parameter checks (``params``),
capability lookup (``capabilities``), the model list (``model_list``), the one kwargs builder
(``_litellm``) and retry policy (``_retry``), and the one-line messages for every model fault
(``error_messages``). litellm itself is imported lazily, never at import time."""
