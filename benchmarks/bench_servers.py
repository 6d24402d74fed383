"""`serve` and `fake-provider` under load, beside a plain uvicorn + starlette floor and aimock.

    python benchmarks/bench_servers.py [--levels 10,100,500,1000,2000] [--events 200]
        [--gap-ms 20] [--servers serve,fake-provider,floor,aimock] [--stagger-ms 1000]
        [--repeat N] [--quick] [--fifo]

Each server streams openai-chat answers of ``--events`` content events ``--gap-ms`` apart;
N concurrent streams (starts spread over ``--stagger-ms``) read them over loopback. The server
runs pinned to core 0, the client to core 1 (``os.sched_setaffinity``; on a 1-core machine
both share it). Per event: |arrival - scheduled|, where content event k of a stream is
scheduled ``k * gap`` after the stream's start, taken as the earliest start that puts no
event early (the same measure for every server: jitter and drift, not time to first byte).
Prints per server and level: streams completed, errors (failed or incomplete streams), server
and client CPU seconds, p50 / p99 / max in ms; with ``--repeat`` the median of each column
too, and the load average before and after. A warm-up stream goes first (lazy imports).
``--quick``: 100, 1000 and 2000 streams of serve, fake-provider and aimock (about 3 minutes;
``--quick --repeat 3`` for medians). Goals (issue 18): no errors at 2000, p99 <= 2 ms at
100 and <= 5 ms at 1000, ahead of aimock at every level.

``--fifo`` runs every server and the client at real-time priority (``SCHED_FIFO``; root or
CAP_SYS_NICE): on a shared machine whose kernel does not preempt on wake-up (this one:
``PREEMPT_NONE``, 250 Hz), a woken server waits up to a 4 ms tick whenever anything else runs
on its core, which then dominates p99 at 10 and 100 streams; with ``--fifo`` the figures are
the servers' own (and a saturated server takes its whole core from everything else).

aimock (``@copilotkit/aimock``) runs when node and npm are present: it is installed into a
temporary folder (``npm install``) unless ``--aimock DIR`` names a folder that has it.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from streambench._server import _raise_open_file_limit, stop_process
from streambench.transcript import save, synth

SERVER_CORE, CLIENT_CORE = 0, 1
PROMPT_WORDS = 200
FLOOR_APP = """
import asyncio, json, sys
import uvicorn
from starlette.applications import Starlette
from starlette.responses import StreamingResponse
from starlette.routing import Route

EVENTS, GAP_S = int(sys.argv[2]), float(sys.argv[3]) / 1000

async def stream(request):
    async def events():
        loop = asyncio.get_running_loop()
        start = loop.time()
        for k in range(EVENTS):
            delay = start + k * GAP_S - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            chunk = {"choices": [{"index": 0, "delta": {"content": f"w{k} "}}]}
            yield f"data: {json.dumps(chunk, separators=(',', ':'))}\\n\\n"
        yield "data: [DONE]\\n\\n"
    return StreamingResponse(events(), media_type="text/event-stream")

app = Starlette(routes=[Route("/v1/chat/completions", stream, methods=["POST"])])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


FIFO = False  # --fifo: real-time priority for the servers and the client


def pin(core: int) -> Callable[[], None]:
    def apply() -> None:
        if hasattr(os, "sched_setaffinity") and core < (os.cpu_count() or 1):
            os.sched_setaffinity(0, {core})
        if FIFO:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))

    return apply


def words(n: int) -> str:
    return " ".join(f"w{k}" for k in range(n))


def commands(events: int, gap_ms: float, tmp: Path, aimock: Path | None) -> dict[str, list[str]]:
    """The command starting each server on ``{port}``."""
    text = words(events)
    transcript = synth.make_transcript(
        "openai-chat", synth.render("openai-chat", text=text), request_body={"stream": True}
    )
    save(transcript, tmp / "stream.yaml")
    (tmp / "floor.py").write_text(FLOOR_APP)
    cli = [sys.executable, "-c", "from streambench.cli import main; main()"]
    found = {
        "serve": [
            *cli,
            "serve",
            str(tmp / "stream.yaml"),
            "--port",
            "{port}",
            "--latency",
            f"const:ttfb={gap_ms:g},gap={gap_ms:g}",
        ],
        # one token per content event: --rate 1000/gap tokens per second
        "fake-provider": [
            *cli,
            "fake-provider",
            "--port",
            "{port}",
            "--rate",
            f"{1000 / gap_ms:g}",
        ],
        "floor": [sys.executable, str(tmp / "floor.py"), "{port}", str(events), f"{gap_ms:g}"],
    }
    if aimock is not None:
        chunk_chars = 7
        content = "".join(f"w{k:05d} " for k in range(events))  # exactly events chunks
        fixture = {
            "fixtures": [{"match": {"userMessage": "bench"}, "response": {"content": content}}]
        }
        (tmp / "aimock.json").write_text(json.dumps(fixture))
        cli_js = aimock / "node_modules" / "@copilotkit" / "aimock" / "dist" / "cli.js"
        found["aimock"] = [
            "node",
            str(cli_js),
            "-p",
            "{port}",
            "-f",
            str(tmp / "aimock.json"),
            "-l",
            f"{gap_ms:g}",
            "-c",
            str(chunk_chars),
            "--log-level",
            "silent",
        ]
    return found


def install_aimock(folder: Path | None, tmp: Path) -> Path | None:
    if folder is not None:
        return folder
    if not (shutil.which("node") and shutil.which("npm")):
        return None
    target = tmp / "aimock"
    target.mkdir()
    done = subprocess.run(
        ["npm", "install", "--silent", "--prefix", str(target), "@copilotkit/aimock"],
        capture_output=True,
        timeout=300,
    )
    return target if done.returncode == 0 else None


@contextmanager
def running(command: list[str]) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    argv = [a.replace("{port}", str(port)) for a in command]
    # stderr to a file: a pipe nobody reads would stall a server that logs under load
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=err, preexec_fn=pin(SERVER_CORE)
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if proc.poll() is not None:
                        err.seek(0)
                        raise RuntimeError(f"{argv[:3]} exited: {err.read()[-500:]!r}") from None
                    time.sleep(0.05)
            yield port, proc
        finally:
            stop_process(proc)


def server_cpu_s(pid: int) -> float:
    """User + system CPU of a running process (Linux /proc), seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


REQUEST_BODY = json.dumps(
    {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "bench"}]}
)


def lateness_ms(arrivals: list[float], gap_ms: float) -> list[float]:
    """|arrival - scheduled| in ms per content event of one stream: event k is due k gaps
    after the stream's start, taken as the start that puts no event early."""
    starts = [t - k * gap_ms / 1000 for k, t in enumerate(arrivals)]
    start = min(starts, default=0.0)
    return [(s - start) * 1000 for s in starts]


def load(
    port: int, streams: int, stagger_s: float, body: bytes, timeout_s: float
) -> tuple[list[list[float] | str], float]:
    """Open ``streams`` connections (starts spread over ``stagger_s``) that each POST ``body``
    and read the response to its end; arrival times of content events per stream (None for
    a stream that failed or did not end by ``timeout_s``: what went wrong instead) and the
    client's CPU seconds.

    One epoll loop, no asyncio, so that the client costs little per event (a recv and a
    count) and is not what limits the figures; an event's arrival is when the poll that
    saw its last bytes returned.
    """
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode() + body
    cpu0 = time.process_time()
    poller = select.epoll()
    t0 = time.monotonic()
    starts = [t0 + i * stagger_s / streams for i in range(streams)]
    deadline = t0 + stagger_s + timeout_s
    results: list[list[float] | str] = ["timeout"] * streams
    open_streams: dict[int, tuple[socket.socket, int, list[float], bytearray]] = {}
    started = 0
    try:
        while (started < streams or open_streams) and time.monotonic() < deadline:
            now = time.monotonic()
            while started < streams and starts[started] <= now:
                try:
                    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                    sock.sendall(request)
                    sock.setblocking(False)
                    poller.register(sock.fileno(), select.EPOLLIN)
                    open_streams[sock.fileno()] = (sock, started, [], bytearray())
                except OSError as exc:
                    results[started] = f"connect: {exc.strerror or exc}"
                started += 1
            wait = starts[started] - time.monotonic() if started < streams else 0.1
            ready = poller.poll(min(max(wait, 0.0), 0.1))
            now = time.monotonic()
            for fd, _ in ready:
                sock, index, arrivals, pending = open_streams[fd]
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    data = None
                    results[index] = f"recv: {exc.strerror or exc}"
                if data:
                    # Complete events only (a read may end inside one), content events only
                    # (not the role event's empty content).
                    pending += data
                    cut = pending.rfind(b"\n\n") + 2
                    if cut > 1:
                        done = pending[:cut]
                        del pending[:cut]
                        count = done.count(b'"content":"') - done.count(b'"content":""')
                        arrivals += [now] * count
                    continue
                if data is not None:
                    results[index] = arrivals if arrivals else "no events"
                poller.unregister(fd)
                sock.close()
                del open_streams[fd]
    finally:
        for sock, *_ in open_streams.values():
            sock.close()
        poller.close()
    return results, time.process_time() - cpu0


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def measure(
    command: list[str], streams: int, args: argparse.Namespace, body: bytes
) -> tuple[Counter[str], dict[str, float]]:
    """One run of a fresh server at ``streams`` concurrent streams: what went wrong with the
    streams that failed (count per kind), and its figures."""
    stream_s = args.events * args.gap_ms / 1000
    with running(command) as (port, proc):
        load(port, 1, 0.0, body, stream_s + 30)  # warm-up: lazy imports
        cpu0 = server_cpu_s(proc.pid)
        results, client_cpu = load(port, streams, args.stagger_ms / 1000, body, stream_s + 30)
        cpu = server_cpu_s(proc.pid) - cpu0
    streamed = [r for r in results if isinstance(r, list)]
    done = [r for r in streamed if len(r) >= args.events]
    late = sorted(e for r in streamed for e in lateness_ms(r, args.gap_ms))
    failures = Counter(
        r if isinstance(r, str) else f"{len(r)} of {args.events} events"
        for r in results
        if not (isinstance(r, list) and len(r) >= args.events)
    )
    return failures, {
        "done": len(done),
        "errors": streams - len(done),
        "cpu": cpu,
        "client": client_cpu,
        "p50": pct(late, 0.5),
        "p99": pct(late, 0.99),
        "max": late[-1] if late else float("nan"),
    }


COLUMNS = ("done", "errors", "cpu", "client", "p50", "p99", "max")


def row(name: str, streams: int | str, figures: dict[str, float]) -> str:
    f = figures
    return (
        f"{name:<14}{streams:>8}{f['done']:>6.0f}{f['errors']:>7.0f}{f['cpu']:>7.1f}"
        f"{f['client']:>8.1f}{f['p50']:>9.2f}{f['p99']:>9.2f}{f['max']:>10.2f}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--levels", "--streams", dest="levels", default="10,100,500,1000,2000",
        help="concurrent streams per run, comma-separated (default 10,100,500,1000,2000)",
    )  # fmt: skip
    parser.add_argument("--events", type=int, default=PROMPT_WORDS, help="events per stream")
    parser.add_argument("--gap-ms", type=float, default=20.0, help="ms between events")
    parser.add_argument(
        "--stagger-ms", type=float, default=1000.0, help="stream starts spread over this"
    )
    parser.add_argument(
        "--servers",
        default="serve,fake-provider,floor,aimock",
        help="servers to run, comma-separated (default serve,fake-provider,floor,aimock)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per level (default 1); with 2+, medians too"
    )
    parser.add_argument(
        "--quick", action="store_true",
        help="a few minutes: levels 100,1000,2000 of serve, fake-provider and aimock",
    )  # fmt: skip
    parser.add_argument("--aimock", type=Path, help="folder with node_modules/@copilotkit/aimock")
    parser.add_argument(
        "--fifo", action="store_true",
        help="servers and client at real-time priority (SCHED_FIFO: root or CAP_SYS_NICE)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    global FIFO
    FIFO = args.fifo
    if args.quick:
        args.levels, args.servers = "100,1000,2000", "serve,fake-provider,aimock"
    levels = [int(n) for n in args.levels.split(",")]
    pin(CLIENT_CORE)()
    _raise_open_file_limit()  # the client holds a socket per stream
    # the fake provider echoes the prompt: Echo: + one content event per word
    fake_body = json.dumps(
        {
            "model": "gpt-4o",
            "stream": True,
            "messages": [{"role": "user", "content": words(args.events - 1)}],
        }
    ).encode()
    with tempfile.TemporaryDirectory(prefix="bench-servers-") as tmp_dir:
        tmp = Path(tmp_dir)
        wanted = args.servers.split(",")
        aimock = install_aimock(args.aimock, tmp) if "aimock" in wanted else None
        table = commands(args.events, args.gap_ms, tmp, aimock)
        print(
            f"{args.events} events {args.gap_ms:g} ms apart per stream, starts over"
            f" {args.stagger_ms:g} ms; server on core {SERVER_CORE}, client on core {CLIENT_CORE}"
            f"{' (SCHED_FIFO)' if FIFO else ''}; load average {os.getloadavg()[0]:.1f}"
        )
        print(
            f"{'server':<14}{'streams':>8}{'done':>6}{'errors':>7}{'cpu s':>7}{'client':>8}"
            f"{'p50 ms':>9}{'p99 ms':>9}{'max ms':>10}"
        )
        for name in wanted:
            if name not in table:
                print(f"{name:<14} not run (node/npm or the package is missing)")
                continue
            body = fake_body if name == "fake-provider" else REQUEST_BODY.encode()
            for n in levels:
                runs = []
                for _ in range(args.repeat):
                    failures, figures = measure(table[name], n, args, body)
                    runs.append(figures)
                    print(row(name, n, figures), flush=True)
                    if failures:
                        print(f"{'':<14}failed: {dict(failures)}", flush=True)
                if args.repeat > 1:
                    median = {c: statistics.median(r[c] for r in runs) for c in COLUMNS}
                    print(row(name, f"{n} med", median), flush=True)
        print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
