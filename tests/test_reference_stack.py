"""Failover, persistence, disconnects and the incremental JSON decoder of the reference stack."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference_harness import run_reference
from streambench.answer import JsonObjectStream, JsonStringDecoder, MemberDone
from streambench.errors import ConfigError
from streambench.reference.edits import resolve_code_edits
from streambench.reference.store import Store, StoreError
from streambench.replay import build_plan, virtual_time
from streambench.runner.cases import load_case
from streambench.transcript import load

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CHAT = load_case(FIXTURES / "chat-hello")
JOB = load_case(FIXTURES / "job-basic-replace")
OPENAI = load(FIXTURES / "failover-openai-chat" / "upstream-2.yaml")
ANTHROPIC = load(CHAT.upstream[0])
SHOWN_BEFORE_FAULT = "Hello! How"


# --- provider chain -------------------------------------------------------------------------

BEFORE_FIRST_CHUNK = [
    "http:529@start",
    "http:500@start",
    "disconnect@event=1",
    "error-event@event=2",
    "truncate@event=2",
    "garbage@event=1",
]
AFTER_FIRST_CHUNK = [
    "disconnect@text=10",
    "error-event@event=6",
    "truncate@event=6",
    "garbage@event=6",
]


@pytest.mark.parametrize("fault", BEFORE_FIRST_CHUNK)
@virtual_time
async def test_failure_before_the_first_chunk_falls_through(fault: str) -> None:
    plans = [build_plan(ANTHROPIC, faults=[fault]), build_plan(OPENAI)]
    run = await run_reference(plans, CHAT.request_body())
    name, done = run.terminal
    assert name == "done"
    assert done["provider"] == "openai"
    assert run.streamed_text == done["content"] == "Hello from the second provider."
    assert len(run.upstream.replay.requests) == 2


@pytest.mark.parametrize("fault", AFTER_FIRST_CHUNK)
@virtual_time
async def test_failure_after_a_chunk_ends_in_error_without_fallthrough(fault: str) -> None:
    plans = [build_plan(ANTHROPIC, "deltas:1", faults=[fault]), build_plan(OPENAI)]
    run = await run_reference(plans, CHAT.request_body())
    name, error = run.terminal
    assert name == "error"
    assert run.of("done") == []
    assert error["partial_content"] == run.streamed_text != ""
    assert CHAT.expect_text.startswith(run.streamed_text)
    assert "anthropic" in error["message"]
    assert len(run.upstream.replay.requests) == 1


@virtual_time
async def test_all_providers_failing_gives_one_error_naming_each() -> None:
    plans = [
        build_plan(ANTHROPIC, faults=["http:529@start"]),
        build_plan(OPENAI, faults=["http:500@start"]),
    ]
    run = await run_reference(plans, CHAT.request_body())
    names = [name for name, _ in run.data]
    assert names.count("error") == 1 and names[-1] == "error"
    error = run.terminal[1]
    assert error["partial_content"] == ""
    assert "anthropic: HTTP 529" in error["message"]
    assert "openai: HTTP 500" in error["message"]


@virtual_time
async def test_retry_after_is_honoured_before_the_first_chunk_within_its_bound() -> None:
    plans = [build_plan(ANTHROPIC, faults=["http:429@start"]), build_plan(ANTHROPIC)]
    run = await run_reference(
        plans, CHAT.request_body(), providers=("anthropic",), max_retry_wait_s=60
    )
    assert run.terminal[0] == "done"
    sent = run.upstream.sent_at
    rate_limited = run.upstream.replay.plans[0]
    error_arrived_s = rate_limited.chunks[0].t_ms / 1000
    retry_after_s = float(rate_limited.headers["retry-after"])
    assert sent[1] - sent[0] == pytest.approx(error_arrived_s + retry_after_s, abs=0.001)


@virtual_time
async def test_retry_after_beyond_the_bound_falls_through_instead() -> None:
    plans = [build_plan(ANTHROPIC, faults=["http:429@start"]), build_plan(OPENAI)]
    run = await run_reference(plans, CHAT.request_body(), max_retry_wait_s=0.0)
    assert run.terminal[1]["provider"] == "openai"
    error_arrived_s = run.upstream.replay.plans[0].chunks[0].t_ms / 1000
    sent = run.upstream.sent_at
    assert sent[1] - sent[0] == pytest.approx(error_arrived_s, abs=0.001)


# --- persistence ----------------------------------------------------------------------------


@virtual_time
async def test_user_row_is_persisted_even_when_every_provider_fails() -> None:
    plans = [
        build_plan(ANTHROPIC, faults=["http:529@start"]),
        build_plan(OPENAI, faults=["http:529@start"]),
    ]
    run = await run_reference(plans, CHAT.request_body())
    assert run.terminal[0] == "error"
    store = run.app_state.service.store
    thread_id = run.of("thread")[0]["id"]
    rows = store.messages(thread_id)
    assert [(r["role"], r["content"]) for r in rows] == [("user", CHAT.request["content"])]
    user_event = run.of("user")[0]
    assert {key: rows[0][key] for key in user_event} == user_event


@virtual_time
async def test_assistant_row_is_persisted_after_done() -> None:
    run = await run_reference([build_plan(load(p)) for p in JOB.upstream], JOB.request_body())
    done = run.terminal[1]
    assert done["persist_failed"] is False
    rows = run.app_state.service.store.messages(done["thread_id"])
    assert [r["role"] for r in rows] == ["user", "assistant"]
    assistant = rows[1]
    assert assistant == {k: v for k, v in done.items() if k != "persist_failed"}
    assert assistant["code"] == JOB.expect_code and assistant["content"] == JOB.expect_text


class FailingStore(Store):
    def add_assistant_message(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise StoreError("persisting failed: disk I/O error")


@virtual_time
async def test_failing_store_still_sends_done_with_persist_failed() -> None:
    plans = [build_plan(load(p)) for p in JOB.upstream]
    run = await run_reference(plans, JOB.request_body(), store=FailingStore(":memory:"))
    name, done = run.terminal
    assert name == "done"
    assert done["persist_failed"] is True
    assert done["content"] == JOB.expect_text and done["code"] == JOB.expect_code


def test_store_keeps_rows_in_a_file(tmp_path: Path) -> None:
    path = tmp_path / "db" / "reference.sqlite3"
    store = Store(path)
    thread_id = store.create_thread()
    store.add_user_message(thread_id, "hi")
    store.close()
    assert [r["content"] for r in Store(path).messages(thread_id)] == ["hi"]


# --- client disconnect ----------------------------------------------------------------------


@virtual_time
async def test_client_disconnect_mid_stream_closes_the_upstream_response() -> None:
    plans = [build_plan(ANTHROPIC, "deltas:1")]
    run = await run_reference(
        plans, CHAT.request_body(), disconnect_when=lambda event: event.event == "chunk"
    )
    assert run.of("done") == [] and run.of("error") == []
    record = run.upstream.replay.requests[0]
    assert record.client_closed is True
    assert record.completed is False
    assert record.delivered_bytes < len(run.upstream.replay.plans[0].body)


# --- edits, cases, config -------------------------------------------------------------------


def test_edits_apply_in_order_and_skip_what_does_not_match_exactly_once() -> None:
    edits = [
        {"action": "replace", "old_code": "a", "new_code": "b"},
        {"action": "replace", "old_code": "x", "new_code": "y"},
        {"action": "replace", "old_code": "b", "new_code": "c"},
        {"action": "move"},
    ]
    resolved = resolve_code_edits("a = 1", edits)
    assert resolved.code == "c = 1"
    assert resolved.patches_applied == 2
    assert [w.split(":")[0] for w in resolved.warnings] == ["edit 2", "edit 4"]
    assert resolve_code_edits("q", [{"action": "rewrite", "new_code": "r"}]).code == "r"


def test_bad_case_file_raises_one_line_naming_file_and_field(tmp_path: Path) -> None:
    case = tmp_path / "case.yaml"
    case.write_text("name: x\nmode: sing\nrequest: {content: hi}\nupstream: [u.yaml]\n")
    with pytest.raises(ConfigError, match=r"case\.yaml: mode: 'sing' is not one of"):
        load_case(case)
    case.write_text("name: x\nmode: chat\nrequest: {content: hi}\nupstream: [missing.yaml]\n")
    with pytest.raises(ConfigError, match=r"upstream: 'missing\.yaml' does not exist"):
        load_case(tmp_path)


def test_unknown_provider_in_env_is_a_config_error() -> None:
    from streambench.reference.config import ReferenceConfig

    with pytest.raises(ConfigError, match="STREAMBENCH_PROVIDERS: unknown provider 'bard'"):
        ReferenceConfig.from_env({"STREAMBENCH_PROVIDERS": "anthropic,bard"})


# --- incremental JSON -----------------------------------------------------------------------


def _split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts})
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]


@given(st.text(), st.booleans(), st.lists(st.integers(min_value=0, max_value=10_000)))
def test_string_decoder_matches_json_loads_under_any_split(
    value: str, ascii_only: bool, cuts: list[int]
) -> None:
    encoded = json.dumps(value, ensure_ascii=ascii_only)[1:] + "}"
    decoder = JsonStringDecoder()
    decoded, consumed = [], 0
    for piece in _split(encoded, cuts):
        text, used = decoder.feed(piece)
        decoded.append(text)
        consumed += used
        # only an incomplete escape is ever held back
        assert value.startswith("".join(decoded))
    assert decoder.done
    assert "".join(decoded) == value
    assert consumed == len(encoded) - 1  # the brace after the closing quote is not consumed


@given(
    st.lists(st.dictionaries(st.text(max_size=5), st.text(max_size=20), max_size=3), max_size=3),
    st.text(),
    st.sampled_from([(",", ": "), (",", ":"), (",\n  ", ":  ")]),
    st.lists(st.integers(min_value=0, max_value=10_000)),
)
def test_object_stream_yields_each_member_under_any_whitespace_and_split(
    edits: list[dict[str, str]], text: str, separators: tuple[str, str], cuts: list[int]
) -> None:
    document = json.dumps({"code_edits": edits, "text_answer": text}, separators=separators)
    parser = JsonObjectStream()
    events = [event for piece in _split(document, cuts) for event in parser.feed(piece)]
    done = {e.key: e.value for e in events if isinstance(e, MemberDone)}
    assert done == {"code_edits": edits, "text_answer": text}
    assert parser.ended
