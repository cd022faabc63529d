"""``@df`` from the Jupyter server side through a real idle kernel: end-to-end latency.

Measures, in the same run against the same kernel:

- baseline: a trivial ``user_expressions`` round trip (``1``) over a long-lived client;
- transport: the same trivial expression through :func:`kernel_query.evaluate`
  (fresh client per request, as ``/see`` does);
- ``@df``: :func:`server.kernels.fetch_from_kernel` for a 1,000,000 × 18 DataFrame — validation,
  the silent execute_request, the kernel-side ``ai_repr`` (shape, dtypes, head) and the
  conversion into parts. Target: p50 <= 50 ms.

Run: ``.venv/bin/python benchmarks/bench_ai_repr.py [--n 50]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from jupyter_client.manager import AsyncKernelManager

from jupyter_ai_vision.server import kernels as kernel_query
from jupyter_ai_vision.server.kernels import fetch_from_kernel

SETUP = (
    "import numpy as np, pandas as pd\n"
    "df = pd.DataFrame(np.random.default_rng(0).random((1_000_000, 18)),"
    " columns=[f'c{i}' for i in range(18)])"
)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def timed(n: int, call) -> list[float]:
    for _ in range(3):  # warm-up
        await call()
    out = []
    for _ in range(n):
        start = time.perf_counter()
        await call()
        out.append((time.perf_counter() - start) * 1000)
    return out


async def main(n: int) -> None:
    km = AsyncKernelManager(kernel_name="python3")
    await km.start_kernel()
    client = km.client()
    client.start_channels()
    await client.wait_for_ready(timeout=60)
    reply = await client.execute(SETUP, reply=True, timeout=120)
    assert reply["content"]["status"] == "ok", reply["content"]
    try:

        async def baseline():
            await client.execute(
                "", silent=True, store_history=False, user_expressions={"r": "1"}, reply=True
            )

        async def transport():
            await kernel_query.evaluate(km, "1", timeout=10)

        async def at_df():
            parts, notes = await fetch_from_kernel(km, ["df"])
            assert parts and not notes and "1,000,000 rows" in parts[0].text, notes

        rows = [
            ("baseline: user_expressions '1', long-lived client", await timed(n, baseline)),
            ("transport: evaluate('1'), client per request", await timed(n, transport)),
            ("@df: 1M x 18 DataFrame, end to end", await timed(n, at_df)),
        ]
    finally:
        client.stop_channels()
        await km.shutdown_kernel(now=True)
    base = statistics.median(rows[0][1])
    print(f"{'measure':<52} {'p50 ms':>8} {'p95 ms':>8} {'x base':>7}")
    for label, values in rows:
        p50 = statistics.median(values)
        print(f"{label:<52} {p50:8.1f} {pct(values, 0.95):8.1f} {p50 / base:7.1f}")
    p50 = statistics.median(rows[2][1])
    print(f"@df p50 {p50:.1f} ms: {'within' if p50 <= 50 else 'OVER'} the 50 ms target (n={n})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50)
    asyncio.run(main(parser.parse_args().n))
