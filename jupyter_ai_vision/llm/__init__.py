"""LiteLLM adapters: the LangChain chat model, embeddings, parameter checks, capability lookup,
and the one-line messages for every model fault. litellm itself is imported lazily."""
