"""``streambench case new``: a case folder written from a recording, ready to edit."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from streambench.cli import app, err_console
from streambench.errors import StreambenchError

case_app = typer.Typer(help="Author test cases (docs/cases.md).", no_args_is_help=True)
app.add_typer(case_app, name="case")

# The library's parameter names, as this command spells them.
_OPTIONS = {"source": "from"}


@case_app.command("new")
def new_command(
    source: Annotated[
        Path,
        typer.Option(
            "--from",
            help="The recording: a transcript or a vcrpy cassette (its first streamed"
            " interaction gives the request).",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="The case folder to write (new, or empty).", show_default=False
        ),
    ],
    mode: Annotated[
        str | None,
        typer.Option(
            help="chat, job_code or workflow (default: the recording's mode, from its prefill).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write a case folder from a recording: its request and expected answer, ready to edit.

    OUT gets a commented case.yaml and a copy of the recording; grade it with
    `streambench run --case OUT`.
    """
    from streambench.runner.cases import load_case, write_case

    try:
        folder = write_case(source, out, mode)
    except StreambenchError as exc:
        if exc.param in _OPTIONS:
            raise type(exc)(exc.detail, param=_OPTIONS[exc.param]) from None
        raise
    case = load_case(folder)
    expected = [k for k in ("text", "code", "yaml") if getattr(case, f"expect_{k}") is not None]
    expects = ", ".join(expected) or "the recording's answer"
    err_console.print(
        f"wrote {folder / 'case.yaml'} ({case.mode}; expects {expects});"
        f" grade it with: streambench run --case {folder}",
        markup=False,
    )
