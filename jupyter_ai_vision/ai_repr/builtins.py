"""Built-in AI representations, registered lazily by dotted class name.

Installing them records names only: pandas, polars, numpy, matplotlib, PIL, Altair and Plotly
are imported by the user, never by us (a library that is not installed simply never matches).
Every function here is cheap on big objects: shapes, dtypes, heads and samples, with statistics
only below a row threshold (never a full ``describe()`` of a large frame).
"""

from __future__ import annotations

import io
import traceback
from collections.abc import Sequence
from typing import Any

from jupyter_ai_vision.ai_repr.registry import AiReprRegistry, accepts

#: Frames with at most this many rows also get per-column statistics.
STATS_MAX_ROWS = 100_000
HEAD_ROWS = 5
MAX_COLUMNS_LISTED = 60
#: Long edge of PNGs rendered here (figures, thumbnails); the image budget downscales further.
IMAGE_MAX_EDGE = 1024
#: uint8 arrays up to this many pixels are also sent as images.
ARRAY_IMAGE_MAX_PIXELS = 4_000_000

Mimes = Sequence[str] | None


def _lines(*parts: str) -> str:
    return "\n".join(p for p in parts if p)


# ---------------------------------------------------------------------------- pandas


def _columns(items: list[tuple[Any, Any]]) -> str:
    shown = [f"  {name}: {dtype}" for name, dtype in items[:MAX_COLUMNS_LISTED]]
    if len(items) > MAX_COLUMNS_LISTED:
        shown.append(f"  … and {len(items) - MAX_COLUMNS_LISTED} more columns")
    return "\n".join(shown)


def pandas_dataframe(df: Any, **_: Any) -> dict[str, Any]:
    rows, cols = df.shape
    text = _lines(
        f"pandas.DataFrame: {rows:,} rows × {cols:,} columns",
        f"index: {type(df.index).__name__}"
        + (f" named {df.index.name!r}" if df.index.name else ""),
        "columns (dtype):\n" + _columns(list(df.dtypes.items())),
        f"first {min(rows, HEAD_ROWS)} rows:\n"
        + df.head(HEAD_ROWS).to_string(max_cols=20, max_colwidth=40),
        _pandas_stats(df) if 0 < rows <= STATS_MAX_ROWS else "",
    )
    return {"text/plain": text}


def _pandas_stats(df: Any) -> str:
    nulls = df.isna().sum()
    nulls = nulls[nulls > 0]
    numeric = df.select_dtypes("number")
    parts = []
    if len(nulls):
        parts.append("missing values: " + ", ".join(f"{k}={v:,}" for k, v in nulls.items()))
    if numeric.shape[1]:
        stats = numeric.iloc[:, :20].agg(["min", "max", "mean"]).T
        parts.append(
            "numeric columns (min, max, mean):\n" + stats.to_string(float_format="{:.4g}".format)
        )
    return "\n".join(parts)


def pandas_series(s: Any, **_: Any) -> dict[str, Any]:
    n = len(s)
    text = _lines(
        f"pandas.Series {s.name!r}: {n:,} values, dtype {s.dtype}",
        f"first {min(n, HEAD_ROWS)} values:\n" + s.head(HEAD_ROWS).to_string(max_rows=HEAD_ROWS),
        _series_stats(s) if 0 < n <= STATS_MAX_ROWS else "",
    )
    return {"text/plain": text}


def _series_stats(s: Any) -> str:
    out = f"missing values: {int(s.isna().sum()):,}"
    if s.dtype.kind in "iuf":
        out += f"; min {s.min():.4g}, max {s.max():.4g}, mean {s.mean():.4g}"
    return out


# ---------------------------------------------------------------------------- polars


def polars_dataframe(df: Any, **_: Any) -> dict[str, Any]:
    rows, cols = df.shape
    text = _lines(
        f"polars.DataFrame: {rows:,} rows × {cols:,} columns",
        "columns (dtype):\n" + _columns(list(df.schema.items())),
        f"first {min(rows, HEAD_ROWS)} rows:\n{df.head(HEAD_ROWS)}",
        f"null counts:\n{df.null_count()}" if 0 < rows <= STATS_MAX_ROWS else "",
    )
    return {"text/plain": text}


def polars_series(s: Any, **_: Any) -> dict[str, Any]:
    return {
        "text/plain": f"polars.Series {s.name!r}: {len(s):,} values, dtype {s.dtype}\n"
        f"first values:\n{s.head(HEAD_ROWS)}"
    }


def polars_lazyframe(lf: Any, **_: Any) -> dict[str, Any]:
    # Schema only: anything more would run the query plan.
    schema = lf.collect_schema() if hasattr(lf, "collect_schema") else lf.schema
    return {
        "text/plain": "polars.LazyFrame (not collected; schema only):\n"
        + _columns(list(schema.items()))
    }


# ----------------------------------------------------------------------------- numpy


def numpy_array(arr: Any, *, mimetypes: Mimes = None, **_: Any) -> dict[str, Any]:
    import numpy as np

    text = _lines(
        f"numpy.ndarray: shape {arr.shape}, dtype {arr.dtype}, {arr.nbytes:,} bytes",
        "sample:\n" + np.array2string(arr, threshold=60, edgeitems=3, max_line_width=100),
        _array_stats(arr),
    )
    bundle: dict[str, Any] = {"text/plain": text}
    if accepts(mimetypes, "image/png") and _is_image_array(arr):
        from PIL import Image

        img = Image.fromarray(arr[..., 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr)
        bundle["image/png"] = _png(img)
    return bundle


def _array_stats(arr: Any) -> str:
    import numpy as np

    if arr.size == 0 or arr.size > 10_000_000 or arr.dtype.kind not in "iufb":
        return ""
    data = arr.astype(float) if arr.dtype.kind == "b" else arr
    with np.errstate(all="ignore"):
        return f"min {np.nanmin(data):.4g}, max {np.nanmax(data):.4g}, mean {np.nanmean(data):.4g}"


def _is_image_array(arr: Any) -> bool:
    if str(arr.dtype) != "uint8" or arr.ndim not in (2, 3):
        return False
    if arr.ndim == 3 and arr.shape[2] not in (1, 3, 4):
        return False
    h, w = arr.shape[:2]
    return 0 < h * w <= ARRAY_IMAGE_MAX_PIXELS


# ------------------------------------------------------------------------ matplotlib


def _axes_text(ax: Any, index: int | None = None) -> str:
    label = "axes" if index is None else f"axes {index}"
    parts = [f"{label}: title {ax.get_title()!r}" if ax.get_title() else f"{label}:"]
    if ax.get_xlabel():
        parts.append(f"x label {ax.get_xlabel()!r}")
    if ax.get_ylabel():
        parts.append(f"y label {ax.get_ylabel()!r}")
    counts = {
        "lines": len(ax.lines),
        "collections": len(ax.collections),
        "patches": len(ax.patches),
        "images": len(ax.images),
    }
    parts.extend(f"{n} {k}" for k, n in counts.items() if n)
    legend = ax.get_legend()
    if legend is not None:
        parts.append("legend " + ", ".join(repr(t.get_text()) for t in legend.get_texts()))
    return "; ".join(parts)


def _figure_png(fig: Any) -> bytes:
    w, h = fig.get_size_inches()
    dpi = min(float(fig.dpi), IMAGE_MAX_EDGE / max(w, h, 1e-3))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def matplotlib_figure(fig: Any, *, mimetypes: Mimes = None, **_: Any) -> dict[str, Any]:
    w, h = fig.get_size_inches()
    suptitle = getattr(fig, "_suptitle", None)
    lines = [f"matplotlib Figure {w:g}×{h:g} in, {len(fig.axes)} axes"]
    if suptitle is not None and suptitle.get_text():
        lines.append(f"title {suptitle.get_text()!r}")
    lines.extend(_axes_text(ax, i) for i, ax in enumerate(fig.axes))
    bundle: dict[str, Any] = {"text/plain": "\n".join(lines)}
    if accepts(mimetypes, "image/png"):
        bundle["image/png"] = _figure_png(fig)
    return bundle


def matplotlib_axes(ax: Any, *, mimetypes: Mimes = None, **_: Any) -> dict[str, Any]:
    fig = ax.get_figure()
    bundle: dict[str, Any] = {"text/plain": "matplotlib " + _axes_text(ax)}
    if fig is not None and accepts(mimetypes, "image/png"):
        bundle["text/plain"] += f"\n(the image shows the whole figure: {len(fig.axes)} axes)"
        bundle["image/png"] = _figure_png(fig)
    return bundle


# ------------------------------------------------------------------------------- PIL


def _png(img: Any) -> bytes:
    if img.mode not in ("1", "L", "LA", "P", "RGB", "RGBA"):
        img = img.convert("RGBA" if "A" in img.getbands() else "RGB")
    if max(img.size) > IMAGE_MAX_EDGE:
        img = img.copy()
        img.thumbnail((IMAGE_MAX_EDGE, IMAGE_MAX_EDGE))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def pil_image(img: Any, *, mimetypes: Mimes = None, **_: Any) -> dict[str, Any]:
    w, h = img.size
    fmt = f", format {img.format}" if getattr(img, "format", None) else ""
    bundle: dict[str, Any] = {"text/plain": f"PIL Image: {w}×{h} pixels, mode {img.mode}{fmt}"}
    if accepts(mimetypes, "image/png"):
        bundle["image/png"] = _png(img)
        if max(w, h) > IMAGE_MAX_EDGE:
            bundle["text/plain"] += f" (image downscaled to a {IMAGE_MAX_EDGE}-pixel thumbnail)"
    return bundle


# ----------------------------------------------------------------------- Altair, Plotly


def altair_chart(chart: Any, *, mimetypes: Mimes = None, **_: Any) -> dict[str, Any]:
    from jupyter_ai_vision.media import vega

    spec = chart.to_dict()
    bundle: dict[str, Any] = {"text/plain": "Altair chart: " + vega.summarize_spec(spec)}
    if accepts(mimetypes, "image/png"):
        try:
            bundle["image/png"] = vega.render_vegalite(spec)
        except vega.RenderError as exc:
            bundle["text/plain"] += f"\n(not rendered: {exc})"
    return bundle


def plotly_figure(fig: Any, *, mimetypes: Mimes = None, **_: Any) -> dict[str, Any]:
    from jupyter_ai_vision.media import plotly

    bundle: dict[str, Any] = {
        "text/plain": "Plotly figure: " + plotly.summarize_figure(fig.to_dict())
    }
    if accepts(mimetypes, "image/png") and _has_module("kaleido"):
        # kaleido >= 1 drives a Chrome; without one this fails and the summary stands alone.
        try:
            bundle["image/png"] = fig.to_image(format="png")
        except Exception as exc:
            bundle["text/plain"] += f"\n(no image: {type(exc).__name__})"
    return bundle


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


# -------------------------------------------------------------------------- exceptions


def exception(exc: BaseException, *, max_chars: int = 8000, **_: Any) -> dict[str, Any]:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-20))
    if len(tb) > max_chars:  # keep the end: the innermost frames matter most
        tb = "…\n" + tb[-(max_chars - 200) :]
    return {"text/plain": f"exception {type(exc).__qualname__}: {exc}\n{tb}"}


# ---------------------------------------------------------------------------- install

BUILTINS: dict[str, Any] = {
    "pandas.core.frame.DataFrame": pandas_dataframe,
    "pandas.core.series.Series": pandas_series,
    "polars.dataframe.frame.DataFrame": polars_dataframe,
    "polars.series.series.Series": polars_series,
    "polars.lazyframe.frame.LazyFrame": polars_lazyframe,
    "numpy.ndarray": numpy_array,
    "matplotlib.figure.Figure": matplotlib_figure,
    "matplotlib.axes._axes.Axes": matplotlib_axes,
    "PIL.Image.Image": pil_image,
    "altair.vegalite.v5.api.TopLevelMixin": altair_chart,
    "altair.vegalite.v6.api.TopLevelMixin": altair_chart,
    "plotly.basedatatypes.BaseFigure": plotly_figure,
}


def install(registry: AiReprRegistry) -> None:
    """Register every built-in by dotted name (imports none of these libraries)."""
    for name, fn in BUILTINS.items():
        registry.register_builtin(name, fn)
    registry.register_builtin(BaseException, exception)
