"""The CI gate: thresholds on metric statistics, per-rule violation counts, and regressions
against a baseline run. Pure: it returns findings; the CLI turns them into an exit code."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from streambench._yaml import load_yaml
from streambench.errors import ConfigError
from streambench.grade.rules import RULES

STATISTICS = {"p50": 50, "p90": 90, "p95": 95, "p99": 99, "max": 100}
BOUNDS = ("max", "min")


@dataclass(frozen=True)
class Finding:
    check: str  # e.g. "ttfc_ms p95 max 1500" or "rule escape-leak"
    value: float
    limit: float
    passed: bool
    detail: str


def statistic(values: pd.Series, stat: str) -> float:
    clean = values.dropna().astype(float)
    if clean.empty:
        return float("nan")
    if stat == "mean":
        return float(clean.mean())
    return float(np.percentile(clean, STATISTICS[stat]))


# Without a thresholds file: the run passes when no rule found anything.
DEFAULT_THRESHOLDS: dict[str, Any] = {"rules": {"*": 0}}


def load_thresholds(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    data = load_yaml(path, "thresholds") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: thresholds are a mapping with metrics, rules, baseline")
    unknown = sorted(set(data) - {"metrics", "rules", "baseline"})
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r} (known: metrics, rules, baseline)")
    for section in ("metrics", "rules", "baseline"):
        if not isinstance(data.get(section) or {}, dict):
            raise ConfigError(f"{path}: {section} must be a mapping, got {data[section]!r}")
    for section, bounds in (("metrics", BOUNDS), ("baseline", ("max_increase_pct",))):
        for metric, stats in (data.get(section) or {}).items():
            where = f"{path}: {section}.{metric}"
            if not isinstance(stats, dict):
                raise ConfigError(
                    f"{where}: expected statistic -> bound, e.g. {{p95: {{max: 1500}}}}"
                )
            for stat, bound in stats.items():
                if stat not in (*STATISTICS, "mean"):
                    raise ConfigError(
                        f"{where}.{stat}: unknown statistic (p50, p90, p95, p99, max, mean)"
                    )
                if not isinstance(bound, dict) or not bound or set(bound) - set(bounds):
                    raise ConfigError(
                        f"{where}.{stat}: expected a mapping with {' or '.join(bounds)}"
                    )
                for key, limit in bound.items():
                    if not isinstance(limit, int | float) or isinstance(limit, bool):
                        raise ConfigError(f"{where}.{stat}.{key}: must be a number")
    for slug, limit in (data.get("rules") or {}).items():
        if slug != "*" and slug not in RULES:
            raise ConfigError(f"{path}: rules.{slug}: unknown rule")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise ConfigError(f"{path}: rules.{slug}: must be a count >= 0")
    return data


def _column(frame: pd.DataFrame, metric: str, source: str) -> pd.Series:
    if metric not in frame:
        raise ConfigError(f"thresholds name metric {metric!r}, absent from {source}")
    column = frame[metric]
    if column.dtype == bool or not pd.api.types.is_numeric_dtype(column):
        try:
            return pd.to_numeric(column.dropna(), errors="raise").astype(float)
        except (TypeError, ValueError):
            raise ConfigError(
                f"thresholds name metric {metric!r}, a text column in {source}, not a number"
            ) from None
    return column


def evaluate_gate(
    results: pd.DataFrame, thresholds: dict[str, Any], baseline: pd.DataFrame | None = None
) -> list[Finding]:
    findings: list[Finding] = []
    for metric, stats in (thresholds.get("metrics") or {}).items():
        for stat, bound in stats.items():
            value = statistic(_column(results, metric, "the results"), stat)
            for kind, limit in bound.items():
                passed = bool(value <= limit if kind == "max" else value >= limit) or np.isnan(
                    value
                )
                over = value - limit if kind == "max" else limit - value
                detail = f"{metric} {stat} = {value:.1f}, {kind} {limit:g}" + (
                    "" if passed else f" ({over:+.1f} beyond)"
                )
                findings.append(Finding(f"{metric} {stat} {kind}", value, limit, passed, detail))
    counts = Counter(v["rule"] for vs in results["violations"] for v in vs)
    rules = thresholds.get("rules") or {}
    for slug in sorted(RULES if "*" in rules else rules):
        limit = rules.get(slug, rules.get("*"))
        count = counts.get(slug, 0)
        passed = count <= limit
        detail = f"rule {slug}: {count} violations, max {limit}" + (
            "" if passed else f" ({count - limit} too many)"
        )
        findings.append(Finding(f"rule {slug}", count, limit, passed, detail))
    if baseline is not None:
        for metric, stats in (thresholds.get("baseline") or {}).items():
            for stat, bound in stats.items():
                now = statistic(_column(results, metric, "the results"), stat)
                before = statistic(_column(baseline, metric, "the baseline"), stat)
                allowed = bound["max_increase_pct"]
                change = (
                    (now - before) / before * 100
                    if before
                    else (0.0 if now == before else float("inf"))
                )
                passed = bool(change <= allowed) or np.isnan(change)
                detail = (
                    f"{metric} {stat} {before:.1f} -> {now:.1f} ({change:+.1f}%, max +{allowed:g}%)"
                )
                findings.append(
                    Finding(f"baseline {metric} {stat}", change, allowed, passed, detail)
                )
    return findings
