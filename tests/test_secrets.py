"""A planted secret of each format, in each place (headers, query, userinfo, JSON body, gzip
body, upstream error text), never reaches a written byte, stdout/stderr, or a client of the
reference server; ``scan`` finds each one in a file written without redaction."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

import httpx
import pytest
import yaml

from hostile import KEYS, hostile_app
from streambench._server import running_server
from streambench.cli import main
from streambench.record.proxy import proxy_app
from streambench.record.redact import Redactor, scan
from streambench.reference.app import create_app
from streambench.reference.config import ReferenceConfig
from streambench.transcript import Meta, Request, Response, Transcript, load, save

BASIC = base64.b64encode(f"alice:{KEYS['password']}".encode()).decode()
HEADERS = {
    "x-api-key": KEYS["anthropic"],
    "proxy-authorization": f"Basic {BASIC}",
    "x-amz-security-token": KEYS["amz-token"],
    "x-trace": f"Bearer {KEYS['jwt']}",  # a credential in a header nobody lists
    "x-openai": KEYS["openai"],
    "cookie": f"sid={KEYS['cookie']}",
}
QUERY = f"?key={KEYS['google']}&token={KEYS['token-param']}&alt=sse"
PROMPT = f"my keys: {KEYS['openai-project']} {KEYS['aws']}"


def _leaks(data: bytes | str) -> list[str]:
    text = data if isinstance(data, str) else data.decode("utf-8", errors="replace")
    return [name for name, key in KEYS.items() if key in text]


def _written(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


@pytest.mark.parametrize("mode", ["gzip", "error"])
def test_record_writes_and_prints_no_planted_secret(
    mode: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    with running_server(hostile_app()) as url:
        netloc = url.removeprefix("http://")
        target = f"http://alice:{KEYS['password']}@{netloc}/v1/messages{QUERY}"
        argv = ["record", "--provider", "url", "--base-url", target, "--prompt", PROMPT]
        argv += ["-o", str(out / "r.yaml"), "-H", f"x-hostile: {mode}"]
        for name, value in HEADERS.items():
            argv += ["-H", f"{name}: {value}"]
        argv += ["-H", "accept-encoding: gzip"]  # the SDK default: the body comes compressed
        with pytest.raises(SystemExit) as exited:
            main(argv)
    assert (exited.value.code or 0) == 0
    captured = capsys.readouterr()
    assert _leaks(_written(out)) == [] and _leaks(captured.out + captured.err) == []
    t = load(out / "r.yaml")
    assert scan([out]) == []
    if mode == "gzip":  # stored decoded and readable, chunk sizes adding up
        assert b"content_block_delta" in t.response.body
        assert "content-encoding" not in t.response.headers
        assert sum(n for _, n in t.response.chunks or []) == len(t.response.body)
    else:
        assert t.response.status == 401 and b"Incorrect API key" in t.response.body


def test_proxy_saves_and_logs_no_planted_secret(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with running_server(hostile_app()) as upstream:
        netloc = upstream.removeprefix("http://")
        with_userinfo = f"http://alice:{KEYS['password']}@{netloc}"
        with running_server(proxy_app(with_userinfo, tmp_path)) as proxy:
            for mode in ("gzip", "error"):
                headers = {**HEADERS, "x-hostile": mode, "accept-encoding": "gzip"}
                body = {"model": "m", "stream": True, "api_key": KEYS["password"]}
                body["messages"] = [{"role": "user", "content": PROMPT}]
                with httpx.Client() as client:
                    response = client.post(
                        f"{proxy}/v1/messages{QUERY}", json=body, headers=headers
                    )
                assert response.status_code in (200, 401)
    written = _written(tmp_path)
    assert len(list(tmp_path.glob("*.yaml"))) == 1  # the streamed call (the 401 is JSON)
    assert _leaks(written) == [] and _leaks(capfd.readouterr().err) == []
    assert scan([tmp_path]) == []


def test_import_writes_no_planted_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sse = f'data: {{"choices": [{{"delta": {{"content": "{PROMPT}"}}}}]}}\n\ndata: [DONE]\n\n'
    interaction = {
        "request": {
            "method": "POST",
            "uri": f"https://alice:{KEYS['password']}@api.openai.com/v1/chat/completions{QUERY}",
            "headers": {k: [v] for k, v in HEADERS.items()},
            "body": json.dumps({"messages": [{"role": "user", "content": PROMPT}]}),
        },
        "response": {
            "status": {"code": 200, "message": "OK"},
            "headers": {
                "content-type": ["text/event-stream"],
                "content-encoding": ["gzip"],
                "set-cookie": [f"session={KEYS['cookie']}"],
                "x-amz-security-token": [KEYS["amz-token"]],
            },
            "body": {"string": gzip.compress(sse.encode())},
        },
    }
    cassette = tmp_path / "cassette.yaml"
    cassette.write_text(yaml.safe_dump({"interactions": [interaction], "version": 1}))
    out = tmp_path / "out"
    main_exit = None
    try:
        main(["import", str(cassette), "-o", str(out)])
    except SystemExit as exc:
        main_exit = exc.code
    assert main_exit in (None, 0)
    assert _leaks(_written(out)) == [] and _leaks(capsys.readouterr().out) == []
    (t,) = [load(p) for p in out.glob("*.yaml")]
    assert b"[DONE]" in t.response.body  # decoded, readable
    # ... while the cassette itself (written without redaction) is what scan is for.
    kinds = {f.kind for f in scan([cassette])}
    assert "openai-project-key (in an encoded body)" in kinds


def test_reference_server_sends_no_key_an_upstream_echoes(tmp_path: Path) -> None:
    with running_server(hostile_app()) as upstream:
        config = ReferenceConfig(
            providers=("anthropic",),
            anthropic_base_url=f"{upstream}/error",
            anthropic_api_key=KEYS["anthropic"],
            db_path=str(tmp_path / "ref.db"),
        )
        with running_server(create_app(config)) as server, httpx.Client(timeout=30) as client:
            streamed = client.post(
                f"{server}/messages",
                json={"content": "hi"},
                headers={"accept": "text/event-stream"},
            )
            answered = client.post(f"{server}/messages", json={"content": "hi"})
    assert b"event: error" in streamed.content
    assert b"Incorrect API key" in streamed.content  # the message is kept, the key is not
    assert _leaks(streamed.content) == [] and _leaks(answered.content) == []
    assert answered.status_code == 502


PLACES = ("header", "query", "json-body", "gzip-body", "error-text")
KEY_FORMATS = ("anthropic", "openai", "openai-project", "google", "jwt", "aws")


def _unredacted(place: str, secret: str) -> Transcript:
    t = Transcript(
        Meta("anthropic", "anthropic-messages"),
        Request("POST", "https://api.example.com/v1/messages", {}, {"model": "m"}),
        Response(200, {"content-type": "text/event-stream"}, b"event: ping\ndata: {}\n\n"),
    )
    if place == "header":
        t.request.headers["x-whatever"] = secret
    elif place == "query":
        t.request.url += f"?alt=sse&v={secret}"
    elif place == "json-body":
        t.request.body = {"messages": [{"role": "user", "content": f"use {secret} now"}]}
    elif place == "gzip-body":
        t.response.body = gzip.compress(f"data: {secret}\n\n".encode())
        t.response.headers["content-encoding"] = "gzip"
    else:
        t.response.status = 401
        t.response.body = json.dumps({"error": {"message": f"bad key {secret}"}}).encode()
    return t


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("key", KEY_FORMATS)
def test_scan_finds_each_key_format_in_each_place_and_redaction_removes_it(
    key: str, place: str, tmp_path: Path
) -> None:
    t = _unredacted(place, KEYS[key])
    save(t, tmp_path / "raw.yaml")
    assert scan([tmp_path / "raw.yaml"]), (key, place)
    save(Redactor().transcript(t), tmp_path / "clean" / "clean.yaml")
    assert KEYS[key].encode() not in (tmp_path / "clean" / "clean.yaml").read_bytes()
    assert scan([tmp_path / "clean"]) == []


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        (f"proxy-authorization: Basic {BASIC}", "basic-auth"),
        (f"x-amz-security-token: {KEYS['amz-token']}", "api-key-header"),
        (f"url: https://alice:{KEYS['password']}@host/v1", "url-userinfo"),
        (f"url: https://host/v1?token={KEYS['token-param']}", "key-query-param"),
        (f"x-trace: Bearer {KEYS['jwt']}", "bearer-token"),
    ],
)
def test_scan_knows_the_credential_contexts(line: str, kind: str, tmp_path: Path) -> None:
    (tmp_path / "f.yaml").write_text(f"a: 1\n{line}\n")
    assert kind in {f.kind for f in scan([tmp_path])}


@pytest.mark.parametrize(
    "line",
    [
        "Use bearer authentication for every call.",
        "Basic authentication is not supported.",
        "url: https://generativelanguage.googleapis.com/v1?key=YOUR_API_KEY",
        "authorization: Bearer <redacted>",
        "x-api-key: ${ANTHROPIC_API_KEY}",
        "curl -H 'Authorization: Bearer $OPENAI_API_KEY'",
        "url: https://<redacted>@host/v1?token=<redacted>",
        "api_key='sk-ant-...'",
    ],
)
def test_scan_ignores_prose_and_placeholders(line: str, tmp_path: Path) -> None:
    (tmp_path / "doc.md").write_text(line + "\n")
    assert scan([tmp_path]) == []


def test_scan_reports_nothing_on_the_repository_data() -> None:
    repo = Path(__file__).resolve().parents[1]
    assert [str(f) for f in scan([repo / d for d in ("recordings", "fixtures", "docs")])] == []
