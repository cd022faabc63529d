"""Sandboxed render workers: foreign content (SVG for resvg, Vega / Vega-Lite for V8) is only
ever drawn in a child process that may die.

A :class:`Sandbox` is a small pool of persistent ``python -c`` workers of one kind. Each
worker runs a fixed *kind program* (the ``OPS`` it offers, plus an optional ``warm()``) under
resource limits set before anything foreign is read:

- a memory cap: ``RLIMIT_DATA`` (every writable private mapping: heap, V8's committed pages)
  and optionally ``RLIMIT_AS`` (the whole address space; unusable for V8, which reserves
  ~35 GB of address space at start);
- no core dumps (a V8 abort of a process that reserved 35 GB must not write one);
- a wall-clock timeout per call (a watchdog kills the worker), and an optional deadline that
  also bounds the wait for a free worker.

A worker that crashes, runs out of memory or times out is killed and replaced by a fresh one
on the next call; the other workers keep serving, so a hung render costs its own timeout and
never stalls the next one (as long as a worker is free). Requests and answers are
length-prefixed frames on the worker's stdin/stdout; its stderr (V8's and resvg's abort
reports) is discarded.
"""

from __future__ import annotations

import atexit
import json
import os
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from jupyter_ai_vision.errors import RenderError

#: Seconds a worker may take to start (import the renderer, warm it up) before it is killed.
START_TIMEOUT = 60.0

# The worker's main loop. argv[1]: JSON {"limits": {RLIMIT_NAME: bytes}, "program": source}.
_WORKER = r"""
import sys
sys.path = [p for p in sys.path if p not in ("", ".")]  # never import from the server's cwd
import json, resource, struct
config = json.loads(sys.argv[1])
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
for name, limit in config["limits"].items():
    resource.setrlimit(getattr(resource, name), (limit, limit))
program = {}
exec(compile(config["program"], "<sandbox program>", "exec"), program)
if "warm" in program:
    program["warm"]()
inp, out = sys.stdin.buffer, sys.stdout.buffer
out.write(b"R"); out.flush()  # ready: limits set, renderer loaded
def frame():
    head = inp.read(4)
    if len(head) < 4:
        raise SystemExit(0)
    return inp.read(struct.unpack(">I", head)[0])
while True:
    op, options, data = frame().decode(), json.loads(frame()), frame()
    try:
        status, payload = b"K", bytes(program["OPS"][op](data, options))
    except Exception as exc:
        status, payload = b"E", (str(exc).splitlines() or [type(exc).__name__])[0][:200].encode()
    out.write(status + struct.pack(">I", len(payload)) + payload)
    out.flush()
"""


class SandboxFailure(RenderError):
    """A sandboxed call did not produce a result. ``kind``: ``timeout`` (killed after the
    wall-clock limit), ``crash`` (died: out of memory, abort), ``error`` (the renderer raised;
    ``detail`` is its first line), ``deadline`` (killed when the caller's deadline came first),
    ``busy`` (no worker free before the deadline), ``start`` (the worker could not start) or
    ``dead`` (the worker had died before the request: retried once, never shown)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


class _Worker:
    def __init__(self, name: str, program: str, limits: dict[str, int]) -> None:
        self.limits = limits
        config = json.dumps(
            {"limits": limits if sys.platform != "win32" else {}, "program": program}
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER, config],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # abort reports are not for the server log
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        self._await_ready(name)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _await_ready(self, name: str) -> None:
        assert self.proc.stdout is not None
        timer = threading.Timer(START_TIMEOUT, self.proc.kill)
        timer.start()
        try:
            ready = self.proc.stdout.read(1)
        finally:
            timer.cancel()
        if ready != b"R":
            self.kill()
            raise SandboxFailure("start", f"the {name} renderer could not start")

    def call(
        self, op: str, data: bytes, options: dict[str, Any], timeout: float, clipped: bool
    ) -> bytes:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        request = b"".join(
            struct.pack(">I", len(part)) + part
            for part in (op.encode(), json.dumps(options).encode(), data)
        )
        # The watchdog kills the worker on timeout: the blocking read then sees EOF.
        timer = threading.Timer(timeout, self.proc.kill)
        timer.start()
        try:
            try:
                self.proc.stdin.write(request)
                self.proc.stdin.flush()
            except BrokenPipeError:
                if not timer.is_alive():
                    raise  # killed by the watchdog: a timeout, reported below
                self.kill()  # it had died while idle (e.g. the OOM killer): not this job
                raise SandboxFailure("dead", "the renderer had stopped") from None
            status = _read(self.proc.stdout, 1)
            (length,) = struct.unpack(">I", _read(self.proc.stdout, 4))
            payload = _read(self.proc.stdout, length)
        except (OSError, EOFError, struct.error):
            self.kill()
            if not timer.is_alive():
                if clipped:
                    raise SandboxFailure(
                        "deadline", "the time for this request's renders ran out"
                    ) from None
                raise SandboxFailure(
                    "timeout", f"rendering took longer than {timeout:g} s"
                ) from None
            raise SandboxFailure(
                "crash", "it made the renderer run out of memory or crash"
            ) from None
        finally:
            timer.cancel()
        if status == b"E":
            raise SandboxFailure("error", payload.decode(errors="replace"))
        return payload

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


def _read(stream: IO[bytes], n: int) -> bytes:
    data = stream.read(n)
    if data is None or len(data) < n:
        raise EOFError
    return data


class Sandbox:
    """Up to ``size`` persistent workers running ``program`` (Python source defining
    ``OPS: dict[str, Callable[[bytes, dict], bytes]]`` and optionally ``warm()``), each under
    ``memory_bytes`` of ``RLIMIT_DATA`` (plus ``RLIMIT_AS`` when ``cap_address_space``).

    Thread-safe. Workers start on first use (or :meth:`prewarm`); a failed one is replaced.
    """

    def __init__(self, name: str, program: str, *, size: int = 2, cap_address_space: bool) -> None:
        self.name = name
        self.program = program
        self.size = size
        self.cap_address_space = cap_address_space
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._starting = 0
        self._cond = threading.Condition()
        self.failures = 0  # workers lost to a timeout or crash (for tests and benchmarks)
        atexit.register(self.shutdown)

    def call(
        self,
        op: str,
        data: bytes,
        options: dict[str, Any] | None = None,
        *,
        timeout: float,
        memory_bytes: int,
        deadline: float | None = None,
    ) -> bytes:
        """Run ``op`` on ``data`` in a worker; at most ``timeout`` seconds of rendering, and
        nothing after ``deadline`` (a ``time.monotonic()`` value: bounds the wait for a free
        worker too). Raises :class:`SandboxFailure`."""
        try:
            return self._call_once(op, data, options, timeout, memory_bytes, deadline)
        except SandboxFailure as exc:
            if exc.kind != "dead":
                raise
        # An idle worker that had died before the request: one retry on a fresh worker.
        return self._call_once(op, data, options, timeout, memory_bytes, deadline)

    def _call_once(
        self,
        op: str,
        data: bytes,
        options: dict[str, Any] | None,
        timeout: float,
        memory_bytes: int,
        deadline: float | None,
    ) -> bytes:
        if deadline is not None and deadline <= time.monotonic():
            raise SandboxFailure("deadline", "the time for this request's renders ran out")
        with self._worker(memory_bytes, deadline) as worker:
            left = timeout if deadline is None else deadline - time.monotonic()
            if left <= 0:  # waited for a worker until the deadline: leave it intact
                raise SandboxFailure("deadline", "the time for this request's renders ran out")
            try:
                return worker.call(
                    op, data, options or {}, max(0.001, min(timeout, left)), left < timeout
                )
            except SandboxFailure as exc:
                if exc.kind in ("timeout", "crash", "deadline"):
                    self.failures += 1
                raise

    def prewarm(self, memory_bytes: int) -> None:
        """Start one worker in the background, so the first render does not wait for it."""

        def start() -> None:
            try:
                with self._worker(memory_bytes, None):
                    pass
            except SandboxFailure:  # the next real call reports it
                pass

        threading.Thread(target=start, name=f"{self.name}-prewarm", daemon=True).start()

    def pids(self) -> list[int]:
        """Process ids of the live workers (idle and busy)."""
        with self._cond:
            return [w.pid for w in (*self._idle, *self._busy) if w.alive()]

    def busy_pids(self) -> list[int]:
        """Process ids of the workers rendering right now."""
        with self._cond:
            return [w.pid for w in self._busy]

    def idle_count(self) -> int:
        with self._cond:
            return sum(1 for w in self._idle if w.alive())

    def _limits(self, memory_bytes: int) -> dict[str, int]:
        limits = {"RLIMIT_DATA": memory_bytes}
        if self.cap_address_space:
            limits["RLIMIT_AS"] = memory_bytes
        return limits

    @contextmanager
    def _worker(self, memory_bytes: int, deadline: float | None) -> Iterator[_Worker]:
        limits = self._limits(memory_bytes)
        worker = self._acquire(limits, deadline)
        try:
            yield worker
        finally:
            self._release(worker)

    def _acquire(self, limits: dict[str, int], deadline: float | None) -> _Worker:
        with self._cond:
            while True:
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive() and worker.limits == limits:
                        self._busy.add(worker)
                        return worker
                    worker.kill()
                if len(self._busy) + self._starting < self.size:
                    self._starting += 1
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise SandboxFailure(
                        "busy",
                        f"every {self.name} renderer was busy until the time for this "
                        "request's renders ran out",
                    )
                self._cond.wait(remaining)
        try:
            worker = _Worker(self.name, self.program, limits)
        except (OSError, SandboxFailure) as exc:
            with self._cond:
                self._starting -= 1
                self._cond.notify()
            if isinstance(exc, SandboxFailure):
                raise
            raise SandboxFailure(
                "start", f"the {self.name} renderer could not start: {exc}"
            ) from None
        with self._cond:
            self._starting -= 1
            self._busy.add(worker)
        return worker

    def _release(self, worker: _Worker) -> None:
        with self._cond:
            self._busy.discard(worker)
            if worker.alive():
                self._idle.append(worker)
            else:
                worker.kill()
            self._cond.notify()

    def shutdown(self) -> None:
        """Stop the idle workers (busy ones stop when their call returns)."""
        with self._cond:
            for worker in self._idle:
                worker.kill()
            self._idle.clear()
