"""``streambench record``, ``proxy``, ``scan`` and ``fake-provider``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from streambench import _server
from streambench.cli import app, err_console, options_named
from streambench.errors import ConfigError
from streambench.record.recorder import PROVIDERS

if TYPE_CHECKING:
    from streambench.record.redact import Redactor

# The recorder, proxy and servers (httpx, starlette, uvicorn) load inside the commands.

console = Console(highlight=False, soft_wrap=True)

RedactHeader = Annotated[
    list[str], typer.Option("--redact-header", help="Extra header to redact (repeatable).")
]
RedactQuery = Annotated[
    list[str], typer.Option("--redact-query", help="Extra query parameter to redact.")
]
RedactPath = Annotated[
    list[str], typer.Option("--redact-path", help="JSON-body path to redact (a.b.*.c).")
]
RedactPattern = Annotated[
    list[str], typer.Option("--redact-pattern", help="Regex to redact everywhere.")
]
RedactConfig = Annotated[
    Path | None, typer.Option("--redact-config", help="YAML: headers, query, json_paths, patterns.")
]


def redactor_of(
    headers: list[str], query: list[str], paths: list[str], patterns: list[str], cfg: Path | None
) -> Redactor:
    """The redactor of the ``--redact-*`` options (shared by record, proxy and import)."""
    from streambench.record.redact import Redactor, load_config, make_config

    with options_named(
        headers="--redact-header", query_params="--redact-query", patterns="--redact-pattern"
    ):
        config = make_config(headers, query, paths, patterns)
    if cfg is not None:
        config = config.merged(load_config(cfg))
    return Redactor(config)


ConnectTimeout = Annotated[
    float, typer.Option("--connect-timeout", help="Seconds to connect to the upstream.")
]
ReadTimeout = Annotated[
    float, typer.Option("--read-timeout", help="Seconds the upstream may stay silent mid-stream.")
]
TotalTimeout = Annotated[
    float, typer.Option("--total-timeout", help="Seconds one upstream call may take in all.")
]


def _parse_headers(values: list[str]) -> dict[str, str]:
    headers = {}
    for value in values:
        name, sep, content = value.partition(":")
        if not sep or not name.strip():
            raise ConfigError(f"--header {value!r}: expected NAME:VALUE")
        headers[name.strip()] = content.strip()
    return headers


@app.command("record")
def record_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Transcript file (or folder).")],
    provider: Annotated[str, typer.Option(help=f"One of {', '.join(PROVIDERS)}.")] = "anthropic",
    request: Annotated[Path | None, typer.Option(help="Request body (JSON or YAML).")] = None,
    prompt: Annotated[str | None, typer.Option(help="Last user message.")] = None,
    model: Annotated[str | None, typer.Option(help="Model name.")] = None,
    base_url: Annotated[
        str | None, typer.Option(help="Server to record from (the endpoint URL for 'url').")
    ] = None,
    header: Annotated[
        list[str], typer.Option("--header", "-H", help="Extra request header NAME:VALUE.")
    ] = [],  # noqa: B006 - typer reads the default, never mutates it
    repeat: Annotated[int, typer.Option(min=1, help="Record N times (OUT is a folder).")] = 1,
    matrix: Annotated[
        Path | None, typer.Option(help="YAML: prompts x variants (OUT is a folder).")
    ] = None,
    notes: Annotated[str | None, typer.Option(help="Free text for meta.notes.")] = None,
    redact_header: RedactHeader = [],  # noqa: B006
    redact_query: RedactQuery = [],  # noqa: B006
    redact_path: RedactPath = [],  # noqa: B006
    redact_pattern: RedactPattern = [],  # noqa: B006
    redact_config: RedactConfig = None,
    connect_timeout: ConnectTimeout = 10.0,
    read_timeout: ReadTimeout = 60.0,
    total_timeout: TotalTimeout = 600.0,
) -> None:
    """Send a streaming request and save the raw chunks with their arrival times.

    Exit 0 when every recording is complete, 1 when one was cut short (saved, truncated),
    2 when a request got no response at all (nothing saved)."""
    from rich.progress import Progress

    from streambench._yaml import load_yaml
    from streambench.record.recorder import (
        Timeouts,
        auth_headers,
        check_url,
        is_recorded,
        load_request,
        plan_entries,
        record,
        request_url,
        signals_as_interrupts,
    )

    timeouts = Timeouts(connect_timeout, read_timeout, total_timeout)
    if provider not in PROVIDERS:
        raise ConfigError(f"--provider {provider!r}: unknown (known: {', '.join(PROVIDERS)})")
    redactor = redactor_of(redact_header, redact_query, redact_path, redact_pattern, redact_config)
    body = load_request(request) if request is not None else None
    plan = None
    if matrix is not None:
        plan = load_yaml(matrix, "matrix")
        if not isinstance(plan, dict):
            raise ConfigError(f"{matrix}: a matrix is a mapping with prompts and variants")
    entries = plan_entries(provider, body, prompt, model, repeat, plan, str(matrix))
    headers = {**auth_headers(provider), **_parse_headers(header)}
    api = PROVIDERS[provider].api if provider != "url" else None
    single = matrix is None and repeat == 1
    if not single and out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file; a batch (--repeat, --matrix) needs a folder")
    targets = [out if single else out / f"{entry.name}.yaml" for entry in entries]
    urls = [
        check_url(request_url(provider, base_url, entry.body.get("model") or model or ""))
        for entry in entries
    ]
    truncated = 0
    if single and out.is_dir():
        raise ConfigError(
            f"--out {out}: is a folder; one recording (no --repeat, --matrix) is a file"
        )
    # A bar on terminals only: a log gets the result lines, not a bar's leftovers.
    bar = Progress(console=err_console, transient=single, disable=not err_console.is_terminal)
    with signals_as_interrupts(), bar as progress:
        task = progress.add_task("recording", total=len(entries))
        for entry, target, url in zip(entries, targets, urls, strict=True):
            if not single and is_recorded(target):
                progress.advance(task)
                continue
            try:
                t = record(
                    url,
                    entry.body,
                    out=target,
                    provider=provider,
                    api=api,
                    headers=headers,
                    redactor=redactor,
                    timeouts=timeouts,
                    notes=notes,
                )
            except KeyboardInterrupt:
                err_console.print(f"interrupted: partial transcript saved to {target}")
                raise typer.Exit(130) from None
            progress.advance(task)
            state = "ok"
            if t.meta.truncated:
                truncated += 1
                state = f"truncated ({t.meta.notes or 'cut short'})"
            err_console.print(
                f"{t.path}: HTTP {t.response.status}, {len(t.response.body)} bytes, "
                f"{len(t.response.chunks or [])} chunks, {state}",
                markup=False,
            )
    if truncated:
        err_console.print(f"{truncated} recording(s) cut short", markup=False)
        raise typer.Exit(1)


@app.command("proxy")
def proxy_command(
    upstream: Annotated[str, typer.Option(help="Provider base URL to forward to.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the transcripts.")],
    host: Annotated[str, typer.Option(help="Interface to bind.")] = _server.LOOPBACK,
    port: Annotated[int, typer.Option(help="Port (0 picks a free one).")] = 0,
    save_all: Annotated[bool, typer.Option("--all", help="Save non-streamed calls too.")] = False,
    redact_header: RedactHeader = [],  # noqa: B006
    redact_query: RedactQuery = [],  # noqa: B006
    redact_path: RedactPath = [],  # noqa: B006
    redact_pattern: RedactPattern = [],  # noqa: B006
    redact_config: RedactConfig = None,
    connect_timeout: ConnectTimeout = 10.0,
    read_timeout: ReadTimeout = 60.0,
    total_timeout: TotalTimeout = 600.0,
) -> None:
    """A recording reverse proxy: point an application's base URL at it."""
    from streambench.record.proxy import proxy_app
    from streambench.record.recorder import Timeouts, check_url

    redactor = redactor_of(redact_header, redact_query, redact_path, redact_pattern, redact_config)
    check_url(upstream, "upstream")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file, not a folder")
    timeouts = Timeouts(connect_timeout, read_timeout, total_timeout)
    sock = _server.bind_socket(host, port, exposes="can send requests through it, all recorded")
    app_ = proxy_app(upstream, out, redactor, save_all, timeouts)

    def ready(url: str) -> None:
        shown = redactor.url(upstream)
        err_console.print(f"streambench proxy on {url} -> {shown}, saving to {out}/", markup=False)

    _server.serve_forever(app_, on_ready=ready, sock=sock)


@app.command("scan")
def scan_command(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to scan.")],
    pattern: Annotated[
        list[str], typer.Option("--pattern", help="Extra secret regex (repeatable).")
    ] = [],  # noqa: B006
    config: RedactConfig = None,
) -> None:
    """Find secrets (provider keys, bearer tokens, key headers / query parameters)."""
    from streambench.record.redact import load_config, make_config, scan

    with options_named(patterns="--pattern"):
        extra = make_config(patterns=pattern)
    if config is not None:
        extra = extra.merged(load_config(config))
    findings = scan(paths, extra.patterns)
    for finding in findings:
        console.print(str(finding), markup=False)
    if findings:
        err_console.print(f"{len(findings)} secret(s) found")
        raise typer.Exit(1)


@app.command("fake-provider")
def fake_provider_command(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = _server.LOOPBACK,
    port: Annotated[int, typer.Option(help="Port (0 picks a free one).")] = 0,
    script: Annotated[Path | None, typer.Option(help="Script YAML (rules).")] = None,
    rate: Annotated[float, typer.Option(help="Content tokens per second (0: no pauses).")] = 200,
    ttfb: Annotated[float, typer.Option(help="Pause before the first event, ms.")] = 0,
) -> None:
    """An offline provider: anthropic-messages, openai-chat and openai-responses endpoints."""
    from streambench.record.fake_provider import fake_provider_app

    app_ = fake_provider_app(script, rate=rate, ttfb_ms=ttfb)
    sock = _server.bind_socket(host, port, exposes="can use the fake provider")

    def ready(url: str) -> None:
        # stdout, flushed: scripts and tests read the URL from the first line.
        print(url, flush=True)
        err_console.print(f"streambench fake-provider on {url}")

    _server.serve_forever(app_, on_ready=ready, sock=sock, loop=_server.PRECISE_LOOP)
