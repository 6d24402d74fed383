"""Short forms of the replay benchmarks: they run and print their figures (no timing checks)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
from tests.conftest import CORPUS_DIR, REPO_ROOT, corpus_files, needs_chromium

BENCHMARKS = REPO_ROOT / "benchmarks"


def run(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


@pytest.mark.slow
def test_bench_replay_prints_modelled_wall_and_ratio() -> None:
    if not corpus_files():
        pytest.skip("corpus folder absent")
    out = run("bench_replay.py", "--corpus", str(CORPUS_DIR), "--limit", "5", "--repeat", "1")
    assert "modelled duration:" in out and "virtual replay:" in out and "ratio" in out


@pytest.mark.slow
def test_bench_serve_prints_percentiles() -> None:
    if not corpus_files():
        pytest.skip("corpus folder absent")
    out = run("bench_serve.py", "--corpus", str(CORPUS_DIR), "--streams", "5", "--max-ms", "2000")
    assert "p50" in out and "p99" in out and "max" in out


@pytest.mark.slow
@needs_chromium
def test_bench_report_prints_load_time_size_and_ratio(tmp_path: Path) -> None:
    from streambench.report.files import write_reports
    from streambench.runner.matrix import Matrix, run_matrix

    frame = run_matrix(Matrix(cases=[str(REPO_ROOT / "fixtures" / "chat-hello")]))
    write_reports(frame, tmp_path)
    out = run("bench_report.py", "--results", str(tmp_path), "--repeat", "1")
    assert "report.html load:" in out and "MB" in out and "ratio" in out


@pytest.mark.slow
def test_bench_matrix_prints_ratio_and_stages() -> None:
    out = run("bench_matrix.py", "--limit", "2", "--repeat", "1", "--seeds", "1")
    stages = ("SUT's own work", "virtual-time loop", "start-up", "load average at start")
    for line in ("default:", "heavy:", "ratio", *stages):
        assert line in out
    assert "x the SUT's own work" in out


@pytest.mark.slow
def test_bench_servers_runs_every_python_server() -> None:
    out = run(
        "bench_servers.py",
        "--streams",
        "20",
        "--events",
        "20",
        "--stagger-ms",
        "200",
        "--servers",
        "serve,fake-provider,floor",
    )
    rows = [
        line.split()
        for line in out.splitlines()
        if line.split()[:1] in (["serve"], ["fake-provider"], ["floor"])
    ]
    assert [r[0] for r in rows] == ["serve", "fake-provider", "floor"]
    assert all(r[1:4] == ["20", "20", "0"] for r in rows), out  # every stream complete


def _bench_matrix() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_matrix", BENCHMARKS / "bench_matrix.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_matrix_charges_library_code_to_whoever_called_it() -> None:
    """The SUT's own httpx client and web framework are the SUT's work; httpx objects the
    replay transport builds are the transport's; our ASGI driver is plumbing."""
    bench = _bench_matrix()
    site = "/venv/lib/python3.11/site-packages"
    sut = ("/repo/src/streambench/reference/providers.py", 1, "stream")
    read = (f"{site}/httpx/_models.py", 982, "aiter_bytes")
    transport = ("/repo/src/streambench/replay/transports.py", 181, "respond")
    build = (f"{site}/httpx/_models.py", 383, "__init__")
    driver = ("/repo/src/streambench/suts/inprocess.py", 293, "main")
    route = (f"{site}/starlette/routing.py", 700, "__call__")
    # pstats: func -> (calls, calls, own s, cumulative s, {caller: (calls, calls, own s, cum s)})
    stats = {
        sut: (1, 1, 1.0, 3.0, {}),
        read: (2, 2, 2.0, 2.0, {sut: (2, 2, 2.0, 2.0)}),
        transport: (1, 1, 0.5, 0.8, {}),
        build: (1, 1, 0.3, 0.3, {transport: (1, 1, 0.3, 0.3)}),
        driver: (1, 1, 0.25, 1.0, {}),
        route: (1, 1, 0.75, 0.75, {driver: (1, 1, 0.75, 0.75)}),
    }
    seconds = bench.stage_seconds(SimpleNamespace(stats=stats))
    assert seconds["SUT's own work"] == pytest.approx(3.75)
    assert seconds["replay transport"] == pytest.approx(0.8)
    assert seconds["ASGI/httpx plumbing"] == pytest.approx(0.25)
