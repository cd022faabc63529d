"""The ``_ai_repr_`` registry (JEP 129), modelled on IPython's ``formatters.py``.

Lookup order for an object, first match wins:

1. an explicit registration (``register(type_or_dotted_name, fn)``), along the MRO;
2. the object's own ``_ai_repr_(**kwargs)`` (sync) or ``_async_ai_repr_(**kwargs)``;
3. a built-in representation (:mod:`.builtins`), along the MRO;
4. a bounded ``repr``.

Registration by dotted name (``"pandas.core.frame.DataFrame"``) never imports the library: the
name is matched against ``cls.__module__ + "." + cls.__qualname__`` along the MRO, and resolved
to a class only once its module is already in ``sys.modules`` (pandas 3 reports
``pandas.DataFrame`` as its name, so both spellings work).

Every repr runs in a daemon worker thread with a timeout: a repr that raises, returns the wrong
type or hangs is replaced by the next level down, with a one-line note. This module imports
nothing heavy.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import json
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from jupyter_ai_vision._text import one_line
from jupyter_ai_vision.errors import ReprFailed

ReprFunc = Callable[..., Any]
Bundle = dict[str, Any]

#: Defaults for the standard kwargs (all overridable per call).
DEFAULT_MAX_CHARS = 8_000  # per text value
DEFAULT_MAX_BYTES = 4_000_000  # per binary value (decoded image bytes)
DEFAULT_TIMEOUT = 5.0  # seconds per repr call
#: Our own built-ins are bounded by design but a first chart render (vl-convert starting up)
#: can take seconds on a loaded machine: they get at least this long.
BUILTIN_MIN_TIMEOUT = 10.0

#: Standard kwargs every repr may receive; a repr gets only those its signature accepts
#: (or all of them if it takes ``**kwargs``). Unknown caller kwargs are passed the same way.
STANDARD_KWARGS = ("mimetypes", "max_chars", "max_bytes")

_BINARY_PREFIXES = ("image/", "audio/", "video/", "application/pdf", "application/octet-stream")


def _is_binary(mime: str) -> bool:
    return mime.startswith(_BINARY_PREFIXES) and not mime.startswith("image/svg")


@dataclass
class ReprResult:
    """A JSON-serialisable MIME bundle plus how it was obtained."""

    data: Bundle
    type_name: str
    source: str  # "registered" | "_ai_repr_" | "_async_ai_repr_" | "builtin" | "repr"
    notes: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "data": self.data,
            "metadata": self.metadata,
            "type": self.type_name,
            "source": self.source,
            "notes": self.notes,
        }


def type_name(obj: Any) -> str:
    cls = type(obj)
    module = getattr(cls, "__module__", "") or ""
    qual = getattr(cls, "__qualname__", cls.__name__).rsplit("<locals>.", 1)[-1]
    return qual if module == "builtins" else f"{module}.{qual}"


def _dotted(cls: type) -> str:
    return f"{getattr(cls, '__module__', '')}.{getattr(cls, '__qualname__', cls.__name__)}"


def _resolve_loaded(name: str) -> type | None:
    """The class named ``name`` if its module is already imported (never imports)."""
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        module = sys.modules.get(".".join(parts[:i]))
        if module is None:
            continue
        obj: Any = module
        for attr in parts[i:]:
            try:  # static: a module's lazy __getattr__ could import a submodule
                obj = inspect.getattr_static(obj, attr)
            except AttributeError:
                return None
        return obj if isinstance(obj, type) else None
    return None


class _Table:
    """Type -> function table with lazily resolved dotted names."""

    def __init__(self) -> None:
        self.by_type: dict[type, ReprFunc] = {}
        self.by_name: dict[str, ReprFunc] = {}
        self._lock = threading.Lock()

    def set(self, key: type | str, fn: ReprFunc | None) -> ReprFunc | None:
        """Set (or remove, when ``fn`` is None) and return the previous function."""
        with self._lock:
            if isinstance(key, str):
                cls = _resolve_loaded(key)
                old = self.by_name.pop(key, None)
                if cls is not None:
                    old = self.by_type.pop(cls, None) or old
                    if fn is not None:
                        self.by_type[cls] = fn
                elif fn is not None:
                    self.by_name[key] = fn
                return old
            old_by_name = self.by_name.pop(_dotted(key), None)
            old = self.by_type.pop(key, None) or old_by_name
            if fn is not None:
                self.by_type[key] = fn
            return old

    def lookup(self, cls: type) -> ReprFunc | None:
        if self.by_name:
            self._promote()
        for klass in cls.__mro__:
            fn = self.by_type.get(klass)
            if fn is None and self.by_name:
                fn = self.by_name.get(_dotted(klass))
            if fn is not None:
                return fn
        return None

    def _promote(self) -> None:
        # Names whose module has been imported since registration become type keys.
        with self._lock:
            for name in list(self.by_name):
                cls = _resolve_loaded(name)
                if cls is not None:
                    fn = self.by_name.pop(name)
                    self.by_type.setdefault(cls, fn)


# --------------------------------------------------------------------------- calling reprs


_SIGNATURES: weakref.WeakKeyDictionary[Any, tuple[bool, frozenset[str]]] = (
    weakref.WeakKeyDictionary()
)


def _signature_info(fn: Callable[..., Any], skip_first: bool) -> tuple[bool, frozenset[str]]:
    """(takes ``**kwargs``, keyword names) of ``fn``, cached per function."""
    key = getattr(fn, "__func__", fn)
    try:
        return _SIGNATURES[key]
    except (KeyError, TypeError):
        pass
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return (False, frozenset())
    if (
        skip_first
        and params
        and params[0].kind
        in (
            params[0].POSITIONAL_ONLY,
            params[0].POSITIONAL_OR_KEYWORD,
        )
    ):
        params = params[1:]
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params)
    names = frozenset(p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))
    info = (var_kw, names)
    with contextlib.suppress(TypeError):  # not weak-referenceable: just not cached
        _SIGNATURES[key] = info
    return info


def _accepted_kwargs(
    fn: Callable[..., Any], kwargs: dict[str, Any], *, skip_first: bool = False
) -> dict[str, Any]:
    """The subset of ``kwargs`` that ``fn`` accepts (all of them if it takes ``**kwargs``)."""
    var_kw, names = _signature_info(fn, skip_first)
    return dict(kwargs) if var_kw else {k: v for k, v in kwargs.items() if k in names}


#: Threads of reprs that timed out and are still running, by repr function: such a repr is
#: not started again until its previous call ends (hung threads must not pile up).
_HUNG: weakref.WeakKeyDictionary[Any, threading.Thread] = weakref.WeakKeyDictionary()


def _run_with_timeout(call: Callable[[], Any], timeout: float, what: str, key: Any = None) -> Any:
    """Run ``call`` in a daemon thread (a hung repr must not block the process exit)."""
    hung = _hung_thread(key)
    if hung is not None:
        raise ReprFailed(f"{what} is still running from an earlier request that timed out")
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            value = call()
            if inspect.isawaitable(value):
                value = asyncio.run(_await(value))
            box["value"] = value
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"ai_repr {what}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        if key is not None:
            with contextlib.suppress(TypeError):
                _HUNG[key] = thread
        raise ReprFailed(f"{what} timed out after {timeout:g} s")
    if "error" in box:
        exc = box["error"]
        raise ReprFailed(f"{what} raised {type(exc).__name__}: {one_line(str(exc))}")
    return box.get("value")


def _hung_thread(key: Any) -> threading.Thread | None:
    if key is None:
        return None
    try:
        thread = _HUNG.get(key)
    except TypeError:
        return None
    if thread is not None and not thread.is_alive():
        _HUNG.pop(key, None)
        return None
    return thread


async def _await(awaitable: Any) -> Any:
    return await awaitable


# ------------------------------------------------------------------------- normalisation


def normalize_bundle(
    value: Any, *, what: str, max_chars: int, max_bytes: int
) -> tuple[Bundle, list[str]]:
    """Check a repr's return value and make it JSON-serialisable within the size budget.

    Images may be given as ``bytes`` (base64-encoded here) or as a base64 ``str``. Text values
    longer than ``max_chars`` are truncated; binary values over ``max_bytes`` are dropped.
    """
    if not isinstance(value, dict) or not value:
        raise ReprFailed(
            f"{what} returned {type(value).__name__}, expected a non-empty dict of MIME types"
        )
    bundle: Bundle = {}
    notes: list[str] = []
    for mime, item in value.items():
        if not isinstance(mime, str) or "/" not in mime:
            raise ReprFailed(f"{what} returned key {mime!r}, expected MIME types like 'text/plain'")
        if _is_binary(mime):
            if isinstance(item, (bytes, bytearray, memoryview)):
                raw = bytes(item)
                size = len(raw)
                text = base64.b64encode(raw).decode("ascii")
            elif isinstance(item, str):
                text = "".join(item.split())
                size = len(text) * 3 // 4
            else:
                raise ReprFailed(
                    f"{what} returned {type(item).__name__} for {mime}, expected bytes or base64 str"
                )
            if size > max_bytes:
                notes.append(
                    f"{mime} dropped: {size:,} bytes is over the {max_bytes:,}-byte budget"
                )
                continue
            bundle[mime] = text
        elif isinstance(item, str):
            bundle[mime] = _truncate(item, max_chars)
        elif isinstance(item, (bytes, bytearray)):
            bundle[mime] = _truncate(bytes(item).decode("utf-8", "replace"), max_chars)
        else:
            try:
                encoded = json.dumps(item, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise ReprFailed(
                    f"{what} returned a value for {mime} that is not JSON-serialisable: {one_line(str(exc))}"
                ) from None
            if len(encoded) > max_chars:
                notes.append(
                    f"{mime} dropped: {len(encoded):,} characters is over the {max_chars:,}-character budget"
                )
                continue
            bundle[mime] = item
    if not bundle:
        raise ReprFailed(f"{what} returned nothing within the size budget")
    return bundle, notes


def _truncate(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    cut = text[: max(0, max_chars - 40)]
    return f"{cut}\n… [truncated: {len(text):,} characters in total]"


def filter_mimetypes(bundle: Bundle, mimetypes: Sequence[str] | None) -> Bundle:
    """Keep the accepted types, in the caller's order of preference (``*/*`` and ``image/*`` work)."""
    if not mimetypes:
        return bundle
    out: Bundle = {}
    for pattern in mimetypes:
        for mime, value in bundle.items():
            if mime not in out and _matches(pattern, mime):
                out[mime] = value
    return out


def _matches(pattern: str, mime: str) -> bool:
    if pattern in ("*", "*/*") or pattern == mime:
        return True
    return pattern.endswith("/*") and mime.startswith(pattern[:-1])


def accepts(mimetypes: Sequence[str] | None, mime: str) -> bool:
    """Whether a caller that passed ``mimetypes`` accepts ``mime`` (no list: everything)."""
    return not mimetypes or any(_matches(p, mime) for p in mimetypes)


def bounded_repr(obj: Any, max_chars: int) -> str:
    """``repr(obj)`` cut to ``max_chars`` (``reprlib`` keeps big containers cheap)."""
    import reprlib

    limiter = reprlib.Repr()
    limiter.maxstring = limiter.maxother = max(40, max_chars)
    limiter.maxlist = limiter.maxtuple = limiter.maxset = limiter.maxdict = 50
    limiter.maxlevel = 4
    return _truncate(limiter.repr(obj), max_chars)


# ------------------------------------------------------------------------------ registry


class AiReprRegistry:
    """Finds and runs the AI representation of an object; see the module docstring."""

    def __init__(self) -> None:
        self._explicit = _Table()
        self._builtin = _Table()

    # -- registration
    def register(self, type_or_name: type | str, fn: ReprFunc) -> ReprFunc | None:
        """Register ``fn(obj, **kwargs) -> dict`` for a type or a dotted class name.

        Returns the previously registered function (explicit registrations only), so that
        ``old = register(T, f)`` ... ``register(T, old)`` or ``unregister(T)`` restores it.
        """
        if not callable(fn):
            raise TypeError(f"ai_repr.register: {fn!r} is not callable")
        return self._explicit.set(_check_key(type_or_name), fn)

    def unregister(self, type_or_name: type | str) -> ReprFunc | None:
        """Remove an explicit registration and return it (None if there was none)."""
        return self._explicit.set(_check_key(type_or_name), None)

    def register_builtin(self, type_or_name: type | str, fn: ReprFunc) -> ReprFunc | None:
        """Register a default (used after ``_ai_repr_``); for :mod:`.builtins`."""
        return self._builtin.set(_check_key(type_or_name), fn)

    def lookup(self, obj: Any) -> ReprFunc | None:
        """The explicitly registered function for ``obj`` (or its class), if any."""
        cls = obj if isinstance(obj, type) else type(obj)
        return self._explicit.lookup(cls)

    def lookup_builtin(self, obj: Any) -> ReprFunc | None:
        cls = obj if isinstance(obj, type) else type(obj)
        return self._builtin.lookup(cls)

    # -- formatting
    def candidates(self, obj: Any) -> list[tuple[str, str, ReprFunc, bool]]:
        """(source, label, function, takes the object first) in precedence order."""
        out: list[tuple[str, str, ReprFunc, bool]] = []
        name = type_name(obj)
        # By the object's own type: a class object (``ai_repr(pd.DataFrame)``) is described
        # as a class, not as a DataFrame.
        fn = self._explicit.lookup(type(obj))
        if fn is not None:
            out.append(("registered", f"registered ai_repr for {name}", fn, True))
        if not isinstance(obj, type):
            for attr in ("_ai_repr_", "_async_ai_repr_"):
                # Defined on the class, like IPython's formatters: objects whose __getattr__
                # invents any attribute (mocks, proxies) are not taken at their word.
                if not any(attr in vars(k) for k in type(obj).__mro__):
                    continue
                method = _safe_getattr(obj, attr)
                if callable(method):
                    out.append((attr, f"{name}.{attr}", method, False))
                    break
        fn = self._builtin.lookup(type(obj))
        if fn is not None:
            out.append(("builtin", f"built-in ai_repr for {name}", fn, True))
        return out

    def format(self, obj: Any, **kwargs: Any) -> ReprResult:
        """The AI representation of ``obj`` with notes about any fallback (see :func:`ai_repr`)."""
        mimetypes = kwargs.get("mimetypes")
        if isinstance(mimetypes, str):
            mimetypes = kwargs["mimetypes"] = [mimetypes]
        max_chars = int(kwargs.setdefault("max_chars", DEFAULT_MAX_CHARS))
        max_bytes = int(kwargs.setdefault("max_bytes", DEFAULT_MAX_BYTES))
        timeout = float(kwargs.pop("timeout", DEFAULT_TIMEOUT))
        name = type_name(obj)
        notes: list[str] = []
        deadline = time.monotonic() + timeout * 2  # the whole chain, not just one repr
        for source, label, fn, takes_obj in self.candidates(obj):
            budget = max(0.05, min(timeout, deadline - time.monotonic()))
            if source == "builtin":
                budget = max(budget, BUILTIN_MIN_TIMEOUT)
            call_kwargs = _accepted_kwargs(fn, kwargs, skip_first=takes_obj)
            args = (obj,) if takes_obj else ()
            try:
                value = _run_with_timeout(
                    _caller(fn, args, call_kwargs), budget, label, getattr(fn, "__func__", fn)
                )
                bundle, more = normalize_bundle(
                    value, what=label, max_chars=max_chars, max_bytes=max_bytes
                )
            except ReprFailed as exc:
                notes.append(f"{exc}; falling back")
                continue
            notes.extend(more)
            data = filter_mimetypes(bundle, mimetypes)
            if data:
                return ReprResult(data, name, source, notes)
            notes.append(f"{label} gave none of the accepted types ({', '.join(mimetypes or [])})")
        return self._fallback(obj, name, notes, max_chars, timeout)

    async def format_async(self, obj: Any, **kwargs: Any) -> ReprResult:
        """Like :meth:`format`, without blocking the running event loop."""
        return await asyncio.to_thread(self.format, obj, **kwargs)

    def _fallback(
        self, obj: Any, name: str, notes: list[str], max_chars: int, timeout: float
    ) -> ReprResult:
        try:
            text = _run_with_timeout(
                _caller(bounded_repr, (obj, max_chars), {}), timeout, f"repr() of {name}"
            )
        except ReprFailed as exc:
            notes.append(str(exc))
            text = f"<{name} object>"
        return ReprResult({"text/plain": f"{name}: {text}"}, name, "repr", notes)

    def __call__(self, obj: Any, **kwargs: Any) -> Bundle:
        return ai_repr(obj, registry=self, **kwargs)


def _check_key(key: type | str) -> type | str:
    if isinstance(key, type):
        return key
    if isinstance(key, str) and "." in key and all(p.isidentifier() for p in key.split(".")):
        return key
    raise TypeError(
        f"ai_repr.register: expected a class or a dotted class name like "
        f"'pandas.core.frame.DataFrame', got {key!r}"
    )


def _caller(fn: ReprFunc, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Callable[[], Any]:
    def call() -> Any:
        return fn(*args, **kwargs)

    return call


def _safe_getattr(obj: Any, attr: str) -> Any:
    try:
        return getattr(obj, attr, None)
    except Exception:
        return None


def with_note(result: ReprResult) -> Bundle:
    """The bundle, with fallback notes appended to its text so the model and user see them."""
    data = dict(result.data)
    if result.notes:
        note = "\n".join(f"[ai_repr note: {n}]" for n in result.notes)
        for mime in ("text/plain", "text/markdown"):
            if isinstance(data.get(mime), str):
                data[mime] = f"{data[mime]}\n{note}"
                break
    return data


#: The process-wide registry (the JEP's ``formatter``).
registry = AiReprRegistry()


def ai_repr(obj: Any, *, registry: AiReprRegistry | None = None, **kwargs: Any) -> Bundle:
    """The AI representation of ``obj``: a JSON-serialisable ``{mime: value}`` dict.

    Standard kwargs: ``mimetypes`` (accepted types, in order of preference), ``max_chars``
    (per text value), ``max_bytes`` (per image), ``timeout`` (seconds per repr). Other kwargs
    are passed to reprs that accept them and ignored otherwise. Fallback notes are appended to
    the text. Images are base64 strings under their MIME type.
    """
    reg = registry if registry is not None else _default()
    return with_note(reg.format(obj, **kwargs))


async def ai_repr_async(
    obj: Any, *, registry: AiReprRegistry | None = None, **kwargs: Any
) -> Bundle:
    """:func:`ai_repr` for async callers: reprs run in worker threads, the loop stays free."""
    reg = registry if registry is not None else _default()
    return with_note(await reg.format_async(obj, **kwargs))


def _default() -> AiReprRegistry:
    # The package's __init__ (always imported before this module) installs the built-ins.
    return registry


def register(type_or_name: type | str, fn: ReprFunc) -> ReprFunc | None:
    """Register ``fn(obj, **kwargs) -> dict`` on the default registry; returns the previous one."""
    return registry.register(type_or_name, fn)


def unregister(type_or_name: type | str) -> ReprFunc | None:
    """Remove a registration from the default registry and return it."""
    return registry.unregister(type_or_name)
