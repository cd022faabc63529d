"""The in-process ``_ai_repr_`` registry: precedence, lazy registration, fallbacks, built-ins."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import subprocess
import sys
import threading
import time

import pytest

from jupyter_ai_vision.ai_repr import (
    AiReprRegistry,
    ai_repr,
    ai_repr_async,
    formatter,
    register,
    registry,
    unregister,
)

MOD = __name__


def png_size(b64: str) -> tuple[int, int]:
    from PIL import Image

    return Image.open(io.BytesIO(base64.b64decode(b64))).size


# ------------------------------------------------------------------ import cost and laziness


def test_import_and_lazy_registration_import_nothing_heavy():
    code = (
        "import sys\n"
        "from jupyter_ai_vision.ai_repr import ai_repr, register\n"
        "import jupyter_ai_vision.kernel.references, jupyter_ai_vision.server.kernels\n"
        "ai_repr(object()); ai_repr([1, 2]); ai_repr(ValueError('x'))\n"
        "register('polars.dataframe.frame.DataFrame', lambda o, **k: {'text/plain': 'p'})\n"
        "heavy = ['pandas', 'numpy', 'matplotlib', 'PIL', 'altair', 'plotly', 'polars',\n"
        "         'vl_convert', 'litellm', 'jupyter_client', 'zmq']\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_polars_absent_is_harmless():
    # polars is registered by name; in an environment without it nothing tries to import it.
    code = (
        "import sys\n"
        "sys.modules['polars'] = None  # as if not installed: any import fails\n"
        "from jupyter_ai_vision.ai_repr import ai_repr\n"
        "from jupyter_ai_vision.ai_repr.builtins import BUILTINS\n"
        "assert 'polars.lazyframe.frame.LazyFrame' in BUILTINS\n"
        "import pandas as pd\n"
        "print(ai_repr(pd.DataFrame({'a': [1]}))['text/plain'].splitlines()[0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "pandas.DataFrame: 1 rows × 1 columns"


# ---------------------------------------------------------------------------- precedence


class WithRepr:
    def _ai_repr_(self, **kwargs):
        return {"text/plain": "own repr", "application/json": {"kw": sorted(kwargs)}}


class WithAsyncRepr:
    async def _async_ai_repr_(self, mimetypes=None):
        await asyncio.sleep(0.01)
        return {"text/plain": f"async repr for {mimetypes}"}


class Plain:
    def __repr__(self):
        return "Plain()"


def test_precedence_registration_over_own_repr_over_builtin_over_repr():
    obj = WithRepr()
    assert ai_repr(obj)["text/plain"] == "own repr"
    previous = register(WithRepr, lambda o, **kw: {"text/plain": "registered"})
    try:
        assert previous is None
        assert ai_repr(obj) == {"text/plain": "registered"}
    finally:
        removed = unregister(WithRepr)
    assert removed is not None
    assert ai_repr(obj)["text/plain"] == "own repr"
    assert ai_repr(Plain()) == {"text/plain": f"{MOD}.Plain: Plain()"}


def test_own_repr_beats_builtin_and_registration_beats_builtin():
    class MyError(ValueError):
        def _ai_repr_(self):
            return {"text/plain": "custom error"}

    assert ai_repr(MyError("x")) == {"text/plain": "custom error"}
    assert ai_repr(KeyError("k"))["text/plain"].startswith("exception KeyError: 'k'")
    old = register(KeyError, lambda e: {"text/plain": "registered KeyError"})
    try:
        assert ai_repr(KeyError("k")) == {"text/plain": "registered KeyError"}
    finally:
        unregister(KeyError)
    assert old is None


def test_register_returns_previous_and_restores():
    f1 = lambda o: {"text/plain": "one"}  # noqa: E731
    f2 = lambda o: {"text/plain": "two"}  # noqa: E731
    assert register(Plain, f1) is None
    assert register(Plain, f2) is f1
    assert ai_repr(Plain()) == {"text/plain": "two"}
    assert register(Plain, f1) is f2  # restore the previous one
    assert ai_repr(Plain()) == {"text/plain": "one"}
    assert unregister(Plain) is f1
    assert unregister(Plain) is None


def test_registration_along_the_mro_and_by_dotted_name():
    class Child(Plain):
        pass

    register(f"{MOD}.Plain", lambda o: {"text/plain": f"base for {type(o).__name__}"})
    try:
        assert ai_repr(Child()) == {"text/plain": "base for Child"}
        # the same class by type replaces the name registration and returns it
        old = register(Plain, lambda o: {"text/plain": "by type"})
        assert old is not None and old(Child()) == {"text/plain": "base for Child"}
        assert ai_repr(Child()) == {"text/plain": "by type"}
    finally:
        unregister(Plain)
    assert ai_repr(Child())["text/plain"].endswith("Plain()")


def test_dotted_name_of_pandas_defining_module_matches():
    # pandas 3 reports its classes as "pandas.DataFrame"; the defining module's name works too.
    import pandas as pd

    old = register("pandas.core.frame.DataFrame", lambda df: {"text/plain": f"{len(df)} rows"})
    try:
        assert ai_repr(pd.DataFrame({"a": [1, 2]})) == {"text/plain": "2 rows"}
    finally:
        assert unregister("pandas.core.frame.DataFrame") is not None
    assert old is None
    assert ai_repr(pd.DataFrame({"a": [1, 2]}))["text/plain"].startswith("pandas.DataFrame: 2 rows")


def test_invalid_registration_keys_are_rejected():
    with pytest.raises(TypeError, match="dotted class name"):
        register("not a name", lambda o: {})
    with pytest.raises(TypeError, match="not callable"):
        register(Plain, "nope")  # type: ignore[arg-type]


def test_separate_registry_and_jep_formatter_alias():
    reg = AiReprRegistry()
    reg.register(Plain, lambda o: {"text/plain": "private"})
    assert reg(Plain()) == {"text/plain": "private"}
    assert ai_repr(Plain())["text/plain"].endswith("Plain()")  # the default one is untouched
    assert formatter is registry
    assert formatter(WithRepr())["text/plain"] == "own repr"


# ------------------------------------------------------------------------------- kwargs


def test_unknown_kwargs_only_reach_reprs_that_accept_them():
    data = ai_repr(WithRepr(), colour="blue", max_chars=500)
    assert data["application/json"] == {"kw": ["colour", "max_bytes", "max_chars"]}
    # a repr without **kwargs gets only what it names
    assert ai_repr(WithAsyncRepr(), mimetypes=["text/plain"], colour="blue") == {
        "text/plain": "async repr for ['text/plain']"
    }


def test_mimetypes_filter_and_order():
    class Multi:
        def _ai_repr_(self, **kw):
            return {"text/plain": "t", "text/markdown": "**m**", "image/png": b"\x89PNG fake"}

    data = ai_repr(Multi(), mimetypes=["text/markdown", "text/plain"])
    assert list(data) == ["text/markdown", "text/plain"]
    assert list(ai_repr(Multi(), mimetypes=["image/*"])) == ["image/png"]
    # bytes come back as base64 text
    assert base64.b64decode(ai_repr(Multi())["image/png"]) == b"\x89PNG fake"
    # nothing acceptable: bounded repr, with a note
    only_json = ai_repr(Multi(), mimetypes=["application/json"])
    assert "gave none of the accepted types" in json.dumps(only_json)


def test_size_budget():
    class Big:
        def _ai_repr_(self):
            return {"text/plain": "x" * 50_000, "image/png": b"\0" * 10_000}

    data = ai_repr(Big(), max_chars=1000, max_bytes=5000)
    assert len(data["text/plain"]) < 1300
    assert "truncated: 50,000 characters" in data["text/plain"]
    assert "image/png" not in data
    assert "over the 5,000-byte budget" in data["text/plain"]


def test_values_are_json_serialisable():
    import numpy as np
    from PIL import Image

    for obj in (WithRepr(), np.zeros((8, 8), dtype="uint8"), Image.new("RGB", (4, 4)), Plain()):
        json.dumps(ai_repr(obj))


# ----------------------------------------------------------------------------- fallbacks


def test_raising_repr_falls_back_with_note():
    class Boom:
        def _ai_repr_(self):
            raise RuntimeError("kaput")

        def __repr__(self):
            return "Boom()"

    text = ai_repr(Boom())["text/plain"]
    assert text.startswith(f"{MOD}.Boom: Boom()")
    assert "Boom._ai_repr_ raised RuntimeError: kaput; falling back" in text


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("just text", "returned str, expected a non-empty dict"),
        ({}, "returned dict, expected a non-empty dict"),
        ({"plain": "x"}, "expected MIME types"),
        ({"text/plain": object()}, "not JSON-serialisable"),
        ({"image/png": 42}, "expected bytes or base64 str"),
    ],
)
def test_wrong_return_type_falls_back(value, message):
    class Wrong:
        def _ai_repr_(self):
            return value

    assert message in ai_repr(Wrong())["text/plain"]


def test_hanging_repr_times_out():
    release = threading.Event()

    class Hang:
        def _ai_repr_(self):
            release.wait(30)

    try:
        text = ai_repr(Hang(), timeout=0.3)["text/plain"]
        assert not release.is_set()  # it answered while the repr still hung
    finally:
        release.set()
    assert "Hang._ai_repr_ timed out after 0.3 s; falling back" in text


def test_a_hung_repr_is_not_started_again_while_it_still_runs():
    calls = []

    class Stuck:
        def _ai_repr_(self):
            calls.append(1)
            time.sleep(1.5)
            return {"text/plain": "finally"}

    assert "timed out after 0.2 s" in ai_repr(Stuck(), timeout=0.2)["text/plain"]
    text = ai_repr(Stuck(), timeout=0.2)[
        "text/plain"
    ]  # answers at once: benchmarks/bench_bounds.py
    assert "still running from an earlier request that timed out" in text
    assert calls == [1]
    time.sleep(1.5)  # once it has finished, it is called again
    assert ai_repr(Stuck(), timeout=3) == {"text/plain": "finally"}
    assert calls == [1, 1]


def test_hanging_async_repr_times_out_and_registered_failure_uses_own_repr():
    class SlowAsync:
        async def _async_ai_repr_(self):
            await asyncio.sleep(30)

        def __repr__(self):
            return "SlowAsync()"

    assert "timed out after 0.2 s" in ai_repr(SlowAsync(), timeout=0.2)["text/plain"]
    register(WithRepr, lambda o: 1 / 0)
    try:
        text = ai_repr(WithRepr())["text/plain"]
    finally:
        unregister(WithRepr)
    assert text.startswith("own repr")
    assert f"registered ai_repr for {MOD}.WithRepr raised ZeroDivisionError" in text


def test_hanging_plain_repr_is_bounded():
    class HangRepr:
        def __repr__(self):
            time.sleep(30)
            return "never"

    text = ai_repr(HangRepr(), timeout=0.2)["text/plain"]
    assert text.startswith(f"{MOD}.HangRepr: <{MOD}.HangRepr object>")
    assert "timed out" in text


async def test_async_api_keeps_the_loop_free():
    loop_ran = threading.Event()

    async def ticker():
        await asyncio.sleep(0)
        loop_ran.set()

    class NeedsTheLoop:
        def _ai_repr_(self):
            # finishes only once the event loop has run something else meanwhile; with the
            # repr on the loop itself, that cannot happen (it would wait out the 10 s)
            return {"text/plain": "loop was free" if loop_ran.wait(10) else "loop was blocked"}

    task = asyncio.create_task(ticker())
    data = await ai_repr_async(NeedsTheLoop())
    await task
    assert data == {"text/plain": "loop was free"}
    assert (await ai_repr_async(WithAsyncRepr()))["text/plain"] == "async repr for None"


def test_own_repr_used_from_a_running_loop():
    async def main():
        return ai_repr(WithAsyncRepr())  # sync API inside a loop, like a kernel cell

    assert asyncio.run(main()) == {"text/plain": "async repr for None"}


# ------------------------------------------------------------------------------ built-ins


def test_pandas_dataframe_small_and_big():
    import numpy as np
    import pandas as pd

    small = pd.DataFrame({"x": [1.0, 2.0, None], "name": ["a", "b", "c"]})
    text = ai_repr(small)["text/plain"]
    assert "pandas.DataFrame: 3 rows × 2 columns" in text
    assert "x: float64" in text and "missing values: x=1" in text
    assert "numeric columns (min, max, mean)" in text

    big = pd.DataFrame(np.random.default_rng(0).random((1_000_000, 18)))
    text = ai_repr(big)["text/plain"]  # its cost: benchmarks/bench_bounds.py
    assert "1,000,000 rows × 18 columns" in text
    assert "first 5 rows" in text
    assert "min, max, mean" not in text  # no statistics above the row threshold


def test_pandas_series():
    import pandas as pd

    text = ai_repr(pd.Series([3, 1, 2], name="n"))["text/plain"]
    assert text.startswith("pandas.Series 'n': 3 values, dtype int64")
    assert "min 1, max 3, mean 2" in text


def test_polars_dataframe_series_and_lazyframe():
    import polars as pl

    df = pl.DataFrame({"x": [1, 2, None], "name": ["a", "b", "c"]})
    text = ai_repr(df)["text/plain"]
    assert text.startswith("polars.DataFrame: 3 rows × 2 columns")
    assert "x: Int64" in text and "name: String" in text and "null counts" in text
    assert ai_repr(df["x"])["text/plain"].startswith("polars.Series 'x': 3 values, dtype Int64")

    calls = []

    def spy(batch):
        calls.append(1)
        return batch

    lazy = df.lazy().map_batches(spy).with_columns(pl.col("x") * 2)
    text = ai_repr(lazy)["text/plain"]
    assert text.startswith("polars.LazyFrame (not collected; schema only)")
    assert "x: Int64" in text
    assert calls == []  # the query plan never ran


def test_numpy_arrays_and_small_uint8_images():
    import numpy as np

    data = ai_repr(np.arange(12.0).reshape(3, 4))
    assert data["text/plain"].startswith("numpy.ndarray: shape (3, 4), dtype float64")
    assert "min 0, max 11, mean 5.5" in data["text/plain"]
    assert "image/png" not in data
    rgb = np.zeros((20, 30, 3), dtype="uint8")
    assert png_size(ai_repr(rgb)["image/png"]) == (30, 20)
    assert png_size(ai_repr(np.zeros((5, 7), dtype="uint8"))["image/png"]) == (7, 5)
    assert "image/png" not in ai_repr(rgb, mimetypes=["text/plain"])
    assert "image/png" not in ai_repr(np.zeros((20, 30, 7), dtype="uint8"))


def test_matplotlib_figure_and_axes():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3), dpi=100)
    ax1.plot([1, 2, 3], label="up")
    ax1.set_title("Growth")
    ax1.set_xlabel("day")
    ax1.set_ylabel("count")
    ax1.legend()
    fig.suptitle("Report")
    try:
        data = ai_repr(fig)
        assert png_size(data["image/png"]) == (800, 300)
        text = data["text/plain"]
        assert "title 'Report'" in text and "axes 0: title 'Growth'" in text
        assert "x label 'day'" in text and "y label 'count'" in text and "legend 'up'" in text
        axes = ai_repr(ax1)
        assert "matplotlib axes: title 'Growth'" in axes["text/plain"]
        assert "whole figure: 2 axes" in axes["text/plain"]
        assert "image/png" not in ai_repr(fig, mimetypes=["text/plain"])
        big = plt.figure(figsize=(30, 10), dpi=100)
        assert max(png_size(ai_repr(big)["image/png"])) <= 1024
    finally:
        plt.close("all")


def test_pil_image_thumbnail():
    from PIL import Image

    data = ai_repr(Image.new("RGB", (3000, 1500), "red"))
    assert data["text/plain"].startswith("PIL Image: 3000×1500 pixels, mode RGB")
    assert png_size(data["image/png"]) == (1024, 512)
    assert png_size(ai_repr(Image.new("I;16", (10, 10)))["image/png"]) == (10, 10)


def test_altair_chart_png_and_summary():
    import altair as alt
    import pandas as pd

    chart = (
        alt.Chart(pd.DataFrame({"a": list("xyz"), "b": [1, 3, 2]}))
        .mark_bar()
        .encode(x="a", y="b")
        .properties(title="Bars")
    )
    data = ai_repr(chart)
    assert data["text/plain"].startswith("Altair chart: ")
    assert "bar" in data["text/plain"] and "Bars" in data["text/plain"]
    w, h = png_size(data["image/png"])
    assert w > 50 and h > 50

    remote = alt.Chart("https://example.com/data.csv").mark_point().encode(x="a:Q")
    text = ai_repr(remote)["text/plain"]
    assert "not rendered" in text and "never fetched" in text


def test_plotly_figure_summary():
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(x=[1, 2, 3], y=[4, 5, 6], name="trend"))
    fig.update_layout(title="Plotly title", xaxis_title="time")
    text = ai_repr(fig)["text/plain"]
    assert text.startswith("Plotly figure: ")
    assert "scatter" in text and "Plotly title" in text and "time" in text


def test_exception_with_traceback():
    def inner():
        raise ValueError("bad value")

    try:
        inner()
    except ValueError as exc:
        error = exc
    text = ai_repr(error)["text/plain"]
    assert text.startswith("exception ValueError: bad value")
    assert "Traceback (most recent call last)" in text and "in inner" in text


def test_attributes_invented_by_getattr_are_not_reprs():
    class Proxy:
        def __getattr__(self, name):
            return lambda **kw: {"text/plain": f"invented {name}"}

        def __repr__(self):
            return "Proxy()"

    assert ai_repr(Proxy()) == {"text/plain": f"{MOD}.Proxy: Proxy()"}


def test_formatter_and_format_use_the_builtins_from_the_start():
    code = (
        "from jupyter_ai_vision.ai_repr import formatter, registry\n"
        "r = registry.format(KeyError('k'))\n"
        "print(r.source, formatter(KeyError('k'))['text/plain'].splitlines()[0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "builtin exception KeyError: 'k'"


def test_a_class_object_is_described_as_a_class():
    import pandas as pd

    assert ai_repr(pd.DataFrame) == {"text/plain": "type: <class 'pandas.DataFrame'>"}
    assert ai_repr(WithRepr)["text/plain"] == f"type: <class '{MOD}.WithRepr'>"


def test_name_lookup_does_not_trigger_lazy_submodule_imports():
    # plotly imports its submodules lazily: matching "plotly.basedatatypes.BaseFigure" must
    # not load plotly.basedatatypes just because plotly itself is imported.
    code = (
        "import sys, plotly\n"
        "from jupyter_ai_vision.ai_repr import ai_repr\n"
        "ai_repr(1)\n"
        "print('plotly.basedatatypes' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
