"""Ask a running kernel, from the Jupyter server, for the AI representation of ``@names``.

:func:`add_kernel_references` is what a request calls (``/see``, the Vision persona): the
objects' images get what the notebook's figures left of the request's one image budget, and
their parts go inside the same notebook-content markers, defused like the notebook.

No protocol change: one silent ``execute_request`` (``silent=True, store_history=False,
allow_stdin=False``, empty code) with a ``user_expressions`` entry. The expression is fixed code;
the validated names travel as a JSON string literal inside it (``repr`` of a ``str`` is always a
plain literal, so no name can ever become code), and the kernel walks them with ``getattr``.

- **Busy kernel**: requests queue behind a running cell; after ``timeout`` we give up with
  "the kernel is busy ...". The late reply is dropped with the client.
- **One client per request**, with its own session identity: jupyter_client's reply waiter
  discards replies it was not waiting for, so sharing a client between concurrent requests
  loses replies, and a client sharing the manager's identity steals other clients' replies.
  A fresh shell channel costs about a millisecond. A caller-supplied client is serialised
  with a lock.
- **Dead kernel**: a one-line "the kernel is not running" message.
- **No jupyter-ai-vision in the kernel's environment**: the expression fails with
  ``ModuleNotFoundError``; we retry with :data:`FALLBACK_SOURCE`, a small fixed function
  compiled into a fresh dict (never the user's namespace) that returns the type name and a
  bounded ``repr`` — names still passed as data.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from jupyter_ai_vision.context import messages
from jupyter_ai_vision.context.budget import ImagePolicy, RemainingBudget
from jupyter_ai_vision.errors import KernelBusy, KernelDead, KernelQueryError
from jupyter_ai_vision.kernel.names import validate_name

if TYPE_CHECKING:
    from jupyter_ai_vision.context.parts import Part, VisionContext
    from jupyter_ai_vision.media.raster import ImageCache

FETCH_EXPRESSION = (
    "__import__('jupyter_ai_vision.ai_repr.kernel_side', fromlist=['fetch'])"
    ".fetch(globals(), {payload})"
)

#: Compiled in a fresh dict by :data:`FALLBACK_EXPRESSION` when the kernel lacks the package.
FALLBACK_SOURCE = """
def _fetch(ns, payload):
    import json, threading
    req = json.loads(payload)
    out = []
    for name in req["names"]:
        parts = str(name).split(".")
        if not all(p.isidentifier() and not (p[:2] == "__" and p[-2:] == "__") for p in parts):
            out.append({"name": name, "error": "@%s was not looked up: not a dotted name" % name})
            continue
        if parts[0] not in ns:
            out.append({"name": name, "error": "@%s: %r is not defined in the kernel" % (name, parts[0])})
            continue
        obj = ns[parts[0]]
        try:
            for attr in parts[1:]:
                obj = getattr(obj, attr)
        except Exception as exc:
            out.append({"name": name, "error": "@%s: %s: %s" % (name, type(exc).__name__, exc)})
            continue
        box = {}
        def run(obj=obj, box=box):
            try:
                box["text"] = repr(obj)
            except Exception as exc:
                box["text"] = "<repr() raised %s>" % type(exc).__name__
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(req["timeout"])
        text = box.get("text", "<repr() timed out after %s s>" % req["timeout"])
        cls = type(obj)
        out.append({
            "name": name,
            "type": "%s.%s" % (cls.__module__, cls.__qualname__),
            "source": "repr",
            "data": {"text/plain": text[: req["max_chars"]]},
            "notes": [],
        })
    return json.dumps(out)
"""

FALLBACK_EXPRESSION = "(lambda g: (exec({source}, g), g['_fetch'](globals(), {payload}))[1])({{}})"

MISSING_PACKAGE_NOTE = (
    "jupyter-ai-vision is not installed in the kernel's environment: the AI got repr() text "
    "only; run `pip install jupyter-ai-vision` there for charts, images and table summaries"
)


def build_expression(
    names: Sequence[str], kwargs: dict[str, Any], *, fallback: bool = False
) -> str:
    """The fixed expression with the request embedded as one Python string literal."""
    # The kwargs also sit at the top level, where the fallback function reads them.
    payload = repr(json.dumps({"names": list(names), "kwargs": kwargs, **kwargs}))
    if fallback:
        return FALLBACK_EXPRESSION.format(source=repr(FALLBACK_SOURCE), payload=payload)
    return FETCH_EXPRESSION.format(payload=payload)


async def query_ai_repr(
    kernel: Any,
    names: Sequence[str],
    *,
    timeout: float = 10.0,
    repr_timeout: float = 3.0,
    mimetypes: Sequence[str] | None = None,
    max_chars: int = 8_000,
    max_bytes: int = 4_000_000,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Entries ``{"name", "type", "source", "data", "notes"}`` (or ``{"name", "error"}``) for
    each name, plus notes. Names must already be validated dotted identifiers.

    Raises :class:`KernelBusy` / :class:`KernelDead` / :class:`KernelQueryError` (one line).
    """

    for name in names:
        reason = validate_name(name)
        if reason:  # defence in depth: callers validate, but nothing else may reach the kernel
            raise KernelQueryError(reason)
    # Share ``timeout`` between the names so that a hanging repr still lets the answer arrive
    # in time, but never below 3 s: a chart's first render in a fresh kernel takes ~0.6-2 s.
    per_repr = min(repr_timeout, max(3.0, 0.8 * timeout / max(1, len(names))))
    kwargs = {
        "mimetypes": list(mimetypes) if mimetypes else None,
        "max_chars": max_chars,
        "max_bytes": max_bytes,
        "timeout": round(per_repr, 2),
    }
    what = ", ".join(f"@{n}" for n in names)
    value = await evaluate(kernel, build_expression(names, kwargs), timeout=timeout, what=what)
    if value.get("status") == "ok":
        return _entries(value, names), []
    if value.get("ename") in ("ModuleNotFoundError", "ImportError"):
        expression = build_expression(names, kwargs, fallback=True)
        value = await evaluate(kernel, expression, timeout=timeout, what=what)
        if value.get("status") == "ok":
            return _entries(value, names), [MISSING_PACKAGE_NOTE]
    raise KernelQueryError(
        f"reading {what} failed in the kernel: {value.get('ename', 'error')}: "
        f"{str(value.get('evalue', ''))[:200]}"
    )


def _entries(value: dict[str, Any], names: Sequence[str]) -> list[dict[str, Any]]:
    data = value.get("data") or {}
    if isinstance(data.get("application/json"), dict):
        entries = data["application/json"].get("entries")
    else:  # the fallback returns a JSON str, shown by IPython as its repr
        try:
            entries = json.loads(ast.literal_eval(data.get("text/plain", "")))
        except (ValueError, SyntaxError, TypeError):
            entries = None
    if not isinstance(entries, list):
        raise KernelQueryError("the kernel's answer was not understood (unexpected format)")
    wanted = set(names)
    return [e for e in entries if isinstance(e, dict) and e.get("name") in wanted]


# ---------------------------------------------------------------------------- transport


_client_locks: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()


def _is_client(kernel: Any) -> bool:
    return hasattr(kernel, "execute") and hasattr(kernel, "shell_channel")


async def evaluate(
    kernel: Any, expression: str, *, timeout: float, what: str = ""
) -> dict[str, Any]:
    """Evaluate one fixed expression silently; returns its ``user_expressions`` result dict."""
    if _is_client(kernel):
        lock = _client_locks.setdefault(kernel, asyncio.Lock())
        async with lock:
            return await _evaluate_with(kernel, kernel, expression, timeout, what)
    if not await _alive(kernel):
        raise KernelDead(_dead_message(what))
    client = kernel.client(session=_fresh_session(kernel))
    client.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
    try:
        return await _evaluate_with(kernel, client, expression, timeout, what)
    finally:
        client.stop_channels()


def _fresh_session(kernel: Any) -> Any:
    """A session with the kernel's key but its own identity.

    ``km.client()`` reuses the manager's session, hence its ZMQ identity: the kernel's ROUTER
    socket would then send other clients' replies to our short-lived socket (and lose them
    once it is closed).
    """
    from jupyter_client.session import Session

    shared = kernel.session
    return Session(
        key=shared.key, signature_scheme=shared.signature_scheme, username="jupyter-ai-vision"
    )


async def _evaluate_with(
    kernel: Any, client: Any, expression: str, timeout: float, what: str
) -> dict[str, Any]:
    try:
        reply = await client.execute(
            "",
            silent=True,
            store_history=False,
            user_expressions={"r": expression},
            allow_stdin=False,
            reply=True,
            timeout=timeout,
        )
    except TimeoutError:
        if not await _alive(kernel):
            raise KernelDead(_dead_message(what)) from None
        raise KernelBusy(
            f"the kernel is busy: {what or 'the variable'} could not be read within "
            f"{timeout:g} s (a cell is running, or the representation is slow); "
            "try again when the running cell finishes"
        ) from None
    content = reply.get("content", {})
    if content.get("status") != "ok":
        raise KernelBusy(
            f"the kernel skipped the request ({content.get('status', 'no status')}); "
            "try again when the running cell finishes"
        )
    result = content.get("user_expressions", {}).get("r")
    if not isinstance(result, dict):
        raise KernelQueryError("the kernel did not evaluate the request (no user_expressions)")
    return result


async def _alive(kernel: Any) -> bool:
    check = getattr(kernel, "is_alive", None)
    if check is None:
        return True
    try:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        return bool(result)
    except Exception:
        return False


def _dead_message(what: str) -> str:
    return (
        f"the kernel is not running, so {what or 'the variable'} could not be read: "
        "start or restart the kernel, run the cells that define it, then ask again"
    )


async def fetch_from_kernel(
    kernel: Any,
    names: Sequence[str],
    *,
    timeout: float = 10.0,
    budget: RemainingBudget | None = None,
    policy: ImagePolicy | None = None,
    model: str | None = None,
    supports_images: bool | None = None,
    cache: ImageCache | None = None,
    max_chars: int = 8_000,
) -> tuple[list[Part], list[str]]:
    """The parts for ``names`` from a running kernel, and one-line notes.

    ``kernel`` is a kernel manager (``jupyter_server``'s ``kernel_manager.get_kernel(id)``,
    any ``AsyncKernelManager``) or an ``AsyncKernelClient``. Images count against ``budget``
    (continued: what the request has left, e.g. ``RemainingBudget.after(ctx)``), else a fresh
    budget from ``policy`` / ``model`` / ``supports_images``. A busy or dead kernel, or a
    kernel without jupyter-ai-vision installed, gives a note (and, for the latter, ``repr``
    text); it never raises for those. Image work runs in a worker thread.
    """
    from jupyter_ai_vision.kernel import references

    if budget is None:
        budget = RemainingBudget.fresh(policy, model=model, supports_images=supports_images)
    notes: list[str] = []
    valid: list[str] = []
    for name in names:
        reason = validate_name(name)
        (notes.append(reason) if reason else valid.append(name))
    if not valid:
        return [], notes
    try:
        entries, more = await query_ai_repr(
            kernel,
            valid[: references.MAX_REFERENCES],
            timeout=timeout,
            mimetypes=references.request_mimetypes(budget.profile.supports_images),
            max_chars=max_chars,
        )
    except KernelQueryError as exc:
        return [], [*notes, str(exc)]
    notes.extend(more)
    parts, more = await asyncio.to_thread(
        references.entries_to_parts, entries, budget=budget, cache=cache
    )
    return parts, notes + more


async def add_kernel_references(
    ctx: VisionContext,
    kernel: Any,
    names: Sequence[str],
    *,
    timeout: float = 10.0,
    cache: ImageCache | None = None,
    max_chars: int = 8_000,
) -> list[str]:
    """``@names`` from ``kernel`` into a built notebook context (``/see``, the persona).

    Their images get what the notebook's figures left of the request's budget (count,
    tokens, and no image twice), and their parts go inside the context's notebook-content
    markers, defused like the notebook. Returns the one-line notes; never raises for a
    busy, dead or package-less kernel.
    """
    parts, notes = await fetch_from_kernel(
        kernel,
        names,
        timeout=timeout,
        budget=RemainingBudget.after(ctx),
        cache=cache,
        max_chars=max_chars,
    )
    messages.add_inside(ctx, parts)
    return notes


async def kernel_for_path(settings: Mapping[str, Any] | None, path: str) -> Any:
    """The kernel manager of the running session for notebook ``path`` (None: none runs)."""
    from jupyter_core.utils import ensure_async

    settings = settings or {}
    sessions = settings.get("session_manager")
    kernels = settings.get("kernel_manager")
    if sessions is None or kernels is None:
        return None
    for session in await ensure_async(sessions.list_sessions()):
        if (session.get("path") or session.get("notebook", {}).get("path")) == path:
            kernel_id = session.get("kernel", {}).get("id")
            if kernel_id and kernel_id in kernels:
                return kernels.get_kernel(kernel_id)
    return None


@contextlib.asynccontextmanager
async def shell_client(kernel: Any, *, what: str = "") -> AsyncIterator[Any]:
    """A client for one request to ``kernel`` (a kernel manager or a client): a fresh shell
    channel with its own session identity, or the caller's client under its lock. Raises
    :class:`KernelDead` when the kernel is not running."""
    if _is_client(kernel):
        async with _client_locks.setdefault(kernel, asyncio.Lock()):
            yield kernel
        return
    if not await _alive(kernel):
        raise KernelDead(_dead_message(what))
    client = kernel.client(session=_fresh_session(kernel))
    client.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
    try:
        yield client
    finally:
        client.stop_channels()
