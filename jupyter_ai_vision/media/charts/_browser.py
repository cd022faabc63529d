"""The chart browser: one long-lived, locked-down headless Chromium, driven by kaleido 1.x.

Measured (kaleido 1.5, Debian chromium 156, 2 cores): the browser starts in ~2.4 s, a reused
one renders a Plotly figure in ~0.16 s, a fresh one per figure takes ~2.5 s. So one browser
per server process, started on the first chart that needs it (never at import or server
start), reused, killed at exit.

It runs in its own thread with its own asyncio loop: kaleido is async, and neither its start
nor a render may touch the server's event loop. Callers (the builder's worker threads) block
on a future with a wall-clock deadline.

The browser must not become a way out of the notebook (measured: kaleido as shipped fetched a
127.0.0.1 URL and drew a local PNG outside the notebook folder). Three layers, each enough on
its own for every case in tests/test_charts.py:

1. the spec is sanitised before it is sent (``plotly_safety.py``, ``bokeh.py``);
2. the page carries a Content-Security-Policy: scripts only from the local files we name,
   images only ``data:``/``blob:``, no fetch/XHR, no fonts, no frames;
3. Chromium runs without network: choreographer's ``--disable-web-security`` and
   ``--allow-file-access-from-files`` are removed, every host resolves to nothing, every
   request (loopback included) goes to a proxy that does not exist, and background
   networking is off.

Per render: a wall-clock timeout and a memory cap (V8 heap flag, plus a watchdog on the
browser's process-group RSS); a browser that times out, crashes or exceeds the cap is killed
and started afresh on the next chart.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import importlib.util
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from jupyter_ai_vision._text import first_line
from jupyter_ai_vision.errors import ChartsStarting, RenderError

T = TypeVar("T")

#: The footer / ``inspect`` line when no browser can be used.
INSTALL_HINT = "install chromium to send interactive charts as images"
KALEIDO_HINT = (
    "install jupyter-ai-vision[charts] (kaleido) and chromium to send interactive charts as images"
)
#: Environment variable naming the browser (kaleido's and choreographer's own convention).
BROWSER_ENV = "BROWSER_PATH"
_BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")

#: choreographer's flags that open the page to the network and the file system.
_UNSAFE_FLAGS = frozenset({"--disable-web-security", "--allow-file-access-from-files"})
#: No network at all: names resolve to nothing, and every request, loopback included, is sent
#: to a proxy that cannot be resolved either (``<-loopback>`` removes Chrome's implicit bypass).
_LOCKDOWN_FLAGS = (
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=http://proxy.invalid:9",
    "--proxy-bypass-list=<-loopback>",
    "--disable-background-networking",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-default-apps",
    "--disable-quic",
    "--no-pings",
    "--dns-prefetch-disable",
    "--disable-features=Translate,MediaRouter,OptimizationHints,AutofillServerCommunication",
)
#: The page's policy: scripts only from local files (ours: plotly.js / BokehJS and kaleido's
#: scope), inline styles (both libraries inject them), images only inline. Nothing else.
CSP = (
    "default-src 'none'; script-src file:; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src 'none'; connect-src 'none'; frame-src 'none'; "
    "worker-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'"
)
CSP_META = f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'

_log = logging.getLogger(__name__)


def find_browser() -> str | None:
    """The browser to use: ``$BROWSER_PATH`` when set (and then only it), else the first
    Chromium / Chrome on ``PATH``; None when there is none."""
    named = os.environ.get(BROWSER_ENV)
    if named:
        return named if os.path.isfile(named) and os.access(named, os.X_OK) else None
    for name in _BROWSER_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def plotly_js_path() -> Path | None:
    """plotly.js as shipped inside the server's plotly package (never a CDN), or None."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        return None
    for base in spec.submodule_search_locations:
        path = Path(base) / "package_data" / "plotly.min.js"
        if path.is_file():
            return path
    return None


def unavailable_reason() -> str | None:
    """Why charts cannot be rendered here (one line for the footer / inspect), or None."""
    if importlib.util.find_spec("kaleido") is None:
        return KALEIDO_HINT
    if find_browser() is None:
        return INSTALL_HINT
    return None


class ChartRenderer:
    """One browser, started lazily in its own thread, reused, restarted after a failure."""

    #: A browser that failed to start is not tried again for this long (seconds).
    RETRY_AFTER = 30.0

    def __init__(self, *, memory_bytes: int = 1_500_000_000, heap_mb: int = 512) -> None:
        self.memory_bytes = memory_bytes
        self.heap_mb = heap_mb
        self._lock = threading.Lock()
        self._render_lock = threading.Lock()  # one figure at a time: one tab, 2 cores
        self._session: _Session | None = None
        self._failed_at = 0.0
        self._failure: str | None = None
        self.starts = 0  # browsers started (tests and benchmarks read it)
        self.start_seconds: float | None = None
        self._atexit = False

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """``off`` | ``starting`` | ``ready`` | ``failed``."""
        session = self._session
        if session is None:
            return "failed" if self._failure else "off"
        return "ready" if session.ready.is_set() and session.error is None else "starting"

    def start(self) -> None:
        """Start the browser in the background if it is not running; never blocks."""
        with self._lock:
            if self._session is not None and self._session.alive():
                return
            if self._failure and time.monotonic() - self._failed_at < self.RETRY_AFTER:
                return
            reason = unavailable_reason()
            if reason is not None:
                self._failure, self._failed_at = reason, time.monotonic()
                return
            if not self._atexit:
                atexit.register(self.close)
                self._atexit = True
            self.starts += 1
            self._failure = None
            self._session = _Session(self)
            self._session.launch()

    def wait_ready(self, timeout: float) -> _Session:
        """The running session, waiting at most ``timeout`` s for its start.

        Raises :class:`ChartsStarting` while it is still starting, :class:`RenderError` when
        it cannot start.
        """
        self.start()
        session = self._session
        if session is None:
            raise RenderError(self._failure or INSTALL_HINT)
        if not session.ready.wait(max(0.0, timeout)):
            raise ChartsStarting("chart renderer still starting, described as text this time")
        if session.error is not None:
            self._fail(session, session.error)
            raise RenderError(session.error)
        return session

    def run(self, job: Callable[[Any], Awaitable[T]], *, timeout: float, what: str = "chart") -> T:
        """Run ``job(session)`` on the browser's loop.

        Waits at most ``timeout`` s for the browser's start (then :class:`ChartsStarting`),
        at most ``timeout`` s for another chart to finish, and gives the job ``timeout`` s of
        its own; a job that overruns, crashes the browser or exceeds the memory cap gets the
        browser killed (the next chart starts a fresh one).
        """
        session = self.wait_ready(timeout)
        if not self._render_lock.acquire(timeout=timeout):
            raise RenderError(f"{what} not rendered: the chart browser was busy for {timeout:g} s")
        try:
            if not session.alive():  # killed while this chart waited for its turn
                raise RenderError(f"{what} not rendered: the chart browser is restarting")
            return session.run(job, deadline=time.monotonic() + timeout, what=what)
        except _Broken as exc:
            self._fail(session, str(exc))
            raise RenderError(str(exc)) from None
        finally:
            self._render_lock.release()

    def close(self) -> None:
        """Stop the browser (at exit, with the server, or in tests)."""
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            session.close()

    def _fail(self, session: _Session, reason: str) -> None:
        with self._lock:
            if self._session is session:
                self._session = None
            if not session.ready.is_set() or session.error is not None:
                self._failure, self._failed_at = reason, time.monotonic()
        session.kill()


class _Broken(Exception):
    """The browser is unusable after this (timeout, crash, memory): kill and restart."""


class _Session:
    """One browser process and the thread + loop that drive it."""

    def __init__(self, owner: ChartRenderer) -> None:
        self.owner = owner
        self.ready = threading.Event()
        self.error: str | None = None
        self.kaleido: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.tmp = Path(tempfile.mkdtemp(prefix="jupyter-ai-vision-charts-"))
        self.pgid: int | None = None
        self.extra: dict[str, Any] = {}  # per-session state of other chart kinds (Bokeh tab)
        self.memory_exceeded = False  # set by the watchdog when it killed the browser

    def launch(self) -> None:
        self.thread = threading.Thread(
            target=self._main, name="jupyter-ai-vision-charts", daemon=True
        )
        self.thread.start()

    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive() and self.error is None

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        asyncio.set_event_loop(loop)
        started = time.perf_counter()
        try:
            loop.run_until_complete(self._open())
            self.owner.start_seconds = time.perf_counter() - started
        except Exception as exc:  # no browser, it died at start, kaleido too old...
            self.error = f"the chart browser could not start ({first_line(exc)})"
            _log.warning("jupyter-ai-vision: %s", self.error)
        finally:
            self.ready.set()
        if self.error is None:
            loop.run_forever()
        with contextlib.suppress(Exception):
            loop.close()

    async def _open(self) -> None:
        _quiet_kaleido_logs()
        import kaleido

        browser_path = find_browser()
        if browser_path is None:
            raise RenderError(INSTALL_HINT)
        plotly_js = plotly_js_path()
        self.kaleido = _reusing_kaleido(kaleido)(
            n=1,
            timeout=None,  # ours: a wall-clock deadline per call, then the browser is killed
            page_generator=_plotly_page(kaleido, plotly_js, self.tmp),
            browser_cls=_locked_chromium(self.owner.heap_mb),
            path=browser_path,
            enable_extensions=False,
            tmp_dir=str(self.tmp),
        )
        await self.kaleido.open()
        proc = getattr(self.kaleido, "subprocess", None)
        if proc is not None:
            self.pgid = proc.pid  # choreographer starts it in its own session

    def run(self, job: Callable[[Any], Awaitable[T]], *, deadline: float, what: str) -> T:
        assert self.loop is not None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RenderError(f"{what} not rendered: no time left")
        future = asyncio.run_coroutine_threadsafe(self._guarded(job, what), self.loop)
        try:
            return future.result(timeout=remaining)
        except concurrent.futures.TimeoutError:
            future.cancel()
            if self.memory_exceeded:
                raise _Broken(self._memory_message(what)) from None
            raise _Broken(f"{what} not rendered: it took longer than {remaining:.3g} s") from None

    async def _guarded(self, job: Callable[[Any], Awaitable[T]], what: str) -> T:
        """The job, with a memory watchdog; a dead browser becomes :class:`_Broken`."""
        watchdog = asyncio.ensure_future(self._watch_memory())
        try:
            return await job(self)
        except Exception as exc:
            if self.memory_exceeded:
                raise _Broken(self._memory_message(what)) from None
            if isinstance(exc, RenderError):
                raise
            if self._process_dead():
                raise _Broken(f"{what} not rendered: the chart browser crashed") from None
            raise RenderError(f"{what} not rendered: {first_line(exc)}") from None
        finally:
            watchdog.cancel()

    def _memory_message(self, what: str) -> str:
        return f"{what} not rendered: it needed more than {self.owner.memory_bytes // 1_000_000} MB"

    async def _watch_memory(self) -> None:
        if self.pgid is None or not sys.platform.startswith("linux"):
            return
        while True:  # checked at once (most renders take ~30 ms), then every 0.1 s
            if _group_rss(self.pgid) > self.owner.memory_bytes:
                self.memory_exceeded = True
                self.kill_browser()
                return
            await asyncio.sleep(0.1)

    def _process_dead(self) -> bool:
        proc = getattr(self.kaleido, "subprocess", None)
        return proc is not None and proc.poll() is not None

    def close(self) -> None:
        loop = self.loop
        if loop is not None and self.kaleido is not None and self.ready.is_set():
            future = asyncio.run_coroutine_threadsafe(self.kaleido.close(), loop)
            with contextlib.suppress(Exception):
                future.result(timeout=5)
        self.kill()

    def kill(self) -> None:
        """Kill the browser's whole process group and stop the loop (idempotent)."""
        self.kill_browser()
        loop = self.loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(loop.stop)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def kill_browser(self) -> None:
        """Kill the browser's process group; the loop keeps running (the job in flight then
        fails at once and says why)."""
        if self.pgid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pgid, signal.SIGKILL)
        proc = getattr(self.kaleido, "subprocess", None)
        if proc is not None:
            with contextlib.suppress(Exception):
                proc.wait(timeout=5)


#: A tab is reloaded (fresh page state) after this many renders, and after any failed one.
RELOAD_EVERY = 50


def _reusing_kaleido(kaleido: Any) -> type:
    """kaleido's browser, keeping its page between renders.

    kaleido reloads the page after every figure, which re-parses plotly.js (4.6 MB): ~0.2-0.4 s
    of a ~0.02 s render (measured). ``Plotly.toImage`` draws into a detached div it purges, so
    the page is reused, and reloaded every ``RELOAD_EVERY`` renders and after a failure. If a
    later kaleido renames this hook, it reloads every time again: slower, never wrong.
    """

    class ReusingKaleido(kaleido.Kaleido):  # type: ignore[misc,name-defined]
        _renders_since_reload = 0

        async def _return_kaleido_tab(self, tab: Any) -> None:
            self._renders_since_reload += 1
            # Called from kaleido's ``finally``: an exception in flight means the render failed.
            if sys.exc_info()[0] is not None or self._renders_since_reload >= RELOAD_EVERY:
                self._renders_since_reload = 0
                await tab.reload()
            await self.tabs_ready.put(tab)

    return ReusingKaleido


def _plotly_page(kaleido: Any, plotly_js: Path | None, tmp: Path) -> Any:
    """kaleido's page with our CSP, the server's own plotly.js and no MathJax (a CDN)."""

    class LockedPage(kaleido.PageGenerator):  # type: ignore[misc,name-defined]
        header = kaleido.PageGenerator.header.replace("<head>", "<head>\n        " + CSP_META, 1)

    if plotly_js is None:
        # kaleido would fall back to a CDN. Without plotly.js the page renders no Plotly
        # chart (render_plotly says why before asking) but still serves Bokeh.
        plotly_js = tmp / "no-plotly.js"
        plotly_js.write_text("/* plotly is not installed in the server's environment */\n")
    return LockedPage(mathjax=False, plotly=str(plotly_js))


def _locked_chromium(heap_mb: int) -> type:
    """choreographer's Chromium launcher with its network and file openings closed."""
    from choreographer.browsers.chromium import Chromium

    class LockedChromium(Chromium):  # type: ignore[misc,valid-type]
        def get_cli(self) -> list[str]:
            cli = [arg for arg in super().get_cli() if arg not in _UNSAFE_FLAGS]
            return [*cli, *_LOCKDOWN_FLAGS, f"--js-flags=--max-old-space-size={heap_mb}"]

    return LockedChromium


def _group_rss(pgid: int) -> int:
    """Resident bytes of every process in process group ``pgid`` (Linux /proc)."""
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(b")", 1)[-1].split()
        # after "(comm)": state ppid pgrp ... ; rss is field 24 of stat (index 21 here)
        if len(fields) > 21 and int(fields[2]) == pgid:
            total += int(fields[21]) * page
    return total


def _quiet_kaleido_logs() -> None:
    # kaleido, choreographer and the browser's own stderr log through logistro (INFO, and a
    # warning each time we kill a browser on purpose): a server log is not the place for them
    # unless someone asked (an explicit level is kept). Our own failures are logged by us.
    for name in ("kaleido", "choreographer", "browser_proc", "chrome_wrapper", "logistro"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.ERROR)
