"""`streambench chaos`: the failover contract over every fault kind x position x chain place."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from tests.conftest import free_port, uvicorn_command

from streambench.cli import main
from streambench.errors import SpecError
from streambench.uses.chaos import (
    CONTENT_KINDS,
    CONTRACT_RULES,
    MID_STREAM,
    POSITIONS,
    CellResult,
    cells,
    load_factory,
    run_chaos,
    run_sut_chaos,
)

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
        "blocks",
        "tool",
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
    # keep-alive events, empty deltas, thinking moved after the text, the two tool calls'
    # arguments interleaved: the answer comes through whole, from either streaming provider
    for kind, index in itertools.product(CONTENT_KINDS, (0, 1)):
        kept = outcomes[("mid-text", index, kind)]
        assert (kept.outcome, kept.provider) == ("done", kept.cell.chain_provider), kind
        assert kept.shown == f"[{kept.cell.chain_provider}] the answer, in 6 deltas of text."
    # the last provider failing before its chunk: nothing shown, all failed
    assert outcomes[("before-first-byte", 2, "http")].outcome == "raised"


def test_naive_chain_fails_exactly_the_mid_stream_cells(naive_chain: str) -> None:
    results = run_chaos(CHAIN, load_factory(naive_chain))
    failed = {(r.cell.position, r.cell.chain_index, r.cell.kind) for r in results if not r.passed}
    mid_stream_failures = {
        (r.cell.position, r.cell.chain_index, r.cell.kind)
        for r in results
        if r.cell.mid_stream and r.cell.kind not in ("stall", *CONTENT_KINDS)
    }
    assert failed == mid_stream_failures
    assert {position for position, _, _ in failed} == MID_STREAM
    rules = {rule for r in results for rule, _ in r.violations}
    # graded by the registry: the failover contract's rules under their one name each
    assert {"duplicate-after-failover", "no-fallthrough"} <= rules <= set(CONTRACT_RULES)


def test_cli_exit_codes_and_json(naive_chain: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_ok:
        main(["chaos", "--providers", "anthropic,openai"])
    assert exit_ok.value.code in (0, None)
    assert "cells pass" in capsys.readouterr().out

    with pytest.raises(SystemExit) as exit_fail:
        main(
            ["chaos", "--providers", "anthropic,openai", "--chain", naive_chain, "--format", "json"]
        )
    assert exit_fail.value.code == 1
    rows = json.loads(capsys.readouterr().out)
    assert any(not row["passed"] for row in rows)
    assert all(row["passed"] for row in rows if row["position"] not in MID_STREAM)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--providers", "anthropic,gemini"], "unknown 'gemini'"),
        (["--chain", "nomodule_xyz:thing"], "cannot load"),
        (["--chain", "justaname"], "module:attr"),
        (["--sut", "justaname"], "module:attr"),
        (["--kinds", "http,flood"], "unknown 'flood'"),
    ],
)
def test_bad_options_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["chaos", *args])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("streambench: error: ") and message in err
    assert "Traceback" not in err


def test_missing_attribute_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="cannot load"):
        load_factory("json:no_such_factory")


def test_failing_table_cells_show_what_the_user_was_shown(
    naive_chain: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["chaos", "--providers", "anthropic,openai", "--chain", naive_chain])
    assert exited.value.code == 1
    out = capsys.readouterr().out
    results = run_chaos(CHAIN, load_factory(naive_chain))
    failed = [r for r in results if not r.passed and r.shown]
    assert failed and "shown:" in out
    # rich may wrap a cell: the first words of a failing cell's shown text are in the table
    assert any(r.shown.split()[0] in out for r in failed)


# ---------------------------------------------------------------------------- any SUT

FAILOVER = "tests.suts.failover"
HARMLESS = ("stall", *CONTENT_KINDS)  # faults after which the answer must come whole
TWO_ANTHROPIC = ["anthropic", "anthropic"]


def _key(r: CellResult) -> tuple[str, int, str]:
    return (r.cell.position, r.cell.chain_index, r.cell.kind)


def test_a_backend_keeping_the_contract_passes_every_cell_in_process() -> None:
    results = run_sut_chaos(f"{FAILOVER}:app", TWO_ANTHROPIC)
    assert results and all(r.passed for r in results), [
        (_key(r), r.violations) for r in results if not r.passed
    ]
    by_cell = {_key(r): r for r in results}
    fell = by_cell[("before-first-chunk", 0, "disconnect")]
    assert (fell.outcome, fell.shown) == ("done", "[1:anthropic] the answer, in 6 deltas of text.")
    assert by_cell[("mid-text", 0, "error-event")].outcome == "error"


def test_a_retry_after_text_was_shown_is_flagged_on_the_mid_stream_cells() -> None:
    results = run_sut_chaos(f"{FAILOVER}:retry_after_text_app", TWO_ANTHROPIC)
    failed = {_key(r) for r in results if not r.passed}
    # the second provider's failure has nothing left to retry: only the first one's cells
    assert failed == {
        _key(r)
        for r in results
        if r.cell.mid_stream and r.cell.kind not in HARMLESS and not r.cell.chain_index
    }
    cell = next(r for r in results if _key(r) == ("mid-text", 0, "disconnect"))
    assert {"duplicate-after-failover", "done-after-truncation"} <= {
        rule for rule, _ in cell.violations
    }
    assert cell.shown.startswith("[0:anthropic]") and "[1:anthropic]" in cell.shown


def test_an_error_swallowed_into_done_is_flagged_done_after_truncation() -> None:
    results = run_sut_chaos(f"{FAILOVER}:swallowing_app", TWO_ANTHROPIC)
    failed = {_key(r): r for r in results if not r.passed}
    # every cut of the stream after text was shown; a garbage line after the whole text is
    # tolerable (the expected outcome allows done), so it may pass
    cuts = ("disconnect", "truncate", "error-event")
    assert {_key(r) for r in results if r.cell.mid_stream and r.cell.kind in cuts} <= set(failed)
    assert set(failed) <= {
        _key(r) for r in results if r.cell.mid_stream and r.cell.kind not in HARMLESS
    }
    for r in failed.values():
        assert r.outcome == "done"
        if r.cell.kind not in cuts:  # a tolerable garbage line: the half answer is wrong-text
            assert {rule for rule, _ in r.violations} == {"wrong-text"}, r.violations
            continue
        assert [rule for rule, _ in r.violations] == ["done-after-truncation"], r.violations
        assert "failed after content" in r.violations[0][1]


def test_the_reference_app_passes_every_cell_as_a_sut() -> None:
    results = run_sut_chaos("reference", ["anthropic", "openai"])
    assert results and all(r.passed for r in results), [
        (_key(r), r.violations) for r in results if not r.passed
    ]


@pytest.mark.parametrize(
    ("providers", "answer"),
    [(CHAIN, "text"), (["openai", "anthropic", "anthropic-sync"], "text"), (CHAIN, "tool")],
)
def test_the_reference_passes_every_cell_of_a_chain_ending_in_a_sync_provider(
    providers: list[str], answer: str
) -> None:
    results = run_sut_chaos("reference", providers, answer=answer)
    # 51 cells of transport faults and pings (the text chain's upstreams add blocks / tool)
    assert len(results) >= 51 and all(r.passed for r in results), [
        (_key(r), r.violations) for r in results if not r.passed
    ]
    synced = [r for r in results if r.shown.startswith("[2:anthropic-sync]")]
    assert synced and all(r.outcome == "done" for r in synced)


SYNC_FALLBACK = "tests.suts.sync_fallback"


def _reaches_the_sync_fallback(r: CellResult) -> bool:
    """The second provider fails before its first chunk, so the third (JSON) one answers."""
    return r.cell.chain_index == 1 and not r.cell.mid_stream and r.cell.kind not in HARMLESS


def test_a_dropped_sync_fallback_answer_is_wrong_text_on_exactly_the_cells_that_reach_it() -> None:
    clean = run_sut_chaos(f"{SYNC_FALLBACK}:app", CHAIN)
    assert all(r.passed for r in clean), [(_key(r), r.violations) for r in clean if not r.passed]
    results = run_sut_chaos(f"{SYNC_FALLBACK}:dropped_fallback_app", CHAIN)
    failed = {_key(r): r for r in results if not r.passed}
    assert set(failed) == {_key(r) for r in results if _reaches_the_sync_fallback(r)}
    assert len(failed) == 6
    for r in failed.values():
        assert (r.outcome, r.shown) == ("done", "")
        wrong = [m for rule, m in r.violations if rule == "wrong-text"]
        assert wrong and "expected '[2:anthropic-sync]" in wrong[0], r.violations


@pytest.mark.parametrize(("attr", "clean"), [("app", True), ("swallowing_app", False)])
def test_over_http_with_sut_cmd(attr: str, clean: bool, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    with pytest.raises(SystemExit) as exited:
        main(
            [
                "chaos",
                "--sut",
                f"http://127.0.0.1:{port}/messages",
                "--sut-cmd",
                uvicorn_command(f"{FAILOVER}:{attr}", port),
                "--providers",
                "anthropic,anthropic",
                "--kinds",
                "http,disconnect,error-event",
                "--format",
                "json",
            ]
        )
    rows = json.loads(capsys.readouterr().out)
    assert exited.value.code == (0 if clean else 1)
    assert {row["position"] for row in rows} == set(POSITIONS)
    failed = {
        (row["position"], row["chain_index"], row["kind"]) for row in rows if not row["passed"]
    }
    if clean:
        assert not failed
    else:
        assert failed == {
            (row["position"], row["chain_index"], row["kind"])
            for row in rows
            if row["position"] in MID_STREAM
        }
