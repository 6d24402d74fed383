"""Pacing precision of ``streambench serve`` over loopback with many concurrent streams.

    python benchmarks/bench_serve.py [--streams 100] [--corpus DIR | --transcript FILE]

Starts ``streambench serve`` in a subprocess (tokens:rate=50 latency), opens N concurrent
streams with a minimal asyncio + h11 client (so the client adds as little delay as possible),
and compares when each byte arrived with when the plan scheduled it, measured from the
moment the response headers arrived. Prints p50 / p99 / max of |arrival - scheduled| in ms
(target: p99 <= 2 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import statistics
import subprocess
import sys
import time
from itertools import accumulate
from pathlib import Path

import h11

from streambench.replay import ReplayPlan, build_plan
from streambench.transcript import Transcript, load_inputs

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
LATENCY = "tokens:rate=50"


def pick(transcripts: list[Transcript], max_ms: float) -> Transcript:
    """A typical stream: lasting 1 s to ``max_ms`` at tokens:rate=50, with the chunk rate
    (chunks per second) closest to the corpus median."""
    plans = [(build_plan(t, latency=LATENCY), t) for t in transcripts]
    rates = {id(t): len(p.chunks) / max(p.duration_ms / 1000, 1e-3) for p, t in plans}
    median = statistics.median(rates.values())
    fitting = [t for p, t in plans if 1000 <= p.duration_ms <= max_ms] or [t for _, t in plans]
    return min(fitting, key=lambda t: abs(rates[id(t)] - median))


async def one_stream(host: str, port: int, plan: ReplayPlan, start_s: float) -> list[float]:
    """|arrival - scheduled| in ms for each read of the body."""
    await asyncio.sleep(start_s)
    ends = list(accumulate(len(c.data) for c in plan.chunks))
    reader, writer = await asyncio.open_connection(host, port)
    conn = h11.Connection(h11.CLIENT)
    request = h11.Request(method="POST", target="/v1/stream", headers=[("host", host)])
    writer.write(conn.send(request) + conn.send(h11.EndOfMessage()))
    loop = asyncio.get_running_loop()
    t0 = 0.0
    offset = 0
    errors: list[float] = []
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(65536))
            continue
        now = loop.time()
        if isinstance(event, h11.Response):
            t0 = now
        elif isinstance(event, h11.Data):
            offset += len(event.data)
            scheduled_ms = plan.chunks[bisect.bisect_left(ends, offset)].t_ms
            errors.append(abs((now - t0) * 1000 - scheduled_ms))
        elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
            break
    writer.close()
    return errors


async def run_all(
    host: str, port: int, plan: ReplayPlan, streams: int, stagger_s: float
) -> list[float]:
    # Concurrent users do not start in the same microsecond: spread the starts evenly.
    starts = [i * stagger_s / streams for i in range(streams)]
    results = await asyncio.gather(*(one_stream(host, port, plan, s) for s in starts))
    return [e for errors in results for e in errors]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--transcript", type=Path, help="replay this instead of a corpus pick")
    parser.add_argument("--max-ms", type=float, default=5000, help="longest stream to pick")
    parser.add_argument(
        "--stagger-ms", type=float, default=1000, help="spread the stream starts over this"
    )
    args = parser.parse_args()

    source = args.transcript or args.corpus
    transcript = (
        load_inputs([source])[0] if args.transcript else pick(load_inputs([source]), args.max_ms)
    )
    plan = build_plan(transcript, latency=LATENCY)
    command = "from streambench.cli import main; main()"
    server = subprocess.Popen(
        [sys.executable, "-c", command, "serve", str(transcript.path), "--latency", LATENCY],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().split(" at ")[-1].strip()
        host, port = url.removeprefix("http://").split(":")
        wall = time.perf_counter()
        errors = asyncio.run(run_all(host, int(port), plan, args.streams, args.stagger_ms / 1000))
        wall = time.perf_counter() - wall
    finally:
        server.terminate()
        server.wait(timeout=10)

    errors.sort()
    p99 = errors[min(len(errors) - 1, int(0.99 * len(errors)))]
    print(f"stream:  {transcript.path.name if transcript.path else '?'}")
    print(
        f"         {len(plan.chunks)} chunks over {plan.duration_ms:,.0f} ms,"
        f" x{args.streams} concurrent (starts spread over {args.stagger_ms:g} ms),"
        f" {len(errors):,} reads in {wall:.1f} s"
    )
    print(
        f"|arrival - scheduled|: p50 {statistics.median(errors):.3f} ms   p99 {p99:.3f} ms"
        f"   max {errors[-1]:.3f} ms   (target p99 <= 2 ms)"
    )


if __name__ == "__main__":
    main()
