"""Issue 11: the worst case of each hostile-output class next to a normal notebook.

    python benchmarks/bench_hostile.py [--only NAME ...]

Every case builds a context (``build_context``, the default policy unless the case says
otherwise) in a fresh child process and reports: the build's wall time, its ratio to the
normal notebook's, the peak RSS of that process (the Jupyter server's role) and the largest
peak RSS of the render workers it started (reaped before it exits, so they are counted).

Engineers append their classes to ``CLASSES`` (one :class:`Case` each; ``make`` writes the
notebook, or whatever path ``build_context`` is to be given, into the directory it is given
and returns that path). A build refused with a :class:`VisionError` is reported as
``refused: <the user's line>``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@dataclass
class Case:
    name: str  # "class N: what"
    make: Callable[[Path], Path]
    policy: dict[str, Any] = field(default_factory=dict)
    focus: int | None = None


CLASSES: list[Case] = []

_CHILD = r"""
import json, resource, sys, time
from jupyter_ai_vision import build_context
from jupyter_ai_vision.limits import ImagePolicy
from jupyter_ai_vision.media import svg, vega
args = json.loads(sys.argv[1])
from jupyter_ai_vision.errors import VisionError
t = time.perf_counter()
try:
    ctx = build_context(args["path"], policy=ImagePolicy(**args["policy"]), model="gpt-4o",
                        focus=args["focus"])
    refused = None
except VisionError as exc:  # e.g. a notebook refused whole: the user's one line
    ctx, refused = None, str(exc)
seconds = time.perf_counter() - t
svg.SANDBOX.shutdown(); vega.SANDBOX.shutdown()
def peak_mb():
    # VmHWM: this process's own peak (ru_maxrss starts at the parent's RSS after a vfork+exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({
    "seconds": seconds, "refused": refused,
    "sent": len(ctx.images) if ctx else 0, "skipped": len(ctx.skipped) if ctx else 0,
    "server_mb": peak_mb(),
    "workers_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    "notes": sorted({s.reason[:70] for s in ctx.skipped})[:3] if ctx else [],
}))
"""


def run(case: Case, directory: Path) -> dict[str, Any]:
    path = case.make(directory)
    args = {"path": str(path), "policy": case.policy, "focus": case.focus}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=directory,
    )
    if done.returncode != 0:
        return {"error": f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# ---------------------------------------------------------------- notebooks


def _write(nb: Any, path: Path) -> Path:
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


def _png_figure(k: int, size: tuple[int, int] = (1000, 600)) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(size[0] / 100, size[1] / 100), dpi=100)
    ax.plot([i * ((k % 5) + 1) % 17 for i in range(50)])
    ax.set_title(f"figure {k}")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _vegalite(k: int) -> dict[str, Any]:
    return {
        "title": f"chart {k}",
        "data": {"values": [{"x": i, "y": (i * (k + 3)) % 17} for i in range(40)]},
        "mark": ["line", "bar", "point"][k % 3],
        "encoding": {
            "x": {"field": "x", "type": "quantitative"},
            "y": {"field": "y", "type": "quantitative"},
        },
    }


def _output(mime: str, payload: Any) -> dict[str, Any]:
    from nbformat.v4 import new_output

    return new_output("display_data", data={mime: payload, "text/plain": "<figure>"})


def _normal_cells() -> list[Any]:
    """8 matplotlib PNGs, 3 Vega-Lite charts, 1 Vega chart, 2 SVGs, text."""
    from nbformat.v4 import new_code_cell

    cells = []
    for k in range(8):
        cell = new_code_cell(f"plot({k})")
        cell.outputs = [_output("image/png", base64.b64encode(_png_figure(k)).decode())]
        cells.append(cell)
    for k in range(3):
        cell = new_code_cell(f"chart({k})")
        cell.outputs = [_output("application/vnd.vegalite.v5+json", _vegalite(k))]
        cells.append(cell)
    cell = new_code_cell("vega()")
    cell.outputs = [_output("application/vnd.vega.v5+json", _VEGA_GOOD)]
    cells.append(cell)
    for k in range(2):
        svg = (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="400" height="300">'
            f'<rect width="400" height="300" fill="#{k * 40 + 30:02x}6699"/></svg>'
        )
        cell = new_code_cell(f"svg({k})")
        cell.outputs = [_output("image/svg+xml", svg)]
        cells.append(cell)
    return cells


_VEGA_GOOD = {
    "width": 300,
    "height": 200,
    "data": [{"name": "t", "values": [{"x": i, "y": i * i % 7} for i in range(20)]}],
    "scales": [
        {"name": "x", "domain": {"data": "t", "field": "x"}, "range": "width"},
        {"name": "y", "domain": {"data": "t", "field": "y"}, "range": "height"},
    ],
    "axes": [{"orient": "bottom", "scale": "x"}, {"orient": "left", "scale": "y"}],
    "marks": [
        {
            "type": "symbol",
            "from": {"data": "t"},
            "encode": {
                "enter": {"x": {"scale": "x", "field": "x"}, "y": {"scale": "y", "field": "y"}}
            },
        }
    ],
}
FLATTEN_BOMB = {
    "data": {"values": [{"a": 1}]},
    "transform": [{"calculate": "sequence(0, 1000000)", "as": "s"}, {"flatten": ["s"]}],
    "mark": "point",
    "encoding": {"x": {"field": "s", "type": "quantitative"}},
}
TICKS_HANG = {
    "data": {"values": [{"a": 1}, {"a": 2}]},
    "mark": "point",
    "encoding": {"x": {"field": "a", "type": "quantitative", "axis": {"tickCount": 1000000}}},
}
HUGE_STOP = {
    "data": {"sequence": {"start": 0, "stop": int("9" * 400)}},
    "mark": "point",
    "encoding": {"x": {"field": "data", "type": "quantitative"}},
}
VEGA_BOMB = {
    "data": [
        {
            "name": "t",
            "values": [{"a": 1}],
            "transform": [
                {"type": "formula", "expr": "sequence(0, 100000000)", "as": "s"},
                {"type": "flatten", "fields": ["s"]},
            ],
        }
    ],
    "marks": [{"type": "symbol", "from": {"data": "t"}, "encode": {"enter": {"x": {"value": 1}}}}],
}


def _notebook(extra: list[Any]) -> Any:
    from nbformat.v4 import new_notebook

    nb = new_notebook()
    nb.cells = [*_normal_cells(), *extra]
    return nb


def _hostile_cell(mime: str, payload: Any) -> Any:
    from nbformat.v4 import new_code_cell

    cell = new_code_cell("hostile")
    cell.outputs = [_output(mime, payload)]
    return cell


def normal(directory: Path) -> Path:
    return _write(_notebook([]), directory / "normal.ipynb")


def chart_bombs(directory: Path) -> Path:
    extra = [
        _hostile_cell("application/vnd.vegalite.v5+json", FLATTEN_BOMB),
        _hostile_cell("application/vnd.vegalite.v5+json", TICKS_HANG),
        _hostile_cell("application/vnd.vegalite.v5+json", HUGE_STOP),
    ]
    return _write(_notebook(extra), directory / "chart-bombs.ipynb")


def many_hangs(directory: Path) -> Path:
    extra = []
    for k in range(12):
        spec = {**TICKS_HANG, "title": f"hang {k}"}
        extra.append(_hostile_cell("application/vnd.vegalite.v5+json", spec))
    return _write(_notebook(extra), directory / "many-hangs.ipynb")


def vega_bomb(directory: Path) -> Path:
    extra = [_hostile_cell("application/vnd.vega.v5+json", VEGA_BOMB)]
    return _write(_notebook(extra), directory / "vega-bomb.ipynb")


def _gif_frame_bomb(side: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    frames = [Image.new("P", (2, 2), k) for k in range(2)]
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    data = bytearray(buf.getvalue())
    i = data.index(b",", 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0))
    while i != -1:
        data[i + 5 : i + 9] = struct.pack("<HH", side, side)
        j = data.find(b"\x00,", i + 10)
        i = j + 1 if j != -1 else -1
    return bytes(data)


def decoder_bombs(directory: Path) -> Path:
    extra = [
        _hostile_cell("image/gif", base64.b64encode(_gif_frame_bomb(13000 + k)).decode())
        for k in range(20)
    ]
    return _write(_notebook(extra), directory / "decoder-bombs.ipynb")


def sixty_tiffs(directory: Path) -> Path:
    from nbformat.v4 import new_markdown_cell
    from PIL import Image

    extra = []
    for k in range(60):
        buf = io.BytesIO()
        Image.new("RGB", (3000, 2000), (k * 4, 90, 160)).save(buf, "TIFF", compression="tiff_lzw")
        cell = new_markdown_cell(f"![scan](attachment:scan{k}.tiff)")
        cell["attachments"] = {
            f"scan{k}.tiff": {"image/tiff": base64.b64encode(buf.getvalue()).decode()}
        }
        extra.append(cell)
    return _write(_notebook(extra), directory / "sixty-tiffs.ipynb")


def png_at_the_cap(directory: Path) -> Path:
    """The largest image the cap lets through: 8000x8000 RGBA (64 Mpx), tiny on disk."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGBA", (8000, 8000), (200, 30, 30, 128)).save(buf, "PNG")
    extra = [_hostile_cell("image/png", base64.b64encode(buf.getvalue()).decode())]
    return _write(_notebook(extra), directory / "png-cap.ipynb")


def gray16_at_the_cap(directory: Path) -> Path:
    """Class 5's worst case: an 8000x8000 16-bit grayscale PNG (scaled, not clipped)."""
    import numpy as np
    from PIL import Image

    ramp = np.linspace(0, 65535, 8000, dtype=np.uint16)[None, :].repeat(8000, 0)
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, "PNG")
    extra = [_hostile_cell("image/png", base64.b64encode(buf.getvalue()).decode())]
    return _write(_notebook(extra), directory / "gray16-cap.ipynb")


CLASSES += [
    Case("normal notebook (8 PNG, 3 Vega-Lite, 1 Vega, 2 SVG)", normal),
    Case("class 1: flatten bomb + tickCount hang + 400-digit stop", chart_bombs),
    Case("class 1: 12 hanging charts (render deadline 30 s)", many_hangs),
    Case("class 8: Vega sequence+flatten bomb", vega_bomb),
    Case("class 4: 20 GIFs 2x2 screen / 13000² frames", decoder_bombs),
    Case("class 4: 60 TIFFs 3000x2000 (probe all, decode selected)", sixty_tiffs),
    Case("class 4: PNG at the decode cap (8000² RGBA)", png_at_the_cap, focus=14),
    Case("class 5: 16-bit gray PNG at the cap (8000²)", gray16_at_the_cap, focus=14),
]


# --- classes 2, 6, 7 (F) ----------------------------------------------------------------------


def _svg_text(attrs: str) -> str:
    rect = '<rect width="40" height="20"/>'
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20" {attrs}>{rect}</svg>'


def _markdown(source: str) -> Any:
    from nbformat.v4 import new_markdown_cell

    return new_markdown_cell(source)


def regex_worst(directory: Path) -> Path:
    """Class 2: every reported backtracking input at once (each took seconds to hours)."""
    extra = [
        _hostile_cell("image/svg+xml", _svg_text(f'style="fill:{"url(" * 300_000}"')),
        _hostile_cell("image/svg+xml", _svg_text(f'width="{"1" * 30_000}!"')),
        _markdown("<img " + "a" * 200_000 + ">"),
        _markdown("```x\n" * 40_000),
        _hostile_cell("text/html", "vega " + "<script>" * 100_000),
        _hostile_cell("text/html", "<div " * 100_000),
    ]
    return _write(_notebook(extra), directory / "regex-worst.ipynb")


def malformed_deep(directory: Path) -> Path:
    """Class 6: wrong types everywhere and JSON 300,000 levels deep (past the parser)."""
    from nbformat.v4 import new_code_cell

    bad = new_code_cell("bad", metadata={})
    bad.outputs = [{"output_type": "error", "ename": {"a": 1}, "evalue": [1], "traceback": 5}]
    text = json.dumps(_notebook([bad, _markdown("x")]))
    deep = "[" * 300_000 + "]" * 300_000
    text = text.replace('"metadata": {}', f'"metadata": {{"a": {deep}}}', 1)
    path = directory / "malformed.ipynb"
    path.write_text(text)
    return path


def fifo(directory: Path) -> Path:
    """Class 7: a FIFO named like a notebook (reading it blocked forever)."""
    path = directory / "fifo.ipynb"
    if not path.exists():
        os.mkfifo(path)
    return path


def sparse_2gb(directory: Path) -> Path:
    """Class 7: a 2 GB sparse file (was read whole: 2.6 GB RSS)."""
    path = directory / "sparse.ipynb"
    with path.open("wb") as f:
        f.truncate(2 * 1024**3)
    return path


CLASSES += [
    Case("class 2: regex worst cases (url(, digits, <img, fences, tags)", regex_worst),
    Case("class 6: malformed fields + JSON 300,000 deep", malformed_deep),
    Case("class 7: FIFO", fifo),
    Case("class 7: /dev/zero", lambda directory: Path("/dev/zero")),
    Case("class 7: 2 GB sparse file", sparse_2gb),
]


def hung_chart_latency() -> tuple[float, float]:
    """Seconds to render a good chart alone, and while a hanging chart holds a worker."""
    import threading
    import time

    from jupyter_ai_vision.limits import ImagePolicy
    from jupyter_ai_vision.media import vega

    policy = ImagePolicy()
    warm = [threading.Thread(target=vega.render_vegalite, args=(_vegalite(k),)) for k in (3, 4)]
    for thread in warm:  # both workers started and warm: what a running server has
        thread.start()
    for thread in warm:
        thread.join()
    t = time.perf_counter()
    vega.render_vegalite(_vegalite(1), policy=policy)
    alone = time.perf_counter() - t
    hang = threading.Thread(
        target=lambda: _swallow(lambda: vega.render_vegalite(TICKS_HANG, policy=policy)),
        daemon=True,
    )
    hang.start()
    while not vega.SANDBOX.busy_pids():
        time.sleep(0.005)
    t = time.perf_counter()
    vega.render_vegalite(_vegalite(2), policy=policy)
    during = time.perf_counter() - t
    hang.join()
    return alone, during


def _swallow(fn: Callable[[], Any]) -> None:
    with contextlib.suppress(Exception):  # the hang ends as a timeout: expected
        fn()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="run only cases whose name contains one of these")
    args = parser.parse_args()
    cases = [c for c in CLASSES if not args.only or any(o in c.name for o in args.only)]
    base: float | None = None
    print(
        f"{'case':58} {'build s':>8} {'x normal':>8} {'server MB':>9} {'workers MB':>10}  sent/left"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            result = run(case, Path(tmp))
            if "error" in result:
                print(f"{case.name:58} FAILED {result['error']}")
                continue
            base = base or result["seconds"]
            print(
                f"{case.name:58} {result['seconds']:8.2f} {result['seconds'] / base:8.1f} "
                f"{result['server_mb']:9.0f} {result['workers_mb']:10.0f}  "
                + (
                    f"refused: {result['refused'][:60]}"
                    if result["refused"]
                    else f"{result['sent']}/{result['skipped']}"
                )
            )
    if not args.only or any("latency" in o for o in args.only):
        alone, during = hung_chart_latency()
        print(
            f"class 1: a good chart alone {alone * 1000:.0f} ms; while a hanging chart holds a "
            f"worker {during * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
