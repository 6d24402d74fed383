"""The provider registry: one module per API behind one protocol, every table derived from it;
google-generate brought to parity (render + fake-provider route) through its module alone."""

from __future__ import annotations

import json

import anthropic
import httpx
import pytest
from google import genai
from google.genai import types as genai_types

from streambench._server import running_server
from streambench.errors import ConfigError, SpecError
from streambench.providers import apis, registry
from streambench.providers.base import ProviderAPI
from streambench.record import recorder
from streambench.record.fake_provider import FakeProvider, parse_fake_fault, parse_script
from streambench.reference.providers import KIND_OF_API, KINDS
from streambench.replay import build_plan, parse_fault
from streambench.replay.faults import http_error
from streambench.sse import decode_all
from streambench.transcript import synth


def test_every_api_name_is_a_registered_module_and_generic_comes_last() -> None:
    names = registry.api_names()
    assert names == apis.API_NAMES and names[-1] == "generic-sse"
    for name in names:
        api = registry.get(name)
        assert isinstance(api, ProviderAPI) and api.name == name
    with pytest.raises(SpecError, match="unknown api 'bard'"):
        registry.get("bard")


def test_tables_elsewhere_derive_from_the_registry() -> None:
    for api in synth.APIS:
        wire = registry.get(api)
        assert synth.DEFAULT_MODELS[api] == wire.default_model
        assert synth.PROVIDERS[api] == wire.provider
    # one default model per API: the recorder and synth no longer disagree
    assert recorder.build_body("openai-chat", None, "hi", None)["model"] == "gpt-4o-2024-08-06"
    assert recorder.PROVIDERS["google"].key_env == "GOOGLE_API_KEY"
    for kind, (cls, streaming) in KINDS.items():
        assert cls.api in registry.api_names()
        if streaming:
            assert KIND_OF_API[cls.api] == kind


def test_renderable_apis_include_google_and_every_rendered_stream_detects_as_itself() -> None:
    assert set(synth.APIS) == set(registry.api_names()) - {"generic-sse"}
    for api in synth.APIS:
        body = synth.render(api, text="héllo wörld", thinking="hm")
        events = decode_all(body)
        assert apis.detect("http://127.0.0.1:1/x", body)[1] == api
        summary = apis.summarize(api, events)
        assert (summary.text, summary.thinking, summary.errors) == ("héllo wörld", "hm", [])


def _genai(url: str) -> genai.Client:
    options = genai_types.HttpOptions(
        base_url=url, retry_options=genai_types.HttpRetryOptions(attempts=1)
    )
    return genai.Client(api_key="k", http_options=options)


def test_fake_provider_speaks_google_generate_to_the_official_sdk() -> None:
    rules = parse_script({"rules": [{"match": "weather", "text": "Sunny, 21 °C in Paris."}]})
    provider = FakeProvider(rules=rules, rate=0)
    with running_server(provider.app()) as url:
        client = _genai(url)
        pieces = [
            chunk.text
            for chunk in client.models.generate_content_stream(
                model="gemini-2.5-flash", contents="weather in Paris?"
            )
        ]
        whole = client.models.generate_content(model="gemini-2.5-flash", contents="hello")
    assert "".join(p or "" for p in pieces) == "Sunny, 21 °C in Paris." and len(pieces) > 1
    assert whole.text == "Echo: hello"
    sent = bytes(provider.sent[-1].body)
    assert apis.summarize("google-generate", decode_all(sent)).stop_reason == "STOP"
    assert json.loads(decode_all(sent)[0].data)["modelVersion"] == "gemini-2.5-flash"


def test_fake_provider_google_faults_are_googles_errors() -> None:
    with running_server(FakeProvider(rate=0).app()) as url:
        client = _genai(url)
        with pytest.raises(genai.errors.APIError) as raised:
            client.models.generate_content(
                model="gemini-2.5-flash",
                contents="hi",
                config=genai_types.GenerateContentConfig(
                    http_options=genai_types.HttpOptions(headers={"x-fake-fail": "http:503@start"})
                ),
            )
    assert raised.value.code == 503 and raised.value.status == "UNAVAILABLE"


@pytest.mark.parametrize(
    ("alias", "spec"),
    [
        ("529", "http:529@start"),
        ("error@3", "error-event@delta=3"),
        ("drop@2", "disconnect@delta=2"),
    ],
)
def test_fake_provider_faults_are_the_replay_grammar_with_documented_aliases(
    alias: str, spec: str
) -> None:
    short, full = parse_fake_fault(alias), parse_fake_fault(spec)
    assert (short.kind, short.at, short.pos, short.status) == (
        full.kind,
        full.at,
        full.pos,
        full.status,
    )
    assert parse_fault(alias).kind == full.kind  # the replay reads the aliases too


@pytest.mark.parametrize("bad", ["stall@event=1,ms=5", "wobble", "reformat:compact", "error@x"])
def test_fake_provider_rejects_faults_it_cannot_play_in_one_line(bad: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_fake_fault(bad, "rules[0].fail")
    assert "rules[0].fail" in str(raised.value) and "\n" not in str(raised.value)


def test_fake_provider_error_event_is_the_providers_own() -> None:
    with running_server(FakeProvider(rate=0).app()) as url:
        client = anthropic.Anthropic(api_key="k", base_url=url, max_retries=0)
        stream = client.messages.stream(
            model="m",
            max_tokens=10,
            messages=[{"role": "user", "content": "one two three four five six"}],
            extra_headers={"x-fake-fail": "error-event@delta=2"},
        )
        with pytest.raises(anthropic.APIStatusError, match="Overloaded"), stream as events:
            for _ in events:
                pass


def test_delta_position_in_the_replay_cuts_after_n_content_deltas() -> None:
    body = synth.render("google-generate", deltas=["a", "b", "c", "d"])
    t = synth.make_transcript("google-generate", body, request_body={})
    plan = build_plan(t, faults=["disconnect@delta=2"])
    assert plan.content() == "ab" and plan.ending == "disconnect"
    with pytest.raises(SpecError, match=r"delta=9.*past the end"):
        build_plan(t, faults=["disconnect@delta=9"])


def test_replay_http_errors_come_from_each_apis_module() -> None:
    headers, body = http_error("google-generate", 429, None)
    assert json.loads(body)["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert headers["retry-after"] == "1"
    _, body = http_error("anthropic-messages", 529, 2)
    assert json.loads(body)["error"]["type"] == "overloaded_error"


def test_generic_sse_is_the_protocols_defaults() -> None:
    event = decode_all(b"data: plain words\n\n")[0]
    assert apis.event_content("generic-sse", event) == [("text", "plain words")]
    assert registry.get("generic-sse").locate({"anything": 1}) is None
    assert "generic-sse" not in synth.APIS
    assert httpx.URL(registry.get("google-generate").url("gemini-x")).path.endswith(
        "gemini-x:streamGenerateContent"
    )


def test_each_api_names_its_official_sdk_and_it_is_installed() -> None:
    from importlib.metadata import version

    sdks = {name: registry.get(name).sdk for name in synth.APIS}
    assert sdks == {
        "anthropic-messages": "anthropic",
        "openai-chat": "openai",
        "openai-responses": "openai",
        "google-generate": "google-genai",
    }
    assert all(version(sdk) for sdk in sdks.values() if sdk)
