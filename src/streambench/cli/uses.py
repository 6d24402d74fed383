"""``streambench chaos`` and ``streambench experiment order``: failover and order front doors."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from streambench.cli import app, err_console, run_progress
from streambench.errors import SpecError

if TYPE_CHECKING:
    import pandas as pd

    from streambench.uses.chaos import CellResult
    from streambench.uses.experiment import Comparison

# The chaos and experiment stacks (httpx, the reference chain, pandas, numpy) load inside the
# commands, so `streambench --help` stays fast.

# The experiments' --jobs (both commands run matrices the same way).
MatrixJobs = Annotated[
    int,
    typer.Option(
        min=0,
        help="Local processes for matrix runs; 0: one per core once a matrix has 64 runs"
        " per worker, else in this process (called as a library: in process).",
    ),
]

experiment_app = typer.Typer(help="Paired experiments between two systems under test.")
app.add_typer(experiment_app, name="experiment")

# Piped output (CI logs) gets room for the whole table instead of rich's 80-column default.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 130)


def _check_format(value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise SpecError(f"--format {value!r}: expected one of {', '.join(allowed)}")
    return value


@app.command()
def chaos(
    sut: Annotated[
        str,
        typer.Option(
            help="The SUT: 'reference[:k=v,...]', an ASGI module:attr[,k=v,...] or"
            " http://host:port/path[,k=v,...] (as for `run`)"
        ),
    ] = "reference",
    sut_cmd: Annotated[
        str | None,
        typer.Option(help="Start the http:// SUT with this command (provider URLs -> replay)"),
    ] = None,
    providers: Annotated[
        str,
        typer.Option(
            help="The SUT's upstream chain, in call order: anthropic, openai, anthropic-sync, ..."
        ),
    ] = "anthropic,openai,anthropic-sync",
    replay_port: Annotated[
        int, typer.Option(help="Port of the replay host for http SUTs (0: any free one).")
    ] = 0,
    kinds: Annotated[
        str | None,
        typer.Option(
            help="Fault kinds to try, e.g. http,disconnect (default: all; for a SUT all but"
            " rate-limit, see docs/chaos.md)"
        ),
    ] = None,
    dialect: Annotated[str, typer.Option(help="How to read the SUT's SSE")] = "streambench",
    profile: Annotated[
        Path | None, typer.Option(help="Profile YAML: which rules grade the cells")
    ] = None,
    chain: Annotated[
        str | None,
        typer.Option(
            help="Instead of a SUT, a provider-chain factory(providers, http) of the reference's"
            " own API: 'reference' or module:attr"
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Replay seed")] = 0,
    answer: Annotated[
        str,
        typer.Option(
            help="How the upstreams answer: 'text' (chat cells) or 'tool' (job_code cells whose"
            " upstreams call the answer tool; the reference runs with structured=tool)"
        ),
    ] = "text",
    output_format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """Every fault kind x position x place in the upstream chain: each cell one run of the SUT
    whose upstream calls get the planned faults in order, graded by the rule registry with the
    failover contract. Exit 1 when any cell fails."""
    from streambench.uses.chaos import (
        FAULT_KINDS,
        SUT_FAULT_KINDS,
        load_factory,
        parse_kinds,
        parse_providers,
        run_chaos,
        run_sut_chaos,
    )

    _check_format(output_format, ("table", "json"))
    chain_of = parse_providers(providers)
    if chain is not None and answer != "text":
        raise SpecError("--answer tool grades a SUT (--sut), not a --chain")
    if chain is not None:
        results = run_chaos(chain_of, load_factory(chain), seed, kinds=parse_kinds(kinds))
    else:
        results = run_sut_chaos(
            sut,
            chain_of,
            kinds=parse_kinds(kinds, SUT_FAULT_KINDS if kinds is None else FAULT_KINDS),
            sut_cmd=sut_cmd,
            replay_port=replay_port,
            dialect=dialect,
            profile=None if profile is None else str(profile),
            seed=seed,
            answer=answer,
        )
    if output_format == "json":
        typer.echo(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        console.print(_chaos_table(results))
        failed = sum(not r.passed for r in results)
        style = "bold red" if failed else "bold green"
        console.print(f"[{style}]{len(results) - failed}/{len(results)} cells pass[/]")
    if any(not r.passed for r in results):
        raise typer.Exit(1)


def _chaos_table(results: list[CellResult]) -> Table:
    """Rows: position x fault kind; columns: the provider under the fault, by chain place.
    A failing cell names the rules it broke and what the user was shown."""
    from rich.markup import escape

    from streambench.report.text import as_seen
    from streambench.uses.chaos import POSITIONS

    chain = sorted({(r.cell.chain_index, r.cell.chain_provider) for r in results})
    table = Table(title="Failover contract: fault position x kind x place in the chain")
    table.add_column("position", no_wrap=True)
    table.add_column("fault", no_wrap=True)
    for _, name in chain:
        table.add_column(f"fault at {name}")
    cells: dict[tuple[str, str], dict[int, str]] = {}
    for r in results:
        row = cells.setdefault((r.cell.position, r.cell.kind), {})
        if r.passed:
            row[r.cell.chain_index] = f"[green]pass[/] {r.outcome}"
        else:
            rules = "\n".join(sorted({rule for rule, _ in r.violations}))
            text = as_seen(r.shown)
            # head and tail: a restart after failover shows at the start, a cut at the end
            text = text if len(text) <= 60 else f"{text[:28]}…{text[-28:]}"
            shown = escape(text) if text else "(nothing)"
            row[r.cell.chain_index] = (
                f"[bold white on red]FAIL[/]\n[red]{rules}[/]\n[dim]shown:[/] {shown}"
            )
    for position in POSITIONS:
        for kind in sorted({k for p, k in cells if p == position}):
            row = cells[(position, kind)]
            table.add_row(position, kind, *(row.get(i, "[dim]–[/]") for i, _ in chain))
    return table


@experiment_app.command("order")
def experiment_order(
    inputs: Annotated[
        list[Path],
        typer.Argument(help="Result files, --out folders and/or matrix YAMLs (run here)"),
    ],
    baseline: Annotated[str, typer.Option(help="SUT A")] = "reference",
    variant: Annotated[str, typer.Option(help="SUT B")] = "reference:order=text_first",
    out: Annotated[Path | None, typer.Option(help="Write experiment.md/.html here")] = None,
    confidence: Annotated[float, typer.Option(help="Confidence level of the CIs")] = 0.95,
    resamples: Annotated[int, typer.Option(min=100, help="Bootstrap resamples")] = 2000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed")] = 0,
    jobs: MatrixJobs = 0,
    sut_cmd: Annotated[
        str | None,
        typer.Option(help="Start the http:// SUT with this command (provider URLs -> replay)"),
    ] = None,
    output_format: Annotated[str, typer.Option("--format", help="table, markdown or json")] = (
        "table"
    ),
) -> None:
    """Compare two orders (changes_first vs text_first) or any two SUTs on the same replays:
    paired differences, bootstrap confidence intervals, a verdict per metric. Real-time SUTs
    (http://, clock=real) run interleaved A B B A ...; the pairs show the order."""
    from streambench.runner.executors import LocalExecutor
    from streambench.uses.experiment import compare, load_or_run, to_markdown, write_report

    _check_format(output_format, ("table", "markdown", "json"))
    if not 0 < confidence < 1:
        raise SpecError(f"--confidence {confidence}: must be between 0 and 1")
    from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

    with run_progress(
        SpinnerColumn(), TextColumn("[bold]runs[/] {task.completed}"), TimeElapsedColumn()
    ) as bar:
        task = bar.add_task("runs", total=None)
        results = load_or_run(
            inputs,
            baseline,
            variant,
            LocalExecutor(jobs),
            lambda n: bar.advance(task, n),
            sut_cmd,
        )
    comparison = compare(
        results, baseline, variant, confidence=confidence, n_resamples=resamples, seed=seed
    )
    if out is not None:
        for path in write_report(comparison, out):
            err_console.print(f"wrote {path}", style="dim")
    if output_format == "json":
        typer.echo(comparison.table.to_json(orient="records", indent=2))
    elif output_format == "markdown":
        typer.echo(to_markdown(comparison))
    else:
        console.print(_experiment_table(comparison))
        if "order" in comparison.pairs.columns:
            counts = comparison.pairs["order"].value_counts()
            console.print(
                f"runs interleaved: {counts.get('AB', 0)} pairs A then B,"
                f" {counts.get('BA', 0)} B then A"
            )


@experiment_app.command("designs")
def experiment_designs(
    inputs: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Matrix YAMLs naming their own sut (run here) and/or result files; default:"
            " the four reference designs under fixtures/experiments/"
        ),
    ] = None,
    baseline: Annotated[
        str | None, typer.Option(help="The SUT the others are compared with (default: the first)")
    ] = None,
    metrics: Annotated[
        str, typer.Option(help="Comma-separated metrics: ttfc_ms, ttft_ms, total_ms, ...")
    ] = "ttfc_ms,ttft_ms",
    out: Annotated[Path | None, typer.Option(help="Write designs.md/.csv here")] = None,
    confidence: Annotated[float, typer.Option(help="Confidence level of the CIs")] = 0.95,
    resamples: Annotated[int, typer.Option(min=100, help="Bootstrap resamples")] = 2000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed")] = 0,
    jobs: MatrixJobs = 0,
    output_format: Annotated[str, typer.Option("--format", help="table, markdown or json")] = (
        "table"
    ),
) -> None:
    """Compare several designs, each on its own recordings, with one baseline: prefill vs tool
    call, changes first vs text first. Paired differences of time-to-code (ttfc_ms) and
    time-to-text (ttft_ms) with bootstrap confidence intervals, one row per design and metric."""
    from streambench.runner.executors import LocalExecutor
    from streambench.uses.experiment import (
        DESIGN_MATRICES,
        check_metrics,
        compare_designs,
        designs_markdown,
        load_designs,
        write_designs,
    )

    _check_format(output_format, ("table", "markdown", "json"))
    if not 0 < confidence < 1:
        raise SpecError(f"--confidence {confidence}: must be between 0 and 1")
    from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

    chosen = [m.strip() for m in metrics.split(",") if m.strip()]
    check_metrics(chosen)
    paths = inputs or [Path(p) for p in DESIGN_MATRICES]
    with run_progress(
        SpinnerColumn(), TextColumn("[bold]runs[/] {task.completed}"), TimeElapsedColumn()
    ) as bar:
        task = bar.add_task("runs", total=None)
        results, suts = load_designs(paths, LocalExecutor(jobs), lambda n: bar.advance(task, n))
    designs = compare_designs(
        results,
        suts,
        baseline=baseline,
        metrics=chosen,
        confidence=confidence,
        n_resamples=resamples,
        seed=seed,
    )
    if out is not None:
        for path in write_designs(designs, out):
            err_console.print(f"wrote {path}", style="dim")
    if output_format == "json":
        typer.echo(designs.table.to_json(orient="records", indent=2))
    elif output_format == "markdown":
        typer.echo(designs_markdown(designs))
    else:
        console.print(_verdict_table(f"A = {designs.baseline}", designs.table, confidence))


def _experiment_table(comparison: Comparison) -> Table:
    title = f"B = {comparison.variant}  vs  A = {comparison.baseline}"
    return _verdict_table(title, comparison.table, comparison.confidence)


def _verdict_table(title: str, frame: pd.DataFrame, confidence: float) -> Table:
    """Verdict rows (metric, n, means, CI, verdict), led by the design B when ``frame`` has
    several (a ``variant`` column)."""
    from streambench.uses.experiment import format_number

    pct = round(confidence * 100)
    lead = ["B"] if "variant" in frame.columns else []
    table = Table(title=title)
    for name in (*lead, "metric", "n", "mean A", "mean B", "mean B-A", f"{pct}% CI", "verdict"):
        justify = "left" if name in ("B", "metric", "verdict") else "right"
        table.add_column(name, justify=justify, no_wrap=True)
    for row in frame.itertuples():
        style = "bold" if row.verdict.endswith("better") else "dim"
        table.add_row(
            *([row.variant] if lead else []),
            row.metric,
            str(row.n),
            format_number(row.mean_a),
            format_number(row.mean_b),
            format_number(row.mean_diff),
            f"[{format_number(row.ci_low)}, {format_number(row.ci_high)}]",
            f"[{style}]{row.verdict}[/]",
        )
    return table
