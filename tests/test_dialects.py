"""Dialects as data, tool calls as the structured part, and the example backends that use them:
an Apollo-style app (Anthropic-shaped events + changes + complete) and a tool-call backend with
its own event names graded through a dialect file."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import cli_exit_code, free_port
from streambench.grade.dialects import (
    BUILTIN_DIALECTS,
    UIEvent,
    dialect_parser,
    load_dialect,
    parse_stream,
    pick_dialect,
    register_dialect,
)
from streambench.runner.matrix import Matrix, RunSpec, run_matrix, run_one
from streambench.transcript import save, synth

SUTS = Path(__file__).resolve().parent / "suts"
CHUNKINGS = ("events", "bytes:7", "deltas:1", "deltas:adversarial")
ORIGINAL = "fn(state => state);\n"
NEW_CODE = 'fn(state => {\n  state.data = "é\\\\n";\n  return state;\n});\n'
TEXT = 'I rewrote the job: it sets "data" and\nreturns the state.'


def make_case(
    folder: Path,
    api: str,
    *,
    text: str = TEXT,
    tool_calls: tuple[synth.ToolCall, ...] = (),
    expect_code: str | None = NEW_CODE,
    tool: str | None = None,
    expect_text: str | None = None,
) -> Path:
    """A job_code case whose one upstream recording is rendered by synth (gap: 20 ms/event)."""
    folder.mkdir(parents=True, exist_ok=True)
    body = synth.render(api, text=text, tool_calls=tool_calls)
    times = [400.0 + 20.0 * i for i in range(len(synth.event_spans(body)))]
    transcript = synth.make_transcript(api, body, request_body={}, chunk_times_ms=times)
    save(transcript, folder / "upstream.yaml")
    case: dict[str, Any] = {
        "name": folder.name,
        "mode": "job_code",
        "request": {"content": "set data", "context": {"expression": ORIGINAL}},
        "upstream": ["upstream.yaml"],
        "expect": {
            "text": text if expect_text is None else expect_text,
            **({"code": expect_code} if expect_code else {}),
        },
    }
    if tool:
        case["tool"] = tool
    (folder / "case.yaml").write_text(yaml.safe_dump(case, sort_keys=False))
    return folder


def edit_call(name: str = "suggest_code", **extra: Any) -> synth.ToolCall:
    edits = [{"action": "rewrite", "new_code": NEW_CODE}]
    return synth.ToolCall(name, json.dumps({"code_edits": edits, **extra}))


def slugs(row: dict[str, Any]) -> list[str]:
    return sorted({v["rule"] for v in row["violations"]})


# ------------------------------------------------------------------------- dialect files


def test_every_builtin_dialect_loads_and_the_streambench_one_reads_the_wire_format() -> None:
    for name in BUILTIN_DIALECTS:
        assert callable(dialect_parser(name))
    parse = dialect_parser("streambench")
    done = parse(5, "done", json.dumps({"content": "hi", "code": "x", "provider": "p"}))
    assert [(e.kind, e.text, e.code, e.data["provider"]) for e in done] == [
        ("done", "hi", "x", "p")
    ]
    error = parse(6, "error", json.dumps({"partial_content": "h", "message": "boom"}))
    assert [(e.kind, e.text, e.data["message"]) for e in error] == [("error", "h", "boom")]
    assert [e.kind for e in parse(7, "thread", "{}")] == ["meta"]
    assert [(e.kind, e.text) for e in parse(8, "token", "{}")] == [("unknown", "token")]


def test_openai_chat_reads_reasoning_and_content_of_one_chunk_in_order() -> None:
    parse = dialect_parser("openai-chat")
    chunk = {"choices": [{"delta": {"reasoning_content": "hm", "content": "yo"}}]}
    assert [(e.kind, e.text) for e in parse(1, "message", json.dumps(chunk))] == [
        ("status", "hm"),
        ("text", "yo"),
    ]
    role_only = {"choices": [{"delta": {"role": "assistant"}}]}
    assert parse(2, "message", json.dumps(role_only)) == []  # understood, nothing to show
    assert [e.kind for e in parse(3, "message", "[DONE]")] == ["done"]


def test_vercel_ai_ui_message_stream() -> None:
    parts = [
        {"type": "start", "messageId": "m1"},
        {"type": "text-start", "id": "t"},
        {"type": "text-delta", "id": "t", "delta": "Hel"},
        {"type": "text-delta", "id": "t", "delta": "lo"},
        {"type": "data-changes", "data": {"code": "x = 1"}},
        {"type": "text-end", "id": "t"},
        {"type": "finish"},
    ]
    events = [(float(i), "message", json.dumps(p)) for i, p in enumerate(parts)]
    events.append((9.0, "message", "[DONE]"))
    used, ui = parse_stream("auto", events)
    assert used == "vercel-ai"
    assert [(e.kind, e.text or e.code) for e in ui] == [
        ("text", "Hel"),
        ("text", "lo"),
        ("changes", "x = 1"),
        ("done", None),
    ]
    error = dialect_parser("vercel-ai")(1, "message", '{"type": "error", "errorText": "no"}')
    assert [(e.kind, e.data["message"]) for e in error] == [("error", "no")]


def test_auto_picks_the_dialect_that_understands_the_stream() -> None:
    anthropic = [
        ("message_start", '{"type": "message_start"}'),
        ("content_block_delta", '{"type": "content_block_delta", "delta": {"type": "text_delta"}}'),
        ("message_stop", '{"type": "message_stop"}'),
    ]
    assert pick_dialect(anthropic) == "anthropic"
    assert pick_dialect([*anthropic, ("complete", '{"response": "x"}')]) == "apollo"
    assert pick_dialect([("chunk", '{"content": "a"}'), ("done", "{}")]) == "streambench"
    chat = [("message", '{"choices": [{"delta": {"content": "a"}}]}'), ("message", "[DONE]")]
    assert pick_dialect(chat) == "openai-chat"
    responses = [
        ("response.output_text.delta", '{"type": "response.output_text.delta", "delta": "a"}'),
        ("response.completed", '{"type": "response.completed", "response": {}}'),
    ]
    assert pick_dialect(responses) == "openai-responses"


def test_register_dialect_takes_a_function_or_a_dialect() -> None:
    def tokens(t_ms: float, event: str, data: str) -> list[UIEvent]:
        kind = {"token": "text", "end": "done"}.get(event, "unknown")
        return [UIEvent(t_ms, kind, text=data if kind == "text" else None)]

    register_dialect("tokens-test", tokens)
    used, ui = parse_stream("tokens-test", [(1.0, "token", "hi"), (2.0, "end", "")])
    assert used == "tokens-test" and [e.kind for e in ui] == ["text", "done"]


BAD_DIALECTS = [
    ("events: []\n", "events: must be a non-empty list"),
    ("events:\n  - {when: {event: x}, kind: txt}\n", "events[0].kind: 'txt' is not one of"),
    ("events:\n  - {when: {event: x}, kind: text, code: a}\n", "events[0].code: a text event"),
    ("events:\n  - {kind: text, text: a}\n", "events[0].when: must be a mapping"),
    ("events:\n  - {when: {event: x}, kind: changes}\n", "events[0].code: a changes event"),
    ("events:\n  - {when: {event: [x, 3]}, kind: meta}\n", "events[0].when.event: must be"),
    ("name: x\nrules: []\n", "rules: unknown key"),
    ("events: [", "not valid YAML (line 1)"),
]


@pytest.mark.parametrize(("text", "message"), BAD_DIALECTS)
def test_a_bad_dialect_file_is_one_line_naming_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    case = make_case(tmp_path / "case", "anthropic-messages", tool_calls=(edit_call(),))
    assert cli_exit_code(["run", "--case", str(case), "--dialect", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert str(path) in err and message in err


def test_the_docs_dialect_example_loads(tmp_path: Path) -> None:
    docs = (Path(__file__).resolve().parents[1] / "docs" / "evaluation.md").read_text()
    block = docs.split("```yaml\n# my-backend.dialect.yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "my-backend.dialect.yaml"
    path.write_text(block)
    dialect = load_dialect(path)
    assert [e.kind for e in dialect(1, "token", '{"t": "hi"}')] == ["text"]


# ------------------------------------------------------------------ Apollo-style backend


@pytest.fixture(scope="module")
def apollo_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_case(
        tmp_path_factory.mktemp("apollo") / "tool-text-first",
        "anthropic-messages",
        tool_calls=(edit_call(),),
    )


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_apollo_style_backend_is_clean_with_the_apollo_dialect(
    apollo_case: Path, chunking: str
) -> None:
    row = run_one(RunSpec(str(apollo_case), "tests.suts.apollo_style:app", "apollo", chunking))
    assert row["terminal"] == "done" and slugs(row) == []
    assert row["final_text"] == TEXT and row["final_code"] == NEW_CODE  # read from complete
    assert row["unknown_events"] == 0 and row["dialect_used"] == "apollo"
    assert row["changes_lag_ms"] >= 0


def test_apollo_stream_under_the_anthropic_dialect_counts_complete_as_unknown(
    apollo_case: Path,
) -> None:
    row = run_one(RunSpec(str(apollo_case), "tests.suts.apollo_style:app", "anthropic"))
    assert "event-after-terminal" not in slugs(row)
    assert json.loads(row["unknown_event_names"]) == {"complete": 1}
    auto = run_one(RunSpec(str(apollo_case), "tests.suts.apollo_style:app", "auto"))
    assert auto["dialect_used"] == "apollo" and slugs(auto) == []


def test_apollo_error_message_is_read_from_its_own_place() -> None:
    error = dialect_parser("apollo")(1, "error", '{"message": "overloaded"}')
    assert [(e.kind, e.data["message"]) for e in error] == [("error", "overloaded")]


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_tool_call_text_first_is_flagged_with_the_lag_from_the_tool_input(
    apollo_case: Path, chunking: str
) -> None:
    row = run_one(
        RunSpec(str(apollo_case), "tests.suts.apollo_style:text_first_app", "apollo", chunking)
    )
    assert slugs(row) == ["text-before-changes"]
    # measured from the input's last piece; the app waits for content_block_stop, about one
    # event (20 ms) later: a number, not NaN
    assert 0 <= row["changes_lag_ms"] < 40.0


def test_code_only_in_the_closing_event_is_missing_changes(apollo_case: Path) -> None:
    sut = "tests.suts.apollo_style:code_in_complete_app"
    row = run_one(RunSpec(str(apollo_case), sut, "apollo"))
    assert slugs(row) == ["missing-changes"]
    assert row["final_code"] == NEW_CODE


# ------------------------------------------------- a tool-call backend with its own events

TOOL_DIALECT = str(SUTS / "tool_backend.dialect.yaml")
TOOL_SUT = f"tests.suts.tool_backend:app,body={SUTS / 'tool_backend-body.yaml'},path=/v1/edit"


@pytest.fixture(scope="module")
def tool_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two parallel calls: ``lookup_docs`` (index 0), then ``answer`` carrying the edits."""
    calls = (
        synth.ToolCall("lookup_docs", json.dumps({"q": "state.data"})),
        edit_call("answer", text_answer=TEXT),
    )
    folder = tmp_path_factory.mktemp("tools") / "parallel-calls"
    # the answer's text rides in the tool input (text_answer), not in text deltas
    return make_case(folder, "openai-chat", text="", tool_calls=calls, expect_text=TEXT)


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_tool_backend_is_clean_through_its_dialect_file(tool_case: Path, chunking: str) -> None:
    row = run_one(RunSpec(str(tool_case), TOOL_SUT, TOOL_DIALECT, chunking))
    assert row["terminal"] == "done" and slugs(row) == []
    assert row["streamed_text"] == TEXT and row["final_code"] == NEW_CODE
    assert row["unknown_events"] == 0
    assert row["changes_lag_ms"] >= 0 and row["text_lag_p50_ms"] >= 0


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_tool_backend_bugs_are_flagged(tool_case: Path, chunking: str) -> None:
    leaky = run_one(RunSpec(str(tool_case), f"{TOOL_SUT}?fast=1", TOOL_DIALECT, chunking))
    assert "escape-leak" in slugs(leaky)
    dropped = run_one(RunSpec(str(tool_case), f"{TOOL_SUT}?schema=v1", TOOL_DIALECT, chunking))
    # no changes event, and the user ends without the code the answer carried
    assert sorted(slugs(dropped)) == ["missing-changes", "wrong-code"]
    assert dropped["final_code"] is None


def _verdicts_over_http_and_in_process(
    case: Path, app: str, dialect: str
) -> list[list[tuple[str, str, list[str]]]]:
    """(chunking, terminal, rules) of each run: over HTTP (uvicorn via --sut-cmd), in process."""
    port = free_port()
    root = Path(__file__).resolve().parents[1]
    axes = {
        "cases": [str(case)],
        "dialects": [dialect],
        "chunkings": ["events", "deltas:adversarial"],
        "latencies": ["scale:0.05"],
    }
    cmd = f"{sys.executable} -m uvicorn --app-dir {root} --port {port} --log-level warning {app}"
    over_http = run_matrix(Matrix(suts=[f"http://127.0.0.1:{port}/messages"], sut_cmd=cmd, **axes))
    in_process = run_matrix(Matrix(suts=[app], **axes))
    for frame in (over_http, in_process):
        assert list(frame["upstream_calls"]) == [1, 1]
    return [
        [(row["chunking"], row["terminal"], slugs(row)) for row in frame.to_dict("records")]
        for frame in (over_http, in_process)
    ]


# The tool backend over HTTP, with its route, body and flags: tests/test_backends.py.
@pytest.mark.parametrize(
    ("app", "rule"),
    [
        ("tests.suts.apollo_style:app", None),
        ("tests.suts.apollo_style:text_first_app", "text-before-changes"),
    ],
)
def test_the_apollo_style_backend_over_http_gives_the_in_process_verdicts(
    apollo_case: Path, app: str, rule: str | None
) -> None:
    over_http, in_process = _verdicts_over_http_and_in_process(apollo_case, app, "apollo")
    assert over_http == in_process
    assert all(terminal == "done" for _, terminal, _ in over_http)
    assert all((rule in rules) if rule else rules == [] for _, _, rules in over_http)
