"""The HTTP surface as cases (docs/cases.md): raw bodies, headers, expected statuses, the JSON
answer and a second turn on a thread, each flagging a backend that gets it wrong
(tests/suts/http_misuse.py) and passing the reference, in process and over HTTP."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
from tests.conftest import cli_exit_code, free_port

from streambench.errors import ConfigError
from streambench.runner.cases import load_case
from streambench.runner.matrix import Matrix, RunSpec, run_matrix, run_one

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REFUSED = [
    "http-bad-body",
    "http-non-utf8-body",
    "http-unknown-thread",
    "http-unknown-thread-messages",
    "http-blank-message",
    "http-lone-surrogate",
    "http-deep-body",
]
HTTP_CASES = [*REFUSED, "http-json-answer", "chat-thread-second-turn"]
MISUSE = "tests.suts.http_misuse"
DISCONNECT = ("disconnect@text=20,call=served,else=skip",)


def _rules(frame: pd.DataFrame) -> dict[str, set[str]]:
    """case -> the rules flagged on any of its runs."""
    found: dict[str, set[str]] = {}
    for row in frame.itertuples():
        found.setdefault(row.case, set()).update(v["rule"] for v in row.violations)
    return found


def _matrix(sut: str, faults: list[tuple[str, ...]] | None = None) -> pd.DataFrame:
    return run_matrix(
        Matrix(
            cases=[str(FIXTURES / c) for c in HTTP_CASES],
            suts=[sut],
            chunkings=["events", "bytes:16"],
            faults=faults or [()],
        )
    )


def test_the_reference_passes_every_http_case_with_and_without_a_mid_stream_fault() -> None:
    frame = _matrix("reference", [(), DISCONNECT])
    assert _rules(frame) == {case: set() for case in HTTP_CASES}
    refused = frame[frame["case"].isin(REFUSED)]
    assert set(refused["status_code"]) == {400, 404}
    # a refused request has no stream to judge: every rule but the HTTP ones says so
    assert all("wrong-text" in nc and "wrong-status" not in nc for nc in refused["not_checked"])
    json_answer = frame[frame["case"] == "http-json-answer"]
    # the fault cuts the answer after 20 characters: the JSON answer is the error, 502
    assert sorted(
        zip(json_answer["fault"], json_answer["status_code"], json_answer["terminal"], strict=True)
    ) == [
        ("", 200, "done"),
        ("", 200, "done"),
        (DISCONNECT[0], 502, "error"),
        (DISCONNECT[0], 502, "error"),
    ]
    assert all("text-mismatch" in nc for nc in json_answer["not_checked"])


@pytest.mark.parametrize(
    ("sut", "flagged"),
    [
        # a body it cannot parse answered 200 (with the answer streamed)
        ("lenient_body", {"http-bad-body": {"wrong-status", "wrong-json-answer"},
                          "http-non-utf8-body": {"wrong-status", "wrong-json-answer"},
                          # and its own json.loads meets the hostile nesting unguarded: a 500
                          "http-deep-body": {"wrong-status", "wrong-json-answer", "sut-failure"}}),
        # an unknown thread answered 200 on a thread nobody opened
        ("trusting_threads", {case: {"wrong-status", "wrong-json-answer"}
                              for case in ("http-unknown-thread", "http-unknown-thread-messages")}),
        # JSON asked for, an event stream answered
        ("always_sse", {"http-json-answer": {"wrong-json-answer", "unexpected-error",
                                             "missing-changes"}}),
        # {"detail": ...} instead of {"error": ...}
        ("detail_errors", {case: {"wrong-json-answer"} for case in REFUSED}),
        # the second turn asked without the first
        ("forgets_history", {"chat-thread-second-turn": {"lost-history"}}),
    ],
)  # fmt: skip
def test_a_backend_with_a_wrong_http_surface_is_flagged_where_it_shows(
    sut: str, flagged: dict[str, set[str]]
) -> None:
    found = _rules(_matrix(f"{MISUSE}:{sut}"))
    assert {case: rules for case, rules in found.items() if rules} == flagged


def test_a_json_answer_that_fails_must_say_so_with_502() -> None:
    frame = run_matrix(
        Matrix(
            cases=[str(FIXTURES / "http-json-answer")],
            suts=[f"{MISUSE}:always_200"],
            chunkings=["events"],
            faults=[(), DISCONNECT],
        )
    )
    by_fault = {row.fault: [v["rule"] for v in row.violations] for row in frame.itertuples()}
    assert by_fault == {"": [], DISCONNECT[0]: ["wrong-status"]}


def test_a_store_failure_is_a_503_before_the_run_and_a_shown_reply_after_it() -> None:
    store = "reference:db_path=" + str(FIXTURES / "store-failure" / "failing-store.sqlite3")
    before = (FIXTURES / "store-failure" / "failing-store.sqlite3").read_bytes()
    cases = [str(FIXTURES / "store-failure")]
    reference = run_matrix(Matrix(cases=cases, suts=[store], chunkings=["events", "bytes:16"]))
    assert _rules(reference) == {"reply-not-saved": set(), "user-row-not-saved": set()}
    done = reference[reference["case"] == "reply-not-saved"]
    assert set(done["terminal"]) == {"done"}
    assert set(reference[reference["case"] == "user-row-not-saved"]["status_code"]) == {503}
    # the database keeps nothing: the cases leave it as it was
    assert (FIXTURES / "store-failure" / "failing-store.sqlite3").read_bytes() == before
    broken = run_matrix(
        Matrix(cases=cases, suts=[f"{MISUSE}:raw_store_errors"], chunkings=["events"])
    )
    assert _rules(broken) == {
        "reply-not-saved": {"sut-failure", "unexpected-error", "terminal-count"},
        "user-row-not-saved": {"wrong-status", "sut-failure", "wrong-json-answer"},
    }


def test_the_case_states_what_a_refusal_must_say() -> None:
    row = run_one(RunSpec(str(FIXTURES / "http-unknown-thread"), sut="reference"))
    assert (row["status_code"], row["violations"]) == (404, [])
    case = load_case(FIXTURES / "http-unknown-thread")
    assert (case.expect_status, case.expect_error, case.refused) == (404, "no-such-thread", True)


def test_over_http_the_http_cases_get_the_in_process_verdicts() -> None:
    port = free_port()
    executable = shutil.which("streambench", path=str(Path(sys.executable).parent))
    assert executable is not None
    axes = {
        "cases": [str(FIXTURES / c) for c in HTTP_CASES],
        "chunkings": ["events"],
        "latencies": ["scale:0.05"],
        "faults": [()],
    }
    over_http = run_matrix(
        Matrix(
            suts=[f"http://127.0.0.1:{port}/messages"],
            sut_cmd=f"{executable} reference-server --port {port}",
            **axes,
        )
    )
    in_process = run_matrix(Matrix(**axes))

    def verdicts(frame: pd.DataFrame) -> list[tuple[str, int, str, list[str]]]:
        return sorted(
            (r.case, r.status_code, r.terminal, [v["rule"] for v in r.violations])
            for r in frame.itertuples()
        )

    assert verdicts(over_http) == verdicts(in_process)
    assert all(not rules for *_, rules in verdicts(over_http))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("http: [1]\n", "http: must be a mapping"),
        ("http: {verb: GET}\n", "http.verb: unknown key"),
        ("http: {body: 3}\n", "http.body: must be a string"),
        ("http: {headers: [accept]}\n", "http.headers: must be a mapping"),
        ('http: {headers: {accept: "a\\nb"}}\n', "http.headers.accept: must be one line"),
        ("http: {method: FETCH}\n", "http.method: 'FETCH' is not one of"),
        ("http: {path: threads}\n", "http.path: 'threads' must be a path"),
        ("expect: {status: 700}\n", "expect.status: 700 is not an HTTP status"),
        ("expect: {status: true}\n", "expect.status: True is not an HTTP status"),
        ("expect: {error: 3}\n", "expect.error: must be a string"),
        ("turns: {content: hi}\n", "turns: must be a list"),
        ("turns: [{request: {content: hi}}]\n", "turns[1]: must be a mapping with request"),
        ("turns: [{request: {}, upstream: [u.yaml]}]\n", "turns[1].request: must be a mapping"),
        (
            "turns: [{request: {content: hi}, upstream: [no.yaml]}]\n",
            "turns[1].upstream: 'no.yaml'",
        ),
    ],
)
def test_a_bad_http_or_turns_key_is_one_line_naming_the_file_and_key(
    tmp_path: Path, extra: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "u.yaml").write_bytes((FIXTURES / "chat-hello" / "upstream.yaml").read_bytes())
    case = tmp_path / "case.yaml"
    case.write_text("request: {content: hi}\nupstream: [u.yaml]\n" + extra)
    with pytest.raises(ConfigError) as raised:
        load_case(case)
    assert str(raised.value).startswith(f"{case}: ") and message in str(raised.value)
    assert "\n" not in str(raised.value)
    assert cli_exit_code(["run", "--case", str(case), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_turns_and_an_explicit_thread_id_contradict_each_other(tmp_path: Path) -> None:
    (tmp_path / "u.yaml").write_bytes((FIXTURES / "chat-hello" / "upstream.yaml").read_bytes())
    case = tmp_path / "case.yaml"
    case.write_text(
        "request: {content: hi, thread_id: t}\nupstream: [u.yaml]\n"
        "turns: [{request: {content: hello}, upstream: [u.yaml]}]\n"
    )
    with pytest.raises(ConfigError, match=r"request\.thread_id: the request continues"):
        load_case(case)


def test_every_case_key_has_a_row_in_docs_cases_md() -> None:
    from streambench.runner.cases import _EXPECT_KEYS, _HTTP_KEYS

    docs = (FIXTURES.parent / "docs" / "cases.md").read_text()
    keys = ["name", "mode", "request.content", "upstream", "tool", "turns"]
    keys += [f"expect.{k}" for k in _EXPECT_KEYS] + [f"http.{k}" for k in _HTTP_KEYS]
    missing = [k for k in keys if f"| `{k}`" not in docs and f"/ `{k}`" not in docs]
    assert missing == []
