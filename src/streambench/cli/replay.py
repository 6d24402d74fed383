"""``streambench replay`` (one transcript, as bytes or a timeline) and ``streambench serve``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from streambench.cli import app
from streambench.errors import SpecError, TranscriptError
from streambench.transcript import Transcript, load_inputs

if TYPE_CHECKING:  # the replay engine (httpx, looptime) loads when a command runs
    from streambench.replay import ReplayPlan

console = Console(highlight=False, soft_wrap=True)

ChunkingOption = Annotated[
    str,
    typer.Option(
        "--chunking",
        "-c",
        help="bytes:N, random:min=A,max=B, events, lines, coalesce, utf8, crlf,"
        " deltas:N|random|adversarial[+transport split]",
    ),
]
LatencyOption = Annotated[
    str | None,
    typer.Option(
        "--latency",
        "-l",
        help="recorded, scale:F, const:ttfb=MS,gap=MS, tokens:rate=TPS,ttfb=MS [+jitter:sd=MS]"
        " (default: recorded when timed, else tokens:rate=50,ttfb=300)",
    ),
]
FaultOption = Annotated[
    list[str] | None,
    typer.Option(
        "--fault",
        "-f",
        help="Repeatable: http:STATUS@start, disconnect@event=N|bytes=N|text=N,"
        " error-event@event=N, stall@event=N,ms=M, truncate@event=N, garbage@event=N,"
        " duplicate@event=N",
    ),
]
SeedOption = Annotated[int, typer.Option("--seed", "-s", help="Seed of random splits/jitter.")]


def _plans(
    paths: list[Path], chunking: str, latency: str | None, faults: list[str] | None, seed: int
) -> list[ReplayPlan]:
    from streambench.replay import build_plan

    transcripts: list[Transcript] = load_inputs(paths)
    if not transcripts:
        raise TranscriptError(f"{', '.join(map(str, paths))}: no streamed transcript found")
    return [
        build_plan(t, chunking=chunking, latency=latency, faults=faults or [], seed=seed)
        for t in transcripts
    ]


def _preview(text: str, width: int = 48) -> str:
    shown = text.encode("unicode_escape").decode("ascii")
    return shown if len(shown) <= width else shown[: width - 1] + "…"


def timeline_table(plan: ReplayPlan) -> Table:
    """One row per chunk: when, how many bytes, the events it completes, their content."""
    table = Table(
        caption=f"{plan.api}  status {plan.status}  {len(plan.body):,} bytes in"
        f" {len(plan.chunks)} chunks over {plan.duration_ms:,.1f} ms  ending: {plan.ending}"
    )
    table.add_column("t_ms", justify="right")
    table.add_column("bytes", justify="right")
    table.add_column("event")
    table.add_column("content", overflow="fold")
    done: dict[int, list[tuple[str, str]]] = {}
    k = 0
    offset = 0
    ends = []
    for chunk in plan.chunks:
        offset += len(chunk.data)
        ends.append(offset)
    frame_end = 0
    for entry in plan.timeline:
        frame_end += len(entry.frame.raw)
        while k < len(ends) - 1 and ends[k] < frame_end:
            k += 1
        assert entry.event is not None
        label = entry.event.event
        if entry.frame.origin != "recorded":  # split, duplicate, garbage, error-event
            label += f" ({entry.frame.origin})"
        done.setdefault(k, []).append((label, "".join(t for _, t in entry.frame.content)))
    for i, chunk in enumerate(plan.chunks):
        events = done.get(i, [])
        table.add_row(
            f"{chunk.t_ms:,.1f}",
            str(len(chunk.data)),
            "\n".join(name for name, _ in events),
            "\n".join(_preview(text) for _, text in events),
        )
    return table


@app.command("replay")
def replay_command(
    transcript: Annotated[Path, typer.Argument(help="A transcript or cassette file.")],
    chunking: ChunkingOption = "events",
    latency: LatencyOption = None,
    fault: FaultOption = None,
    seed: SeedOption = 0,
    raw: Annotated[
        bool, typer.Option("--raw", help="Write exactly the delivered bytes to stdout.")
    ] = False,
) -> None:
    """Plan one replay and show it: a timeline, or (--raw) the bytes a client would receive."""
    plans = _plans([transcript], chunking, latency, fault, seed)
    if len(plans) > 1:
        console.print(f"{transcript}: {len(plans)} streams, showing the first", markup=False)
    if raw:
        sys.stdout.buffer.write(plans[0].body)
        sys.stdout.buffer.flush()
        return
    console.print(timeline_table(plans[0]))


@app.command("serve")
def serve_command(
    transcripts: Annotated[
        list[Path], typer.Argument(help="Transcripts, cassettes or folders, answered in order.")
    ],
    host: Annotated[str, typer.Option(help="Interface to bind (loopback by default).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port (0 picks a free one).")] = 0,
    speed: Annotated[float, typer.Option(help="Play this many times faster than planned.")] = 1.0,
    chunking: ChunkingOption = "events",
    latency: LatencyOption = None,
    fault: FaultOption = None,
    seed: SeedOption = 0,
) -> None:
    """Answer any method and path with the replays in order (cycling) until SIGINT/SIGTERM."""
    from streambench._server import PRECISE_LOOP, serve_forever
    from streambench.replay import replay_app

    if not speed > 0:
        raise SpecError(f"--speed {speed:g}: must be above 0")
    app_ = replay_app(_plans(transcripts, chunking, latency, fault, seed), speed=speed)

    def ready(url: str) -> None:
        print(f"streambench serve: {len(app_.log.plans)} replay(s) at {url}", flush=True)

    exposes = "can read the served transcripts"
    serve_forever(app_, host=host, port=port, on_ready=ready, loop=PRECISE_LOOP, exposes=exposes)
