"""report.html: one self-contained offline page to look at, not scroll.

At the top a summary per SUT and per rule (counts, links to the failing runs); then the
distributions per chunking and per case; then every run as a card, failing runs first,
grouped by rule. Opening a card builds its player: a time slider (play at 1x / 10x) showing
the client model's state at time t (status line, streamed text, code panel) beside the
upstream events on the same axis, the injected fault and each violation marked, and the text
the user saw diffed against the expected one. Drawing is our own SVG (report.js): plotly's
bundle alone was 4.5 MB of the old 5 MB page (README, design notes).
"""

from __future__ import annotations

import html
import json
import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any

from streambench.grade.rules import RULES
from streambench.report.overview import Overview, as_records, groups
from streambench.report.text import excerpt, given, variant

if TYPE_CHECKING:
    import pandas as pd

# Upstream deltas are drawn as marks; their text (a hover title) is cut to this many chars.
UPSTREAM_TEXT_CHARS = 24
# Metrics the distributions can show: column -> label (the first is shown first).
DISTRIBUTION_METRICS = {
    "ttft_ms": "time to first text (ms)",
    "ttfc_ms": "time to first changes (ms)",
    "total_ms": "total (ms)",
    "jump_chars_max": "largest jump (chars)",
    "paint_rate_cps": "paint rate (chars/s)",
    "stall_ms_max": "longest gap after the first text (ms)",
    "itl_per_chunk_ms": "ITL per chunk, vLLM (ms)",
    "itl_per_token_ms": "ITL per token, GenAI-Perf (ms)",
}
_ASSETS = resources.files("streambench") / "data" / "report"
# Runs a page shows as cards (failing first): the page of a 100k-run matrix stays a few MB.
MAX_RUNS_SHOWN = 500


def _number(value: Any) -> float | None:
    """A JSON-safe number (None for NaN or missing), ms rounded to 0.1."""
    value = given(value)
    if value is None or isinstance(value, str):
        return None
    value = float(value)
    return None if math.isnan(value) else round(value, 1)


def _events(row: Mapping[str, Any]) -> list[list[Any]]:
    """[t_ms, source (0 client, n upstream n), kind, text, code?] per timeline entry."""
    timeline = row.get("timeline_json")
    if not isinstance(timeline, str):
        return []
    out: list[list[Any]] = []
    sources = {"client": 0}  # "upstream 2" -> 2, parsed once per run (the loop is per event)
    for e in json.loads(timeline):
        source = sources.get(e["source"])
        if source is None:
            source = sources[e["source"]] = int(e["source"].rsplit(" ", 1)[-1])
        kind, text, code = e["kind"], e.get("text") or "", e.get("code")
        if source and kind != "fault":
            text = text[:UPSTREAM_TEXT_CHARS]
        t_ms = round(e["t_ms"], 1)
        out.append([t_ms, source, kind, text] if code is None else [t_ms, source, kind, text, code])
    return out


def _run_data(index: int, row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "i": index,
        "id": variant(row),
        "sut": row["sut"],
        "chunking": row["chunking"],
        "case": row["case"],
        "terminal": row["terminal"],
        "status": _number(row.get("status_code")),
        "sut_error": given(row.get("sut_error")),
        "v": [
            [v["rule"], _number(v["at_ms"]), v["message"], excerpt(row, v["at_ms"])]
            for v in row["violations"]
        ],
        "m": {m: _number(row.get(m)) for m in DISTRIBUTION_METRICS},
        "ev": _events(row),
        "expected": given(row.get("expected_text")),
        "final": given(row.get("final_text")),
        # run --shrink: the folder of this failure's shrunk case, relative to the report
        "shrunk": given(row.get("shrunk_case")),
    }


def _link(index: int, label: str) -> str:
    return f"<a href='#run-{index}'>{html.escape(label)}</a>"


def _sut_table(every: Overview, rules: list[str]) -> str:
    head = "".join(f"<th>{html.escape(r)}</th>" for r in rules)
    rows = []
    counts, violations = every["n_violations"], every["violations"]
    for (sut,), members in groups(every, ("sut",)).items():
        flagged = sum(1 for i in members if counts[i] > 0)
        per_rule = Counter(v["rule"] for i in members for v in violations[i])
        cells = "".join(
            f"<td class='n{' bad' if per_rule[r] else ''}'>{per_rule[r]}</td>" for r in rules
        )
        rows.append(
            f"<tr data-sut='{html.escape(str(sut))}' data-runs='{len(members)}' "
            f"data-flagged='{flagged}'><th>{html.escape(str(sut))}</th>"
            f"<td class='n'>{len(members)}</td><td class='n'>{len(members) - flagged}</td>"
            f"<td class='n{' bad' if flagged else ''}'>{flagged}</td>"
            f"<td class='n'>{int(sum(counts[i] for i in members))}</td>{cells}</tr>"
        )
    return (
        "<table id='by-sut'><caption>Per SUT: runs, and violations per rule</caption>"
        "<tr><th>sut</th><th>runs</th><th>clean</th><th>with violations</th>"
        f"<th>violations</th>{head}</tr>{''.join(rows)}</table>"
    )


def _rule_table(records: list[Mapping[str, Any]], failing: dict[str, list[int]]) -> str:
    if not failing:
        return "<p id='by-rule' class='clean'>No rule was broken in any run.</p>"
    rows = []
    for rule, runs in failing.items():
        count = sum(1 for row in records for v in row["violations"] if v["rule"] == rule)
        links = ", ".join(_link(i, f"#{i}") for i in runs[:30])
        more = f" and {len(runs) - 30} more" if len(runs) > 30 else ""
        about = RULES[rule].description if rule in RULES else ""
        rows.append(
            f"<tr data-rule='{html.escape(rule)}' data-runs='{len(runs)}'>"
            f"<th><a href='#rule-{html.escape(rule)}'>{html.escape(rule)}</a></th>"
            f"<td>{html.escape(about)}</td><td class='n'>{len(runs)}</td>"
            f"<td class='n'>{count}</td><td>{links}{more}</td></tr>"
        )
    return (
        "<table id='by-rule'><caption>Per rule: the runs that broke it</caption><tr><th>rule</th>"
        "<th>what it means</th><th>runs</th><th>violations</th><th>failing runs</th></tr>"
        f"{''.join(rows)}</table>"
    )


def _card(index: int, row: Mapping[str, Any]) -> str:
    rules = sorted({v["rule"] for v in row["violations"]})
    badges = "".join(f"<span class='badge'>{html.escape(r)}</span>" for r in rules)
    end = html.escape(str(row["terminal"]))
    return (
        f"<details class='run' id='run-{index}' data-run='{index}'><summary>"
        f"<span class='idx'>#{index}</span> {html.escape(variant(row))} "
        f"<span class='end end-{end}'>{end}</span> {badges}</summary>"
        "<div class='player'></div></details>"
    )


def report_html(
    frame: pd.DataFrame | Sequence[Mapping[str, Any]], overview: Overview | None = None
) -> str:
    """The page for a results frame or rows (in their order; ``#run-N`` is row N). With
    ``overview`` (every run's ids and counts, of which ``frame`` shows some), the counts and
    the per-SUT table are of every run, and the page says how many it shows."""
    records = as_records(frame)  # (a Series per row was 60% of the page's CPU time)
    every = Overview.of(records if overview is None else overview)
    n = len(every)
    flagged = sum(1 for k in every["n_violations"] if k > 0) if n else 0
    total = int(sum(every["n_violations"])) if n else 0
    failing: dict[str, list[int]] = defaultdict(list)
    first_rule: dict[int, str] = {}
    for index, row in enumerate(records):
        for rule in dict.fromkeys(v["rule"] for v in row["violations"]):
            failing[rule].append(index)
            first_rule.setdefault(index, rule)
    order = [r for r in RULES if r in failing] + sorted(set(failing) - set(RULES))
    failing = {r: failing[r] for r in order}
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>streambench report</title>",
        f"<style>{(_ASSETS / 'report.css').read_text(encoding='utf-8')}</style></head><body>",
        "<h1>streambench report</h1>",
        f"<p id='counts'><b id='n-runs'>{n}</b> runs: <b id='n-clean'>{n - flagged}</b> clean, "
        f"<b id='n-flagged'>{flagged}</b> with violations (<b id='n-violations'>{total}</b> "
        "violations). Open a run to play it back.</p>",
    ]
    if len(records) < n:
        parts.append(
            f"<p id='shown'>Showing {len(records)} of {n} runs: the failing ones first. Every run"
            " is in results.parquet.</p>"
        )
    if n:
        broken = {v["rule"] for vs in every["violations"] for v in vs}
        rules = [r for r in RULES if r in broken] + sorted(broken - set(RULES))
        parts += [_sut_table(every, rules), _rule_table(records, failing)]
        parts.append(
            "<h2 id='distributions'>Distributions</h2><p>Each dot is a run. "
            "<select id='metric'>"
            + "".join(
                f"<option value='{k}'>{html.escape(v)}</option>"
                for k, v in DISTRIBUTION_METRICS.items()
            )
            + "</select></p><div id='by-chunking'></div><div id='by-case'></div>"
        )
        for rule, runs in failing.items():
            here = [i for i in runs if first_rule[i] == rule]
            also = [i for i in runs if first_rule[i] != rule]
            parts.append(
                f"<h2 id='rule-{html.escape(rule)}'>Failing: {html.escape(rule)} "
                f"({len(runs)} runs)</h2>"
            )
            if also:
                links = ", ".join(_link(i, f"#{i}") for i in also)
                parts.append(f"<p class='also'>Also broken by {links} (shown above).</p>")
            parts += [_card(i, records[i]) for i in here]
        clean = [i for i in range(len(records)) if i not in first_rule]
        parts.append(f"<h2 id='clean'>Clean runs ({len(clean)})</h2>")
        parts += [_card(i, records[i]) for i in clean]
    data = {
        "runs": [_run_data(i, row) for i, row in enumerate(records)],
        "metrics": DISTRIBUTION_METRICS,
    }
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False).replace("</", "<\\/")
    parts += [
        f"<script id='data' type='application/json'>{payload}</script>",
        f"<script>{(_ASSETS / 'report.js').read_text(encoding='utf-8')}</script></body></html>",
    ]
    return "\n".join(parts)
