"""Provider / api detection and the api-aware content summary, on handmade events and the corpus."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.conftest import corpus_files

from streambench.providers.apis import detect, event_content, summarize
from streambench.sse import SSEEvent, decode_all
from streambench.transcript import load_inputs


def ev(payload: Any, event: str = "message") -> SSEEvent:
    return SSEEvent(event=event, data=payload if isinstance(payload, str) else json.dumps(payload))


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://api.anthropic.com/v1/messages?beta=true", ("anthropic", "anthropic-messages")),
        ("https://api.openai.com/v1/chat/completions", ("openai", "openai-chat")),
        ("https://api.deepseek.com/chat/completions", ("deepseek", "openai-chat")),
        ("https://api.groq.com/openai/v1/chat/completions", ("groq", "openai-chat")),
        ("https://api.mistral.ai/v1/chat/completions#stream", ("mistral", "openai-chat")),
        ("https://openrouter.ai/api/v1/chat/completions", ("openrouter", "openai-chat")),
        ("https://api.z.ai/api/paas/v4/chat/completions", ("zai", "openai-chat")),
        ("https://api.inference.crusoecloud.com/v1/chat/completions", ("crusoe", "openai-chat")),
        (
            "https://myorg-myaccount.snowflakecomputing.com/api/v2/cortex/v1/chat/completions",
            ("snowflake", "openai-chat"),
        ),
        (
            "https://router.huggingface.co/novita/v3/openai/chat/completions",
            ("huggingface", "openai-chat"),
        ),
        ("https://api.openai.com/v1/responses", ("openai", "openai-responses")),
        (
            "https://api.openai.com/v1/responses/resp_08?starting_after=0&stream=true",
            ("openai", "openai-responses"),
        ),
        ("https://api.deepseek.com/responses", ("deepseek", "openai-responses")),
        (
            "https://bedrock-mantle.us-east-1.api.aws/openai/v1/responses",
            ("bedrock", "openai-responses"),
        ),
        (
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
            ("google", "google-generate"),
        ),
        ("http://127.0.0.1:8123/v1/chat/completions", ("openai", "openai-chat")),
    ],
)
def test_detect_from_url(url: str, expected: tuple[str, str]) -> None:
    assert detect(url, b"") == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'event: message_start\ndata: {"type": "message_start"}\n\n', "anthropic-messages"),
        (b'data: {"type": "response.created"}\n\n', "openai-responses"),
        (b'data: {"choices": []}\n\ndata: [DONE]\n\n', "openai-chat"),
        (b'data: {"candidates": []}\r\n\r\n', "google-generate"),
        (b"data: hello\n\n", "generic-sse"),
    ],
)
def test_detect_falls_back_to_event_shapes(body: bytes, expected: str) -> None:
    provider, api = detect("http://localhost:9000/stream", body)
    assert api == expected
    assert provider == {"generic-sse": "unknown"}.get(api, provider)
    assert detect("http://localhost:9000/stream", b"", decode_all(body))[1] == expected


def test_anthropic_content_kinds_and_stop_reason() -> None:
    events = [
        ev({"type": "content_block_delta", "delta": {"type": "thinking_delta", "thinking": "hm"}}),
        ev({"type": "content_block_delta", "delta": {"type": "text_delta", "text": "Hi"}}),
        ev(
            {
                "type": "content_block_delta",
                "delta": {"type": "input_json_delta", "partial_json": '{"a'},
            }
        ),
        ev({"type": "content_block_delta", "delta": {"type": "signature_delta", "signature": "x"}}),
        ev({"type": "ping"}, event="ping"),
        ev({"type": "message_delta", "delta": {"stop_reason": "tool_use"}}),
        ev(
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
            "error",
        ),
    ]
    assert event_content("anthropic-messages", events[1]) == [("text", "Hi")]
    s = summarize("anthropic-messages", events)
    assert (s.text, s.tool_json, s.thinking) == ("Hi", '{"a', "hm")
    assert (s.text_chars, s.tool_json_chars, s.thinking_chars) == (2, 3, 2)
    assert s.stop_reason == "tool_use" and s.errors == ["Overloaded"] and s.events == 7


def test_openai_chat_content_tools_reasoning_done_and_errors() -> None:
    events = [
        ev({"choices": [{"delta": {"role": "assistant", "reasoning_content": "think"}}]}),
        ev({"choices": [{"delta": {"content": "Hel"}}]}),
        ev(
            {
                "choices": [
                    {
                        "delta": {
                            "content": [
                                {"type": "thinking", "thinking": [{"type": "text", "text": "mm"}]}
                            ]
                        }
                    }
                ]
            }
        ),
        ev(
            {
                "choices": [
                    {"delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"x":'}}]}}
                ]
            }
        ),
        ev({"choices": [{"delta": {"reasoning": "!"}, "finish_reason": "tool_calls"}]}),
        ev("[DONE]"),
        ev({"error": {"message": "Tool call validation failed"}}),
        ev("{not json"),
    ]
    s = summarize("openai-chat", events)
    assert (s.text, s.tool_json, s.thinking) == ("Hel", '{"x":', "thinkmm!")
    assert s.stop_reason == "tool_calls"
    assert s.errors[0] == "Tool call validation failed"
    assert len(s.errors) == 2 and "not a JSON object" in s.errors[1]


def test_openai_responses_deltas_status_and_failures() -> None:
    events = [
        ev({"type": "response.output_text.delta", "delta": "Hi"}, "response.output_text.delta"),
        ev({"type": "response.function_call_arguments.delta", "delta": "{}"}),
        ev({"type": "response.reasoning_summary_text.delta", "delta": "why"}),
        ev({"type": "response.completed", "response": {"status": "completed"}}),
    ]
    s = summarize("openai-responses", events)
    assert (s.text, s.tool_json, s.thinking, s.stop_reason) == ("Hi", "{}", "why", "completed")
    failed = summarize(
        "openai-responses",
        [
            ev(
                {
                    "type": "response.failed",
                    "response": {"status": "failed", "error": {"message": "boom"}},
                }
            )
        ],
    )
    assert failed.stop_reason == "failed" and failed.errors == ["boom"]
    incomplete = summarize(
        "openai-responses",
        [
            ev(
                {
                    "type": "response.incomplete",
                    "response": {"incomplete_details": {"reason": "max_output_tokens"}},
                }
            )
        ],
    )
    assert incomplete.stop_reason == "max_output_tokens"


def test_google_text_thoughts_function_calls_and_finish_reason() -> None:
    chunk = {
        "candidates": [
            {
                "content": {
                    "parts": [
                        {"text": "plan", "thought": True},
                        {"text": "Paris"},
                        {"functionCall": {"name": "f", "args": {"city": "Paris"}}},
                    ]
                },
                "finishReason": "STOP",
            }
        ]
    }
    s = summarize("google-generate", [ev(chunk)])
    assert (s.text, s.thinking, s.tool_json, s.stop_reason) == (
        "Paris",
        "plan",
        '{"city": "Paris"}',
        "STOP",
    )


def test_generic_sse_content_is_the_data() -> None:
    assert summarize("generic-sse", [ev("a"), ev("b")]).text == "ab"


@pytest.mark.skipif(not corpus_files(), reason="corpus folder ../shared/corpus is absent")
def test_corpus_summaries_match_what_the_streams_say() -> None:
    by_name = {}
    for t in load_inputs(corpus_files()):
        assert t.path is not None
        by_name[t.path.name] = (t.meta.api, summarize(t.meta.api, decode_all(t.response.body)))
    for name, (api, s) in by_name.items():
        assert s.events > 0, name
        assert (
            s.text_chars + s.tool_json_chars + s.thinking_chars > 0 or "client_tool_search" in name
        )
        if api == "anthropic-messages":
            assert s.stop_reason in ("end_turn", "tool_use", "pause_turn"), name
        if api == "openai-responses":
            assert s.stop_reason == "completed", name
        assert bool(s.errors) == ("error" in name), name
    _, thinking = by_name["test_anthropic_model_thinking_part_stream-0-a6ad49c1.yaml"]
    assert thinking.thinking.startswith("This is a straightforward question about pedest")
    _, tools = by_name["test_complex_agent_run-2-6d1415a0.yaml"]
    assert tools.stop_reason == "tool_calls" and tools.tool_json_chars > 0 and tools.text == ""
    _, mistral = by_name["test_mistral_model_thinking_part_iter-0-b140a49e.yaml"]
    assert mistral.thinking_chars > 0 and mistral.text_chars > 0
    _, google = by_name["test_google_model_iter_stream-0-26d9074f.yaml"]
    assert google.tool_json == '{"country": "France"}' and google.stop_reason == "STOP"
