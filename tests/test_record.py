"""Recording against the fake provider on a real loopback socket: timing, bytes, redaction,
interrupts, the recording proxy, and the secret scanner."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from conftest import REPO_ROOT
from streambench._server import running_server
from streambench.cli import main
from streambench.record.fake_provider import (
    SENT_KEPT,
    FakeProvider,
    fake_provider_app,
    parse_script,
)
from streambench.record.proxy import proxy_app
from streambench.record.recorder import build_body, record
from streambench.record.redact import Redactor, make_config, scan
from streambench.transcript import load, save, synth

FULL = os.environ.get("STREAMBENCH_FULL") == "1"
LONG_PROMPT = " ".join(f"word{i}" for i in range(300))


def _provider(app) -> FakeProvider:  # type: ignore[no-untyped-def]
    return app.state.provider


class _StallProbe:
    """How late a 1 ms sleep wakes in a thread beside the recorder: how starved of CPU this
    process was (a loaded machine, the GIL) while recording, in ms (the worst wake-up)."""

    def __init__(self) -> None:
        self.worst_ms = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            before = time.monotonic()
            time.sleep(0.001)
            self.worst_ms = max(self.worst_ms, (time.monotonic() - before - 0.001) * 1000)

    def __enter__(self) -> _StallProbe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def _record_and_compare(tmp_path: Path, clock_skew_s: float = 0.0) -> tuple[list[float], float]:
    """Record once at 100 tokens/s; per received chunk, |arrival - send| in ms, and the
    stall probe's worst wake-up meanwhile. Asserts the body is byte-exact and every chunk
    ends at a frame the server sent. ``clock_skew_s``: a recorder whose clock runs that much
    ahead after its first reading (a timing bug the comparison must catch)."""
    app = fake_provider_app(rate=100)
    starts: list[float] = []

    def clock() -> float:
        now = time.monotonic()
        if not starts:
            starts.append(now)
            return now
        return now + clock_skew_s

    with running_server(app) as url, _StallProbe() as probe:
        body = build_body("anthropic", None, "Tell me about streaming " * 5, None)
        t = record(
            f"{url}/v1/messages", body, out=tmp_path / "t.yaml", provider="anthropic",
            api="anthropic-messages", clock=clock,
        )  # fmt: skip
    sent = _provider(app).sent[-1]
    assert t.response.body == bytes(sent.body)
    assert load(tmp_path / "t.yaml").response.body == bytes(sent.body)
    assert not t.meta.truncated and t.response.status == 200
    send_end: dict[int, float] = {}
    offset = 0
    for sent_s, nbytes in sent.frames:
        offset += nbytes
        send_end[offset] = sent_s
    offset = 0
    lags_ms = []
    assert t.response.chunks
    for t_ms, nbytes in t.response.chunks:
        offset += nbytes
        assert offset in send_end, "a chunk ended inside a frame"
        lags_ms.append(abs(starts[0] + t_ms / 1000 - send_end[offset]) * 1000)
    return lags_ms, probe.worst_ms


def _chunk_times_match(lags_ms: list[float], stall_ms: float) -> bool:
    """Recorder and server agree: most chunks within 5 ms (a systematic error moves the
    median), and every chunk within 5 ms plus the worst stall the probe saw (a preempted
    recorder stamps a chunk late by about that much; an idle machine widens nothing)."""
    return statistics.median(lags_ms) < 5 and max(lags_ms) < 5 + stall_ms


def test_chunk_times_match_the_servers_send_times_and_body_is_byte_exact(tmp_path: Path) -> None:
    # Server and recorder share this process (same monotonic clock) and 2 busy cores: up to 3
    # runs get the chance to agree.
    runs = []
    for _ in range(3):
        runs.append(_record_and_compare(tmp_path))
        if _chunk_times_match(*runs[-1]):
            return
    pytest.fail(f"(worst lag ms, stall ms) per run: {[(max(r), s) for r, s in runs]}")


def test_the_chunk_time_comparison_catches_a_recorder_clock_20_ms_off(tmp_path: Path) -> None:
    lags_ms, stall_ms = _record_and_compare(tmp_path, clock_skew_s=0.020)
    assert not _chunk_times_match(lags_ms, stall_ms)
    assert statistics.median(lags_ms) > 15  # (the median alone sees it, whatever the stalls)


def test_sent_keeps_only_the_last_streams() -> None:
    assert FakeProvider().sent.maxlen == SENT_KEPT
    app = FakeProvider(rate=0, keep_sent=3).app()
    with running_server(app) as url:
        for n in range(5):
            body = build_body("openai-chat", None, f"prompt {n}", None)
            response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=10)
            assert response.status_code == 200
    texts = [b"".join(re.findall(rb'"content":"([^"]*)"', s.body)) for s in _provider(app).sent]
    assert texts == [b"Echo: prompt 2", b"Echo: prompt 3", b"Echo: prompt 4"]


def test_http_error_is_recorded_as_such(tmp_path: Path) -> None:
    with running_server(fake_provider_app()) as url:
        body = build_body("openai-chat", None, "hi", None)
        t = record(
            f"{url}/v1/chat/completions", body, out=tmp_path / "e.yaml", provider="openai-chat",
            api="openai-chat", headers={"x-fake-fail": "529"},
        )  # fmt: skip
    saved = load(tmp_path / "e.yaml")
    assert saved.response.status == 529 and not saved.meta.truncated
    # openai has no 529: its server error body, as the provider's module writes it
    assert json.loads(saved.response.body)["error"]["type"] == "server_error"
    assert t.response.status == 529


def test_dropped_connection_leaves_a_truncated_transcript(tmp_path: Path) -> None:
    app = fake_provider_app(rate=0)
    with running_server(app) as url:
        body = build_body("anthropic", None, LONG_PROMPT, None)
        record(
            f"{url}/v1/messages", body, out=tmp_path / "d.yaml", provider="anthropic",
            api="anthropic-messages", headers={"x-fake-fail": "drop@5"},
        )  # fmt: skip
    saved = load(tmp_path / "d.yaml")
    assert saved.meta.truncated
    assert saved.response.body == bytes(_provider(app).sent[-1].body)
    assert saved.response.body.count(b'"text_delta"') == 5


SECRETS = {
    "authorization": "sk-ant-api03-AUTHHEADERSECRET0123456789",
    "x-api-key": "sk-ant-api03-XAPIKEYSECRET0123456789ab",
    "api-key": "azurekeysecret0123456789abcdef",
    "cookie": "session=cookiesecret0123456789",
    "x-custom-token": "customheadersecret0123456789",
    "query-key": "AIzaSyQUERYKEYSECRET0123456789abcdefghi",
    "query-api-key": "queryapikeysecret0123456789",
    "body-path": "bodypathsecret0123456789",
    "regex": "ORG-SECRET-424242",
    "body-key": "sk-proj-BODYKEYSECRET0123456789abcdef",
}


def test_planted_keys_never_reach_the_file_and_scan_finds_every_one(tmp_path: Path) -> None:
    redactor = Redactor(
        make_config(
            headers=["X-Custom-Token"],
            json_paths=["metadata.user_id"],
            patterns=["ORG-SECRET-\\d+"],
        )
    )
    headers = {
        "authorization": f"Bearer {SECRETS['authorization']}",
        "x-api-key": SECRETS["x-api-key"],
        "api-key": SECRETS["api-key"],
        "cookie": SECRETS["cookie"],
        "x-custom-token": SECRETS["x-custom-token"],
    }
    body = build_body("anthropic", None, f"my key is {SECRETS['body-key']}", None)
    body["metadata"] = {"user_id": SECRETS["body-path"], "note": f"id {SECRETS['regex']}"}
    with running_server(fake_provider_app(rate=0)) as url:
        query = f"?key={SECRETS['query-key']}&api_key={SECRETS['query-api-key']}&beta=true"
        t = record(
            f"{url}/v1/messages{query}", body, out=tmp_path / "r.yaml", provider="anthropic",
            api="anthropic-messages", headers=headers, redactor=redactor,
        )  # fmt: skip
    written = (tmp_path / "r.yaml").read_bytes()
    for name, secret in SECRETS.items():
        assert secret.encode() not in written, name
    # The echoed prompt carried a key into the response body: masked, byte length kept.
    assert load(tmp_path / "r.yaml").response.chunks == t.response.chunks
    assert "beta=true" in t.request.url

    # Unredacted, the scanner sees every one of the key formats and credential places.
    raw = tmp_path / "raw"
    unredacted = load(tmp_path / "r.yaml")
    unredacted.request.headers.update(headers)
    unredacted.request.url = f"{url}/v1/messages{query}"
    unredacted.request.body = body
    save(unredacted, raw / "raw.yaml")
    kinds = {f.kind for f in scan([raw], make_config(patterns=["ORG-SECRET-\\d+"]).patterns)}
    assert {
        "anthropic-key", "openai-project-key", "google-key", "bearer-token", "api-key-header",
        "key-query-param", "pattern ORG-SECRET-\\d+",
    } <= kinds  # fmt: skip
    assert scan([tmp_path / "r.yaml"]) == []


def test_scan_reports_nothing_across_the_corpus(corpus_dir: Path) -> None:
    assert [str(f) for f in scan([corpus_dir])] == []


def test_scan_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clean = tmp_path / "clean.yaml"
    clean.write_text("x-api-key: <redacted>\n")
    dirty = tmp_path / "dirty.yaml"
    dirty.write_text("a: 1\nkey: sk-ant-api03-abcdefghijklmnopqrstuvwx\n")
    for argv, code in (
        (["scan", str(clean)], 0),
        (["scan", str(dirty)], 1),
        (["scan", str(tmp_path / "missing")], 2),
        (["scan", str(clean), "--pattern", "("], 2),
    ):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert (exc.value.code or 0) == code, argv
    assert f"{dirty}:2: anthropic-key" in capsys.readouterr().out


def _run_record(url: str, out: Path) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable, "-c", "from streambench.cli import main; main()", "record",
        "--base-url", url, "--prompt", LONG_PROMPT, "-o", str(out),
    ]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_recording_leaves_a_loadable_transcript(
    tmp_path: Path, signum: signal.Signals
) -> None:
    rng = random.Random(signum)
    app = fake_provider_app(rate=400)
    full = synth.render("anthropic-messages", text=f"Echo: {LONG_PROMPT}")
    with running_server(app) as url:
        for attempt in range(8 if FULL else 2):
            out = tmp_path / f"{attempt}.yaml"
            proc = _run_record(url, out)
            while not out.exists() and proc.poll() is None:
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.5))
            proc.send_signal(signum)
            proc.wait(timeout=30)
            t = load(out)
            if t.meta.truncated:
                assert proc.returncode == 130, proc.stderr.read() if proc.stderr else ""
                # Everything received so far, nothing else: a prefix of the full stream
                # (the model in the request body differs only in message_start).
                assert t.response.body[-200:] in full or len(t.response.body) < 400
            assert sum(n for _, n in t.response.chunks or []) == len(t.response.body)


def test_proxy_passes_the_same_events_and_saves_the_sent_bytes(tmp_path: Path) -> None:
    app = fake_provider_app(rate=0)

    def events(base_url: str) -> list[dict[str, object]]:
        client = anthropic.Anthropic(api_key="sk-ant-test-not-a-real-key", base_url=base_url)
        with client.messages.stream(
            model="claude-test", max_tokens=100, messages=[{"role": "user", "content": "Hi proxy"}]
        ) as stream:
            return [event.model_dump() for event in stream]

    with running_server(app) as upstream:
        direct = events(upstream)
        with running_server(proxy_app(upstream, tmp_path)) as proxy:
            proxied = events(proxy)
    assert proxied == direct
    sent = _provider(app).sent
    (saved,) = sorted(tmp_path.glob("*.yaml"))
    t = load(saved)
    assert t.response.body == bytes(sent[-1].body) == bytes(sent[0].body)
    assert t.meta.api == "anthropic-messages" and not t.meta.truncated
    assert "sk-ant-test-not-a-real-key" not in saved.read_text()
    assert "<redacted>" in t.request.headers.values()
    assert sum(n for _, n in t.response.chunks or []) == len(t.response.body)


@pytest.mark.parametrize(
    ("prefill", "first_key"),
    [('{\n  "code_edits": [', "code_edits"), ('{\n  "text_answer": "', "text_answer")],
)
def test_fake_provider_continues_the_json_prefill(prefill: str, first_key: str) -> None:
    rules = parse_script(
        {
            "rules": [
                {
                    "match": "fix",
                    "json": {
                        "code_edits": [{"action": "replace", "old_code": "a", "new_code": "b"}],
                        "text_answer": 'Done — ünïcode "quoted"',
                    },
                }
            ]
        }
    )
    app = FakeProvider(rules=rules, rate=0).app()
    with running_server(app) as url:
        client = anthropic.Anthropic(api_key="k", base_url=url)
        message = client.messages.create(
            model="m", max_tokens=100,
            messages=[{"role": "user", "content": "please fix"},
                      {"role": "assistant", "content": prefill}],
        )  # fmt: skip
    answer = json.loads(prefill + message.content[0].text)  # type: ignore[union-attr]
    assert next(iter(answer)) == first_key
    assert answer["text_answer"] == 'Done — ünïcode "quoted"'
    assert answer["code_edits"][0]["new_code"] == "b"


def test_proxy_relays_repeated_headers_both_ways(tmp_path: Path) -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    seen: list[list[tuple[str, str]]] = []

    async def upstream_endpoint(request: Request) -> Response:
        seen.append(request.headers.items())
        reply = Response(b"data: {}\n\n", media_type="text/event-stream")
        reply.raw_headers += [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]
        return reply

    upstream_app = Starlette(routes=[Route("/v1/x", upstream_endpoint, methods=["POST"])])
    with (
        running_server(upstream_app) as upstream,
        running_server(proxy_app(upstream, tmp_path)) as proxy,
    ):
        response = httpx.post(
            f"{proxy}/v1/x", headers=[("x-tag", "one"), ("x-tag", "two")], content=b"{}"
        )
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert [v for k, v in seen[0] if k == "x-tag"] == ["one", "two"]


def test_fake_provider_error_event_after_n_deltas() -> None:
    app = fake_provider_app(rate=0)
    with running_server(app) as url:
        client = anthropic.Anthropic(api_key="k", base_url=url, max_retries=0)
        stream = client.messages.stream(
            model="m", max_tokens=10, messages=[{"role": "user", "content": LONG_PROMPT}],
            extra_headers={"x-fake-fail": "error@3"},
        )  # fmt: skip
        with pytest.raises(anthropic.APIStatusError, match="Overloaded"), stream as events:
            for _ in events:
                pass
    assert bytes(_provider(app).sent[-1].body).count(b"text_delta") == 3


@pytest.mark.parametrize("api", synth.APIS)
def test_synth_streams_parse_with_the_official_sdks(api: str) -> None:
    import httpx2
    import openai

    body = synth.render(
        api, text="Hello there, world!", tool_calls=[synth.ToolCall("f", '{"a": 1}')]
    )

    def transport(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=body, headers={"content-type": "text/event-stream"})

    http = httpx2.Client(transport=httpx2.MockTransport(transport))
    if api == "google-generate":
        text, calls = _google_stream(body)
        assert text == "Hello there, world!" and calls == [("f", {"a": 1})]
    elif api == "anthropic-messages":
        client = anthropic.Anthropic(api_key="k", http_client=http)
        with client.messages.stream(model="m", max_tokens=5, messages=[]) as s:
            final = s.get_final_message()
        assert final.content[0].text == "Hello there, world!"  # type: ignore[union-attr]
        assert final.content[1].input == {"a": 1}  # type: ignore[union-attr]
    elif api == "openai-chat":
        oc = openai.OpenAI(api_key="k", http_client=http)
        with oc.chat.completions.stream(model="m", messages=[]) as s:
            completion = s.get_final_completion()
        assert completion.choices[0].message.content == "Hello there, world!"
        assert completion.choices[0].message.tool_calls[0].function.arguments == '{"a": 1}'  # type: ignore[index,union-attr]
    elif api == "openai-responses":
        oc = openai.OpenAI(api_key="k", http_client=http)
        with oc.responses.stream(model="m", input="x") as s:
            response = s.get_final_response()
        assert response.output_text == "Hello there, world!"


def _google_stream(body: bytes) -> tuple[str, list[tuple[str | None, Any]]]:
    """What google-genai's streaming call parses from ``body`` (it is built on httpx)."""
    from google import genai
    from google.genai import types

    def transport(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    options = types.HttpOptions(
        base_url="http://upstream.test",
        httpx_client=httpx.Client(transport=httpx.MockTransport(transport)),
    )
    client = genai.Client(api_key="k", http_options=options)
    text, calls = [], []
    for chunk in client.models.generate_content_stream(model="gemini-test", contents="hi"):
        for part in chunk.candidates[0].content.parts or []:  # type: ignore[index,union-attr]
            if part.text:
                text.append(part.text)
            if part.function_call:
                calls.append((part.function_call.name, part.function_call.args))
    return "".join(text), calls


def test_recordings_folder_is_from_the_fake_provider() -> None:
    files = sorted((REPO_ROOT / "recordings").glob("*.yaml"))
    assert len(files) >= 4
    for f in files:
        t = load(f)
        assert "fake-provider" in (t.meta.notes or "") and not t.meta.truncated
        assert t.response.chunks
