"""``streambench shrink``: a failing run of a results file -> a minimal case and a pytest file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from streambench.cli import app, err_console, run_progress

if TYPE_CHECKING:
    from streambench.uses.shrink import ShrinkResult

DEFAULT_BUDGET_S = 60.0  # the library's default, repeated so --help needs no import


@app.command("shrink")
def shrink_command(
    results: Annotated[Path, typer.Argument(help="An --out folder or a results file.")],
    run: Annotated[
        str | None,
        typer.Option(help="The run to shrink: its row number (0-based) or its run id."),
    ] = None,
    case: Annotated[str | None, typer.Option(help="The first failing run of this case.")] = None,
    rule: Annotated[
        str | None,
        typer.Option(help="The rule it must keep breaking (default: the run's first one)."),
    ] = None,
    sut: Annotated[str | None, typer.Option(help="The first failing run of this SUT.")] = None,
    budget_s: Annotated[
        float, typer.Option(min=0.1, help="Stop searching after this many seconds.")
    ] = DEFAULT_BUDGET_S,
    out: Annotated[
        Path | None,
        typer.Option(help="Where the case folder goes (default: RESULTS/shrunk/)."),
    ] = None,
    cases: Annotated[
        Path, typer.Option(help="Where to find the case when the results lack case_path.")
    ] = Path("fixtures"),
) -> None:
    """Re-run a failing run while reducing its fault, latency, upstream content and cut
    points; write the smallest variant that still breaks the same rule as a case folder
    with a pytest file. The first failing run unless --run or --case/--rule/--sut say."""
    from rich.progress import TextColumn, TimeElapsedColumn

    from streambench.report.files import load_results, run_id
    from streambench.uses.shrink import pick_run, shrink_run, spec_of

    frame = load_results(results)
    rows = frame.to_dict(orient="records")
    row, chosen_rule = pick_run(rows, run, case, rule, sut)
    out_dir = out or (results if results.is_dir() else Path(".")) / "shrunk"
    source = run_id(row)
    err_console.print(f"shrinking {source} ({chosen_rule}), budget {budget_s:g} s", markup=False)
    with run_progress(TextColumn("{task.description}"), TimeElapsedColumn()) as bar:
        task = bar.add_task("shrinking")
        result = shrink_run(
            spec_of(row, cases),
            chosen_rule,
            out_dir,
            budget_s,
            lambda step, size: bar.update(task, description=f"{step}: {size}"),
            source=source,
        )
    print_result(result)


def print_result(result: ShrinkResult) -> None:
    """before -> after, where the case went, and the one-line reproduction."""
    ended = "" if result.complete else " (budget spent: the smallest found so far)"
    err_console.print(
        f"{result.rule}: {result.before} -> {result.after} in {result.runs} runs, "
        f"{result.elapsed_s:.1f} s{ended}",
        markup=False,
    )
    err_console.print(f"case: {result.case_dir}/  test: {result.test_file}", markup=False)
    err_console.print(f"reproduce: {result.command}", markup=False)
