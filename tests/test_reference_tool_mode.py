"""The reference's tool-call mode (``reference:structured=tool``), the fake provider's tool-call
streams, and the four-design experiment: the tester tested on tool calls."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
import yaml

from streambench._server import running_server
from streambench.cli import main
from streambench.providers import registry
from streambench.providers.base import ToolCall
from streambench.record.fake_provider import FakeProvider, Rule
from streambench.record.recorder import record
from streambench.reference.app import create_app
from streambench.reference.assistant import answer_tool
from streambench.reference.config import ReferenceConfig
from streambench.reference.store import Store
from streambench.runner.matrix import DEFAULT_CHUNKINGS, Matrix, RunSpec, run_matrix, run_one
from streambench.sse import decode_all
from streambench.transcript import save, synth
from streambench.uses.chaos import run_sut_chaos
from streambench.uses.experiment import DESIGN_MATRICES, compare_designs, load_designs

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "fixtures" / "experiments"
TOOL_SUT = "reference:structured=tool"
ORIGINAL = "fn(state => {\n  return state;\n});\n"
EDITS = [
    {"action": "replace", "old_code": "return state;", "new_code": 'log("a\\"b");\n  return state;'}
]
NEW_CODE = 'fn(state => {\n  log("a\\"b");\n  return state;\n});\n'
TEXT = 'I log "a\\"b" first.\nThen the state.'
FIELDS = {"code_edits": EDITS, "text_answer": TEXT}
WORKFLOW = 'name: "sync \\"all\\""\njobs:\n  fetch:\n    adaptor: http\n'

RECORDER_NAMES = {"anthropic-messages": "anthropic", "openai-chat": "openai-chat"}


def slugs(row: dict[str, Any]) -> list[str]:
    return sorted({v["rule"] for v in row["violations"]})


def tool_kwargs(api: str, order: str, mode: str = "job_code") -> dict[str, Any]:
    """The ``tools`` / ``tool_choice`` the reference sends in ``order``, in ``api``'s shape."""
    return registry.get(api).tool_fields(
        answer_tool(mode, order),  # type: ignore[arg-type]
        forced=order == "changes_first",
    )


# ------------------------------------------- the fake provider's tool calls, read by the SDKs


@pytest.fixture(scope="module")
def fake_url() -> Any:
    provider = FakeProvider(rules=[Rule(json=FIELDS)], rate=0)
    with running_server(provider.app()) as url:
        yield url


def test_anthropic_sdk_reads_the_fake_providers_tool_calls(fake_url: str) -> None:
    client = anthropic.Anthropic(base_url=fake_url, api_key="k", max_retries=0)
    messages = [{"role": "user", "content": "log it"}]
    args: dict[str, Any] = {"model": "claude-sonnet-4-20250514", "max_tokens": 512}
    forced = tool_kwargs("anthropic-messages", "changes_first")
    with client.messages.stream(messages=messages, **args, **forced) as stream:  # type: ignore[arg-type]
        partial = [e.partial_json for e in stream if e.type == "input_json"]
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use" and len(partial) > 5
    (call,) = final.content
    assert call.type == "tool_use" and call.name == "edit_job_code"
    assert call.input == FIELDS and list(call.input) == ["code_edits", "text_answer"]  # type: ignore[arg-type]
    offered = tool_kwargs("anthropic-messages", "text_first")
    with client.messages.stream(messages=messages, **args, **offered) as stream:  # type: ignore[arg-type]
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["text", "tool_use"]
    assert final.content[0].text == TEXT  # type: ignore[union-attr]
    assert final.content[1].input == {"code_edits": EDITS}  # type: ignore[union-attr]
    whole = client.messages.create(messages=messages, **args, **forced)  # type: ignore[arg-type]
    assert [b.type for b in whole.content] == ["tool_use"] and whole.content[0].input == FIELDS  # type: ignore[union-attr]


def test_openai_sdk_reads_the_fake_providers_tool_calls(fake_url: str) -> None:
    client = openai.OpenAI(base_url=f"{fake_url}/v1", api_key="k", max_retries=0)
    messages = [{"role": "user", "content": "log it"}]
    for order, text, tool_input in (
        ("changes_first", "", FIELDS),
        ("text_first", TEXT, {"code_edits": EDITS}),
    ):
        stream = client.chat.completions.create(
            model="gpt-4o", messages=messages, stream=True, **tool_kwargs("openai-chat", order)
        )
        content, names, arguments, finish = "", {}, {}, None
        for chunk in stream:
            for choice in chunk.choices:
                content += choice.delta.content or ""
                for call in choice.delta.tool_calls or []:
                    if call.function and call.function.name:
                        names[call.index] = call.function.name
                    piece = call.function.arguments if call.function else ""
                    arguments[call.index] = arguments.get(call.index, "") + (piece or "")
                finish = choice.finish_reason or finish
        assert (content, names, finish) == (text, {0: "edit_job_code"}, "tool_calls")
        assert json.loads(arguments[0]) == tool_input
    whole = client.chat.completions.create(
        model="gpt-4o", messages=messages, **tool_kwargs("openai-chat", "changes_first")
    )
    (call,) = whole.choices[0].message.tool_calls or []
    assert json.loads(call.function.arguments) == FIELDS  # type: ignore[union-attr]


def test_openai_sdk_reads_the_fake_providers_responses_tool_calls(fake_url: str) -> None:
    client = openai.OpenAI(base_url=f"{fake_url}/v1", api_key="k", max_retries=0)
    for order, text, tool_input in (
        ("changes_first", "", FIELDS),
        ("text_first", TEXT, {"code_edits": EDITS}),
    ):
        offered = tool_kwargs("openai-responses", order)
        stream = client.responses.create(model="gpt-4o", input="log it", stream=True, **offered)
        shown, arguments, final = "", "", None
        for event in stream:
            if event.type == "response.output_text.delta":
                shown += event.delta
            elif event.type == "response.function_call_arguments.delta":
                arguments += event.delta
            elif event.type == "response.completed":
                final = event.response
        assert shown == text and json.loads(arguments) == tool_input
        assert final is not None
        calls = [item for item in final.output if item.type == "function_call"]
        assert [c.name for c in calls] == ["edit_job_code"]  # type: ignore[union-attr]
    whole = client.responses.create(
        model="gpt-4o", input="log it", **tool_kwargs("openai-responses", "changes_first")
    )
    (call,) = [item for item in whole.output if item.type == "function_call"]
    assert json.loads(call.arguments) == FIELDS  # type: ignore[union-attr]


# ---------------------------------------------- the reference in tool mode, end to end


def _reference_events(kind: str, order: str) -> list[tuple[str, dict[str, Any]]]:
    """The reference's SSE events for one job_code request, its upstream the fake provider."""
    fake = FakeProvider(rules=[Rule(json=FIELDS)], rate=0).app()
    config = ReferenceConfig(
        providers=(kind,),
        anthropic_base_url="http://fake",
        openai_base_url="http://fake/v1",
        structured="tool",
        transport=httpx.ASGITransport(fake),
        store=Store(":memory:"),
    )

    async def post() -> bytes:
        transport = httpx.ASGITransport(create_app(config))
        async with httpx.AsyncClient(transport=transport, base_url="http://sut") as client:
            body = {"content": "log it", "mode": "job_code", "order": order}
            body["context"] = {"expression": ORIGINAL}
            response = await client.post(
                "/messages", json=body, headers={"accept": "text/event-stream"}
            )
            return response.content

    return [(ev.event or "", json.loads(ev.data)) for ev in decode_all(asyncio.run(post()))]


@pytest.mark.parametrize("kind", ["anthropic", "openai", "anthropic-sync", "openai-sync"])
@pytest.mark.parametrize("order", ["changes_first", "text_first"])
def test_reference_tool_mode_sends_the_prefill_modes_events(kind: str, order: str) -> None:
    events = _reference_events(kind, order)
    names = [name for name, _ in events if name in ("changes", "chunk", "done", "error")]
    assert names[-1] == "done", events[-1]
    first_chunk, changes = names.index("chunk"), names.index("changes")
    assert (changes < first_chunk) == (order == "changes_first")
    (payload,) = [data for name, data in events if name == "changes"]
    assert payload["code"] == NEW_CODE and payload["code_edits"] == EDITS
    assert "".join(d["content"] for n, d in events if n == "chunk") == TEXT
    assert events[-1][1]["code"] == NEW_CODE and events[-1][1]["content"] == TEXT


# ------------------------------------------------- clean over every chunking, bugs flagged


def _write_case(folder: Path, transcript: Any, text: str, code: str | None = NEW_CODE) -> Path:
    """A job_code case expecting ``code``, or (``code`` None) a workflow case expecting
    :data:`WORKFLOW`."""
    save(transcript, folder / "upstream.yaml")
    expect = {"text": text, **({"code": code} if code else {"yaml": WORKFLOW})}
    case = {
        "name": folder.name,
        "mode": "job_code" if code else "workflow",
        "request": {"content": "log it", "context": {"expression": ORIGINAL if code else ""}},
        "upstream": ["upstream.yaml"],
        "expect": expect,
    }
    (folder / "case.yaml").write_text(yaml.safe_dump(case, sort_keys=False), encoding="utf-8")
    return folder


def _recorded(folder: Path, api: str, fields: dict[str, Any], ascii_only: bool = False) -> Path:
    """A changes-first tool case recorded from the fake provider on a loopback server."""
    folder.mkdir(parents=True)
    wire = registry.get(api)
    mode = "workflow" if "yaml" in fields else "job_code"
    body = {**wire.build_body(None, "log it", None), **tool_kwargs(api, "changes_first", mode)}
    provider = FakeProvider(rules=[Rule(json=fields, ascii=ascii_only)], rate=400.0)
    with running_server(provider.app()) as url:
        out = folder / "upstream.yaml"
        transcript = record(
            url + wire.routes[0], body, out=out, provider=RECORDER_NAMES[api], api=api
        )
    if mode == "workflow":
        return _write_case(folder, transcript, fields["text"], None)
    return _write_case(folder, transcript, fields["text_answer"])


@pytest.fixture(scope="module")
def tool_cases(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Beyond the experiment's recordings: the openai-chat shape; escapes of every kind (in
    ASCII, so surrogate pairs and \\uXXXX cross the cuts); workflow mode; a parallel call to
    another tool in both APIs' shapes."""
    root = tmp_path_factory.mktemp("tool-cases")
    escapes = {"code_edits": EDITS, "text_answer": 'Tabs\t, CRLF\r\n, "quotes", \\ and 😀 é 𝄞'}
    flow = {"yaml": WORKFLOW, "text": 'A workflow with a "quoted" name.'}
    parallel = (
        ToolCall("lookup_docs", json.dumps({"q": "log"})),
        ToolCall("edit_job_code", json.dumps(FIELDS)),
    )
    cases = [
        _recorded(root / "openai-chat", "openai-chat", FIELDS),
        _recorded(root / "escapes", "anthropic-messages", escapes, ascii_only=True),
        _recorded(root / "workflow", "anthropic-messages", flow),
        _recorded(root / "workflow-openai", "openai-chat", flow, ascii_only=True),
    ]
    for api in ("anthropic-messages", "openai-chat"):
        body = synth.render(api, tool_calls=parallel)
        times = [400.0 + 20.0 * i for i in range(len(synth.event_spans(body)))]
        transcript = synth.make_transcript(api, body, request_body={}, chunk_times_ms=times)
        (root / f"parallel-{api}").mkdir()
        cases.append(_write_case(root / f"parallel-{api}", transcript, TEXT))
    return cases


def test_tool_changes_first_is_clean_over_every_default_chunking(tool_cases: list[Path]) -> None:
    cases = [str(EXPERIMENTS / "tool_changes_first"), *map(str, tool_cases)]
    frame = run_matrix(Matrix(cases=cases, suts=[TOOL_SUT], chunkings=list(DEFAULT_CHUNKINGS)))
    assert len(frame) == 12 * len(DEFAULT_CHUNKINGS)
    for row in frame.to_dict("records"):
        where = (row["case"], row["chunking"])
        assert row["terminal"] == "done" and slugs(row) == [], (where, row["violations"])
        assert row["final_text"] == row["expected_text"], where
        assert row["code_exact"], where  # the code, or the workflow YAML
        # the changes left the moment the tool input's code_edits completed upstream
        assert abs(row["changes_lag_ms"]) < 1.0, where
        assert row["ttfc_ms"] < row["ttft_ms"], where


def test_tool_text_first_design_is_flagged_text_before_changes_with_its_lag() -> None:
    deployed = "reference:structured=tool,default_order=text_first"
    requested = "reference:structured=tool,order=text_first"
    matrix = Matrix(
        cases=[str(EXPERIMENTS / "tool_text_first")],
        suts=[deployed, requested],
        chunkings=["events", "deltas:1", "deltas:adversarial"],
    )
    rows = run_matrix(matrix).to_dict("records")
    assert len(rows) == 6 * 2 * 3
    for row in rows:
        where = (row["sut"], row["case"], row["chunking"])
        assert math.isfinite(row["changes_lag_ms"]) and abs(row["changes_lag_ms"]) < 1.0, where
        assert row["ttft_ms"] + 500 < row["ttfc_ms"] and row["code_exact"], where
        # a deployment whose design is text first is flagged (its "Drafting the changes..."
        # status, sent as the tool call starts, also comes after the text); a request asking
        # for text first is not
        flagged = ["status-after-text", "text-before-changes"]
        assert slugs(row) == (flagged if row["sut"] == deployed else []), where


@pytest.mark.parametrize("chunking", ["events", "deltas:1", "deltas:adversarial"])
def test_tool_call_backend_bugs_are_flagged_by_the_right_rule(chunking: str) -> None:
    for case in ("add-get", "two-steps", "rewrite-each"):
        path = str(EXPERIMENTS / "tool_changes_first" / case / "case.yaml")
        good = run_one(RunSpec(path, "tests.suts.sdk_tool_edits:app", "streambench", chunking))
        assert slugs(good) == [] and good["code_exact"], (case, good["violations"])
        late = run_one(
            RunSpec(path, "tests.suts.sdk_tool_edits:block_stop_app", "streambench", chunking)
        )
        assert slugs(late) == ["text-before-changes"], (case, late["violations"])
        # measured from the moment the tool input's code_edits completed upstream
        assert late["changes_lag_ms"] > 300, case
        eager = run_one(
            RunSpec(path, "tests.suts.sdk_tool_edits:eager_app", "streambench", chunking)
        )
        assert slugs(eager) == ["provisional-mismatch"], (case, eager["violations"])
        assert eager["final_code"] == eager["expected_code"] != eager["provisional_code"], case


# ------------------------------------------------------------------ the four designs


def test_the_four_designs_experiment_shows_changes_first_designs_send_code_earlier() -> None:
    results, suts = load_designs([ROOT / p for p in DESIGN_MATRICES])
    assert suts == [
        "reference",
        "reference:order=text_first",
        "reference:structured=tool",
        "reference:structured=tool,order=text_first",
    ]
    designs = compare_designs(results, suts, n_resamples=500)
    table = designs.table.set_index(["variant", "metric"])
    assert set(table["n"]) == {6}
    for text_first in ("reference:order=text_first", "reference:structured=tool,order=text_first"):
        # text first: the code comes later and the words sooner than prefill changes-first
        assert table.loc[(text_first, "ttfc_ms"), "ci_low"] > 0
        assert table.loc[(text_first, "ttfc_ms"), "verdict"] == "A better"
        assert table.loc[(text_first, "ttft_ms"), "ci_high"] < 0
    tool = compare_designs(
        results, suts, baseline="reference:structured=tool,order=text_first", n_resamples=500
    ).table.set_index(["variant", "metric"])
    # within tool calls too: changes first shows the code earlier than text first
    assert tool.loc[("reference:structured=tool", "ttfc_ms"), "ci_high"] < 0
    assert tool.loc[("reference:structured=tool", "ttfc_ms"), "verdict"] == "B better"


# ------------------------------------------------------------------- the failover contract


@pytest.mark.parametrize("chain", [("anthropic", "openai"), ("openai", "anthropic")])
def test_reference_tool_mode_keeps_the_failover_contract_on_tool_call_streams(
    chain: tuple[str, str],
) -> None:
    results = run_sut_chaos(TOOL_SUT, chain, answer="tool")
    assert len(results) > 20 and all(r.passed for r in results), [
        (r.cell, r.violations) for r in results if not r.passed
    ]
    by_cell = {(r.cell.position, r.cell.chain_index, r.cell.kind): r for r in results}
    # nothing of the tool input had arrived: the next provider answers, shown once
    fell = by_cell[("before-first-chunk", 0, "disconnect")]
    assert (fell.outcome, fell.shown) == (
        "done",
        f"[1:{chain[1]}] the answer, in 6 deltas of text.",
    )
    # the input had started: committed, an error, never a second answer after the first
    assert by_cell[("mid-text", 0, "disconnect")].outcome == "error"


def test_bad_design_options_are_one_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    case = str(ROOT / "fixtures" / "job-basic-replace")
    for argv, expected in (
        (["run", "--case", case, "--sut", "reference:structured=json"], "structured"),
        (["experiment", "designs", str(EXPERIMENTS / "changes_first.yaml")], "1 SUT(s)"),
        (["experiment", "designs", "--metrics", "ttfc"], "'ttfc'"),
    ):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        err = capsys.readouterr().err
        assert exited.value.code == 2 and expected in err and "Traceback" not in err, err
