"""Content faults over the real corpus: each applies to every stream of its providers, the
official SDK decodes the mutated stream as it decodes the real one, and the mutation says
what it should (the same JSON values, the provider's max-tokens stop reason, the same text).

Short form in CI (two streams per api); ``STREAMBENCH_FULL=1`` runs every corpus stream.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from tests.test_replay_sdk import FULL, SDK_APIS, _corpus, _loaded, _outcome, via_transport

from streambench.errors import SpecError
from streambench.providers import registry
from streambench.providers.apis import summarize
from streambench.providers.base import get_path
from streambench.replay import build_plan, parse_fault
from streambench.replay.content import apply_content_faults
from streambench.replay.faults import CONTENT_FAULT_KINDS, FAULTS
from streambench.replay.frames import frames_of
from streambench.replay.json_text import json_start_state, rewrite
from streambench.sse import decode_all
from streambench.transcript import synth

CONTENT_FAULTS = (
    "stop:max_tokens@text=50%",
    "reformat:compact",
    "reformat:spaced",
    "reformat:newlines",
    "escape:ascii",
    "escape:raw",
    "pings:3",
    "empty-deltas:3",
    "empty-edits",
    "bad-json@char=2",
    "refusal",
    "tool:duplicate-id",
    "tool:split-args",
    "blocks:reorder",
)
# Faults that need a structured part; a stream without one is refused by name.
NEEDS_STRUCTURE = ("empty-edits", "bad-json")

INCOMPLETE_RESPONSE = ("RuntimeError", "Didn't receive a `response.completed` event.")
DUPLICATE_OUTPUT = ("RuntimeError", "Response snapshot has conflicting output identities.")


def _cases() -> list[object]:
    cases = []
    for api in SDK_APIS:
        files = _corpus(api) if FULL else _corpus(api)[:2]
        cases += [pytest.param(api, f, id=f"{api}-{f.stem[:40]}") for f in files]
    return cases


def _sdk(api: str, plan: object) -> tuple[str, object]:
    with via_transport(plan) as (http, base):  # type: ignore[arg-type]
        return _outcome(api, http, base)


def _parts(outcome: tuple[str, object]) -> list[str]:
    """What the SDK parsed, as a sorted list of its blocks / items / calls (order aside)."""
    value = outcome[1]
    if isinstance(value, tuple):  # (text, calls): the text stays whole, calls are sorted
        return [
            repr(value[0]),
            *sorted(map(repr, value[1].items() if isinstance(value[1], dict) else value[1])),
        ]
    return sorted(map(repr, value)) if isinstance(value, list) else [repr(value)]


def _json_or_text(text: str) -> object:
    """The JSON values of ``text`` (several tool inputs follow each other), else the text."""
    values, at, decoder = [], 0, json.JSONDecoder()
    try:
        while text[at:].strip():
            at += len(text[at:]) - len(text[at:].lstrip())
            value, at = decoder.raw_decode(text, at)
            values.append(value)
    except ValueError:
        return text
    return values


@pytest.mark.parametrize(("api", "path"), _cases())
def test_every_content_fault_applies_and_the_sdk_decodes_it(api: str, path: Path) -> None:
    transcript = _loaded(path)
    clean = build_plan(transcript)
    expected = _sdk(api, clean)
    before = summarize(api, decode_all(clean.body))
    for spec in CONTENT_FAULTS:
        try:
            plan = build_plan(transcript, faults=[spec], seed=3)
        except SpecError as exc:  # a stream with no content to cut or sprinkle between
            message = str(exc)
            assert repr(spec) in message
            if spec.startswith(NEEDS_STRUCTURE):
                assert "structured part" in message or "past the end" in message, message
                continue
            if spec.startswith("tool:"):  # a stream with fewer than two tool calls
                assert "needs two" in message, message
                continue
            if spec == "blocks:reorder":  # one kind of block, or already text, tools, thinking
                assert "already run" in message or api == "google-generate", message
                continue
            if spec == "refusal":  # a stream with no text to carry it
                assert "no " in message, message
                continue
            assert spec.startswith(("stop", "pings", "empty"))
            no_pings = spec.startswith("pings") and api == "google-generate"
            # google's tool input is an object, not streamed text: nothing to cut there
            assert no_pings or "0 content characters" in message or "no content deltas" in message
            continue
        got = _sdk(api, plan)
        if spec.startswith("bad-json") and got[0] != expected[0]:
            # the SDK parses tool input itself: it raises its JSON error, as on a real model's
            assert "json" in (got[0] + str(got[1])).lower(), (spec, got)
            continue
        if spec in ("tool:split-args", "blocks:reorder"):
            # the same blocks (moved: the SDK lists them in stream order), each call's input
            assert got[0] == expected[0] and _parts(got) == _parts(expected), (spec, got)
            after = summarize(api, decode_all(plan.body))
            assert (after.text, after.thinking) == (before.text, before.thinking), spec
            continue
        if spec == "tool:duplicate-id" and api == "openai-responses" and expected[0] == "ok":
            assert got == DUPLICATE_OUTPUT, got
            continue
        if spec.startswith((*NEEDS_STRUCTURE, "refusal", "tool")):
            assert got[0] == expected[0], (spec, got)
            continue
        if spec.startswith("stop") and api == "openai-responses" and expected[0] == "ok":
            # what the SDK raises on every real incomplete response: the final one must be
            # response.completed (it parses the response.incomplete event itself)
            assert got == INCOMPLETE_RESPONSE, got
        else:
            assert got[0] == expected[0], (spec, got)
        after = summarize(api, decode_all(plan.body))
        if spec.startswith("stop"):
            if before.stop_reason is not None:  # a recording cut short has none to rewrite
                assert after.stop_reason == registry.get(api).stop_reasons["max_tokens"], spec
            assert len(after.text) + len(after.tool_json) < len(before.text + before.tool_json)
        elif spec.startswith(("reformat", "escape")):
            assert _json_or_text(after.text) == _json_or_text(before.text), spec
            assert _json_or_text(after.tool_json) == _json_or_text(before.tool_json), spec
        else:
            assert (after.text, after.tool_json) == (before.text, before.tool_json), spec
            if spec.startswith("pings") or got[0] != "ok":
                continue
            assert got == expected, spec  # an empty delta changes nothing the SDK returns


def test_events_without_changed_content_are_kept_byte_for_byte() -> None:
    body = synth.render("anthropic-messages", text='{"a": [1, 2], "b": "c"} and prose')
    t = synth.make_transcript("anthropic-messages", body, request_body={})
    plan = build_plan(t, faults=["reformat:compact"])
    assert plan.content() == '{"a":[1,2],"b":"c"} and prose'
    kept = [e.frame for e in plan.timeline if e.frame.origin == "recorded"]
    assert all(f.raw in body for f in kept) and len(kept) > 5


def test_prefill_continuation_is_reformatted_from_the_requests_prefill() -> None:
    prefill = '{\n  "text_answer": "'
    body = synth.render("anthropic-messages", text='Café", "code_edits": [ ]\n}')
    messages = [{"role": "user", "content": "x"}, {"role": "assistant", "content": prefill}]
    t = synth.make_transcript("anthropic-messages", body, request_body={"messages": messages})
    spaced = build_plan(t, faults=["reformat:newlines"]).content()
    assert json.loads(prefill + spaced) == {"text_answer": "Café", "code_edits": []}
    assert spaced == 'Café",\n  "code_edits": []\n}'
    ascii_ = build_plan(t, faults=["escape:ascii"]).content()
    assert ascii_.startswith("Caf\\u00e9") and json.loads(prefill + ascii_)["text_answer"] == "Café"


def test_escape_ascii_writes_surrogate_pairs_and_raw_reads_them_back() -> None:
    text = '{"t": "🚀 é \\u00e9 \\"q\\" \\n \\u0001"}'
    ascii_ = "".join(rewrite(text, 0, escape="ascii"))
    assert "\\ud83d\\ude80" in ascii_ and "\\u00e9 \\u00e9" in ascii_
    raw = "".join(rewrite(ascii_, 0, escape="raw"))
    assert "🚀 é é" in raw and '\\"q\\"' in raw and "\\u0001" in raw  # control chars stay escaped
    assert json.loads(raw) == json.loads(text) == json.loads(ascii_)


@pytest.mark.parametrize(
    ("text", "state"),
    [('{"a": 1}', False), ('text", "k": [1]}', True), ("Hello, world.", None), ("a = [1]", None)],
)
def test_json_is_told_from_prose(text: str, state: bool | None) -> None:
    assert json_start_state(text) is state


@pytest.mark.parametrize("api", synth.APIS)
def test_stop_inside_a_tool_input_ends_with_the_providers_reason(api: str) -> None:
    body = synth.render(api, text="ok", tool_calls=[synth.ToolCall("edit", '{"code": "a();"}')])
    t = synth.make_transcript(api, body, request_body={})
    limit = 1 if api == "google-generate" else 8
    plan = build_plan(t, faults=[f"stop:max_tokens@char={limit}"])
    summary = summarize(api, decode_all(plan.body))
    assert summary.stop_reason == registry.get(api).stop_reasons["max_tokens"]
    assert summary.text + summary.tool_json == ("ok" + '{"code": "a();"}')[:8] or api == (
        "google-generate"  # google's tool input is an object, not streamed text: cut before it
    )
    want = INCOMPLETE_RESPONSE if api == "openai-responses" else "ok"
    assert _sdk(api, plan) == want if api == "openai-responses" else _sdk(api, plan)[0] == want


def test_content_faults_compose_with_transport_faults_and_chunkings() -> None:
    body = synth.render("openai-chat", text='{"a": "é", "b": [1, 2, 3]}')
    t = synth.make_transcript("openai-chat", body, request_body={})
    plan = build_plan(
        t, chunking="deltas:1", faults=["escape:ascii", "reformat:spaced", "disconnect@delta=5"]
    )
    assert plan.content() == '{"a":' and plan.ending == "disconnect"  # `: ` is one delta
    again = build_plan(t, faults=["pings:4"], seed=9)
    assert again.body == build_plan(t, faults=["pings:4"], seed=9).body  # seeded
    assert again.body != build_plan(t, faults=["pings:4"], seed=10).body


@pytest.mark.parametrize(
    "bad",
    [
        "reformat",
        "reformat:wide",
        "escape:ascii@event=2",
        "stop:max_tokens",
        "stop:eos@char=3",
        "pings:0",
        "stop:max_tokens@text=150%",
    ],
)
def test_bad_content_fault_specs_raise_one_line_naming_the_spec(bad: str) -> None:
    with pytest.raises(SpecError) as raised:
        parse_fault(bad)
    assert repr(bad) in str(raised.value) and "\n" not in str(raised.value)


def test_stop_past_the_end_and_generic_streams_say_why() -> None:
    t = synth.make_transcript(
        "openai-chat", synth.render("openai-chat", text="hi"), request_body={}
    )
    with pytest.raises(SpecError, match=r"char=5 is at or past the end"):
        build_plan(t, faults=["stop:max_tokens@char=5"])
    generic = synth.make_transcript("openai-chat", b"data: hello\n\n", request_body={})
    generic.meta.api = "generic-sse"
    with pytest.raises(SpecError, match="no content deltas"):
        build_plan(generic, faults=["pings:2"])


def test_every_content_kind_of_the_vocabulary_is_applied() -> None:
    body = synth.render(
        "anthropic-messages",
        text=json.dumps(
            {"code_edits": [{"new_code": "x"}], "a": "b ç d " * 40}, ensure_ascii=False
        ),
        tool_calls=[synth.ToolCall("f", '{"a": 1}'), synth.ToolCall("g", '{"b": 2}')],
        thinking="Let me see.",
    )
    frames = frames_of("anthropic-messages", body)
    assert set(CONTENT_FAULT_KINDS) == {s.split(":")[0].split("@")[0] for s in CONTENT_FAULTS}
    for kind in CONTENT_FAULT_KINDS:
        fault = parse_fault(FAULTS[kind].example)
        changed, _ = apply_content_faults(
            "anthropic-messages", frames, [0.0] * len(frames), [fault], "", random.Random(0)
        )
        assert b"".join(f.raw for f in changed) != body, kind


def test_empty_edits_and_bad_json_act_on_the_prefilled_answer() -> None:
    prefill = '{\n  "code_edits": ['
    text = '{"action": "rewrite", "new_code": "a(]);"}],\n  "text_answer": "Done."\n}'
    messages = [{"role": "user", "content": "x"}, {"role": "assistant", "content": prefill}]
    body = synth.render("openai-chat", text=text)
    t = synth.make_transcript("openai-chat", body, request_body={"messages": messages})
    emptied = build_plan(t, faults=["empty-edits"], chunking="deltas:2").content()
    assert json.loads(prefill + emptied) == {"code_edits": [], "text_answer": "Done."}
    broken = build_plan(t, faults=["bad-json@char=0"]).content()
    assert broken[0] == "#" and broken[1:] == text[1:]  # outside a string: '#'
    with pytest.raises(ValueError):
        json.loads(prefill + broken)
    inside = build_plan(t, faults=["bad-json@char=3"]).content()
    assert inside[3] == "\x01"  # inside a string: a raw control character
    with pytest.raises(SpecError, match="no edits array"):
        plain = synth.make_transcript(
            "openai-chat", synth.render("openai-chat", text='{"a": 1}'), request_body={}
        )
        build_plan(plain, faults=["empty-edits"])


@pytest.mark.parametrize(
    ("api", "reason"),
    [("anthropic-messages", "refusal"), ("google-generate", "SAFETY"), ("openai-chat", "stop")],
)
def test_refusal_is_the_providers_refusal_shape(api: str, reason: str) -> None:
    body = synth.render(api, text="Sure: run rm -rf.", tool_calls=[synth.ToolCall("f", "{}")])
    t = synth.make_transcript(api, body, request_body={})
    plan = build_plan(t, faults=["refusal"])
    summary = summarize(api, decode_all(plan.body))
    assert (summary.text, summary.tool_json, summary.stop_reason) == ("", "", reason)
    if api == "openai-chat":  # the refusal text rides in delta.refusal, as openai streams it
        refusal = "".join(
            (json.loads(e.data)["choices"][0]["delta"].get("refusal") or "")
            for e in decode_all(plan.body)
            if e.data.startswith("{") and json.loads(e.data).get("choices")
        )
        assert refusal == "I'm sorry, but I can't help with that."
    assert _sdk(api, plan)[0] == "ok"


@pytest.mark.parametrize("api", ["anthropic-messages", "openai-chat", "openai-responses"])
def test_duplicate_tool_id_gives_two_calls_one_id(api: str) -> None:
    calls = [synth.ToolCall("read", '{"path": "a"}'), synth.ToolCall("read", '{"path": "b"}')]
    t = synth.make_transcript(api, synth.render(api, tool_calls=calls), request_body={})
    plan = build_plan(t, faults=["tool:duplicate-id"])
    wire = registry.get(api)
    ids = [
        get_path(obj, path)
        for e in decode_all(plan.body)
        if e.data.startswith("{")
        for obj in [json.loads(e.data)]
        for path in wire.tool_call_ids(obj)
    ]
    assert len(ids) >= 2 and len(set(ids)) == 1
    if api == "openai-responses":  # the SDK's stream state refuses two items with one call id
        assert _sdk(api, plan) == DUPLICATE_OUTPUT, _sdk(api, plan)
    else:
        assert _sdk(api, plan)[0] == "ok"
    with pytest.raises(SpecError, match="needs two"):
        one = synth.make_transcript(api, synth.render(api, tool_calls=calls[:1]), request_body={})
        build_plan(one, faults=["tool:duplicate-id"])


def _call_order(api: str, body: bytes) -> list[object]:
    """The block / call each argument delta belongs to, in stream order."""
    wire = registry.get(api)
    order = []
    for e in decode_all(body):
        obj = json.loads(e.data) if e.data.startswith("{") else None
        where = wire.locate(obj) if obj is not None else None
        unit = wire.unit(obj) if obj is not None else None
        if where is not None and where.kind == "tool_json" and unit is not None:
            order.append(unit.key)
    return order


@pytest.mark.parametrize("api", ["anthropic-messages", "openai-chat", "openai-responses"])
def test_split_args_interleaves_the_calls_arguments_by_index(api: str) -> None:
    calls = [synth.ToolCall("read", '{"path": "a/b.txt"}'), synth.ToolCall("ls", '{"dir": "c"}')]
    body = synth.render(api, text="Reading.", tool_calls=calls)
    t = synth.make_transcript(api, body, request_body={})
    plan = build_plan(t, faults=["tool:split-args"], seed=4)
    order = _call_order(api, plan.body)
    assert len(order) > len(_call_order(api, body))  # each delta cut in two
    first, second = order[0], order[1]
    assert first != second and first in order[order.index(second) :]  # interleaved
    assert _sdk(api, plan) == _sdk(api, build_plan(t))  # each call keeps its own arguments
    assert plan.body == build_plan(t, faults=["tool:split-args"], seed=4).body  # seeded
    assert plan.body != build_plan(t, faults=["tool:split-args"], seed=5).body


@pytest.mark.parametrize("api", ["anthropic-messages", "openai-chat", "openai-responses"])
def test_blocks_reorder_puts_thinking_after_the_text_and_renumbers(api: str) -> None:
    body = synth.render(
        api, text="Hello.", thinking="Hmm, let me think.", tool_calls=[synth.ToolCall("f", "{}")]
    )
    t = synth.make_transcript(api, body, request_body={})
    plan = build_plan(t, faults=["blocks:reorder"])
    kinds = [k for _, k, _ in plan.content_timeline]
    assert kinds.index("text") < kinds.index("thinking")
    assert max(i for i, k in enumerate(kinds) if k == "tool_json") < kinds.index("thinking")
    got, expected = _sdk(api, plan), _sdk(api, build_plan(t))
    assert got[0] == "ok" and _parts(got) == _parts(expected)
    if api == "anthropic-messages":  # blocks renumbered: thinking is the last block now
        assert [b[0] for b in got[1]] == ["text", "tool_use", "thinking"]  # type: ignore[index]
    with pytest.raises(SpecError, match="already run text, tool use, thinking"):
        plain = synth.make_transcript(api, synth.render(api, text="Hi."), request_body={})
        build_plan(plain, faults=["blocks:reorder"])


def test_refusal_on_openai_responses_is_a_refusal_content_part() -> None:
    api = "openai-responses"
    body = synth.render(
        api, text="Sure: run rm -rf.", thinking="ok", tool_calls=[synth.ToolCall("f", "{}")]
    )
    t = synth.make_transcript(api, body, request_body={})
    plan = build_plan(t, faults=["refusal"])
    events = [json.loads(e.data) for e in decode_all(plan.body)]
    types = [e["type"] for e in events]
    assert "response.output_text.delta" not in types and "response.refusal.done" in types
    refusal = "".join(e["delta"] for e in events if e["type"] == "response.refusal.delta")
    assert refusal == "I'm sorry, but I can't help with that."
    output = events[-1]["response"]["output"]
    assert (
        output == [{**output[0], "content": [{"type": "refusal", "refusal": refusal}]}]
        and output[0]["type"] == "message"
    )
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert {e.get("output_index", 0) for e in events} == {0}  # the message is the only item
    assert _sdk(api, plan) == ("ok", ("", [("message", None)]))
