"""`serve` and `fake-provider` under load, beside a plain uvicorn + starlette floor and aimock.

    python benchmarks/bench_servers.py [--streams 10,100,500,1000,2000] [--events 200]
        [--gap-ms 20] [--servers serve,fake-provider,floor,aimock] [--stagger-ms 1000]

Each server streams openai-chat answers of ``--events`` content events ``--gap-ms`` apart;
N concurrent streams (starts spread over ``--stagger-ms``) read them over loopback. The server
runs pinned to core 0, the client to core 1 (``os.sched_setaffinity``; on a 1-core machine
both share it). Per event: |arrival - scheduled|, where content event k of a stream is
scheduled ``k * gap`` after the stream's start, taken as the earliest start that puts no
event early (the same measure for every server: jitter and drift, not time to first byte).
Prints per server and level: streams completed, errors, server CPU seconds, p50 / p99 / max
in ms. A warm-up stream goes first (lazy imports). Goals (issue 18): no errors at
2000, p99 <= 2 ms at 100 and <= 5 ms at 1000, ahead of aimock at every level.

aimock (``@copilotkit/aimock``) runs when node and npm are present: it is installed into a
temporary folder (``npm install``) unless ``--aimock DIR`` names a folder that has it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

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


def pin(core: int) -> Callable[[], None]:
    def apply() -> None:
        if hasattr(os, "sched_setaffinity") and core < (os.cpu_count() or 1):
            os.sched_setaffinity(0, {core})

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
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=pin(SERVER_CORE)
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None:
                    err = proc.stderr.read()[-500:] if proc.stderr else b""
                    raise RuntimeError(f"{argv[:3]} exited: {err!r}") from None
                time.sleep(0.05)
        yield port, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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


async def one_stream(port: int, start_s: float, gap_ms: float, body: bytes) -> list[float]:
    """|arrival - scheduled| in ms per content event of one stream."""
    await asyncio.sleep(start_s)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode()
    writer.write(head + body)
    loop = asyncio.get_running_loop()
    arrivals: list[float] = []
    try:
        while data := await reader.read(65536):
            now = loop.time()
            # content events only (not the role event's empty content)
            arrivals += [now] * (data.count(b'"content":"') - data.count(b'"content":""'))
    finally:
        writer.close()
    # event k is due k gaps after the stream's start: the start that puts no event early
    starts = [t - k * gap_ms / 1000 for k, t in enumerate(arrivals)]
    start = min(starts, default=0.0)
    return [(s - start) * 1000 for s in starts]


async def load(port: int, streams: int, stagger_s: float, gap_ms: float, body: bytes):  # type: ignore[no-untyped-def]
    starts = [i * stagger_s / streams for i in range(streams)]
    return await asyncio.gather(
        *(one_stream(port, s, gap_ms, body) for s in starts), return_exceptions=True
    )


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", default="10,100,500,1000,2000")
    parser.add_argument("--events", type=int, default=PROMPT_WORDS)
    parser.add_argument("--gap-ms", type=float, default=20.0)
    parser.add_argument("--stagger-ms", type=float, default=1000.0)
    parser.add_argument("--servers", default="serve,fake-provider,floor,aimock")
    parser.add_argument("--aimock", type=Path, help="folder with node_modules/@copilotkit/aimock")
    args = parser.parse_args()
    levels = [int(n) for n in args.streams.split(",")]
    pin(CLIENT_CORE)()
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
        )
        print(
            f"{'server':<14}{'streams':>8}{'done':>6}{'errors':>7}{'cpu s':>7}"
            f"{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        )
        for name in wanted:
            if name not in table:
                print(f"{name:<14} not run (node/npm or the package is missing)")
                continue
            body = fake_body if name == "fake-provider" else REQUEST_BODY.encode()
            for n in levels:
                with running(table[name]) as (port, proc):
                    asyncio.run(one_stream(port, 0.0, args.gap_ms, body))  # warm: lazy imports
                    cpu0 = server_cpu_s(proc.pid)
                    results = asyncio.run(load(port, n, args.stagger_ms / 1000, args.gap_ms, body))
                    cpu = server_cpu_s(proc.pid) - cpu0
                failures = [r for r in results if isinstance(r, BaseException)]
                streams = [r for r in results if not isinstance(r, BaseException)]
                done = sum(1 for r in streams if len(r) >= args.events)
                errors = sorted(e for r in streams for e in r)
                print(
                    f"{name:<14}{n:>8}{done:>6}{len(failures) + len(streams) - done:>7}{cpu:>7.1f}"
                    f"{pct(errors, 0.5):>9.2f}{pct(errors, 0.99):>9.2f}"
                    f"{(errors[-1] if errors else float('nan')):>9.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
