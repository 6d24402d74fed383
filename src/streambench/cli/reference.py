"""``streambench reference-server``: the reference streaming stack on a loopback port."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from streambench._server import LOOPBACK, bind_socket, serve_forever
from streambench.cli import app


@app.command("reference-server")
def reference_server(
    host: Annotated[str, typer.Option(help="Interface to bind (loopback by default).")] = LOOPBACK,
    port: Annotated[int, typer.Option(help="Port (0 picks a free one; the URL is printed).")] = 0,
    db: Annotated[Path | None, typer.Option(help="SQLite file (default: $STREAMBENCH_DB).")] = None,
) -> None:
    """Serve POST /messages (streambench SSE dialect); upstream URLs and keys come from env."""
    from streambench.reference.app import create_app
    from streambench.reference.config import ReferenceConfig

    exposes = "can send requests that spend your provider API keys"
    sock = bind_socket(
        host, port, exposes=exposes
    )  # first: a bad --port must not leave a database behind
    config = ReferenceConfig.from_env()
    if db is not None:
        config.db_path = str(db)
    serve_forever(create_app(config), on_ready=lambda url: print(url, flush=True), sock=sock)
