"""CLI start-up: commands load their heavy dependencies (pandas, the evaluation runner, the
reference app, servers) when they run, not when ``streambench`` starts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = (
    "pandas",
    "numpy",
    "plotly",
    "streambench.runner.matrix",
    "streambench.report.files",
    "streambench.reference.app",
    "starlette.applications",
    "uvicorn",
    "httpx",
    "looptime",
)


def modules_loaded(code: str) -> set[str]:
    """The names in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    prelude = "import json, sys\n"
    epilogue = "\nprint(json.dumps(sorted(sys.modules)), file=sys.__stderr__)\n"
    done = subprocess.run(
        [sys.executable, "-c", prelude + code + epilogue],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stderr.splitlines()[-1]))


def run_cli(*args: str) -> str:
    return f"""
from streambench.cli import main
try:
    main({list(args)!r})
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
"""


def test_import_streambench_cli_loads_neither_pandas_nor_the_runner() -> None:
    loaded = modules_loaded("import streambench.cli")
    assert {"pandas", "streambench.runner.matrix"}.isdisjoint(loaded)


def test_the_command_modules_load_nothing_heavy_at_import() -> None:
    loaded = modules_loaded("import streambench.cli")
    assert {f"streambench.cli.{m}" for m in ("evaluate", "record", "replay", "uses")} <= loaded
    assert sorted(loaded.intersection(HEAVY)) == []


def test_help_loads_nothing_heavy() -> None:
    loaded = modules_loaded(run_cli("--help"))
    assert sorted(loaded.intersection(HEAVY)) == []


def test_inspect_loads_the_transcript_stack_only() -> None:
    loaded = modules_loaded(run_cli("inspect", "recordings/"))
    assert {"streambench.transcript", "streambench.transcript.inspect"} <= loaded
    assert sorted(loaded.intersection(HEAVY)) == []


def test_run_help_needs_no_evaluation_stack() -> None:
    loaded = modules_loaded(run_cli("run", "--help"))
    assert sorted(loaded.intersection(HEAVY)) == []


def test_run_writes_its_reports_without_pandas_and_pyarrow_only_after_the_runs(
    tmp_path: Path,
) -> None:
    """``streambench run`` formats results.csv and the other files itself; pyarrow (and
    numpy with it) loads for the parquet file, once the runs are done."""
    during = """
import streambench.runner.matrix as matrix
run_one = matrix.run_one
seen = []
def watched(spec, *args, **kwargs):
    seen.append("pyarrow" in sys.modules)
    return run_one(spec, *args, **kwargs)
matrix.run_one = watched
"""
    args = ("run", "--case", "fixtures/chat-hello", "--chunking", "events", "--out", str(tmp_path))
    check = "\nassert seen and not any(seen), seen\n"
    loaded = modules_loaded(during + run_cli(*args) + check)
    assert "pandas" not in loaded
    assert "pyarrow.parquet" in loaded and (tmp_path / "results.parquet").is_file()


def test_version_is_the_installed_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    from streambench.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code in (0, None)
    assert capsys.readouterr().out == f"streambench {version('streambench')}\n"
