"""A non-streaming JSON response (``"stream": false``) as a case's upstream: the grader decodes
its answer (the expected outcome, the served call), in ``streambench run`` and in chaos."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from streambench.grade.expect import recorded_answer
from streambench.replay import build_plan
from streambench.runner.matrix import RunSpec, run_one
from streambench.transcript import save, synth

TEXT = "Paris is the capital of France. Ask me about é, 😀 and 𝄞 too."
SYNC = {"anthropic-messages": "anthropic-sync", "openai-chat": "openai-sync"}
STREAMING = {"anthropic-messages": "anthropic", "openai-chat": "openai"}


def _json_case(folder: Path, api: str) -> Path:
    body = synth.render_json_response(api, TEXT)
    save(synth.make_transcript(api, body, request_body={"stream": False}), folder / "up.yaml")
    case = {
        "name": f"json-{api}",
        "mode": "chat",
        "request": {"content": "What is the capital of France?"},
        "upstream": ["up.yaml"],
    }
    (folder / "case.yaml").write_text(yaml.safe_dump(case), encoding="utf-8")
    return folder


@pytest.mark.parametrize("api", sorted(SYNC))
def test_a_json_recording_expects_its_answer_and_a_sync_client_passes(
    api: str, tmp_path: Path
) -> None:
    case = _json_case(tmp_path, api)
    row = run_one(RunSpec(str(case), f"reference:providers={SYNC[api]}", latency="const:ttfb=50"))
    assert row["expected_text"] == TEXT
    assert (row["terminal"], row["streamed_text"]) == ("done", TEXT)
    assert row["violations"] == [] and row["not_checked"] == []


@pytest.mark.parametrize("api", sorted(SYNC))
def test_a_client_that_shows_nothing_of_a_json_answer_is_flagged(api: str, tmp_path: Path) -> None:
    # the bug: the client asks for a stream and reads the JSON answer as SSE, finding nothing
    case = _json_case(tmp_path, api)
    row = run_one(RunSpec(str(case), f"reference:providers={STREAMING[api]}"))
    assert row["expected_text"] == TEXT and row["streamed_text"] == ""
    assert {"wrong-text", "unexpected-error"} & {v["rule"] for v in row["violations"]}


@pytest.mark.parametrize(
    "api", ["anthropic-messages", "openai-chat", "openai-responses", "google-generate"]
)
def test_a_json_body_is_one_chunk_of_content_only_when_it_arrives_whole(api: str) -> None:
    body = synth.render_json_response(api, TEXT)
    transcript = synth.make_transcript(api, body, request_body={"stream": False})
    assert recorded_answer(transcript, "chat").text == TEXT
    whole = build_plan(transcript, latency="const:ttfb=50")
    assert [(kind, text) for _, kind, text in whole.content_timeline] == [("text", TEXT)]
    cut = build_plan(transcript, faults=[f"disconnect@bytes={len(body) // 2}"])
    assert cut.json_payload is None and cut.content_timeline == []
