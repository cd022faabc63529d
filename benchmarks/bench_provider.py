"""Provider benchmarks: start-up import cost and first-token overhead.

    LITELLM_LOCAL_MODEL_COST_MAP=True python benchmarks/bench_provider.py [--runs 7] [--calls 60]

1. Import cost at Jupyter server start: fresh interpreters import what a jupyter-ai server
   imports anyway (jupyter_ai_magics + jupyter-ai's chat handler base), then additionally
   this package's entry points (provider, embeddings, /see handler). Median of ``--runs``.
   Target: <= 150 ms added, and litellm NOT imported.
2. First-token latency against the local recording server: a direct ``litellm.acompletion``
   stream vs ``VisionProvider.astream`` (LangChain, 2.x) and ``llm.stream.stream_chat``
   (plain litellm, 3.x) (same model, same server, interleaved). Target: overhead <= 10 ms
   at p50 for each.
3. Event-loop stall of a process's first streamed reply (fresh interpreters, litellm imported
   before the clock starts; a ticker task every 2 ms, worst gap): a direct
   ``litellm.acompletion`` stream (LiteLLM prices the stream on the loop, loading tiktoken's
   encodings: the stall any caller inherits) vs ``llm.stream.stream_chat`` (which lets them
   load in a worker thread first). Interleaved, median of ``--runs``. No target: what is left
   with the warm-up is tiktoken's Rust constructor, which holds the GIL in any thread.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

BASELINE = "import jupyter_ai_magics, jupyter_ai.chat_handlers.base"
ENTRY_POINTS = "import jupyter_ai_vision.hosts.jupyter_ai_2.provider, jupyter_ai_vision.hosts.jupyter_ai_2.embeddings, jupyter_ai_vision.hosts.jupyter_ai_2.see"
# One fresh interpreter per run: time the baseline import, then the entry points on top of
# it (what they add to a server that has loaded jupyter-ai anyway). Timing both in the same
# process keeps the machine's load drift out of the difference; a separate baseline-only
# interpreter is timed too, for the ratio.
PROBE = """
import json, sys, time
t0 = time.perf_counter()
{baseline}
t1 = time.perf_counter()
{entry_points}
t2 = time.perf_counter()
print(json.dumps({{"baseline": t1 - t0, "added": t2 - t1, "litellm": "litellm" in sys.modules}}))
"""


def _import_times() -> dict[str, float | bool]:
    code = PROBE.format(baseline=BASELINE, entry_points=ENTRY_POINTS)
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_imports(runs: int) -> dict[str, float | bool]:
    _import_times()  # warm the file cache / .pyc
    results = [_import_times() for _ in range(runs)]
    b = statistics.median(float(r["baseline"]) for r in results)
    a = statistics.median(float(r["added"]) for r in results)
    return {
        "baseline_ms": b * 1e3,
        "with_entry_points_ms": (a + b) * 1e3,
        "added_ms": a * 1e3,
        "ratio": (a + b) / b,
        "litellm_imported": any(bool(r["litellm"]) for r in results),
    }


async def _first_token_direct(litellm, url: str) -> float:
    start = time.perf_counter()
    stream = await litellm.acompletion(
        model="openai/gpt-4o-mini",
        api_base=url,
        api_key="sk-bench",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
        max_retries=0,
        timeout=30,
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            elapsed = time.perf_counter() - start
            break
    await stream.aclose()
    return elapsed


async def _first_token_provider(provider) -> float:
    start = time.perf_counter()
    agen = provider.astream("hi")
    async for chunk in agen:
        if chunk.content:
            elapsed = time.perf_counter() - start
            break
    await agen.aclose()
    return elapsed


async def _first_token_stream_chat(url: str) -> float:
    from jupyter_ai_vision.llm.stream import stream_chat

    start = time.perf_counter()
    messages = [{"role": "user", "content": "hi"}]
    agen = stream_chat(messages, model="openai/gpt-4o-mini", api_base=url, api_key="sk-bench")
    async for _text in agen:
        elapsed = time.perf_counter() - start
        break
    await agen.aclose()
    return elapsed


async def bench_first_token(calls: int) -> dict[str, float]:
    import litellm

    from jupyter_ai_vision.hosts.jupyter_ai_2.provider import VisionProvider
    from jupyter_ai_vision.testing import ModelServer

    server = ModelServer().start()
    server.set_reply("first token then more words")
    provider = VisionProvider(
        model_id="openai/gpt-4o-mini", api_base=server.url, api_key="sk-bench"
    )
    for _ in range(5):  # warm-up: connections, litellm's lazy imports
        await _first_token_direct(litellm, server.url)
        await _first_token_provider(provider)
        await _first_token_stream_chat(server.url)
    direct, ours, plain = [], [], []
    for _ in range(calls):
        direct.append(await _first_token_direct(litellm, server.url))
        ours.append(await _first_token_provider(provider))
        plain.append(await _first_token_stream_chat(server.url))
    server.stop()
    d, p, s = statistics.median(direct), statistics.median(ours), statistics.median(plain)
    return {
        "direct_p50_ms": d * 1e3,
        "provider_p50_ms": p * 1e3,
        "overhead_p50_ms": (p - d) * 1e3,
        "ratio": p / d,
        "stream_chat_p50_ms": s * 1e3,
        "stream_chat_overhead_p50_ms": (s - d) * 1e3,
        "stream_chat_ratio": s / d,
    }


# One fresh interpreter per run (the encodings load once per process).
FIRST_STREAM = """
import asyncio, json, os, sys, time
from jupyter_ai_vision.llm._litellm import import_litellm_async
from jupyter_ai_vision.testing import ModelServer

async def reply(litellm, entry, url):
    messages = [{"role": "user", "content": "hi"}]
    if entry == "direct":
        stream = await litellm.acompletion(
            model="openai/gpt-4o", api_base=url, api_key="sk-bench", messages=messages,
            stream=True, stream_options={"include_usage": True}, max_retries=0, timeout=30,
        )
        async for _ in stream:
            pass
        return
    from jupyter_ai_vision.llm.stream import stream_chat
    async for _ in stream_chat(messages, model="openai/gpt-4o", api_base=url, api_key="sk-bench"):
        pass

async def main(entry):
    litellm = await import_litellm_async()
    gaps = []
    async def ticker():
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.002)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now
    with ModelServer() as server:
        server.set_reply("first token then more words")
        tick = asyncio.create_task(ticker())
        await asyncio.sleep(0.2)
        start = time.perf_counter()
        await reply(litellm, entry, server.url)
        elapsed = time.perf_counter() - start
        await asyncio.sleep(0.3)
        tick.cancel()
    print(json.dumps({"stall": max(gaps), "reply": elapsed}))

asyncio.run(main(sys.argv[1]))
"""


def _first_stream(entry: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", FIRST_STREAM, entry],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_first_stream(runs: int) -> dict[str, Any]:
    direct, ours = [], []
    for _ in range(runs):
        direct.append(_first_stream("direct"))
        ours.append(_first_stream("stream_chat"))
    return {
        "direct_stall_ms": statistics.median(r["stall"] for r in direct) * 1e3,
        "direct_reply_ms": statistics.median(r["reply"] for r in direct) * 1e3,
        "ours_stall_ms": statistics.median(r["stall"] for r in ours) * 1e3,
        "ours_reply_ms": statistics.median(r["reply"] for r in ours) * 1e3,
        "direct_all_ms": [round(r["stall"] * 1e3) for r in direct],
        "ours_all_ms": [round(r["stall"] * 1e3) for r in ours],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--calls", type=int, default=60)
    args = parser.parse_args()

    imports = bench_imports(args.runs)
    print(f"import at server start (median of {args.runs} fresh interpreters)")
    print(f"  baseline (jupyter_ai_magics + chat handler base): {imports['baseline_ms']:8.1f} ms")
    print(
        f"  + provider, embeddings, /see entry points:        "
        f"{imports['with_entry_points_ms']:8.1f} ms"
    )
    print(
        f"  added: {imports['added_ms']:.1f} ms (x{imports['ratio']:.3f}; target <= 150 ms); "
        f"litellm imported: {imports['litellm_imported']} (target: False)"
    )

    tokens = asyncio.run(bench_first_token(args.calls))
    print(f"first token, local recording server ({args.calls} calls each, interleaved)")
    print(f"  direct litellm.acompletion p50: {tokens['direct_p50_ms']:7.2f} ms")
    print(f"  VisionProvider.astream     p50: {tokens['provider_p50_ms']:7.2f} ms")
    print(f"  llm.stream.stream_chat     p50: {tokens['stream_chat_p50_ms']:7.2f} ms")
    print(
        f"  overhead p50: provider {tokens['overhead_p50_ms']:.2f} ms "
        f"(x{tokens['ratio']:.3f}), stream_chat {tokens['stream_chat_overhead_p50_ms']:.2f} ms "
        f"(x{tokens['stream_chat_ratio']:.3f}); target <= 10 ms"
    )
    first = bench_first_stream(args.runs)
    print(
        f"event-loop stall of the first streamed reply (median of {args.runs} fresh interpreters)"
    )
    print(
        f"  direct litellm.acompletion: worst gap {first['direct_stall_ms']:7.1f} ms "
        f"(runs: {first['direct_all_ms']}), reply {first['direct_reply_ms']:.0f} ms"
    )
    print(
        f"  llm.stream.stream_chat:     worst gap {first['ours_stall_ms']:7.1f} ms "
        f"(runs: {first['ours_all_ms']}), reply {first['ours_reply_ms']:.0f} ms"
    )
    ok = (
        imports["added_ms"] <= 150
        and not imports["litellm_imported"]
        and tokens["overhead_p50_ms"] <= 10
        and tokens["stream_chat_overhead_p50_ms"] <= 10
    )
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
