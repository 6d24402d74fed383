"""Reports of a results DataFrame: results.parquet, results.csv, summary.md, junit.xml and a
self-contained report.html (report/html.py: summaries, distributions, a player per run)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pandas as pd

from streambench._atomic import atomic_write, replace_folder
from streambench.errors import ConfigError
from streambench.report.html import report_html
from streambench.report.text import as_seen, excerpt, given, variant
from streambench.runner.row import ID_COLUMNS

REPORT_FILES = ("results.parquet", "results.csv", "summary.md", "junit.xml", "report.html")
SUMMARY_METRICS = ("ttfb_ms", "ttfc_ms", "ttft_ms", "total_ms", "changes_lag_ms", "text_lag_p95_ms")
# summary.md's smoothness table: column -> (heading, aggregate over the group's runs)
SMOOTHNESS_SUMMARY = {
    "paint_rate_cps": ("chars/s p50", "median"),
    "jump_chars_max": ("largest jump (chars) max", "max"),
    "jump_share_max": ("largest jump share p50", "median"),
    "midword_paint_share": ("mid-word paints p50", "median"),
    "stall_count": ("stalls", "sum"),
    "stall_ms_max": ("longest stall ms max", "max"),
    "second_paint_ms": ("2nd paint ms p50", "median"),
    "itl_per_chunk_ms": ("ITL/chunk ms p50 (vLLM)", "median"),
    "itl_per_token_ms": ("ITL/token ms p50 (GenAI-Perf)", "median"),
}
TERMINALS = ("done", "error", "none")


def _flat(frame: pd.DataFrame) -> pd.DataFrame:
    """Lists and dicts as JSON text, for CSV."""
    out = frame.copy()
    for column in ("violations", "warnings"):
        if column in out:
            out[column] = out[column].map(json.dumps)
    return out


def run_id(row: pd.Series | dict[str, Any]) -> str:
    parts = [str(row[c]) for c in ID_COLUMNS if str(row[c]) != ""]
    return " | ".join(parts)


def summarize(frame: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """One row per group of the id columns ``by``, sorted: ``runs``, ``flagged`` (runs with
    violations), ``violations``, a count per terminal (done, error, none), ``<metric>_p50`` and
    ``<metric>_p95`` of each of SUMMARY_METRICS, ``not_checked`` (rule checks a run could not
    make), and ``code_exact_rate`` (0..1; NaN when no run
    of the group expects code)."""
    rows = []
    for key, group in frame.groupby(list(by), sort=True):
        row: dict[str, Any] = dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True))
        row["runs"] = len(group)
        row["flagged"] = int((group["n_violations"] > 0).sum())
        row["violations"] = int(group["n_violations"].sum())
        for terminal in TERMINALS:
            row[terminal] = int((group["terminal"] == terminal).sum())
        for metric in SUMMARY_METRICS:
            values = group[metric].dropna()
            for q in (50, 95):
                row[f"{metric}_p{q}"] = values.quantile(q / 100) if len(values) else float("nan")
        row["not_checked"] = (
            int(group["not_checked"].map(len).sum()) if "not_checked" in group else 0
        )
        exact = group["code_exact"].dropna()
        row["code_exact_rate"] = float(exact.astype(bool).mean()) if len(exact) else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def violation_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Every violation of every run, with the run's id columns, ``excerpt`` (what the user saw
    by then), ``status_code`` and ``sut_error``, in the frame's order."""
    return [
        {
            **{c: row[c] for c in ID_COLUMNS},
            **v,
            "excerpt": excerpt(row, v["at_ms"]),
            "status_code": given(row.get("status_code")),
            "sut_error": given(row.get("sut_error")),
        }
        for _, row in frame.iterrows()
        for v in row["violations"]
    ]


def where(v: dict[str, Any]) -> str:
    """``at 123 ms`` or, for a violation of the whole run, ``at the end``."""
    at = v.get("at_ms")
    return "at the end" if at is None or pd.isna(at) else f"at {at:g} ms"


def summary_markdown(frame: pd.DataFrame) -> str:
    n = len(frame)
    clean = int((frame["n_violations"] == 0).sum()) if n else 0
    lines = ["# streambench results", "", f"{n} runs, {clean} without violations.", ""]
    if n:
        lines += [
            "| sut | chunking | runs | "
            + " | ".join(f"{m} p50 / p95" for m in SUMMARY_METRICS)
            + " | violations |"
        ]
        lines += ["|" + "---|" * (len(SUMMARY_METRICS) + 4)]
        for _, group in summarize(frame, ("sut", "chunking")).iterrows():
            cells = [
                f"{group[f'{m}_p50']:.0f} / {group[f'{m}_p95']:.0f}"
                if pd.notna(group[f"{m}_p50"])
                else "–"
                for m in SUMMARY_METRICS
            ]
            lines.append(
                f"| {group['sut']} | {group['chunking']} | {group['runs']} | "
                + " | ".join(cells)
                + f" | {group['violations']} |"
            )
        lines += ["", "## Smoothness (how the text arrived; docs/evaluation.md)", ""]
        lines += _smoothness_lines(frame)
        violations = violation_rows(frame)
        lines += ["", "## Violations by rule", ""]
        if violations:
            lines += ["| rule | sut | runs | violations | first at |", "|---|---|---:|---:|---|"]
            by_rule = pd.DataFrame(violations).groupby(["rule", "sut"], sort=True)
            for (rule, sut), group in by_rule:
                runs = group[list(ID_COLUMNS)].drop_duplicates()
                first = group.iloc[0]
                lines.append(
                    f"| {rule} | {sut} | {len(runs)} | {len(group)} | "
                    f"{variant(first)} {where(first.to_dict())} |"
                )
            lines += ["", "## Every violation", ""]
            lines += ["| run | rule | at ms | message | the user saw |", "|---|---|---:|---|---|"]
            lines += [
                f"| {variant(v)} | {v['rule']} | {_ms(v['at_ms'])} | "
                f"{_md(as_seen(v['message']))} | {_md(v['excerpt'])} |"
                for v in violations
            ]
        else:
            lines.append("None.")
    return "\n".join(lines) + "\n"


def _sut_lines(row: pd.Series | dict[str, Any]) -> list[str]:
    """The SUT's HTTP status (when not 200) and its exception, for failure details."""
    lines = []
    status, error = given(row.get("status_code")), given(row.get("sut_error"))
    if status is not None and int(status) != 200:
        lines.append(f"HTTP {int(status)}")
    if error:
        lines.append(f"sut_error: {error}")
    return lines


def _md(text: str) -> str:
    """A markdown table cell: pipes escaped, text in code so escapes show as written."""
    text = str(text).replace("|", "\\|")
    fence = "``" if "`" in text else "`"
    return f"{fence} {text} {fence}" if text else ""


def _ms(at: float | None) -> str:
    return "–" if at is None or pd.isna(at) else f"{at:g}"


def _smoothness_lines(frame: pd.DataFrame) -> list[str]:
    columns = [c for c in SMOOTHNESS_SUMMARY if c in frame]
    if not columns:
        return ["No smoothness columns in these results."]
    heads = [SMOOTHNESS_SUMMARY[c][0] for c in columns]
    lines = ["| sut | chunking | " + " | ".join(heads) + " |", "|---|---|" + "---:|" * len(heads)]
    for (sut, chunking), group in frame.groupby(["sut", "chunking"], sort=True):
        cells = []
        for column in columns:
            values = pd.to_numeric(group[column], errors="coerce").dropna()
            how = SMOOTHNESS_SUMMARY[column][1]
            value = getattr(values, how)() if len(values) else float("nan")
            cells.append(
                "–" if pd.isna(value) else f"{value:.3g}" if value < 10 else f"{value:.0f}"
            )
        lines.append(f"| {sut} | {chunking} | " + " | ".join(cells) + " |")
    return lines


def junit_xml(frame: pd.DataFrame) -> bytes:
    failures = int((frame["n_violations"] > 0).sum()) if len(frame) else 0
    suite = ET.Element(
        "testsuite", name="streambench", tests=str(len(frame)), failures=str(failures)
    )
    for _, row in frame.iterrows():
        case = ET.SubElement(
            suite, "testcase", classname=f"streambench.{row['case']}", name=run_id(row)
        )
        case.set("time", f"{(row['total_ms'] if pd.notna(row['total_ms']) else 0) / 1000:.3f}")
        for v in row["violations"]:
            seen = excerpt(row, v["at_ms"])
            message = f"{v['rule']} {where(v)}: {as_seen(v['message'])}"
            if seen:
                message += f"; the user saw: {seen}"
            failure = ET.SubElement(case, "failure", type=v["rule"], message=message)
            failure.text = message + "".join(f"\n{line}" for line in _sut_lines(row))
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True)


def write_reports(frame: pd.DataFrame, out: str | Path) -> list[Path]:
    """Write the five report files into ``out`` (created); returns their paths.

    A folder holding only reports is replaced in one swap, so a crash never leaves one run's
    page beside another run's results; a folder holding other files too gets each report
    replaced atomically on its own."""
    out = Path(out)

    def write(folder: Path) -> None:
        parquet, csv, summary, junit, page = (folder / name for name in REPORT_FILES)
        atomic_write(parquet, lambda p: frame.to_parquet(p, index=False))
        atomic_write(csv, lambda p: _flat(frame).to_csv(p, index=False))
        atomic_write(summary, lambda p: p.write_text(summary_markdown(frame), encoding="utf-8"))
        atomic_write(junit, lambda p: p.write_bytes(junit_xml(frame)))
        atomic_write(page, lambda p: p.write_text(report_html(frame), encoding="utf-8"))

    if out.is_dir():  # temp files of a killed run's atomic writes
        for name in REPORT_FILES:
            for leftover in out.glob(f".{name}.*.tmp"):
                leftover.unlink(missing_ok=True)
    others = out.is_dir() and any(p.name not in REPORT_FILES for p in out.iterdir())
    if others:
        write(out)
    else:
        replace_folder(out, write)
    return [out / name for name in REPORT_FILES]


def load_results(path: str | Path, required: Sequence[str] = ("violations",)) -> pd.DataFrame:
    """Results from an ``--out`` folder or a .parquet / .csv / .json / .jsonl file, which must
    have the ``required`` columns. An empty CSV cell is NA; any text (``NA``, ``None``) stays
    text."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.parquet"
    if not path.is_file():
        raise ConfigError(f"{path}: no such results file")
    try:
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif path.suffix == ".csv":
            frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
        elif path.suffix in (".json", ".jsonl"):
            frame = pd.read_json(path, lines=path.suffix == ".jsonl")
        else:
            raise ConfigError(f"{path}: expected a report folder or .parquet/.csv/.json/.jsonl")
    except (ValueError, KeyError, OSError) as exc:
        raise ConfigError(f"{path}: cannot read results: {exc}") from None
    missing = [c for c in required if c not in frame]
    if missing:
        raise ConfigError(f"{path}: not a streambench results file: no column {', '.join(missing)}")
    if "violations" in frame:
        frame["violations"] = [
            _violations(v, f"{path}: row {i + 1}") for i, v in enumerate(frame["violations"])
        ]
    return frame


def _violations(value: Any, where: str) -> list[dict[str, Any]]:
    """One row's violations as a list of mappings with a ``rule``, whatever the file format
    made of them (JSON text in CSV, arrays in parquet, an empty cell)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, str):
        if not value.strip():
            return []
        try:
            value = json.loads(value)
        except ValueError:
            raise ConfigError(f"{where}: violations is not a JSON list: {value[:40]!r}") from None
    if not isinstance(value, list | tuple) and hasattr(value, "tolist"):
        value = value.tolist()
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{where}: violations must be a list, got {type(value).__name__}")
    items = [dict(v) if hasattr(v, "keys") else v for v in value]
    if not all(isinstance(v, dict) and isinstance(v.get("rule"), str) for v in items):
        raise ConfigError(f"{where}: each violation must be a mapping with a rule")
    return items
