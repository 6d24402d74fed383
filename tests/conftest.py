"""Shared test fixtures: the real provider corpus beside the checkout."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

# Property tests check behaviour, not speed: no per-example deadline, no "too slow" health
# check (a loaded 2-core CI machine must not turn a correct decoder into a failure).
settings.register_profile(
    "streambench", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("streambench")

REPO_ROOT = Path(__file__).resolve().parents[1]
CORPUS_DIR = Path(os.environ.get("STREAMBENCH_CORPUS", REPO_ROOT.parent / "shared" / "corpus"))


def corpus_files() -> list[Path]:
    """Every cassette in ../shared/corpus (empty when the folder is absent)."""
    if not CORPUS_DIR.is_dir():
        return []
    return sorted(CORPUS_DIR.glob("*.yaml"))


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    if not CORPUS_DIR.is_dir():
        pytest.skip(f"corpus folder {CORPUS_DIR} is absent (it sits beside the checkout)")
    return CORPUS_DIR


# --- the two implementations of streambench.sse's hot path -------------------------------

SSE_IMPLEMENTATIONS = ("c", "python")


def speedups_built() -> bool:
    try:
        from streambench.sse import _speedups as _sse_speedups  # noqa: F401
    except ImportError:
        return False
    return True


def skip_unless_speedups(allow_module_level: bool = False) -> None:
    """Skip when the C accelerator is not built; fail instead under
    STREAMBENCH_REQUIRE_SPEEDUPS=1 (CI sets it: a failed build must not hide)."""
    if speedups_built():
        return
    if os.environ.get("STREAMBENCH_REQUIRE_SPEEDUPS") == "1":
        pytest.fail("STREAMBENCH_REQUIRE_SPEEDUPS=1 but streambench.sse._speedups is not built")
    pytest.skip(
        "the C accelerator streambench.sse._speedups is not built",
        allow_module_level=allow_module_level,
    )


@contextmanager
def sse_implementation(name: str) -> Iterator[None]:
    """Run streambench.sse with its C accelerator ("c") or without it ("python").

    Without a built accelerator "c" skips (see skip_unless_speedups).
    """
    from streambench import sse

    if name == "c":
        skip_unless_speedups()
    saved = sse._speedups
    sse._install(saved if name == "c" else None)
    try:
        yield
    finally:
        sse._install(saved)


@pytest.fixture(scope="module", params=SSE_IMPLEMENTATIONS)
def sse_impl(request: pytest.FixtureRequest) -> Iterator[str]:
    """Module-scoped (hypothesis tests may use it): every test of the module runs on both."""
    with sse_implementation(request.param):
        yield request.param


# --- headless Chromium (Debian's package; .ci/run installs it) ---------------------------

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
)


@contextmanager
def chromium_page(page_path: Path) -> Iterator[tuple[Any, list[str]]]:
    """A local HTML file open in headless Chromium, loaded: the page and its console errors
    (and uncaught exceptions), which keep collecting while the test drives the page."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1250, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(page_path.resolve().as_uri())
            page.wait_for_load_state("load")
            yield page, errors
        finally:
            browser.close()


def cli_exit_code(argv: list[str]) -> int:
    """Run the streambench CLI in process; its exit code (what it printed stays in capsys)."""
    from streambench.cli import main

    with pytest.raises(SystemExit) as exited:
        main(argv)
    return int(exited.value.code or 0)


def run_rows(capsys: pytest.CaptureFixture[str], out: Path, *argv: str) -> list[dict[str, Any]]:
    """``streambench run ARGV`` as typed, in process, its reports in ``out``: the rows it
    printed (``--format json``)."""
    capsys.readouterr()
    assert cli_exit_code(["run", *argv, "--format", "json", "--out", str(out)]) == 0, (
        capsys.readouterr().err
    )
    return list(json.loads(capsys.readouterr().out))


def verdicts(rows: list[dict[str, Any]]) -> list[tuple[str, str, str, list[str]]]:
    """What a user is told of each run: chunking, terminal, the text shown, the rules."""
    return [
        (
            r["chunking"],
            r["terminal"],
            r["streamed_text"],
            sorted(v["rule"] for v in r["violations"]),
        )
        for r in rows
    ]


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def uvicorn_command(app: str, port: int) -> str:
    """A ``--sut-cmd`` serving the ASGI ``app`` (module:attr) on loopback ``port``."""
    uvicorn = shutil.which("uvicorn", path=str(Path(sys.executable).parent))
    assert uvicorn is not None, "uvicorn is not installed next to this python"
    return f"{uvicorn} {app} --port {port} --log-level warning"
