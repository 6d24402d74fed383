"""Reports of result rows: results.parquet, results.csv, summary.md, junit.xml and a
self-contained report.html (report/html.py: summaries, distributions, a player per run).

Written without pandas: the CSV cells are formatted as pandas' ``to_csv`` formatted them (the
dtype it infers per chunk of rows: ints, floats, bools, text or objects) and the parquet file
gets the schema metadata ``pyarrow.Table.from_pandas`` gave it, so the files are the bytes they
were (tests/test_report_bytes.py writes them both ways) while ``streambench run`` loads no
pandas, and pyarrow (with numpy) only once it writes the parquet file. ``--format json``,
:func:`load_results` and a frame handed to :func:`write_reports` still use pandas.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import statistics
import tempfile
import types
import typing
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree as ET

from streambench._atomic import replace_folder
from streambench.errors import ConfigError, OutputError
from streambench.grade.metrics import percentile
from streambench.grade.profile import load_profile
from streambench.grade.variance import GROUP_COLUMNS, cross_run_violations
from streambench.report.html import MAX_RUNS_SHOWN, report_html
from streambench.report.overview import Overview, as_records, groups
from streambench.report.text import as_seen, excerpt, given, variant
from streambench.runner.row import ID_COLUMNS, Row, column_types

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

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
# Columns results.csv holds as JSON text (the other lists as Python shows them, as pandas did).
JSON_CSV_COLUMNS = ("violations", "warnings")


def run_id(row: Mapping[str, Any]) -> str:
    parts = [str(row[c]) for c in ID_COLUMNS if str(row[c]) != ""]
    return " | ".join(parts)


def summarize(
    runs: Overview | pd.DataFrame | Iterable[Mapping[str, Any]], by: Sequence[str]
) -> list[dict[str, Any]]:
    """One mapping per group of the id columns ``by``, sorted: ``runs``, ``flagged`` (runs
    with violations), ``violations``, a count per terminal (done, error, none),
    ``<metric>_p50`` and ``<metric>_p95`` of each of SUMMARY_METRICS, ``not_checked`` (rule
    checks a run could not make), and ``code_exact_rate`` (0..1; NaN when no run of the group
    expects code).

    Aggregated over plain lists, not a pandas groupby: a quantile per group and metric was
    most of the terminal summary's and summary.md's time; the quantiles are pandas' (numpy's
    linear method, :func:`~streambench.grade.metrics.percentile`) to the bit."""
    overview = Overview.of(runs)
    column = {c: overview[c] for c in ("n_violations", "terminal", *SUMMARY_METRICS)}
    not_checked = overview.get("not_checked")
    code_exact = overview["code_exact"]
    rows = []
    for key, members in groups(overview, by).items():
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
        row["code_exact_rate"] = sum(map(bool, exact)) / len(exact) if exact else math.nan
        rows.append(row)
    return rows


def violation_rows(rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every violation of every run (a frame's rows or row mappings), with the run's id
    columns, ``excerpt`` (what the user saw by then), ``status_code`` and ``sut_error``, in
    the rows' order."""
    records = as_records(rows)
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
    return "at the end" if given(at) is None else f"at {at:g} ms"


def summary_markdown(
    frame: Overview | pd.DataFrame | Sequence[Mapping[str, Any]],
    violations: list[dict[str, Any]] | None = None,
    n_violations: int | None = None,
) -> str:
    """summary.md of ``frame`` (full rows, or :class:`Written`'s overview with
    ``violations``: the first :func:`violation_rows` of ``n_violations`` in all)."""
    listed = violation_rows(frame) if violations is None else violations  # type: ignore[arg-type]
    total = len(listed) if n_violations is None else n_violations
    overview = Overview.of(frame)
    n = len(overview)
    clean = sum(1 for k in overview["n_violations"] if k == 0) if n else 0
    lines = ["# streambench results", "", f"{n} runs, {clean} without violations.", ""]
    if n:
        lines += [
            "| sut | chunking | runs | "
            + " | ".join(f"{m} p50 / p95" for m in SUMMARY_METRICS)
            + " | violations |"
        ]
        lines += ["|" + "---|" * (len(SUMMARY_METRICS) + 4)]
        for group in summarize(overview, ("sut", "chunking")):
            cells = [
                f"{group[f'{m}_p50']:.0f} / {group[f'{m}_p95']:.0f}"
                if not math.isnan(group[f"{m}_p50"])
                else "–"
                for m in SUMMARY_METRICS
            ]
            lines.append(
                f"| {group['sut']} | {group['chunking']} | {group['runs']} | "
                + " | ".join(cells)
                + f" | {group['violations']} |"
            )
        lines += ["", "## Smoothness (how the text arrived; docs/evaluation.md)", ""]
        lines += _smoothness_lines(overview)
        lines += ["", "## Violations by rule", ""]
        if total:
            lines += ["| rule | sut | runs | violations | first at |", "|---|---|---:|---:|---|"]
            firsts: dict[tuple[str, str], dict[str, Any]] = {}
            for v in listed:
                firsts.setdefault((v["rule"], v["sut"]), v)
            # (rule, sut) -> the runs (their ids) that broke it, and how many violations
            broken: dict[tuple[str, str], tuple[set[tuple[Any, ...]], list[int]]] = {}
            ids = zip(*(overview[c] for c in ID_COLUMNS), strict=True)
            for run, violations in zip(ids, overview["violations"], strict=True):
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


def _sut_lines(row: Mapping[str, Any]) -> list[str]:
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
    return "–" if given(at) is None else f"{at:g}"


def _smoothness_lines(overview: Overview) -> list[str]:
    columns = [c for c in SMOOTHNESS_SUMMARY if c in overview]
    if not columns:
        return ["No smoothness columns in these results."]
    heads = [SMOOTHNESS_SUMMARY[c][0] for c in columns]
    lines = ["| sut | chunking | " + " | ".join(heads) + " |", "|---|---|" + "---:|" * len(heads)]
    values_of = {c: overview[c] for c in columns}
    for (sut, chunking), members in groups(overview, ("sut", "chunking")).items():
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


def _testcase(row: Mapping[str, Any]) -> str:
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


def write_reports(frame: pd.DataFrame, out: str | Path) -> list[Path]:
    """Write the five report files of an in-memory frame into ``out`` (created); returns their
    paths. (:func:`write_streamed` writes them from rows streamed to disk.)

    A folder holding only reports is replaced in one swap, so a crash never leaves one run's
    page beside another run's results; a folder holding other files too gets each report
    replaced atomically on its own."""
    dtypes = {name: str(frame[name].dtype) for name in frame.columns}  # the frame's, not inferred
    records = frame.to_dict(orient="records")
    parts = (records[i : i + CHUNK_ROWS] for i in range(0, max(len(records), 1), CHUNK_ROWS))
    chunks = ((part, dtypes) for part in parts)
    return _write_folder(Path(out), chunks, _arrow_schema(records, dtypes)).paths


@dataclass
class Written:
    """What :func:`write_streamed` wrote, and what the terminal shows of it."""

    paths: list[Path]
    # every run's id, metrics and counts (no texts; ``violations`` as their rules only)
    overview: Overview
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
# Rows written at once, with each column's pandas dtype (int64, float64, bool, str, object):
# what results.csv's cells and the parquet metadata follow.
Chunk = tuple[Sequence[Mapping[str, Any]], dict[str, str]]
_REPORTS_TMP = ".reports.tmp-"  # reports written beside other files, then moved in one by one


def pandas_dtype(values: Sequence[Any]) -> str:
    """The dtype pandas (3.x) gives a column of these Python values in ``pd.DataFrame(rows)``:
    ``int64``, ``float64`` (numbers with a missing value: None or NaN), ``bool``, ``str``
    (text, some missing) or ``object`` (anything else, a column of only missing values too)."""
    seen: set[str] = set()
    for kind in set(map(type, values)):  # exact types: numpy's scalars are objects here too
        if kind not in _KINDS:
            return "object"
        seen.add(_KINDS[kind])
    if "float" in seen and "str" in seen and all(v != v for v in values if type(v) is float):
        seen = (seen - {"float"}) | {"nan"}  # text with NaN gaps is text
    if seen == {"int"}:
        return "int64"
    if seen == {"bool"}:
        return "bool"
    if seen & {"int", "float"} and seen <= {"int", "float", "none"}:
        return "float64"
    if "str" in seen and seen <= {"str", "nan", "none"}:
        return "str"
    return "object"


_KINDS = {type(None): "none", bool: "bool", int: "int", float: "float", str: "str"}
# Values the JSON reader takes as they are (the rest: NaN to null, a frame's numpy values).
_PLAIN = frozenset({str, int, bool, type(None)})


def chunk_dtypes(rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Each column of ``rows`` (in the order they first appear, as ``pd.DataFrame(rows)``
    orders them) and its :func:`pandas_dtype`; a row without a column has None there."""
    names = dict.fromkeys(name for row in rows for name in row)
    return {name: pandas_dtype([row.get(name) for row in rows]) for name in names}


def csv_cells(rows: Sequence[Mapping[str, Any]], dtypes: dict[str, str]) -> Iterator[list[Any]]:
    """The cells ``DataFrame.to_csv`` writes for ``rows`` (a csv writer's fields), columns
    of ``dtypes``: floats as Python's ``repr`` (``200.0`` in a float column of ints), missing
    values as empty cells, violations and warnings as JSON, any other object as Python shows
    it (``str``; the csv writer gives floats their ``repr``)."""
    kinds = [(c, "json" if c in JSON_CSV_COLUMNS else dtype) for c, dtype in dtypes.items()]
    for row in rows:
        cells: list[Any] = []
        for name, kind in kinds:
            value = row.get(name)
            if kind == "json":
                cells.append(json.dumps(value))
            elif value is None or (isinstance(value, float) and value != value):  # missing
                cells.append("")
            elif kind == "float64":
                cells.append(repr(float(value)))
            else:
                cells.append(value)
        yield cells


def _arrow_type(kind: Any) -> pa.DataType:
    """The parquet type of a Row column's annotation (``X | None`` is a nullable X)."""
    import pyarrow as pa

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


def _arrow_schema(sample: Sequence[Mapping[str, Any]], dtypes: dict[str, str]) -> pa.Schema:
    """The parquet schema of these columns: Row's types; for a column Row lacks, the type
    ``Schema.from_pandas`` infers from the ``sample`` rows' values and the column's dtype."""
    import pyarrow as pa

    known = column_types()
    inferred = {"int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_()}
    inferred["str"] = pa.large_string()
    fields = []
    for name, dtype in dtypes.items():
        if name in known:
            fields.append(pa.field(name, _arrow_type(known[name][0])))
        elif dtype in inferred:
            fields.append(pa.field(name, inferred[dtype]))
        else:
            values = [row.get(name) for row in sample]
            fields.append(pa.field(name, pa.array(values, from_pandas=True).type))
    return pa.schema(fields)


def _arrow_table(
    rows: Sequence[Mapping[str, Any]], dtypes: dict[str, str], schema: pa.Schema, first: bool
) -> pa.Table:
    """``rows`` as ``Table.from_pandas(pd.DataFrame(rows), schema)`` made them (NaN is null,
    also inside violations); the ``first`` chunk's table carries the pandas metadata the file
    keeps. Converted by pyarrow's JSON reader: ``pyarrow.array`` on Python values imports
    pandas to check whether they are pandas objects."""
    import pyarrow as pa
    import pyarrow.json as pj

    fields = [(f.name, pa.types.is_integer(f.type)) for f in schema]
    lines = b"".join(
        json.dumps(
            {
                name: v if type(v := row.get(name)) in _PLAIN else _json_value(v, integer)
                for name, integer in fields
            },
            ensure_ascii=False,
        ).encode()
        + b"\n"
        for row in rows
    )
    if first:
        schema = schema.with_metadata(_pandas_metadata(schema, dtypes))
    if not rows:  # a frame without rows (the reader takes no empty input)
        return schema.empty_table()
    options = pj.ReadOptions(use_threads=False, block_size=max(len(lines), 1 << 16))
    parse = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error")
    table = pj.read_json(pa.BufferReader(lines), read_options=options, parse_options=parse)
    return table.combine_chunks().replace_schema_metadata(schema.metadata)


def _json_value(value: Any, integer: bool) -> Any:
    """A cell as the JSON reader takes it: NaN as null, anywhere in it (pandas' missing
    value, as ``from_pandas`` reads it); a whole float as an int in an integer column (a frame's
    ints with a gap are floats)."""
    if isinstance(value, float):
        if value != value:
            return None
        return int(value) if integer and value.is_integer() else value
    if isinstance(value, list | tuple):
        return [_json_value(v, False) for v in value]
    if isinstance(value, dict):
        return {k: _json_value(v, False) for k, v in value.items()}
    if hasattr(value, "tolist"):  # an array or numpy scalar of a frame read back
        return _json_value(value.tolist(), integer)
    return value


def _pandas_metadata(schema: pa.Schema, dtypes: dict[str, str]) -> dict[bytes, bytes]:
    """The ``pandas`` schema metadata ``Table.from_pandas`` writes (without an index): what
    ``pandas.read_parquet`` restores the columns' dtypes from."""
    from importlib.metadata import version

    import pyarrow as pa
    from pyarrow.pandas_compat import get_logical_type

    columns = [
        {
            "name": f.name,
            "field_name": f.name,
            "pandas_type": get_logical_type(f.type),
            "numpy_type": dtypes.get(f.name, "object"),
            "metadata": None,
        }
        for f in schema
    ]
    about = {
        "index_columns": [],
        "column_indexes": [],
        "columns": columns,
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": version("pandas"),
    }
    return {b"pandas": json.dumps(about).encode("utf8")}


def _write_folder(
    out: Path,
    chunks: Iterable[Chunk],
    schema: pa.Schema | None = None,
    spool: Path | None = None,
) -> Written:
    """The report files of rows arriving in chunks (sorted; each with its columns' dtypes),
    in one pass over them: parquet row
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
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet, results_csv, summary, junit, page = (folder / name for name in REPORT_FILES)
    cases = folder / ".testcases.xml"
    every = Overview()
    listed: list[dict[str, Any]] = []
    n_violations = 0
    failing: list[tuple[int, Mapping[str, Any]]] = []  # (position, row), up to MAX_RUNS_SHOWN
    clean: list[tuple[int, Mapping[str, Any]]] = []
    writer: pq.ParquetWriter | None = None
    position = 0
    with (
        results_csv.open("w", encoding="utf-8", newline="") as csv_file,
        cases.open("w", encoding="utf-8") as case_file,
    ):
        cells = csv.writer(csv_file, lineterminator=os.linesep)  # to_csv's dialect
        for records, dtypes in chunks:
            if not dtypes:
                continue
            schema = schema or _arrow_schema(records, dtypes)
            table = _arrow_table(records, dtypes, schema, first=writer is None)
            if writer is None:
                writer = pq.ParquetWriter(parquet, table.schema)
                cells.writerow(dtypes)
            writer.write_table(table)
            cells.writerows(csv_cells(records, dtypes))
            case_file.writelines(_testcase(row) for row in records)
            every.add(records)
            for row in records:
                violations = violation_rows([row])
                n_violations += len(violations)
                listed += violations[: MAX_LISTED_VIOLATIONS - len(listed)]
                if row["n_violations"] and len(failing) < MAX_RUNS_SHOWN:
                    failing.append((position, row))
                    del clean[MAX_RUNS_SHOWN - len(failing) :]  # the page has no room for them
                elif not row["n_violations"] and len(failing) + len(clean) < MAX_RUNS_SHOWN:
                    clean.append((position, row))
                position += 1
    if writer is None:  # no runs: an empty table still says what a row is
        empty = pa.schema([], metadata=_pandas_metadata(pa.schema([]), {}))
        pq.write_table(empty.empty_table(), parquet)
    else:
        writer.close()
    runs = len(every)
    failures = sum(1 for n in every["n_violations"] if n > 0) if runs else 0
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
        self._ids: dict[Any, Any] = {}  # id values, shared by the runs that have them
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
        ids = self._ids.setdefault
        key = tuple(ids(row[c], row[c]) for c in ID_COLUMNS)  # type: ignore[literal-required]
        self._places.append((key, offset, len(line)))
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

    def chunks(self) -> Iterator[list[Row]]:
        """The rows, CHUNK_ROWS at a time."""
        batch: list[Row] = []
        for _, row in self.rows():
            batch.append(row)
            if len(batch) == CHUNK_ROWS:
                yield batch
                batch = []
        if batch:
            yield batch

    def _chunks(self) -> Iterator[Chunk]:
        """:meth:`chunks` with the dtypes pandas gave each chunk's columns."""
        return ((batch, chunk_dtypes(batch)) for batch in self.chunks())  # type: ignore[arg-type]

    def write_reports(self) -> Written:
        """The five report files in ``out`` from the spooled rows (which then go)."""
        self.close()
        schema = None
        if self._places:
            _, first = next(self.rows())
            schema = _arrow_schema([first], chunk_dtypes([first]))  # type: ignore[list-item]
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
    import pandas as pd
    import pyarrow.parquet as pq

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
