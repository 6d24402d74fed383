"""The ``streambench`` command line. Commands are thin: parse, call one library function, render.

Each command lives in a module of this package that registers itself on :data:`app`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from streambench.errors import StreambenchError

if TYPE_CHECKING:
    from rich.progress import Progress, ProgressColumn

app = typer.Typer(
    name="streambench",
    help="Record, replay and grade LLM streaming (SSE) implementations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def run_progress(*columns: ProgressColumn | str) -> Progress:
    """A transient progress display on stderr for long runs, drawn on a terminal only (a log
    gets neither the bar nor the blank line it leaves)."""
    from rich.progress import Progress

    return Progress(
        *columns, console=err_console, transient=True, disable=not err_console.is_terminal
    )


@contextmanager
def options_named(**options: str) -> Iterator[None]:
    """Library errors about a parameter name the option that set it (``headers="--redact-header"``)
    when the option is not simply ``--<parameter>``."""
    try:
        yield
    except StreambenchError as exc:
        if exc.param in options:
            exc.option = options[exc.param]
        raise


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback.
    Without ``argv`` (the console script) the process is streambench's own: see
    :func:`~streambench.runner.executors.claim_process`."""
    if argv is None:
        from streambench.runner.executors import claim_process

        claim_process()
    try:
        app(args=argv, prog_name="streambench")
    except StreambenchError as exc:
        err_console.print(f"streambench: error: {exc.for_cli()}", markup=False)
        sys.exit(2)


def _print_version(value: bool) -> None:
    if value:
        from streambench import __version__

        print(f"streambench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Record, replay and grade LLM streaming (SSE) implementations."""


# Command modules register on ``app`` when imported.
from streambench.cli import (  # noqa: E402
    cases,
    evaluate,
    record,
    reference,
    replay,
    shrink,
    transcripts,
    uses,
)

__all__ = [
    "app",
    "cases",
    "evaluate",
    "main",
    "record",
    "reference",
    "replay",
    "shrink",
    "transcripts",
    "uses",
]
