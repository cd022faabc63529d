"""The chart browser: one long-lived, locked-down headless Chromium, driven by kaleido 1.x in
a worker process (``_worker.py``).

Measured (kaleido 1.5, Debian chromium 156, 2 cores): the browser starts in ~2.4 s idle
(~8 s on a loaded machine), a reused one renders a Plotly figure in ~0.03 s once kaleido's
page reload per figure is skipped (~0.2-0.4 s with it), a fresh one per figure takes ~2.5-5 s.
So one browser per server process, started on the first chart that needs it (never at import
or server start), reused, stopped at exit.

kaleido and the browser live in a worker process, not a thread: importing kaleido in a thread
stalled the server's event loop by ~200 ms (GIL), and choreographer encodes every figure in
Python. Callers (the builder's worker threads) block on the worker's reply with a wall-clock
deadline; nothing here ever runs on the server's event loop.

The browser must not become a way out of the notebook (measured: kaleido as shipped fetched a
127.0.0.1 URL and drew a local PNG outside the notebook folder). Three layers, each enough on
its own for every case in tests/test_charts.py:

1. the spec is sanitised before it is sent (``plotly_safety.py``, ``bokeh.py``);
2. the page carries a Content-Security-Policy: scripts only from local files (ours),
   images only ``data:``/``blob:``, no fetch/XHR, no fonts, no frames, no ``eval``;
3. Chromium runs without network: choreographer's ``--disable-web-security`` and
   ``--allow-file-access-from-files`` are removed, every host resolves to nothing, every
   request (loopback included) goes to a proxy that does not exist, and background
   networking is off.

Per chart: a wall-clock timeout and a memory cap (V8 heap flag, plus a watchdog on the RSS of
the worker's and the browser's process groups); a worker that times out, crashes or exceeds the
cap is killed with its browser, and a fresh one starts on the next chart.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import importlib.util
import json
import logging
import os
import queue
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

from jupyter_ai_vision.errors import ChartsStarting, RenderError

#: The footer / ``inspect`` line when no browser can be used.
INSTALL_HINT = "install chromium to send interactive charts as images"
KALEIDO_HINT = (
    "install jupyter-ai-vision[charts] (kaleido) and chromium to send interactive charts as images"
)
#: Environment variable naming the browser (kaleido's and choreographer's own convention).
BROWSER_ENV = "BROWSER_PATH"
_BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")

#: choreographer's flags that open the page to the network and the file system.
UNSAFE_FLAGS = frozenset({"--disable-web-security", "--allow-file-access-from-files"})
#: No network at all: names resolve to nothing, and every request, loopback included, is sent
#: to a proxy that cannot be resolved either (``<-loopback>`` removes Chrome's implicit bypass).
LOCKDOWN_FLAGS = (
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
    """One worker + browser, started lazily in the background, reused, restarted after a
    failure."""

    #: A browser that failed to start is not tried again for this long (seconds).
    RETRY_AFTER = 30.0

    def __init__(self, *, memory_bytes: int = 1_500_000_000, heap_mb: int = 512) -> None:
        self.memory_bytes = memory_bytes  # RSS cap of the worker and its browser, together
        self.heap_mb = heap_mb  # V8 heap cap of each page
        self._lock = threading.Lock()
        self._render_lock = threading.Lock()  # one chart at a time: one tab, 2 cores
        self._session: _Session | None = None
        self._failed_at = 0.0
        self._failure: str | None = None
        self.starts = 0  # workers started (tests and benchmarks read it)
        self._atexit = False

    @property
    def state(self) -> str:
        """``off`` | ``starting`` | ``ready`` | ``failed``."""
        session = self._session
        if session is None:
            return "failed" if self._failure else "off"
        return "ready" if session.ready.is_set() and session.error is None else "starting"

    @property
    def start_seconds(self) -> float | None:
        session = self._session
        return session.start_seconds if session is not None else None

    def start(self) -> None:
        """Start the worker and its browser in the background if not running; never blocks
        for long (one ``fork``/``exec``)."""
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

    def request(self, message: dict[str, Any], *, timeout: float, what: str = "chart") -> bytes:
        """Send one request to the worker; the PNG it answers.

        Waits at most ``timeout`` s for the browser's start (then :class:`ChartsStarting`),
        at most ``timeout`` s for another chart to finish, and gives the request ``timeout``
        s of its own; a request that overruns, crashes the browser or exceeds the memory cap
        gets the worker killed (the next chart starts a fresh one).
        """
        session = self.wait_ready(timeout)
        if not self._render_lock.acquire(timeout=timeout):
            raise RenderError(f"{what} not rendered: the chart browser was busy for {timeout:g} s")
        try:
            if not session.alive():  # killed while this chart waited for its turn
                raise RenderError(f"{what} not rendered: the chart browser is restarting")
            return session.request(message, timeout=timeout, what=what)
        except _Broken as exc:
            self._fail(session, str(exc))
            raise RenderError(str(exc)) from None
        finally:
            self._render_lock.release()

    def close(self) -> None:
        """Stop the worker and its browser (at exit, with the server, or in tests)."""
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
    """The worker is unusable after this (timeout, crash, memory): kill it and restart."""


class _Session:
    """One worker process (and, through it, one browser)."""

    def __init__(self, owner: ChartRenderer) -> None:
        self.owner = owner
        self.ready = threading.Event()
        self.error: str | None = None
        self.start_seconds: float | None = None
        self.browser_pgid: int | None = None
        self.memory_exceeded = False
        self.tmp = Path(tempfile.mkdtemp(prefix="jupyter-ai-vision-charts-"))
        self._replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._started = time.perf_counter()
        # Its own session: the worker and everything it starts can be killed as a group.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_ai_vision.media.charts._worker", str(self.tmp)]
            + [str(owner.heap_mb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        self._reader = threading.Thread(
            target=self._read_replies, name="jupyter-ai-vision-charts", daemon=True
        )
        self._reader.start()

    def alive(self) -> bool:
        return self.proc.poll() is None and self.error is None

    def _read_replies(self) -> None:
        assert self.proc.stdout is not None
        first = True
        while True:
            message = _read_frame(self.proc.stdout)
            if first:
                first = False
                if message is None or not message.get("ready"):
                    self.error = "the chart browser could not start" + (
                        f" ({message.get('error')})" if message and message.get("error") else ""
                    )
                    _log.warning("jupyter-ai-vision: %s", self.error)
                else:
                    self.browser_pgid = int(message["browser_pgid"])
                    self.start_seconds = time.perf_counter() - self._started
                self.ready.set()
                if message is None:
                    return
                continue
            self._replies.put(message)
            if message is None:
                return

    def request(self, message: dict[str, Any], *, timeout: float, what: str) -> bytes:
        assert self.proc.stdin is not None
        while not self._replies.empty():  # a late reply to a request that timed out
            self._replies.get_nowait()
        deadline = time.monotonic() + timeout
        try:
            _write_frame(self.proc.stdin, message)
        except OSError:
            raise _Broken(f"{what} not rendered: the chart browser crashed") from None
        while True:
            if self._over_memory():
                raise _Broken(
                    f"{what} not rendered: it needed more than "
                    f"{self.owner.memory_bytes // 1_000_000} MB"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Broken(f"{what} not rendered: it took longer than {timeout:g} s")
            try:
                # Checked at once (most renders take ~30 ms), then every 0.1 s.
                reply = self._replies.get(timeout=min(0.1, remaining))
            except queue.Empty:
                continue
            if reply is None:
                raise _Broken(f"{what} not rendered: the chart browser crashed")
            if reply.get("ok"):
                return base64.b64decode(reply["png"])
            error = f"{what} not rendered: {reply.get('error') or 'error'}"
            if reply.get("broken"):
                raise _Broken(error)
            raise RenderError(error)

    def _over_memory(self) -> bool:
        if not sys.platform.startswith("linux"):
            return False
        groups = [self.proc.pid] + ([self.browser_pgid] if self.browser_pgid else [])
        if sum(_group_rss(g) for g in groups) > self.owner.memory_bytes:
            self.memory_exceeded = True
        return self.memory_exceeded

    def close(self) -> None:
        """Ask the worker to stop (it closes its browser), then make sure."""
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()  # EOF: the worker closes kaleido and exits
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self.kill()

    def kill(self) -> None:
        """Kill the worker's and the browser's process groups (idempotent)."""
        for pgid in (self.proc.pid, self.browser_pgid):
            if pgid:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=5)
        for pipe in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                if pipe is not None:
                    pipe.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _read_frame(stream: IO[bytes]) -> dict[str, Any] | None:
    try:
        head = stream.read(4)
        if len(head) < 4:
            return None
        (size,) = struct.unpack(">I", head)
        body = stream.read(size)
    except (OSError, ValueError):
        return None
    if len(body) < size:
        return None
    value = json.loads(body)
    return value if isinstance(value, dict) else None


def _write_frame(stream: IO[bytes], message: dict[str, Any]) -> None:
    body = json.dumps(message).encode("utf-8")
    stream.write(struct.pack(">I", len(body)) + body)
    stream.flush()


def _group_rss(pgid: int) -> int:
    """Memory of every process in process group ``pgid`` (Linux /proc), counted once.

    Chromium's processes are forks of one zygote and share most of their pages: summing their
    RSS counts those pages once per process (three renderers read as ~1.5 GB). The
    proportional set size (PSS) shares each page out among its users instead; RSS is the
    fallback where smaps_rollup is not readable."""
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
            total += _pss(entry.name) or int(fields[21]) * page
    return total


def _pss(pid: str) -> int | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
