"""``streambench run`` (a matrix of replays against SUTs -> reports) and ``streambench gate``."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from streambench.cli import app, err_console, run_progress
from streambench.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd
    from rich.table import Table

    from streambench.report.files import ResultsSpool, Written
    from streambench.report.overview import Overview
    from streambench.suts import SutTimeouts


# The evaluation stack loads inside the commands: `streambench --help` stays fast. `run`
# loads no pandas unless --format json or jsonl asks for its JSON.
FORMATS = ("table", "json", "jsonl")
# The table format lists at most this many violations; the report files hold them all.
MAX_VIOLATION_ROWS = 25

Many = Annotated[list[str] | None, typer.Option(show_default=False)]


@app.command("run")
def run_command(
    matrix_file: Annotated[Path | None, typer.Argument(help="Matrix YAML (optional).")] = None,
    case: Many = None,
    sut: Many = None,
    sut_cmd: Annotated[
        str | None, typer.Option(help="Start the http SUT with this command.")
    ] = None,
    dialect: Annotated[
        list[str] | None,
        typer.Option(
            show_default=False,
            help="How to read the SUT's SSE: streambench (default), anthropic, apollo, "
            "openai-chat, openai-responses, vercel-ai, auto (picked per stream), or a dialect "
            ".yaml file.",
        ),
    ] = None,
    chunking: Many = None,
    latency: Many = None,
    fault: Annotated[
        list[str] | None,
        typer.Option(
            help="A fault; 'a;b' combines two in one run, 'none' is a run without one"
            " [default: none, plus the mid-stream fault's extra cells]"
        ),
    ] = None,
    seed: Annotated[
        list[int] | None,
        typer.Option(show_default=False, help="A seed [default: 0, plus seed 1's extra cells]"),
    ] = None,
    profile: Annotated[
        Path | None,
        typer.Option(help="Rules profile YAML, or a bundled profile's name (smooth: + jank)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Report folder [default: reports, or the matrix's out]")
    ] = None,
    format: Annotated[
        str,
        typer.Option(
            "--format",
            help="What stdout gets: table (a summary), json or jsonl (one row per run). The"
            " report files in --out are written whatever the format.",
        ),
    ] = "table",
    by: Annotated[
        str | None,
        typer.Option(
            help="Group the summary by these id columns, comma-separated (default: case,"
            " one table per SUT)"
        ),
    ] = None,
    jobs: Annotated[
        int,
        typer.Option(
            min=0,
            help="Local worker processes; 0: one per core once the matrix has 64 runs per"
            " worker, else in this process (the streambench command only: called as a library,"
            " 0 runs in process; with --executor dask: its workers, 0: one per core).",
        ),
    ] = 0,
    executor: Annotated[str, typer.Option(help="local or dask.")] = "local",
    scheduler: Annotated[
        str | None, typer.Option(help="Dask scheduler address (default: a LocalCluster).")
    ] = None,
    replay_port: Annotated[int, typer.Option(help="Port of the replay host for http SUTs.")] = 0,
    shrink: Annotated[
        bool,
        typer.Option(
            "--shrink",
            help="After the run, shrink every distinct failing (case, SUT, rule) into a case"
            " folder with a pytest file under OUT/shrunk/ (column shrunk_case).",
        ),
    ] = False,
    shrink_budget_s: Annotated[
        float, typer.Option(min=0.1, help="Seconds each --shrink search may take.")
    ] = 60.0,
    sut_connect_timeout: Annotated[
        float | None,
        typer.Option(min=0.001, help="Seconds to connect to an http SUT [default: 10]"),
    ] = None,
    sut_read_timeout: Annotated[
        float | None,
        typer.Option(
            min=0.001, help="Seconds an http SUT may stay silent between reads [default: 120]"
        ),
    ] = None,
    sut_timeout: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            help="Seconds one run may take in all, virtual seconds in process [default: 600]",
        ),
    ] = None,
) -> None:
    """Run a matrix of replays against SUTs; write reports. Violations are data: exit 0."""
    if format not in FORMATS:
        raise ConfigError(f"--format {format!r}: expected one of {', '.join(FORMATS)}")
    group_by = parse_by(by)
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from streambench.grade.profile import load_profile
    from streambench.report.files import write_streamed
    from streambench.runner.dask_executor import make_executor
    from streambench.runner.matrix import build_matrix, iter_specs, parse_faults

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
        "timeouts": sut_timeouts(sut_connect_timeout, sut_read_timeout, sut_timeout),
        "out": str(out) if out else None,
    }
    matrix, out_dir = build_matrix(matrix_file, **options)
    load_profile(matrix.profile)  # a bad profile stops here, before any run
    specs = matrix.validate()  # every case and spec checked once, before the first run
    started = time.perf_counter()
    with run_progress(
        TextColumn("[bold]runs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
    ) as bar:
        task = bar.add_task("runs", total=len(specs))
        # rows go to OUT/results.partial.jsonl as runs finish; the parent never holds them all
        spool = write_streamed(
            iter_specs(
                specs,
                matrix.sut_cmd,
                matrix.replay_port,
                make_executor(executor, jobs, scheduler),
                progress=lambda n: bar.advance(task, n),
                on_host=lambda url: err_console.print(f"replay host: {url}"),
            ),
            out_dir,
            matrix.profile,
        )
    if shrink and len(spool):
        spool.set_column("shrunk_case", _shrink_failures(spool, Path(out_dir), shrink_budget_s))
    elapsed_s = time.perf_counter() - started
    if format in ("json", "jsonl"):
        _print_rows(spool, lines=format == "jsonl")
    written = spool.write_reports()
    overview = written.overview
    if format == "table" and len(overview):
        _print_summary(written, group_by, Path(out_dir) / "summary.md")
    err_console.print(closing_line(overview, elapsed_s, written.paths), markup=False)
    if matrix.skipped:
        _, why = matrix.skipped[0]
        err_console.print(
            f"{len(matrix.skipped)} runs left out (else=skip), e.g. {why}", markup=False
        )
    for line in dialect_lines(overview):
        err_console.print(line, markup=False)


def _print_rows(spool: ResultsSpool, lines: bool) -> None:
    """Every row on stdout as ``--format json`` (one list) or ``jsonl`` (a row per line),
    written a chunk at a time (pandas' JSON: its number formatting is what scripts read)."""
    import pandas as pd

    first = True
    if not lines:
        sys.stdout.write("[")
    for rows in spool.chunks():
        chunk = pd.DataFrame(rows)
        if lines:
            sys.stdout.write(chunk.to_json(orient="records", lines=True))
            continue
        sys.stdout.write(("" if first else ",") + chunk.to_json(orient="records")[1:-1])
        first = False
    if not lines:
        sys.stdout.write("]\n")


def dialect_lines(frame: Overview | pd.DataFrame) -> list[str]:
    """Which dialect ``auto`` picked, and how many events no dialect rule understood."""
    import json
    from collections import Counter

    from streambench.report.overview import Overview

    lines: list[str] = []
    runs = Overview.of(frame)
    if not len(runs) or "dialect_used" not in runs:
        return lines
    used = zip(runs["dialect"], runs["dialect_used"], strict=True)
    picked = Counter(name for dialect, name in used if dialect == "auto")
    if picked:
        lines.append(
            "dialect auto: " + ", ".join(f"{name} ({n} runs)" for name, n in picked.most_common())
        )
    names: Counter[str] = Counter()
    for text in runs["unknown_event_names"]:
        names.update(json.loads(text))
    if names:
        top = ", ".join(f"{name} {n}" for name, n in names.most_common(5))
        lines.append(
            f"saw {sum(names.values())} events I did not understand ({top}): "
            "check --dialect, or write a dialect file (docs/evaluation.md)"
        )
    return lines


def _shrink_failures(spool: ResultsSpool, out_dir: Path, budget_s: float) -> dict[int, str]:
    """Shrink each distinct failure; each failing run links its shrunk case (``shrunk_case``,
    relative to ``out_dir``) for its first violated per-run rule: run index -> link."""
    from rich.progress import TextColumn, TimeElapsedColumn

    from streambench.cli.shrink import print_result
    from streambench.grade.rules import CROSS_RUN_RULES
    from streambench.uses.shrink import shrink_failures

    failing = list(spool.rows(only_failing=True))
    rows = [row for _, row in failing]
    with run_progress(TextColumn("{task.description}"), TimeElapsedColumn()) as bar:
        task = bar.add_task("shrinking")
        shrunk = shrink_failures(
            rows,
            out_dir / "shrunk",
            budget_s,
            on_progress=lambda label, step, size: bar.update(
                task, description=f"shrink {label}: {step}: {size}"
            ),
        )
    for result in shrunk.values():
        print_result(result)
    links: dict[int, str] = {}
    for index, row in failing:
        rules = [v["rule"] for v in row["violations"] if v["rule"] not in CROSS_RUN_RULES]
        hit = shrunk.get((row["case"], row["sut"], rules[0])) if rules else None
        if hit:
            links[index] = str(hit.case_dir.relative_to(out_dir))
    return links


def sut_timeouts(
    connect_s: float | None, read_s: float | None, total_s: float | None
) -> SutTimeouts:
    """``--sut-*-timeout``: the SutTimeouts, the library defaults where an option is unset."""
    from streambench.suts import SutTimeouts

    given = {"connect_s": connect_s, "read_s": read_s, "total_s": total_s}
    return SutTimeouts(**{k: v for k, v in given.items() if v is not None})


def parse_by(value: str | None) -> list[str] | None:
    """``--by``: id columns to group the summary by (None: the default grouping)."""
    from streambench.runner.row import ID_COLUMNS

    if value is None:
        return None
    columns = [c.strip() for c in value.split(",") if c.strip()]
    unknown = [c for c in columns if c not in ID_COLUMNS]
    if not columns or unknown:
        raise ConfigError(f"--by {value!r}: expected id columns from {', '.join(ID_COLUMNS)}")
    return columns


def summary_tables(frame: Overview | pd.DataFrame, by: list[str] | None = None) -> list[Table]:
    """Runs grouped by ``by`` (default: case); one table per SUT unless ``by`` has ``sut``."""
    from streambench.report.overview import Overview, groups

    by = by or ["case"]
    runs = Overview.of(frame)
    suts = groups(runs, ["sut"])
    if "sut" in by or len(suts) == 1:
        return [summary_table(runs, by, f"runs by {', '.join(by)}")]
    return [
        summary_table(runs.where("sut", sut), by, f"{sut}: runs by {', '.join(by)}")
        for (sut,) in suts
    ]


def summary_table(frame: Overview | pd.DataFrame, by: list[str], title: str) -> Table:
    import math

    from rich import box
    from rich.table import Table

    from streambench.report.files import TERMINALS, summarize
    from streambench.report.overview import Overview

    runs = Overview.of(frame)

    table = Table(
        title=title,
        caption="ttfc / ttft: median ms since the request",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for column in by:
        # A single name column keeps its width (up to 30) while the terminal column wraps.
        longest = max(len(str(value)) for value in runs[column])
        table.add_column(
            column, overflow="fold", min_width=min(longest, 30) if len(by) == 1 else None
        )
    for name in ("runs", "violations"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("terminal")
    for name in ("ttfc", "ttft", "code\nexact"):
        table.add_column(name, justify="right", no_wrap=True)
    for row in summarize(runs, by):
        ends = ", ".join(f"{row[t]} {t}" for t in TERMINALS if row[t])
        rate = row["code_exact_rate"]
        table.add_row(
            *(str(row[c]) for c in by),
            str(row["runs"]),
            f"[red]{row['violations']}[/]" if row["violations"] else "0",
            ends if row["done"] == row["runs"] else f"[yellow]{ends}[/]",
            *(
                f"{row[m]:.0f}" if not math.isnan(row[m]) else "–"
                for m in ("ttfc_ms_p50", "ttft_ms_p50")
            ),
            f"{rate:.0%}" if not math.isnan(rate) else "–",
        )
    return table


def violations_table(
    frame: pd.DataFrame | list[dict[str, Any]],
    limit: int = MAX_VIOLATION_ROWS,
    more_in: str | Path = "summary.md",
    total: int | None = None,
) -> Table:
    """The first ``limit`` violations, one row each: the run (case, then sut · chunking ·
    fault, the SUT's HTTP status and error when it had one), the rule, when (ms since the
    request), its message and the last characters the user had on screen by then."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    from streambench.report.files import violation_rows
    from streambench.report.text import as_seen, given

    rows = frame if isinstance(frame, list) else violation_rows(frame)
    total = len(rows) if total is None else total
    caption = f"{total - limit} more in {more_in}" if total > limit else None
    table = Table(
        title=f"violations ({total})", caption=caption, box=box.SIMPLE_HEAD, pad_edge=False
    )
    table.add_column("run (case, sut · chunking · fault)", overflow="fold", ratio=2)
    table.add_column("rule", no_wrap=True)
    table.add_column("at ms", justify="right", no_wrap=True)
    table.add_column("message", overflow="fold", ratio=2)
    table.add_column("the user saw", overflow="fold", ratio=2)
    for v in rows[:limit]:
        variant = " · ".join([v["sut"], v["chunking"], v["fault"] or "no fault"])
        run = f"{escape(v['case'])}\n[dim]{escape(variant)}[/]"
        status = v["status_code"]
        if status is not None and int(status) != 200:
            run += f"\n[yellow]HTTP {int(status)}[/]"
        if v["sut_error"]:
            run += f"\n[yellow]{escape(str(v['sut_error']))}[/]"
        at = v["at_ms"]
        table.add_row(
            run,
            v["rule"],
            "end" if given(at) is None else f"{at:g}",
            escape(as_seen(v["message"])),
            escape(v["excerpt"]) if v["excerpt"] else "[dim](nothing)[/]",
            end_section=True,
        )
    return table


# Up to this many rules not checked, the closing line counts each; past it, it groups the runs.
RULES_COUNTED = 6
GROUPS_SHOWN = 4


def closing_line(frame: Overview | pd.DataFrame, elapsed_s: float, paths: list[Path]) -> str:
    from collections import Counter

    from streambench.report.overview import Overview

    runs = Overview.of(frame)
    flagged = sum(1 for n in runs["n_violations"] if n > 0) if len(runs) else 0
    rules = Counter(v["rule"] for vs in runs["violations"] for v in vs) if len(runs) else Counter()
    by_rule = ", ".join(f"{rule} {n}" for rule, n in sorted(rules.items()))
    unchecked = unchecked_summary(runs.get("case", []), runs.get("not_checked", []))
    where = paths[0].parent if paths else Path(".")
    return (
        f"{len(runs)} runs in {elapsed_s:.1f} s: {len(runs) - flagged} clean, "
        f"{flagged} with violations{f' ({by_rule})' if by_rule else ''}; "
        + (f"{unchecked}; " if unchecked else "")
        + f"reports in {where}/ ({', '.join(p.name for p in paths)})"
    )


def unchecked_summary(cases: Sequence[str], lists: Sequence[Sequence[str]]) -> str:
    """The closing line's checks not possible: a count per rule, or, past
    :data:`RULES_COUNTED` rules, the runs grouped by the rules they could not check (refused
    requests cannot check any stream rule: 25 rules on every such run would drown the rest)."""
    from collections import Counter

    per_rule = Counter(slug for slugs in lists for slug in slugs)
    total = sum(per_rule.values())
    if not total:
        return ""
    if len(per_rule) <= RULES_COUNTED:
        detail = ", ".join(f"{slug} {n}" for slug, n in sorted(per_rule.items()))
        return f"{total} checks not possible ({detail})"
    runs_of: dict[frozenset[str], list[str]] = {}
    for case, slugs in zip(cases, lists, strict=True):
        if len(slugs):
            runs_of.setdefault(frozenset(slugs), []).append(case)
    parts = []
    # the groups with the most checks first
    biggest = sorted(runs_of.items(), key=lambda kv: (-len(kv[0]) * len(kv[1]), sorted(kv[0])))
    for slugs, where in biggest:
        names = list(dict.fromkeys(where))
        others = len(names) - 1
        shown = names[0] + (f" and {others} more case{'s' * (others > 1)}" if others else "")
        what = ", ".join(sorted(slugs)) if len(slugs) <= 3 else f"{len(slugs)} rules"
        parts.append(f"{what} on {len(where)} runs of {shown}")
    more = f"; {len(parts) - GROUPS_SHOWN} more groups" if len(parts) > GROUPS_SHOWN else ""
    return f"{total} checks not possible ({'; '.join(parts[:GROUPS_SHOWN])}{more})"


def _print_summary(written: Written, by: list[str] | None, summary: Path) -> None:
    console = Console(highlight=False)
    for table in summary_tables(written.overview, by):
        natural = console.measure(table, options=console.options.update_width(10_000))
        if natural.maximum > console.width:
            # Narrow terminal: the terminal counts wrap ("2 done," / "1 error") before names fold.
            next(c for c in table.columns if c.header == "terminal").max_width = 8
        console.print(table)
    if written.n_violations:
        console.print(
            violations_table(written.violations, more_in=summary, total=written.n_violations)
        )


@app.command("gate")
def gate_command(
    results: Annotated[Path, typer.Argument(help="An --out folder or a results file.")],
    thresholds: Annotated[
        Path | None,
        typer.Option(
            help="Thresholds YAML (metrics, rules, baseline); default: no rule violations."
        ),
    ] = None,
    baseline: Annotated[Path | None, typer.Option(help="Baseline results to compare with.")] = None,
) -> None:
    """Check results against thresholds: exit 0 pass, 1 fail, 2 misuse."""
    from streambench.report.files import BULKY_COLUMNS, load_results
    from streambench.report.gate import DEFAULT_THRESHOLDS, evaluate_gate, load_thresholds

    limits = load_thresholds(thresholds) if thresholds else DEFAULT_THRESHOLDS
    frame = load_results(results, skip=BULKY_COLUMNS)
    before = load_results(baseline, skip=BULKY_COLUMNS) if baseline else None
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
