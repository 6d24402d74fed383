"""Grading time against the size of the streamed text: linear, 100 MB under 10 s.

    python benchmarks/bench_grade.py [--mb 100] [--delta-chars 100]

Builds the UI events of one long answer (text deltas of --delta-chars characters, a done
event carrying the whole text), feeds them through the client model and every rule of the
default profile, and prints the seconds for 1/4, 1/2 and all of --mb, with the ratio per
doubling (about 2 when linear). Competitor: the same grading with the text accumulated by
``str +=`` on the state, as it was before (quadratic; 5/10/20 MB took 4.1/7.8/22.8 s), run
only up to --naive-mb. Exits 1 when --mb takes 10 s or more.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time

from streambench.grade.client import consume
from streambench.grade.dialects import UIEvent
from streambench.grade.profile import default_profile
from streambench.grade.rules import RunContext, check_rules

TARGET_S = 10.0


def events(megabytes: float, delta_chars: int) -> list[UIEvent]:
    delta = ("streaming text " * (delta_chars // 15 + 1))[:delta_chars]
    n = int(megabytes * 1e6) // delta_chars
    text = [UIEvent(float(i), "text", text=delta) for i in range(n)]
    done = UIEvent(float(n), "done", text=delta * n, data={})
    return [UIEvent(0.0, "status", text="thinking"), *text, done]


def grade(stream: list[UIEvent]) -> float:
    start = time.perf_counter()
    state = consume(stream)
    ctx = RunContext(state, "chat", expected_text=state.final_text)
    check_rules(ctx, default_profile())
    return time.perf_counter() - start


def naive_grade(stream: list[UIEvent]) -> float:
    """The old accumulation: one ``+=`` on an attribute per delta (a full copy each time)."""

    class Old:
        streamed_text = ""

    start = time.perf_counter()
    old = Old()
    for event in stream:
        if event.kind == "text":
            old.streamed_text += event.text or ""
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=100.0)
    parser.add_argument("--delta-chars", type=int, default=100)
    parser.add_argument("--naive-mb", type=float, default=2.0)
    args = parser.parse_args()
    seconds = {}
    for fraction in (0.25, 0.5, 1.0):
        mb = args.mb * fraction
        seconds[mb] = grade(events(mb, args.delta_chars))
        print(f"grading {mb:g} MB of streamed text: {seconds[mb]:.2f} s")
    sizes = sorted(seconds)
    for a, b in itertools.pairwise(sizes):
        print(f"  x{b / a:g} text -> x{seconds[b] / seconds[a]:.2f} time")
    naive = naive_grade(events(args.naive_mb, args.delta_chars))
    ours = grade(events(args.naive_mb, args.delta_chars))
    print(
        f"{args.naive_mb:g} MB: str += accumulation alone {naive:.2f} s; full grading now "
        f"{ours:.2f} s (ratio {naive / ours:.1f}x)"
    )
    ok = seconds[args.mb] < TARGET_S
    print(
        f"{args.mb:g} MB in {seconds[args.mb]:.2f} s: {'ok' if ok else 'over'}"
        f" (target < {TARGET_S:g} s)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
