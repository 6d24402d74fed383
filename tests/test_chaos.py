"""`streambench chaos`: the failover contract over every fault kind x position x chain place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streambench.cli import main
from streambench.errors import SpecError
from streambench.uses.chaos import MID_STREAM, POSITIONS, cells, load_factory, run_chaos

SUTS = Path(__file__).parent / "suts"
CHAIN = ["anthropic", "openai", "anthropic-sync"]


@pytest.fixture
def naive_chain(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.syspath_prepend(str(SUTS))
    return "naive_chain:NaiveChain"


def test_matrix_covers_every_position_kind_and_chain_place() -> None:
    matrix = cells(CHAIN)
    assert {c.position for c in matrix} == set(POSITIONS)
    assert {c.kind for c in matrix} == {
        "http",
        "rate-limit",
        "disconnect",
        "error-event",
        "truncate",
        "garbage",
        "stall",
        "pings",
        "empty-deltas",
    }
    assert {c.chain_index for c in matrix} == {0, 1, 2}
    # the non-streaming provider has no event positions: only before its single chunk
    assert {c.position for c in matrix if c.chain_index == 2} == {
        "before-first-byte",
        "before-first-chunk",
    }


def test_reference_chain_passes_every_cell() -> None:
    results = run_chaos(CHAIN)
    assert results and all(r.passed for r in results), [
        (r.cell, r.violations) for r in results if not r.passed
    ]
    outcomes = {(r.cell.position, r.cell.chain_index, r.cell.kind): r for r in results}
    # before the first chunk: falls through to the next provider, which answers in full
    fell = outcomes[("before-first-chunk", 0, "disconnect")]
    assert (fell.outcome, fell.provider) == ("done", "1:openai")
    # after it: ends in error with exactly what was shown
    mid = outcomes[("mid-text", 1, "error-event")]
    assert mid.outcome == "error" and mid.shown.startswith("[1:openai]")
    # keep-alive events and empty deltas mid-text: the answer comes through whole
    for kind in ("pings", "empty-deltas"):
        kept = outcomes[("mid-text", 0, kind)]
        assert (kept.outcome, kept.provider) == ("done", "0:anthropic")
    # the last provider failing before its chunk: nothing shown, all failed
    assert outcomes[("before-first-byte", 2, "http")].outcome == "raised"


def test_naive_chain_fails_exactly_the_mid_stream_cells(naive_chain: str) -> None:
    results = run_chaos(CHAIN, load_factory(naive_chain))
    failed = {(r.cell.position, r.cell.chain_index, r.cell.kind) for r in results if not r.passed}
    mid_stream_failures = {
        (r.cell.position, r.cell.chain_index, r.cell.kind)
        for r in results
        if r.cell.mid_stream and r.cell.kind not in ("stall", "pings", "empty-deltas")
    }
    assert failed == mid_stream_failures
    assert {position for position, _, _ in failed} == MID_STREAM
    rules = {rule for r in results for rule, _ in r.violations}
    assert {"duplicate-output", "fallthrough"} <= rules


def test_cli_exit_codes_and_json(naive_chain: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_ok:
        main(["chaos", "--providers", "anthropic,openai"])
    assert exit_ok.value.code in (0, None)
    assert "cells pass" in capsys.readouterr().out

    with pytest.raises(SystemExit) as exit_fail:
        main(["chaos", "--providers", "anthropic,openai", "--sut", naive_chain, "--format", "json"])
    assert exit_fail.value.code == 1
    rows = json.loads(capsys.readouterr().out)
    assert any(not row["passed"] for row in rows)
    assert all(row["passed"] for row in rows if row["position"] not in MID_STREAM)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--providers", "anthropic,gemini"], "unknown 'gemini'"),
        (["--sut", "nomodule_xyz:thing"], "cannot load"),
        (["--sut", "justaname"], "module:attr"),
    ],
)
def test_bad_options_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["chaos", *args])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("streambench: error: --") and message in err


def test_missing_attribute_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="cannot load"):
        load_factory("json:no_such_factory")


def test_failing_table_cells_show_what_the_user_was_shown(
    naive_chain: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["chaos", "--providers", "anthropic,openai", "--sut", naive_chain])
    assert exited.value.code == 1
    out = capsys.readouterr().out
    results = run_chaos(CHAIN, load_factory(naive_chain))
    failed = [r for r in results if not r.passed and r.shown]
    assert failed and "shown:" in out
    # rich may wrap a cell: the first words of a failing cell's shown text are in the table
    assert any(r.shown.split()[0] in out for r in failed)
