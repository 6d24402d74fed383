"""Paired experiments: compare two systems under test (e.g. two prompt orders) on the same replays.

Every replay variant (case, dialect, chunking, latency, fault, seed) is run against both SUTs;
the per-variant difference ``variant - baseline`` of each metric is what we summarise, with a
seeded percentile-bootstrap confidence interval of its mean. When either SUT runs in real time
(over HTTP, or ``clock=real``), the runs interleave A B B A A B ... so drifting machine load
hits both sides alike; the pairs show the order each ran in (``order``: ``AB`` / ``BA``).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from streambench._atomic import atomic_write_text
from streambench.errors import ConfigError, OutputError
from streambench.report.files import load_results
from streambench.runner.executors import Executor, Progress
from streambench.runner.matrix import Matrix, RunSpec, load_matrix, run_matrix, run_specs
from streambench.suts import InProcessSut, parse_sut

ORDER_BASELINE = "reference"
ORDER_VARIANT = "reference:order=text_first"
# The matrices of the reference's four designs (prefill or tool call x changes or text first)
# in a checkout, each naming its SUT and its recordings; the first is the baseline.
DESIGN_MATRICES = tuple(
    f"fixtures/experiments/{name}.yaml"
    for name in ("changes_first", "text_first", "tool_changes_first", "tool_text_first")
)
DESIGN_METRICS = ("ttfc_ms", "ttft_ms")

# Columns that identify one replay variant apart from the SUT: the pairing key.
PAIR_COLUMNS = ("case", "dialect", "chunking", "latency", "fault", "seed")

# metric -> True when lower is better (timings) / False when higher is better (success rate).
METRICS: dict[str, bool] = {
    "ttfc_ms": True,
    "ttft_ms": True,
    "total_ms": True,
    "useful_ms": True,
    "code_exact": False,
}
# What a side that never yields a metric never sent (the n=0 verdict).
NEVER_SENT = {
    "ttfc_ms": "changes",
    "ttft_ms": "text",
    "total_ms": "a response",
    "useful_ms": "changes or text",
    "code_exact": "code to compare",
}


@dataclass(frozen=True)
class Comparison:
    """The outcome of :func:`compare`: one row per metric in :attr:`table`, paired rows in
    :attr:`pairs` (columns ``<metric>_a``, ``<metric>_b``, ``<metric>_diff`` per metric)."""

    baseline: str
    variant: str
    confidence: float
    table: pd.DataFrame
    pairs: pd.DataFrame


def bootstrap_ci(
    values: np.ndarray, *, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of ``values`` (NaN, NaN when empty).

    >>> bootstrap_ci(np.array([1.0, 1.0, 1.0]))
    (1.0, 1.0)
    """
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, values.size, size=(n_resamples, values.size))
    means = values[indices].mean(axis=1)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return (float(low), float(high))


def pair_runs(results: pd.DataFrame, baseline: str, variant: str) -> pd.DataFrame:
    """Join the baseline's and the variant's rows on the replay variant (:data:`PAIR_COLUMNS`)."""
    missing = [c for c in ("sut", *PAIR_COLUMNS) if c not in results.columns]
    if missing:
        raise ConfigError(f"results: missing column(s) {', '.join(missing)}")
    suts = set(results["sut"])
    for sut in (baseline, variant):
        if sut not in suts:
            found = ", ".join(sorted(map(str, suts))) or "none"
            raise ConfigError(f"results: no rows for SUT {sut!r} (found: {found})")
    metrics = [m for m in METRICS if m in results.columns]
    metrics += ["run_order"] if "run_order" in results.columns else []
    keys = list(PAIR_COLUMNS)
    side_a = results.loc[results["sut"] == baseline, keys + metrics]
    side_b = results.loc[results["sut"] == variant, keys + metrics]
    pairs = side_a.merge(side_b, on=keys, suffixes=("_a", "_b"), validate="one_to_one")
    if pairs.empty:
        raise ConfigError(f"results: {baseline!r} and {variant!r} share no replay variant")
    if "run_order" in metrics:
        metrics.remove("run_order")
        first_a = pairs["run_order_a"] < pairs["run_order_b"]
        pairs["order"] = first_a.map({True: "AB", False: "BA"}).where(
            pairs["run_order_a"].notna() & pairs["run_order_b"].notna()
        )
    for metric in metrics:
        a = pd.to_numeric(pairs[f"{metric}_a"], errors="coerce").astype(float)
        b = pd.to_numeric(pairs[f"{metric}_b"], errors="coerce").astype(float)
        pairs[f"{metric}_a"], pairs[f"{metric}_b"] = a, b
        pairs[f"{metric}_diff"] = b - a
    return pairs.sort_values(keys).reset_index(drop=True)


def _verdict(metric: str, low: float, high: float, n_a: int = 1, n_b: int = 1) -> str:
    """``B better`` / ``A better`` when the interval excludes 0, else ``no clear difference``;
    ``A never sent changes (n=0)`` when a side has no value of the metric at all."""
    never = [side for side, n in (("A", n_a), ("B", n_b)) if n == 0]
    if never:
        return f"{' and '.join(never)} never sent {NEVER_SENT.get(metric, metric)} (n=0)"
    if np.isnan(low) or (low <= 0.0 <= high):
        return "no clear difference"
    variant_higher = low > 0.0
    return "B better" if variant_higher != METRICS[metric] else "A better"


def compare(
    results: pd.DataFrame,
    baseline: str = ORDER_BASELINE,
    variant: str = ORDER_VARIANT,
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> Comparison:
    """Paired per-variant differences (variant - baseline) of every metric, with bootstrap CIs.

    ``code_exact`` is compared as a success rate (True = 1). A metric absent in either run of a
    pair (NaN, e.g. no ``changes`` in chat mode) leaves that pair out of that metric only.
    """
    pairs = pair_runs(results, baseline, variant)
    rows = []
    for metric in (m for m in METRICS if f"{m}_diff" in pairs.columns):
        diffs = pairs[f"{metric}_diff"].dropna().to_numpy()
        low, high = bootstrap_ci(diffs, confidence=confidence, n_resamples=n_resamples, seed=seed)
        both = pairs[[f"{metric}_a", f"{metric}_b"]].dropna()
        rows.append(
            {
                "metric": metric,
                "n": int(diffs.size),
                "mean_a": float(both[f"{metric}_a"].mean()) if diffs.size else float("nan"),
                "mean_b": float(both[f"{metric}_b"].mean()) if diffs.size else float("nan"),
                "mean_diff": float(diffs.mean()) if diffs.size else float("nan"),
                "ci_low": low,
                "ci_high": high,
                "verdict": _verdict(
                    metric,
                    low,
                    high,
                    int(pairs[f"{metric}_a"].notna().sum()),
                    int(pairs[f"{metric}_b"].notna().sum()),
                ),
            }
        )
    return Comparison(baseline, variant, confidence, pd.DataFrame(rows), pairs)


def load_or_run(
    inputs: Sequence[Path],
    baseline: str,
    variant: str,
    executor: Executor | None = None,
    progress: Progress | None = None,
    sut_cmd: str | None = None,
) -> pd.DataFrame:
    """The rows to compare, from result files / ``--out`` folders and matrix YAMLs (run here).

    A matrix naming its own ``sut`` runs as written (so each order can have its own
    recordings: one matrix per SUT); a matrix without one runs against both SUTs.
    ``sut_cmd`` starts the http:// SUT (else the matrix file's ``sut_cmd``).
    """
    frames = []
    results = [p for p in inputs if p.suffix not in (".yaml", ".yml")]
    frames += [load_results(p, required=("sut", *PAIR_COLUMNS)) for p in results]
    for path in (p for p in inputs if p.suffix in (".yaml", ".yml")):
        frames.append(run_matrix_file(path, [baseline, variant], executor, progress, sut_cmd))
    frame = pd.concat(frames, ignore_index=True)
    return frame.drop_duplicates(subset=["sut", *PAIR_COLUMNS], keep="last")


def real_time(sut: str) -> bool:
    """Whether ``sut`` runs on the wall clock (over HTTP, or in process with ``clock=real``)."""
    parsed = parse_sut(sut)
    return parsed.over_http or (isinstance(parsed, InProcessSut) and parsed.clock == "real")


def interleave(specs: Sequence[RunSpec]) -> list[RunSpec]:
    """ABBA order: the runs of one replay variant side by side, the first SUT first in every
    other variant (A B, B A, A B, ...), so a drift in machine load falls on both sides."""
    groups: dict[tuple[object, ...], list[RunSpec]] = {}
    for spec in specs:
        key = (spec.case_path, spec.dialect, spec.chunking, spec.latency, spec.faults, spec.seed)
        groups.setdefault(key, []).append(spec)
    ordered: list[RunSpec] = []
    for number, group in enumerate(groups.values()):
        ordered += group if number % 2 == 0 else group[::-1]
    return ordered


def run_matrix_file(
    path: Path,
    default_suts: list[str],
    executor: Executor | None = None,
    progress: Progress | None = None,
    sut_cmd: str | None = None,
) -> pd.DataFrame:
    """Run the matrix in ``path``; ``default_suts`` when it names none. Real-time SUTs run
    interleaved (:func:`interleave`), with a ``run_order`` column."""
    axes = load_matrix(path)
    axes.pop("out", None)  # the experiment writes its own report
    if "cases" not in axes:
        raise ConfigError(f"{path}: an experiment matrix needs case: [...]")
    axes.setdefault("suts", default_suts)
    if sut_cmd:
        axes["sut_cmd"] = sut_cmd
    matrix = Matrix(**axes)
    if not any(real_time(sut) for sut in matrix.suts):
        return run_matrix(matrix, executor=executor, progress=progress)
    specs = interleave(matrix.validate())
    return run_specs(
        specs,
        matrix.sut_cmd,
        matrix.replay_port,
        progress=progress,
        profile=matrix.profile,
        in_order=True,
    )


def format_number(value: float) -> str:
    """A metric value for tables: ms to 0.1, small values (rates) to 3 digits, "–" for NaN."""
    if pd.isna(value):
        return "–"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3g}"


def to_markdown(comparison: Comparison) -> str:
    """The verdict table as GitHub-flavoured markdown."""
    pct = round(comparison.confidence * 100)
    lines = [
        f"# Experiment: B = `{comparison.variant}` vs A = `{comparison.baseline}`",
        "",
        f"Paired differences (B - A) over {len(comparison.pairs)} replay variants; "
        f"{pct}% bootstrap confidence interval of the mean difference.",
        "",
        f"| metric | n | mean A | mean B | mean B-A | {pct}% CI | verdict |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    lines += _markdown_rows(comparison.table)
    lines += ["", f"A = `{comparison.baseline}`, B = `{comparison.variant}`."]
    if "order" in comparison.pairs.columns:
        counts = comparison.pairs["order"].value_counts()
        lines.append(
            f"Runs interleaved (real time): {counts.get('AB', 0)} pairs ran A then B,"
            f" {counts.get('BA', 0)} B then A (column `order` of pairs.csv)."
        )
    lines.append("")
    return "\n".join(lines)


def _markdown_rows(table: pd.DataFrame) -> list[str]:
    """One markdown table row per verdict row, led by its design when ``table`` has several."""
    rows = []
    for row in table.itertuples():
        ci = f"[{format_number(row.ci_low)}, {format_number(row.ci_high)}]"
        means = " | ".join(format_number(v) for v in (row.mean_a, row.mean_b, row.mean_diff))
        lead = f"| `{row.variant}` " if "variant" in table.columns else ""
        rows.append(f"{lead}| {row.metric} | {row.n} | {means} | {ci} | {row.verdict} |")
    return rows


def _unit(metric: str) -> str:
    return "ms" if metric.endswith("_ms") else "rate"


def verdict_words(comparison: Comparison, row: Any) -> str:
    """One sentence per metric: what B did compared with A, how sure, and the verdict."""
    a, b = f"A ({comparison.baseline})", f"B ({comparison.variant})"
    pct = round(comparison.confidence * 100)
    if row.n == 0:
        return f"{row.metric}: no pair has it in both runs; nothing to compare."
    ci = f"{pct}% CI {format_number(row.ci_low)} to {format_number(row.ci_high)}"
    if _unit(row.metric) == "ms":
        direction = "longer" if row.mean_diff > 0 else "less"
        what = f"{b} took {format_number(abs(row.mean_diff))} ms {direction} than {a} on average"
    else:
        rates = f"({format_number(row.mean_b)} vs {format_number(row.mean_a)})"
        if row.mean_diff == 0:
            what = f"{b}'s rate is the same as {a}'s {rates}"
        else:
            direction = "higher" if row.mean_diff > 0 else "lower"
            points = format_number(abs(row.mean_diff) * 100)
            what = f"{b}'s rate is {points} points {direction} than {a}'s {rates}"
    if row.verdict == "no clear difference":
        verdict = "no clear difference (the interval includes 0)"
    else:
        verdict = f"{a if row.verdict == 'A better' else b} is better"
    return f"{row.metric}: {what} ({ci}, {row.n} pairs): {verdict}."


def _svg_differences(comparison: Comparison, unit: str) -> str:
    """Paired differences B - A of the metrics in ``unit`` on one axis: a dot per pair, the
    confidence interval as a bar, the mean as a tick, 0 as a line."""
    rows = [r for r in comparison.table.itertuples() if _unit(r.metric) == unit and r.n]
    if not rows:
        return ""
    diffs = {r.metric: comparison.pairs[f"{r.metric}_diff"].dropna().to_numpy() for r in rows}
    values = np.concatenate(
        [*diffs.values(), [0.0], [r.ci_low for r in rows], [r.ci_high for r in rows]]
    )
    # rates differ by at most 1 either way: a fixed axis keeps 0 in the middle
    low, high = (
        (-1.0, 1.0) if unit == "rate" else (float(np.nanmin(values)), float(np.nanmax(values)))
    )
    span = (high - low) or 1.0
    left, width, row_h = 150, 860, 34
    height = 40 + row_h * len(rows)

    def x(value: float) -> float:
        return left + (value - low) / span * (width - left - 60)

    zero = x(0.0)
    parts = [
        f"<svg class='diffs' data-unit='{unit}' width='{width}' height='{height}' "
        f"role='img' aria-label='B minus A, {unit}'>",
        f"<line x1='{zero:.1f}' x2='{zero:.1f}' y1='0' y2='{height - 24}' stroke='#999'/>",
    ]
    for k, r in enumerate(rows):
        y = 16 + k * row_h
        parts.append(
            f"<text x='{left - 8}' y='{y + 4}' text-anchor='end'>{html.escape(r.metric)}</text>"
        )
        parts += [
            f"<circle cx='{x(v):.1f}' cy='{y + ((i * 5) % 9) - 4}' r='2.5' fill='#888'/>"
            for i, v in enumerate(diffs[r.metric])
        ]
        color = "#2a2" if r.verdict == "B better" else "#c22" if r.verdict == "A better" else "#555"
        if not np.isnan(r.ci_low):
            parts.append(
                f"<line x1='{x(r.ci_low):.1f}' x2='{x(r.ci_high):.1f}' y1='{y + 9}' y2='{y + 9}' "
                f"stroke='{color}' stroke-width='4'/>"
            )
        parts.append(
            f"<line x1='{x(r.mean_diff):.1f}' x2='{x(r.mean_diff):.1f}' y1='{y + 3}' "
            f"y2='{y + 15}' stroke='#000' stroke-width='2'/>"
        )
    for t in np.linspace(low, high, 5):
        label = f"{format_number(float(t))}{' ms' if unit == 'ms' else ''}"
        parts.append(
            f"<text x='{x(float(t)):.1f}' y='{height - 6}' text-anchor='middle'>{label}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def to_html(comparison: Comparison) -> str:
    """A self-contained page: who A and B are, the verdict per metric in words, the table, and
    the paired differences drawn as SVG, timings (ms) and rates on separate axes."""
    a, b = html.escape(comparison.baseline), html.escape(comparison.variant)
    table = comparison.table.rename(
        columns={
            "mean_a": "mean A",
            "mean_b": "mean B",
            "mean_diff": "mean B−A",
            "ci_low": "CI low",
            "ci_high": "CI high",
        }
    ).to_html(index=False, float_format=format_number, border=0)
    words = "".join(
        f"<li data-metric='{html.escape(r.metric)}'>"
        f"{html.escape(verdict_words(comparison, r))}</li>"
        for r in comparison.table.itertuples()
    )
    ms_plot = _svg_differences(comparison, "ms")
    rate_plot = _svg_differences(comparison, "rate")
    charts = ""
    if ms_plot:
        charts += f"<h2>B − A in ms (left of 0: B faster)</h2>{ms_plot}"
    if rate_plot:
        charts += f"<h2>B − A in rates (right of 0: B succeeds more often)</h2>{rate_plot}"
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>streambench experiment: B = {b} vs A = {a}</title>"
        "<style>body{font:14px/1.4 system-ui,sans-serif;margin:2em;max-width:1100px}"
        "td,th{padding:3px 10px;text-align:right}td:first-child,th:first-child{text-align:left}"
        "svg text{font:11px system-ui,sans-serif}.who b{font-family:monospace}</style></head><body>"
        f"<h1>Experiment: B vs A</h1><p class='who'>A (baseline) = <b id='sut-a'>{a}</b>; "
        f"B (variant) = <b id='sut-b'>{b}</b>. Paired over {len(comparison.pairs)} replay "
        f"variants; differences are B − A.</p><h2>Verdicts</h2><ul id='verdicts'>{words}</ul>"
        f"{table}{charts}</body></html>\n"
    )


def write_report(comparison: Comparison, out: Path) -> list[Path]:
    """Write experiment.md, experiment.html and pairs.csv into ``out``; returns the paths."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out}: cannot write: {exc.strerror or exc}") from None
    written = [out / "experiment.md", out / "experiment.html", out / "pairs.csv"]
    atomic_write_text(written[0], to_markdown(comparison))
    atomic_write_text(written[1], to_html(comparison))
    atomic_write_text(written[2], comparison.pairs.to_csv(index=False))
    return written


# --------------------------------------------------------------------------- several designs


@dataclass(frozen=True)
class DesignComparison:
    """Every design against one baseline: :attr:`table` has one row per (variant, metric), the
    columns of :attr:`Comparison.table` plus ``variant``."""

    baseline: str
    comparisons: list[Comparison]
    table: pd.DataFrame


def check_metrics(metrics: Sequence[str]) -> None:
    """Raise a one-line ConfigError for a metric the experiment does not compare."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        found = repr(unknown[0]) if unknown else "none"
        raise ConfigError(f"metrics: unknown {found} (known: {', '.join(METRICS)})")


def load_designs(
    inputs: Sequence[Path],
    executor: Executor | None = None,
    progress: Progress | None = None,
    sut_cmd: str | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """The rows of every input (result files, or matrix YAMLs naming their own ``sut``, run
    here) and the SUTs they hold, in the order the inputs name them."""
    frames, suts = [], []
    for path in inputs:
        if path.suffix in (".yaml", ".yml"):
            if "suts" not in load_matrix(path):
                raise ConfigError(f"{path}: a design's matrix names its sut (sut: ...)")
            frame = run_matrix_file(path, [], executor, progress, sut_cmd)
        else:
            frame = load_results([path])
        frames.append(frame)
        suts += [sut for sut in dict.fromkeys(frame["sut"].astype(str)) if sut not in suts]
    if len(suts) < 2:
        raise ConfigError(f"inputs hold {len(suts)} SUT(s); a design comparison needs two or more")
    frame = pd.concat(frames, ignore_index=True)
    return frame.drop_duplicates(subset=["sut", *PAIR_COLUMNS], keep="last"), suts


def compare_designs(
    results: pd.DataFrame,
    suts: Sequence[str],
    *,
    baseline: str | None = None,
    metrics: Sequence[str] = DESIGN_METRICS,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> DesignComparison:
    """Each of ``suts`` against ``baseline`` (default: the first) on the replay variants they
    share (:func:`compare`), keeping ``metrics``."""
    baseline = baseline or suts[0]
    if baseline not in suts:
        raise ConfigError(f"baseline {baseline!r} is not one of the SUTs: {', '.join(suts)}")
    check_metrics(metrics)
    comparisons = [
        compare(
            results,
            baseline,
            variant,
            confidence=confidence,
            n_resamples=n_resamples,
            seed=seed,
        )
        for variant in suts
        if variant != baseline
    ]
    rows = [
        c.table.loc[c.table["metric"].isin(metrics)].assign(variant=c.variant) for c in comparisons
    ]
    table = pd.concat(rows, ignore_index=True)
    return DesignComparison(baseline, comparisons, table[["variant", *rows[0].columns[:-1]]])


def designs_markdown(designs: DesignComparison) -> str:
    """The designs' verdict table as GitHub-flavoured markdown."""
    pct = round(designs.comparisons[0].confidence * 100)
    lines = [
        f"# Designs compared with A = `{designs.baseline}`",
        "",
        f"Paired differences (B - A) per replay variant; {pct}% bootstrap confidence interval"
        " of the mean difference.",
        "",
        f"| B | metric | n | mean A | mean B | mean B-A | {pct}% CI | verdict |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    lines += [*_markdown_rows(designs.table), ""]
    return "\n".join(lines)


def write_designs(designs: DesignComparison, out: Path) -> list[Path]:
    """Write designs.md and designs.csv (the table) into ``out``; returns the paths."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out}: cannot write: {exc.strerror or exc}") from None
    written = [out / "designs.md", out / "designs.csv"]
    atomic_write_text(written[0], designs_markdown(designs))
    atomic_write_text(written[1], designs.table.to_csv(index=False))
    return written
