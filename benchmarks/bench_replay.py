"""Replay every corpus stream with ``tokens:rate=50`` on virtual time; compare with real time.

    python benchmarks/bench_replay.py [--corpus DIR] [--limit N] [--repeat N]

Prints the streams' modelled duration (what a real-time replay would take), the wall time
of the virtual-time replay (every chunk delivered through ReplayPlan.aiter, clock checked),
and the ratio (target >= 1000x). Planning time is printed separately.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from streambench.replay import ReplayPlan, build_plan, run_virtual
from streambench.transcript import load_inputs

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


async def replay_all(plans: list[ReplayPlan]) -> int:
    """Consume every plan in turn, checking the clock matches the plan at each chunk."""
    loop = asyncio.get_running_loop()
    delivered = 0
    for plan in plans:
        start = loop.time()
        async for t_ms, data in plan.aiter():
            if abs((loop.time() - start) * 1000 - t_ms) > 0.01:
                raise AssertionError(f"{plan.source}: clock off the plan at {t_ms} ms")
            delivered += len(data)
    return delivered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N streams")
    parser.add_argument(
        "--repeat", type=int, default=5, help="best of N runs (the box may be busy)"
    )
    args = parser.parse_args()

    transcripts = load_inputs([args.corpus])
    if args.limit:
        transcripts = transcripts[: args.limit]
    t0 = time.perf_counter()
    plans = [build_plan(t, latency="tokens:rate=50") for t in transcripts]
    plan_s = time.perf_counter() - t0
    modelled_s = sum(p.duration_ms for p in plans) / 1000
    chunks = sum(len(p.chunks) for p in plans)

    wall_s = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        delivered = run_virtual(replay_all(plans))
        wall_s = min(wall_s, time.perf_counter() - t0)

    print(f"streams:           {len(plans)} ({chunks:,} chunks, {delivered:,} bytes)")
    print(f"modelled duration: {modelled_s:,.1f} s   (tokens:rate=50, real time)")
    print(
        f"virtual replay:    {wall_s:.3f} s wall   ratio {modelled_s / wall_s:,.0f}x (target 1000x)"
    )
    print(
        f"planning:          {plan_s:.3f} s wall   ratio incl. planning"
        f" {modelled_s / (wall_s + plan_s):,.0f}x"
    )


if __name__ == "__main__":
    main()
