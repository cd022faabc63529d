"""One-line user messages for model-call failures (LiteLLM exceptions and our own).

Matching is by class name along the exception's MRO, so this module never imports litellm
(it is used at server start-up). :data:`MESSAGES` must name every exception class in
``litellm.exceptions``; a test enumerates them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

SETTINGS = "the chat settings (or %%ai -m {...})"

#: Class name -> one-line message. The first class in the MRO that is listed wins, so
#: ``Timeout`` (a subclass of ``APIConnectionError``) is matched before its base.
MESSAGES: dict[str, str] = {
    "AuthenticationError": (
        "The model provider rejected the API key: update your API key in the chat settings "
        "(the api_key field) or the provider's environment variable, e.g. OPENAI_API_KEY."
    ),
    "PermissionDeniedError": (
        "The API key may not use this model: check the key's permissions, or pick another "
        "model in the chat settings."
    ),
    "PaymentRequiredError": (
        "The model provider asks for payment: add credits to the account behind the API key."
    ),
    "BudgetExceededError": (
        "The LiteLLM budget for this key is used up: ask the LiteLLM Proxy admin to raise it."
    ),
    "RateLimitError": (
        "The model provider's rate limit was reached: wait a moment and ask again, or ask "
        "about fewer cells or figures."
    ),
    "Timeout": (
        "The model did not answer in time: ask again, or raise `timeout` (seconds) in "
        + SETTINGS
        + "."
    ),
    "ContextWindowExceededError": (
        "The request is larger than the model's context window: ask about fewer cells or "
        "figures, or pick a model with a larger window."
    ),
    "ContentPolicyViolationError": (
        "The model provider refused the request under its content policy: rephrase the "
        "question or leave out the flagged content."
    ),
    "ImageFetchError": (
        "The model provider could not read an image: images are sent inline as data, so "
        "re-run the cell that made the figure and ask again."
    ),
    "UnsupportedParamsError": (
        "The model does not support one of the parameters: remove it from the model "
        "parameters (chat settings or %%ai -m)."
    ),
    "UnprocessableEntityError": (
        "The model server could not process the request (HTTP 422): check the model name "
        "and the model parameters."
    ),
    "NotFoundError": (
        "Unknown model, or no such endpoint at the api_base: use a LiteLLM model name such "
        "as openai/gpt-4o, anthropic/claude-sonnet-4-5 or ollama/llava, and check the api_base."
    ),
    "LiteLLMUnknownProvider": (
        "Unknown model provider: prefix the model name with a LiteLLM provider, e.g. "
        "openai/gpt-4o, anthropic/claude-sonnet-4-5, gemini/gemini-2.5-flash, ollama/llava."
    ),
    "ModelNotMappedError": (
        "LiteLLM has no information on this model: check the model name, or set "
        "supports_vision in the chat settings."
    ),
    "ServiceUnavailableError": (
        "The model service is unavailable right now (HTTP 503): ask again in a moment."
    ),
    "BadGatewayError": "The model service returned a gateway error (HTTP 502): ask again.",
    "InternalServerError": (
        "The model service had an internal error (HTTP 500): ask again in a moment."
    ),
    "MidStreamFallbackError": (
        "The model's reply stream broke off (interrupted or malformed stream): ask again."
    ),
    "APIResponseValidationError": (
        "The model server sent a response that is not valid OpenAI-compatible JSON: check "
        "the api_base, or ask again."
    ),
    "JSONSchemaValidationError": (
        "The model's answer did not match the requested JSON schema: ask again."
    ),
    "BlockedPiiEntityError": (
        "A LiteLLM guardrail blocked the request (personal data): remove it and ask again."
    ),
    "GuardrailRaisedException": (
        "A LiteLLM guardrail blocked the request: rephrase the question or ask the proxy admin."
    ),
    "RejectedRequestError": (
        "A LiteLLM guardrail rejected the request: rephrase the question or ask the proxy admin."
    ),
    "SensitiveDataRouteException": (
        "LiteLLM routed the request away because it holds sensitive data: ask the proxy admin."
    ),
    "ModifyResponseException": (
        "A LiteLLM guardrail replaced the model's answer: ask the proxy admin for details."
    ),
    "VectorStoreSearchError": "The LiteLLM vector store search failed: check the proxy's logs.",
    "MockException": "The model call failed (LiteLLM mock error).",
    "APIConnectionError": (
        f"Could not reach the model server: check the api_base in {SETTINGS} and that the "
        "server is running."
    ),
    "InvalidRequestError": "The model provider rejected the request (HTTP 400): {detail}",
    "BadRequestError": "The model provider rejected the request (HTTP 400): {detail}",
    "APIError": "The model call failed: {detail}",
    "OpenAIError": "The model call failed: {detail}",
    # our own
    "ModelParameterError": "{detail}",
    "ImagesNotSupported": "{detail}",
}

NO_IMAGES = (
    "This model does not accept images: pick a vision model (e.g. vision:openai/gpt-4o), or "
    f"set supports_vision to false in {SETTINGS} so figures are sent as text descriptions."
)

UNREACHABLE = MESSAGES["APIConnectionError"]

_CONNECTION = re.compile(
    r"connection (error|refused|reset)|cannot connect|connecterror|name or service not known|"
    r"nodename nor servname|failed to establish|all connection attempts failed",
    re.I,
)
_IMAGES_REFUSED = re.compile(
    r"(does not|doesn't|do not|cannot|can't|not) (support|accept|take|handle)\w* "
    r"(image|vision|multimodal)|image_url.{0,40}(not supported|unsupported|invalid)|"
    r"invalid content type: image|image input is not supported|no vision|vision is not",
    re.I,
)
_MALFORMED = re.compile(r"json|unterminated|expecting|decode|malformed|invalid sse", re.I)
_NO_CREDENTIALS = re.compile(
    r"missing credentials|api_key client option must be set|no api key|api key not (found|set)",
    re.I,
)
_PROVIDER_MISSING = re.compile(r"LLM Provider NOT provided", re.I)
_PREFIXES = re.compile(r"^(litellm\.)?\w+(Error|Exception|Timeout)?:\s*", re.I)
_SECRETS = re.compile(
    r"(\bsk-[A-Za-z0-9_\-*]{8,}|Bearer\s+\S+|(api[_-]?key['\"]?\s*[:=]\s*)['\"]?[^\s'\",]+)", re.I
)


def class_key(exc_type: type[BaseException]) -> str | None:
    """The :data:`MESSAGES` key that applies to ``exc_type`` (first listed class in its MRO)."""
    for klass in exc_type.__mro__:
        if klass.__name__ in MESSAGES:
            return klass.__name__
    return None


#: Keys of settings / model parameters whose string values are secrets.
SECRET_KEYS = re.compile(r"(api[_-]?key|token|secret|password|authorization)", re.I)
#: Attributes of a provider or model object that may hold a key (str or pydantic SecretStr).
_SECRET_ATTRIBUTES = ("api_key", "openai_api_key", "anthropic_api_key", "google_api_key")


def _secret_value(value: Any) -> str | None:
    if hasattr(value, "get_secret_value"):  # pydantic SecretStr
        value = value.get_secret_value()
    return value if isinstance(value, str) and len(value) >= 4 else None


def _walk(obj: Mapping[Any, Any], found: set[str], depth: int = 0) -> None:
    if depth > 8:  # settings are shallow; a cycle or a hostile structure stops here
        return
    for key, value in obj.items():
        secret = _secret_value(value) if SECRET_KEYS.search(str(key)) else None
        if secret:
            found.add(secret)
        elif isinstance(value, Mapping):
            _walk(value, found, depth + 1)


def secrets_of(*sources: Any) -> set[str]:
    """Every secret in ``sources``, for :func:`redact` / :func:`user_message`.

    A source is a provider or model object (its ``api_key``-like attributes, str or
    ``SecretStr``) or a mapping of settings / model parameters (walked, nested mappings too,
    for keys such as ``api_key``, ``token``, ``secret``, ``password``, ``authorization``).
    ``None`` sources are skipped."""
    found: set[str] = set()
    for source in sources:
        if source is None:
            continue
        if isinstance(source, Mapping):
            _walk(source, found)
            continue
        for name in _SECRET_ATTRIBUTES:
            secret = _secret_value(getattr(source, name, None))
            if secret:
                found.add(secret)
    return found


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` without API keys: known ``secrets`` and anything shaped like a key."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return _SECRETS.sub(lambda m: (m.group(2) or "") + "***", text)


def detail(exc: BaseException, *, limit: int = 200) -> str:
    """A short, redacted first line of the exception's own text (LiteLLM's prefixes removed)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    for _ in range(4):  # "litellm.BadRequestError: OpenAIException - ..." has several layers
        text = _PREFIXES.sub("", text, count=1).strip()
        text = re.sub(r"^\w+Exception\s*-\s*", "", text).strip()
    text = redact(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def images_refused(exc: BaseException) -> bool:
    """True when the provider says the model does not take images (a 400 with that text)."""
    status = getattr(exc, "status_code", None)
    return status in (None, 400, 422) and bool(_IMAGES_REFUSED.search(str(exc)))


def is_connection_error(exc: BaseException) -> bool:
    """The server could not be reached at all (closed port, unknown host)."""
    names = {k.__name__ for k in type(exc).__mro__}
    if "Timeout" in names:
        return False
    if names & {"APIConnectionError", "InternalServerError", "ConnectError", "ConnectionError"}:
        return bool(_CONNECTION.search(str(exc))) or "APIConnectionError" in names
    return isinstance(exc, ConnectionError)


def is_retryable(exc: BaseException) -> bool:
    """Only rate limits, 5xx answers and timeouts are retried (never auth, 4xx, or a closed port)."""
    key = class_key(type(exc))
    if key in ("RateLimitError", "Timeout", "ServiceUnavailableError", "BadGatewayError"):
        return True
    if key in ("MidStreamFallbackError", "APIConnectionError") or is_connection_error(exc):
        return False  # a broken stream was already partly shown; a closed port stays closed
    status = getattr(exc, "status_code", None)
    return isinstance(status, int) and (status == 429 or status >= 500)


def user_message(exc: BaseException, *, secrets: Iterable[str | None] = ()) -> str:
    """One line for the user: what went wrong, what is supported, how to fix it.

    Never contains an API key (``secrets`` are removed too, and anything shaped like a key).
    """
    key = class_key(type(exc))
    status = getattr(exc, "status_code", None)
    text = str(exc)
    if images_refused(exc):
        message = NO_IMAGES
    elif key == "Timeout" or isinstance(exc, TimeoutError):
        message = MESSAGES["Timeout"]
    elif key == "MidStreamFallbackError" and _MALFORMED.search(text):
        message = (
            "The model server sent a malformed stream (not valid server-sent events): check "
            "that the api_base is an OpenAI-compatible endpoint, or ask again."
        )
    elif _NO_CREDENTIALS.search(text):
        message = MESSAGES["AuthenticationError"]
    elif is_connection_error(exc):
        message = UNREACHABLE
    elif _PROVIDER_MISSING.search(text):
        message = MESSAGES["LiteLLMUnknownProvider"]
    elif key in ("BadRequestError", "InvalidRequestError") and status == 503:
        message = MESSAGES["ServiceUnavailableError"]
    elif key is not None:
        message = MESSAGES[key].replace("{detail}", detail(exc))
    else:
        message = f"The model call failed ({type(exc).__name__}): {detail(exc)}"
    return redact(" ".join(message.split()), secrets)
