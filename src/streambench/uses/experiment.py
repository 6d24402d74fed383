"""Paired experiments: compare two systems under test (e.g. two prompt orders) on the same replays.

Every replay variant (case, dialect, chunking, latency, fault, seed) is run against both SUTs;
the per-variant difference ``variant - baseline`` of each metric is what we summarise, with a
seeded percentile-bootstrap confidence interval of its mean.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from streambench._atomic import atomic_write_text
from streambench.errors import ConfigError
from streambench.runner import Executor, Matrix, run_matrix
from streambench.runner.executors import Progress
from streambench.runner.matrix import load_matrix

ORDER_BASELINE = "reference"
ORDER_VARIANT = "reference:order=text_first"

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
    keys = list(PAIR_COLUMNS)
    side_a = results.loc[results["sut"] == baseline, keys + metrics]
    side_b = results.loc[results["sut"] == variant, keys + metrics]
    pairs = side_a.merge(side_b, on=keys, suffixes=("_a", "_b"), validate="one_to_one")
    if pairs.empty:
        raise ConfigError(f"results: {baseline!r} and {variant!r} share no replay variant")
    for metric in metrics:
        a = pd.to_numeric(pairs[f"{metric}_a"], errors="coerce").astype(float)
        b = pd.to_numeric(pairs[f"{metric}_b"], errors="coerce").astype(float)
        pairs[f"{metric}_a"], pairs[f"{metric}_b"] = a, b
        pairs[f"{metric}_diff"] = b - a
    return pairs.sort_values(keys).reset_index(drop=True)


def _verdict(metric: str, low: float, high: float) -> str:
    """``B better`` / ``A better`` when the interval excludes 0, else ``no clear difference``."""
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
                "verdict": _verdict(metric, low, high),
            }
        )
    return Comparison(baseline, variant, confidence, pd.DataFrame(rows), pairs)


def load_results(paths: Sequence[Path]) -> pd.DataFrame:
    """Concatenate result files (``.parquet``, ``.csv``) or ``--out`` folders holding them."""
    frames = []
    for path in paths:
        if path.is_dir():
            path = path / "results.parquet"
        if not path.is_file():
            raise ConfigError(f"{path}: no such results file")
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif path.suffix == ".csv":
            frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
        else:
            raise ConfigError(f"{path}: results must be .parquet, .csv or an --out folder")
        missing = [c for c in ("sut", *PAIR_COLUMNS) if c not in frame.columns]
        if missing:
            raise ConfigError(f"{path}: not a results file: no column {', '.join(missing)}")
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def load_or_run(
    inputs: Sequence[Path],
    baseline: str,
    variant: str,
    executor: Executor | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """The rows to compare, from result files / ``--out`` folders and matrix YAMLs (run here).

    A matrix naming its own ``sut`` runs as written (so each order can have its own
    recordings: one matrix per SUT); a matrix without one runs against both SUTs.
    """
    frames = []
    results = [p for p in inputs if p.suffix not in (".yaml", ".yml")]
    if results:
        frames.append(load_results(results))
    for path in (p for p in inputs if p.suffix in (".yaml", ".yml")):
        frames.append(run_matrix_file(path, [baseline, variant], executor, progress))
    frame = pd.concat(frames, ignore_index=True)
    return frame.drop_duplicates(subset=["sut", *PAIR_COLUMNS], keep="last")


def run_matrix_file(
    path: Path,
    default_suts: list[str],
    executor: Executor | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Run the matrix in ``path``; ``default_suts`` when it names none."""
    axes = load_matrix(path)
    axes.pop("out", None)  # the experiment writes its own report
    if "cases" not in axes:
        raise ConfigError(f"{path}: an experiment matrix needs case: [...]")
    axes.setdefault("suts", default_suts)
    return run_matrix(Matrix(**axes), executor=executor, progress=progress)


def format_number(value: float) -> str:
    """A metric value for tables: ms to 0.1, small values (rates) to 3 digits, "–" for NaN."""
    if pd.isna(value):
        return "–"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3g}"


def to_markdown(comparison: Comparison) -> str:
    """The verdict table as GitHub-flavoured markdown."""
    pct = round(comparison.confidence * 100)
    lines = [
        f"# Experiment: `{comparison.variant}` vs `{comparison.baseline}`",
        "",
        f"Paired differences (B - A) over {len(comparison.pairs)} replay variants; "
        f"{pct}% bootstrap confidence interval of the mean difference.",
        "",
        f"| metric | n | mean A | mean B | mean diff | {pct}% CI | verdict |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for row in comparison.table.itertuples():
        ci = f"[{format_number(row.ci_low)}, {format_number(row.ci_high)}]"
        means = " | ".join(format_number(v) for v in (row.mean_a, row.mean_b, row.mean_diff))
        lines.append(f"| {row.metric} | {row.n} | {means} | {ci} | {row.verdict} |")
    lines += ["", f"A = `{comparison.baseline}`, B = `{comparison.variant}`.", ""]
    return "\n".join(lines)


def to_html(comparison: Comparison) -> str:
    """A self-contained HTML page: the verdict table and one box plot of differences per metric."""
    import plotly.graph_objects as go

    figure = go.Figure()
    for row in comparison.table.itertuples():
        diffs = comparison.pairs[f"{row.metric}_diff"].dropna()
        figure.add_trace(go.Box(y=diffs, name=row.metric, boxpoints="all", jitter=0.3))
    figure.update_layout(
        title=f"Paired differences: {comparison.variant} minus {comparison.baseline}",
        yaxis_title="difference (ms; success rate for code_exact)",
    )
    plot = figure.to_html(full_html=False, include_plotlyjs=True)
    table = comparison.table.to_html(index=False, float_format=format_number, border=0)
    title = html.escape(f"{comparison.variant} vs {comparison.baseline}")
    return (
        "<!doctype html>\n<html><head><meta charset='utf-8'>"
        f"<title>streambench experiment: {title}</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 10px}</style>"
        f"</head><body><h1>{title}</h1>{table}{plot}</body></html>\n"
    )


def write_report(comparison: Comparison, out: Path) -> list[Path]:
    """Write experiment.md, experiment.html and pairs.csv into ``out``; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "experiment.md", out / "experiment.html", out / "pairs.csv"]
    atomic_write_text(written[0], to_markdown(comparison))
    atomic_write_text(written[1], to_html(comparison))
    atomic_write_text(written[2], comparison.pairs.to_csv(index=False))
    return written
