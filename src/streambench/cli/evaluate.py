"""``streambench run`` (a matrix of replays against SUTs -> reports) and ``streambench gate``."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from streambench.cli import app, err_console
from streambench.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from streambench.evaluate.runner import Matrix

# pandas and the evaluation stack load inside the commands: `streambench --help` stays fast.
DEFAULT_CASES = "fixtures"
DEFAULT_OUT = "reports"
FORMATS = ("table", "json", "jsonl")

Many = Annotated[list[str] | None, typer.Option(show_default=False)]


def build_matrix(matrix_file: Path | None, options: dict[str, Any]) -> tuple[Matrix, str]:
    """Command-line axes override the matrix file's; unset axes take the defaults."""
    from streambench.evaluate.runner import DEFAULT_CHUNKINGS, Matrix, load_matrix

    axes: dict[str, Any] = load_matrix(matrix_file) if matrix_file else {}
    for key, value in options.items():
        if value:
            axes[key] = value
    out = axes.pop("out", None) or DEFAULT_OUT
    cases = axes.pop("cases", None) or [DEFAULT_CASES]
    if cases == [DEFAULT_CASES] and not Path(DEFAULT_CASES).is_dir():
        raise ConfigError(
            f"no cases given and no {DEFAULT_CASES}/ folder here: run from the streambench "
            "checkout or pass --case FILE_OR_FOLDER"
        )
    axes.setdefault("chunkings", list(DEFAULT_CHUNKINGS))
    return Matrix(cases=cases, **axes), out


@app.command("run")
def run_command(
    matrix_file: Annotated[Path | None, typer.Argument(help="Matrix YAML (optional).")] = None,
    case: Many = None,
    sut: Many = None,
    sut_cmd: Annotated[
        str | None, typer.Option(help="Start the http SUT with this command.")
    ] = None,
    dialect: Many = None,
    chunking: Many = None,
    latency: Many = None,
    fault: Annotated[
        list[str] | None, typer.Option(help="A fault; 'a;b' combines two in one run.")
    ] = None,
    seed: Annotated[list[int] | None, typer.Option(show_default=False)] = None,
    profile: Annotated[Path | None, typer.Option(help="Rules profile YAML.")] = None,
    out: Annotated[
        Path | None, typer.Option(help=f"Report folder [default: {DEFAULT_OUT}]")
    ] = None,
    format: Annotated[str, typer.Option("--format", help="table, json or jsonl")] = "table",
    jobs: Annotated[int, typer.Option(min=1, help="Local worker processes.")] = 1,
    executor: Annotated[str, typer.Option(help="local or dask.")] = "local",
    scheduler: Annotated[
        str | None, typer.Option(help="Dask scheduler address (default: a LocalCluster).")
    ] = None,
    replay_port: Annotated[int, typer.Option(help="Port of the replay host for http SUTs.")] = 0,
) -> None:
    """Run a matrix of replays against SUTs; write reports. Violations are data: exit 0."""
    if format not in FORMATS:
        raise ConfigError(f"--format {format!r}: expected one of {', '.join(FORMATS)}")
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from streambench.evaluate.dask_executor import make_executor
    from streambench.evaluate.report import write_reports
    from streambench.evaluate.runner import parse_faults, run_matrix

    options = {
        "cases": case,
        "suts": sut,
        "dialects": dialect,
        "chunkings": chunking,
        "latencies": latency,
        "faults": [parse_faults(f) for f in fault] if fault else None,
        "seeds": seed,
        "profile": str(profile) if profile else None,
        "sut_cmd": sut_cmd,
        "replay_port": replay_port,
        "out": str(out) if out else None,
    }
    matrix, out_dir = build_matrix(matrix_file, options)
    specs = matrix.specs()
    started = time.perf_counter()
    with Progress(
        TextColumn("[bold]runs"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("runs", total=len(specs))
        frame = run_matrix(
            matrix,
            make_executor(executor, jobs, scheduler),
            progress=lambda n: bar.advance(task, n),
            on_host=lambda url: err_console.print(f"replay host: {url}"),
        )
    elapsed_s = time.perf_counter() - started
    paths = write_reports(frame, out_dir)
    _render(frame, format)
    flagged = int((frame["n_violations"] > 0).sum()) if len(frame) else 0
    err_console.print(
        f"{len(frame)} runs in {elapsed_s:.1f} s, {flagged} with violations; "
        f"reports in {Path(out_dir)}/ ({', '.join(p.name for p in paths)})"
    )


def _render(frame: pd.DataFrame, format: str) -> None:
    import pandas as pd
    from rich.table import Table

    from streambench.evaluate.runner import ID_COLUMNS

    if format == "json":
        sys.stdout.write(frame.to_json(orient="records") + "\n")
        return
    if format == "jsonl":
        sys.stdout.write(frame.to_json(orient="records", lines=True))
        return
    table = Table(*ID_COLUMNS, "terminal", "ttfc_ms", "ttft_ms", "total_ms", "violations")
    for _, row in frame.iterrows():
        rules = sorted({v["rule"] for v in row["violations"]})
        table.add_row(
            *(str(row[c]) for c in ID_COLUMNS),
            row["terminal"],
            *(
                f"{row[m]:.0f}" if pd.notna(row[m]) else "–"
                for m in ("ttfc_ms", "ttft_ms", "total_ms")
            ),
            ", ".join(rules) or "–",
        )
    Console(highlight=False).print(table)


@app.command("gate")
def gate_command(
    results: Annotated[Path, typer.Argument(help="An --out folder or a results file.")],
    thresholds: Annotated[Path, typer.Option(help="Thresholds YAML (metrics, rules, baseline).")],
    baseline: Annotated[Path | None, typer.Option(help="Baseline results to compare with.")] = None,
) -> None:
    """Check results against thresholds: exit 0 pass, 1 fail, 2 misuse."""
    from streambench.evaluate.gate import evaluate_gate, load_thresholds
    from streambench.evaluate.report import load_results

    limits = load_thresholds(thresholds)
    frame = load_results(results)
    before = load_results(baseline) if baseline else None
    if limits.get("baseline") and before is None:
        err_console.print("gate: thresholds have a baseline section but no --baseline was given")
    findings = evaluate_gate(frame, limits, before)
    console = Console(highlight=False)
    for finding in findings:
        mark = "[green]pass[/]" if finding.passed else "[red]FAIL[/]"
        console.print(f"{mark} {finding.detail}")
    failed = [f for f in findings if not f.passed]
    console.print(f"{len(findings) - len(failed)} passed, {len(failed)} failed")
    if failed:
        raise typer.Exit(1)
