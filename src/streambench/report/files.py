"""Reports of a results DataFrame: results.parquet, results.csv, summary.md, junit.xml and a
self-contained report.html (report/html.py: summaries, distributions, a player per run)."""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import tempfile
import types
import typing
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from streambench._atomic import replace_folder
from streambench.errors import ConfigError, OutputError
from streambench.grade.metrics import METRIC_COLUMNS, percentile
from streambench.grade.profile import load_profile
from streambench.grade.variance import GROUP_COLUMNS, cross_run_violations
from streambench.report.html import MAX_RUNS_SHOWN, report_html
from streambench.report.text import as_seen, excerpt, given, variant
from streambench.runner.row import ID_COLUMNS, Row, column_types

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
_SUT = ID_COLUMNS.index("sut")


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
    of the group expects code).

    Aggregated over plain lists, not a pandas groupby: a quantile per group and metric was
    most of the terminal summary's and summary.md's time; the quantiles are pandas' (numpy's
    linear method, :func:`~streambench.grade.metrics.percentile`) to the bit."""
    groups = _groups(frame, by)
    column = {c: frame[c].tolist() for c in ("n_violations", "terminal", *SUMMARY_METRICS)}
    not_checked = frame["not_checked"].tolist() if "not_checked" in frame else None
    code_exact = frame["code_exact"].tolist()
    rows = []
    for key, members in groups.items():
        violations = [column["n_violations"][i] for i in members]
        terminals = Counter(column["terminal"][i] for i in members)
        row: dict[str, Any] = dict(zip(by, key, strict=True))
        row["runs"] = len(members)
        row["flagged"] = sum(1 for n in violations if n > 0)
        row["violations"] = int(sum(violations))
        for terminal in TERMINALS:
            row[terminal] = terminals[terminal]
        for metric in SUMMARY_METRICS:
            values = [v for i in members if (v := given(column[metric][i])) is not None]
            for q in (50, 95):
                row[f"{metric}_p{q}"] = percentile(values, q)
        row["not_checked"] = sum(len(not_checked[i]) for i in members) if not_checked else 0
        exact = [v for i in members if (v := given(code_exact[i])) is not None]
        row["code_exact_rate"] = sum(map(bool, exact)) / len(exact) if exact else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def _groups(frame: pd.DataFrame, by: Sequence[str]) -> dict[tuple[Any, ...], list[int]]:
    """The row positions of each group of the columns ``by``, keys sorted, as a pandas
    groupby makes them (a row with a missing key is in no group)."""
    groups: dict[tuple[Any, ...], list[int]] = {}
    for index, key in enumerate(zip(*(frame[c].tolist() for c in by), strict=True)):
        if not any(given(k) is None for k in key):
            groups.setdefault(key, []).append(index)
    return dict(sorted(groups.items()))


def violation_rows(rows: pd.DataFrame | Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every violation of every run (a frame's rows or row mappings), with the run's id
    columns, ``excerpt`` (what the user saw by then), ``status_code`` and ``sut_error``, in
    the rows' order."""
    records = rows.to_dict(orient="records") if isinstance(rows, pd.DataFrame) else rows
    return [
        {
            **{c: row[c] for c in ID_COLUMNS},
            **v,
            "excerpt": excerpt(row, v["at_ms"]),
            "status_code": given(row.get("status_code")),
            "sut_error": given(row.get("sut_error")),
        }
        for row in records
        for v in row["violations"]
    ]


def where(v: dict[str, Any]) -> str:
    """``at 123 ms`` or, for a violation of the whole run, ``at the end``."""
    at = v.get("at_ms")
    return "at the end" if at is None or pd.isna(at) else f"at {at:g} ms"


def summary_markdown(
    frame: pd.DataFrame,
    violations: list[dict[str, Any]] | None = None,
    n_violations: int | None = None,
) -> str:
    """summary.md of ``frame`` (full rows, or :class:`Written`'s overview with
    ``violations``: the first :func:`violation_rows` of ``n_violations`` in all)."""
    listed = violation_rows(frame) if violations is None else violations
    total = len(listed) if n_violations is None else n_violations
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
        lines += ["", "## Violations by rule", ""]
        if total:
            lines += ["| rule | sut | runs | violations | first at |", "|---|---|---:|---:|---|"]
            firsts: dict[tuple[str, str], dict[str, Any]] = {}
            for v in listed:
                firsts.setdefault((v["rule"], v["sut"]), v)
            # (rule, sut) -> the runs (their ids) that broke it, and how many violations
            broken: dict[tuple[str, str], tuple[set[tuple[Any, ...]], list[int]]] = {}
            ids = zip(*(frame[c].tolist() for c in ID_COLUMNS), strict=True)
            for run, violations in zip(ids, frame["violations"].tolist(), strict=True):
                for v in violations:
                    runs, count = broken.setdefault((v["rule"], run[_SUT]), (set(), [0]))
                    runs.add(run)
                    count[0] += 1
            for (rule, sut), (runs, count) in sorted(broken.items()):
                first = firsts.get((rule, sut))
                at = f"{variant(first)} {where(first)}" if first else "(past the listed ones)"
                lines.append(f"| {rule} | {sut} | {len(runs)} | {count[0]} | {at} |")
            lines += ["", "## Every violation", ""]
            lines += ["| run | rule | at ms | message | the user saw |", "|---|---|---:|---|---|"]
            lines += [
                f"| {variant(v)} | {v['rule']} | {_ms(v['at_ms'])} | "
                f"{_md(as_seen(v['message']))} | {_md(v['excerpt'])} |"
                for v in listed
            ]
            if total > len(listed):
                lines += ["", f"{total - len(listed)} more violations in results.parquet."]
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
    groups = _groups(frame, ("sut", "chunking"))
    values_of = {c: frame[c].tolist() for c in columns}
    for (sut, chunking), members in groups.items():
        cells = []
        for column in columns:
            values = [
                v for i in members if isinstance(v := given(values_of[column][i]), int | float)
            ]
            value = _AGGREGATES[SMOOTHNESS_SUMMARY[column][1]](values) if values else math.nan
            cells.append(
                "–" if math.isnan(value) else f"{value:.3g}" if value < 10 else f"{value:.0f}"
            )
        lines.append(f"| {sut} | {chunking} | " + " | ".join(cells) + " |")
    return lines


# summary.md's smoothness aggregates over a group's numbers, as pandas' median / max / sum
_AGGREGATES: dict[str, Callable[[list[float]], float]] = {
    "median": statistics.median,
    "max": max,
    "sum": sum,
}


def _testcase(row: pd.Series | dict[str, Any]) -> str:
    """One run as a JUnit ``<testcase>``, a failure per violation."""
    case = ET.Element("testcase", classname=f"streambench.{row['case']}", name=run_id(row))
    total = given(row.get("total_ms"))
    case.set("time", f"{(total if total is not None else 0) / 1000:.3f}")
    for v in row["violations"]:
        seen = excerpt(row, v["at_ms"])
        message = f"{v['rule']} {where(v)}: {as_seen(v['message'])}"
        if seen:
            message += f"; the user saw: {seen}"
        failure = ET.SubElement(case, "failure", type=v["rule"], message=message)
        failure.text = message + "".join(f"\n{line}" for line in _sut_lines(row))
    return ET.tostring(case, encoding="unicode")


def _junit_head(runs: int, failures: int) -> str:
    suite = ET.Element("testsuite", name="streambench", tests=str(runs), failures=str(failures))
    head = ET.tostring(suite, encoding="unicode", xml_declaration=True)
    return head.removesuffix(" />") + ">"


def junit_xml(frame: pd.DataFrame) -> bytes:
    if not len(frame):
        return _junit_head(0, 0).removesuffix(">").encode() + b" />"
    failures = int((frame["n_violations"] > 0).sum())
    body = "".join(_testcase(row) for row in frame.to_dict(orient="records"))
    return (_junit_head(len(frame), failures) + body + "</testsuite>").encode()


def write_reports(frame: pd.DataFrame, out: str | Path) -> list[Path]:
    """Write the five report files of an in-memory frame into ``out`` (created); returns their
    paths. (:func:`write_streamed` writes them from rows streamed to disk.)

    A folder holding only reports is replaced in one swap, so a crash never leaves one run's
    page beside another run's results; a folder holding other files too gets each report
    replaced atomically on its own."""
    parts = (frame.iloc[i : i + CHUNK_ROWS] for i in range(0, max(len(frame), 1), CHUNK_ROWS))
    chunks = ((part, part.to_dict(orient="records")) for part in parts)
    return _write_folder(Path(out), chunks, _arrow_schema(frame)).paths


@dataclass
class Written:
    """What :func:`write_streamed` wrote, and what the terminal shows of it."""

    paths: list[Path]
    # every run's id, metrics and counts (no texts; ``violations`` as their rules only)
    overview: pd.DataFrame
    # the first MAX_LISTED_VIOLATIONS violations (:func:`violation_rows`), and how many in all
    violations: list[dict[str, Any]]
    n_violations: int


# The texts of a row: what a check over metrics and rule counts (the gate) never reads.
BULKY_COLUMNS = (
    "timeline_json",
    "streamed_text",
    "final_text",
    "expected_text",
    "provisional_code",
    "final_code",
    "expected_code",
    "upstream_requests",
)
# Rows converted and written at once: the writers' memory is this many rows, whatever the runs.
CHUNK_ROWS = 256
# summary.md lists at most this many violations one by one (the results files hold them all).
MAX_LISTED_VIOLATIONS = 1000
# Where rows go as runs finish; readable after an interrupt (load_results), gone when complete.
SPOOL_NAME = "results.partial.jsonl"
# What the cross-run rules read of a run without faults (grade/variance.py).
_COMPARED = (
    *GROUP_COLUMNS,
    "chunking",
    "fault",
    "streamed_text",
    "final_code",
    "terminal",
    "statuses",
)
# Rows written at once: as a frame (parquet, CSV, overview) and as the mappings it was made of.
Chunk = tuple[pd.DataFrame, list[dict[str, Any]]]
_REPORTS_TMP = ".reports.tmp-"  # reports written beside other files, then moved in one by one
OVERVIEW_COLUMNS = (
    *ID_COLUMNS,
    "dialect_used",
    "terminal",
    "n_violations",
    "not_checked",
    "code_exact",
    "status_code",
    "unknown_event_names",
    *METRIC_COLUMNS,
)


def _arrow_type(kind: Any) -> pa.DataType:
    """The parquet type of a Row column's annotation (``X | None`` is a nullable X)."""
    args = [k for k in typing.get_args(kind) if k is not type(None)]
    if typing.get_origin(kind) is list:
        return pa.list_(_arrow_type(args[0]))
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        (given_type,) = args
        return _arrow_type(given_type)
    if typing.is_typeddict(kind):
        hints = typing.get_type_hints(kind)
        return pa.struct([(name, _arrow_type(k)) for name, k in hints.items()])
    return {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}[kind]


def _arrow_schema(sample: pd.DataFrame) -> pa.Schema:
    """The parquet schema of these columns: Row's types, inferred for columns Row lacks."""
    known = column_types()
    fields = []
    for name in sample.columns:
        if name in known:
            fields.append(pa.field(name, _arrow_type(known[name][0])))
        else:
            fields.append(pa.Schema.from_pandas(sample[[name]], preserve_index=False).field(0))
    return pa.schema(fields)


def _write_folder(
    out: Path,
    chunks: Iterable[Chunk],
    schema: pa.Schema | None = None,
    spool: Path | None = None,
) -> Written:
    """The report files of rows arriving in chunks (sorted; each as a frame and as the row
    mappings it was made of), in one pass over them: parquet row
    groups, CSV and JUnit appended, summary.md and report.html from what the pass kept (the
    overview of every run, the first violations, failing runs first up to MAX_RUNS_SHOWN).

    A folder holding only reports (and ``spool``) is replaced in one swap; one holding other
    files too gets each report replaced on its own (written beside it, then moved)."""
    written: Written | None = None

    def write(folder: Path) -> None:
        nonlocal written
        written = _write_files(folder, chunks, schema)

    if out.is_dir():  # temp files and folders of a killed run's writes
        for name in REPORT_FILES:
            for leftover in out.glob(f".{name}.*.tmp"):
                leftover.unlink(missing_ok=True)
        for folder in out.glob(f"{_REPORTS_TMP}*"):
            shutil.rmtree(folder, ignore_errors=True)
    ours = {*REPORT_FILES, SPOOL_NAME}
    others = out.is_dir() and any(p.name not in ours for p in out.iterdir())
    if others:
        tmp = Path(tempfile.mkdtemp(prefix=_REPORTS_TMP, dir=out))
        try:
            write(tmp)
            for name in REPORT_FILES:
                os.replace(tmp / name, out / name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if spool is not None:
            spool.unlink(missing_ok=True)
    else:
        replace_folder(out, write)
    assert written is not None
    written.paths = [out / name for name in REPORT_FILES]
    return written


def _write_files(folder: Path, chunks: Iterable[Chunk], schema: pa.Schema | None) -> Written:
    parquet, csv, summary, junit, page = (folder / name for name in REPORT_FILES)
    cases = folder / ".testcases.xml"
    overview: list[pd.DataFrame] = []
    listed: list[dict[str, Any]] = []
    n_violations = 0
    failing: list[tuple[int, dict[str, Any]]] = []  # (position, row), up to MAX_RUNS_SHOWN
    clean: list[tuple[int, dict[str, Any]]] = []
    writer: pq.ParquetWriter | None = None
    first = True
    position = 0
    with (
        csv.open("w", encoding="utf-8", newline="") as csv_file,
        cases.open("w", encoding="utf-8") as case_file,
    ):
        for chunk, records in chunks:
            if not len(chunk.columns):
                continue
            schema = schema or _arrow_schema(chunk)
            table = pa.Table.from_pandas(chunk, schema=schema, preserve_index=False)
            writer = writer or pq.ParquetWriter(parquet, table.schema)
            writer.write_table(table)
            _flat(chunk).to_csv(csv_file, index=False, header=first)
            first = False
            case_file.writelines(_testcase(row) for row in records)
            overview.append(_overview(chunk))
            for row in records:
                violations = violation_rows([row])
                n_violations += len(violations)
                listed += violations[: MAX_LISTED_VIOLATIONS - len(listed)]
                kept = failing if row["n_violations"] else clean
                if len(kept) < MAX_RUNS_SHOWN:
                    kept.append((position, row))
                position += 1
    if writer is None:  # no runs: an empty table still says what a row is
        pd.DataFrame().to_parquet(parquet, index=False)
    else:
        writer.close()
    every = pd.concat(overview, ignore_index=True) if overview else pd.DataFrame()
    runs = len(every)
    failures = int((every["n_violations"] > 0).sum()) if runs else 0
    with junit.open("w", encoding="utf-8") as junit_file:
        if runs:
            junit_file.write(_junit_head(runs, failures))
            with cases.open(encoding="utf-8") as case_file:
                shutil.copyfileobj(case_file, junit_file)
            junit_file.write("</testsuite>")
        else:
            junit_file.write(_junit_head(0, 0).removesuffix(">") + " />")
    cases.unlink()
    summary.write_text(summary_markdown(every, listed, n_violations), encoding="utf-8")
    # every run in order when they fit, else the failing ones first (the page says so)
    picked = failing + clean[: MAX_RUNS_SHOWN - len(failing)]
    if runs <= MAX_RUNS_SHOWN:
        picked.sort(key=lambda kept: kept[0])
    page.write_text(report_html([row for _, row in picked], every), encoding="utf-8")
    return Written([], every, listed, n_violations)


def _overview(chunk: pd.DataFrame) -> pd.DataFrame:
    """A chunk's overview columns; violations kept as their rules only."""
    kept = chunk[[c for c in OVERVIEW_COLUMNS if c in chunk]].copy()
    kept["violations"] = [[{"rule": v["rule"]} for v in vs] for vs in chunk["violations"]]
    return kept


class ResultsSpool:
    """Rows appended to ``OUT/results.partial.jsonl`` as runs finish (a line each, flushed), so
    an interrupted matrix leaves its finished runs readable (:func:`load_results`). Kept here
    per run: its sort key, place in the file and, for runs without faults, what the cross-run
    rules compare (texts interned: runs that agree share them), never the row itself."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        if self.out.exists() and not self.out.is_dir():
            raise OutputError(f"{self.out}: cannot write: is a file, not a folder")
        self.path = self.out / SPOOL_NAME
        self._file: typing.BinaryIO | None = None  # opened with the first row: no run, no file
        self._places: list[tuple[tuple[Any, ...], int, int]] = []
        self._compared: list[tuple[Any, ...]] = []  # (run index, *_COMPARED values)
        self._interned: dict[Any, Any] = {}
        self._added: dict[int, list[dict[str, Any]]] = {}
        self._columns: dict[str, dict[int, Any]] = {}

    def __len__(self) -> int:
        return len(self._places)

    def add(self, row: Row) -> None:
        """Append one finished run's row."""
        line = (json.dumps(row, ensure_ascii=False) + "\n").encode()
        if self._file is None:
            try:
                self.out.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("wb")
            except OSError as exc:
                raise OutputError(f"{self.out}: cannot write: {exc.strerror or exc}") from None
        offset = self._file.tell()
        self._file.write(line)
        self._file.flush()  # a kill now loses at most the run being written
        index = len(self._places)
        self._places.append((tuple(row[c] for c in ID_COLUMNS), offset, len(line)))  # type: ignore[literal-required]
        if not row["fault"]:
            values = (*(row[c] for c in _COMPARED[:-1]), tuple(row["statuses"]))  # type: ignore[literal-required]
            intern = self._interned.setdefault
            self._compared.append((index, *(intern(v, v) for v in values)))

    def add_cross_run(self, selected: dict[str, dict[str, Any]]) -> None:
        """The cross-run rules' violations (:func:`~streambench.grade.variance`) of every run,
        one group of runs that must agree at a time."""
        groups: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
        for compared in self._compared:
            groups.setdefault(compared[1 : 1 + len(GROUP_COLUMNS)], []).append(compared)
        self._compared, self._interned = [], {}
        for members in groups.values():
            rows = [dict(zip(_COMPARED, m[1:], strict=True)) for m in members]
            for position, found in cross_run_violations(rows, selected).items():
                self._added[members[position][0]] = [v.as_dict() for v in found]

    def set_column(self, name: str, values: dict[int, Any]) -> None:
        """A column added after the runs (``shrunk_case``): run index -> value, else None."""
        self._columns[name] = values

    def rows(self, only_failing: bool = False) -> Iterator[tuple[int, Row]]:
        """(run index, row) in the id columns' order, cross-run violations added."""
        if not self._places:
            return
        order = sorted(range(len(self._places)), key=lambda i: self._places[i][0])
        with self.path.open("rb") as spool:
            for index in order:
                _, offset, length = self._places[index]
                spool.seek(offset)
                row = json.loads(spool.read(length))
                added = self._added.get(index)
                if added:
                    row["violations"] = [*row["violations"], *added]
                    row["n_violations"] = len(row["violations"])
                if only_failing and not row["n_violations"]:
                    continue
                for name, values in self._columns.items():
                    row[name] = values.get(index)
                yield index, row

    def chunks(self) -> Iterator[pd.DataFrame]:
        """The rows in frames of CHUNK_ROWS."""
        return (frame for frame, _ in self._chunks())

    def _chunks(self) -> Iterator[Chunk]:
        """The rows in CHUNK_ROWS at a time, as a frame and as the rows themselves."""
        batch: list[dict[str, Any]] = []
        for _, row in self.rows():
            batch.append(row)  # type: ignore[arg-type]
            if len(batch) == CHUNK_ROWS:
                yield pd.DataFrame(batch), batch
                batch = []
        if batch or not self._places:
            yield pd.DataFrame(batch), batch

    def write_reports(self) -> Written:
        """The five report files in ``out`` from the spooled rows (which then go)."""
        self.close()
        schema = None
        if self._places:
            _, first = next(self.rows())
            schema = _arrow_schema(pd.DataFrame([first]))
        return _write_folder(self.out, self._chunks(), schema, self.path)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def write_streamed(
    rows: Iterable[Row], out: str | Path, profile: str | None = None
) -> ResultsSpool:
    """Spool ``rows`` (:func:`~streambench.runner.matrix.iter_matrix`) to ``out`` as they come
    and add the cross-run rules of ``profile``; then :meth:`ResultsSpool.write_reports`
    (after adding columns, e.g. ``shrunk_case``) writes the reports."""
    spool = ResultsSpool(out)
    try:
        for row in rows:
            spool.add(row)
    finally:
        spool.close()
    spool.add_cross_run(load_profile(profile))
    return spool


def load_results(
    path: str | Path, required: Sequence[str] = ("violations",), skip: Sequence[str] = ()
) -> pd.DataFrame:
    """Results from an ``--out`` folder or a .parquet / .csv / .json / .jsonl file, which must
    have the ``required`` columns. An empty CSV cell is NA; any text (``NA``, ``None``) stays
    text. ``skip`` leaves columns out (of parquet, unread: :data:`BULKY_COLUMNS` are most of
    a large run's bytes)."""
    path = Path(path)
    if path.is_dir():  # an interrupted run left only the rows of its finished runs
        spool = path / SPOOL_NAME
        path = (
            spool
            if spool.is_file() and not (path / REPORT_FILES[0]).is_file()
            else (path / REPORT_FILES[0])
        )
    if not path.is_file():
        raise ConfigError(f"{path}: no such results file")
    try:
        if path.suffix == ".parquet":
            names = pq.read_schema(path).names
            frame = pd.read_parquet(path, columns=[c for c in names if c not in skip])
        elif path.suffix == ".csv":
            frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
        elif path.suffix == ".jsonl":
            frame = pd.DataFrame(_jsonl_rows(path))
        elif path.suffix == ".json":
            frame = pd.read_json(path)
        else:
            raise ConfigError(f"{path}: expected a report folder or .parquet/.csv/.json/.jsonl")
    except (ValueError, KeyError, OSError) as exc:
        raise ConfigError(f"{path}: cannot read results: {exc}") from None
    frame = frame.drop(columns=[c for c in skip if c in frame])
    missing = [c for c in required if c not in frame]
    if missing:
        raise ConfigError(f"{path}: not a streambench results file: no column {', '.join(missing)}")
    if "violations" in frame:
        frame["violations"] = [
            _violations(v, f"{path}: row {i + 1}") for i, v in enumerate(frame["violations"])
        ]
    return frame


def _jsonl_rows(path: Path) -> list[dict[str, Any]]:
    """A JSONL file's rows; a last line without its newline (a run being written when the
    matrix was killed) is left out."""
    with path.open("rb") as handle:
        lines = handle.read().split(b"\n")
    rows = []
    for number, line in enumerate(lines[:-1], 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise ValueError(f"line {number}: {exc}") from None
    return rows


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
