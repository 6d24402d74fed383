"""``streambench import`` (cassettes to transcripts) and ``streambench inspect`` (their content)."""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from streambench.cli import app
from streambench.cli.record import (
    RedactConfig,
    RedactHeader,
    RedactPath,
    RedactPattern,
    RedactQuery,
    redactor_of,
)

if TYPE_CHECKING:
    from rich.table import Table

    from streambench.transcript.inspect import TranscriptInfo

# Piped output (CI logs, files) gets room for the whole table instead of rich's 80 columns.
_PIPE_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 180
console = Console(highlight=False, soft_wrap=True, width=_PIPE_WIDTH)


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


@app.command("import")
def import_command(
    cassettes: Annotated[
        list[Path], typer.Argument(help="vcrpy / pytest-recording cassettes, or folders of them.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write transcripts into.")],
    redact_header: RedactHeader = [],  # noqa: B006 - typer reads the default, never mutates it
    redact_query: RedactQuery = [],  # noqa: B006
    redact_path: RedactPath = [],  # noqa: B006
    redact_pattern: RedactPattern = [],  # noqa: B006
    redact_config: RedactConfig = None,
) -> None:
    """Turn each streamed interaction of the cassettes into a transcript file (redacted as
    ``record`` redacts: headers, URL, request and response bodies)."""
    from streambench.transcript import import_cassettes

    redactor = redactor_of(redact_header, redact_query, redact_path, redact_pattern, redact_config)
    files, transcripts, skipped = import_cassettes(cassettes, out, redactor.transcript)
    for t in transcripts:
        console.print(
            f"{t.path}  {t.meta.provider}/{t.meta.api}  {len(t.response.body):,} bytes",
            markup=False,
        )
    console.print(
        f"imported {len(transcripts)} streamed interaction(s) from {len(files)} cassette(s)"
        f" into {out} ({skipped} not streamed, skipped)",
        markup=False,
    )


def _print_answers(files: list[Path]) -> None:
    from streambench.grade.expect import recorded_answer, recorded_mode
    from streambench.transcript import load_file
    from streambench.transcript.inspect import display_name

    for path in files:
        for t in load_file(path)[0]:
            mode, _ = recorded_mode(t.request.body)
            answer = recorded_answer(t, mode)
            console.print(f"== {display_name(t)} ({t.meta.api}, {mode})", markup=False)
            if answer.text is None:
                console.print("(no answer could be decoded)", markup=False)
            else:
                console.print(answer.text, markup=False)
            if answer.code is not None:
                console.print(f"-- {'yaml' if mode == 'workflow' else 'code'}", markup=False)
                console.print(answer.code, markup=False)


def _table(rows: list[TranscriptInfo]) -> Table:
    from rich.table import Table

    # Numbers never wrap; the file name folds when the terminal is narrow.
    table = Table(caption="text / tool json / thinking: characters of content")
    table.add_column("file", overflow="fold", min_width=16)
    for name in ("provider", "api"):
        table.add_column(name, no_wrap=True)
    for name in ("events", "bytes", "ms", "text", "tool json", "thinking"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("stop", no_wrap=True)
    table.add_column("errors", justify="right", no_wrap=True)
    for r in rows:
        table.add_row(
            r.file,
            r.provider,
            r.api,
            str(r.events),
            f"{r.bytes:,}",
            "-" if r.duration_ms is None else f"{r.duration_ms:,.0f}",
            str(r.text_chars),
            str(r.tool_json_chars),
            str(r.thinking_chars),
            r.stop_reason or "-",
            str(len(r.errors)) if r.errors else "-",
        )
    return table


@app.command("inspect")
def inspect_command(
    paths: Annotated[
        list[Path], typer.Argument(help="Transcripts, cassettes, or folders of them.")
    ],
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help="table for people, json for scripts.")
    ] = OutputFormat.table,
    text: Annotated[
        bool,
        typer.Option(
            "--text",
            help="Print each stream's recorded answer (what a case without expect expects).",
        ),
    ] = False,
) -> None:
    """Show provider, api, size, timing and content of each recorded stream."""
    from streambench.transcript import expand_paths, load_file
    from streambench.transcript.inspect import describe

    files = expand_paths(paths)
    if text:
        _print_answers(files)
        return
    rows: list[TranscriptInfo] = []
    skipped = 0
    for path in files:
        transcripts, file_skipped = load_file(path)
        skipped += file_skipped
        rows.extend(describe(t) for t in transcripts)
    if output_format is OutputFormat.json:
        print(json.dumps([r.as_dict() for r in rows], indent=2, ensure_ascii=False))
        return
    where = ", ".join(str(p) for p in paths)
    if not rows:
        console.print(f"no transcripts or streamed cassettes found in {where}", markup=False)
        return
    console.print(_table(rows))
    with_errors = sum(1 for r in rows if r.errors)
    console.print(
        f"{len(rows)} stream(s) from {len(files)} file(s), {sum(r.events for r in rows):,} events,"
        f" {with_errors} with error events, {skipped} non-streamed interaction(s) skipped",
        markup=False,
    )
