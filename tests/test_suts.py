"""Systems under test: the contract options, the SDK example backends in process and over
HTTP, the broken backends the upstream rules must flag, and hostile HTTP SUTs."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import socket
import socketserver
import subprocess
import sys
import threading
import typing
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest
import yaml
from tests.conftest import free_port

from streambench.errors import SpecError
from streambench.grade.client import consume
from streambench.grade.dialects import UIEvent
from streambench.grade.profile import default_profile
from streambench.grade.rules import RunContext, UpstreamCall, check_rules
from streambench.providers.apis import summarize
from streambench.replay import build_plan
from streambench.runner.cases import load_case
from streambench.runner.matrix import (
    DEFAULT_CHUNKINGS,
    DEFAULT_EXTRA_CELLS,
    MID_STREAM_FAULT,
    Matrix,
    RunSpec,
    run_matrix,
    run_one,
)
from streambench.sse import decode_all
from streambench.suts import SutTimeouts, parse_sut
from streambench.transcript import load_inputs, synth

ROOT = Path(__file__).parents[1]
FIXTURES = ROOT / "fixtures"
CORPUS = ROOT.parent / "shared" / "corpus"
FULL = os.environ.get("STREAMBENCH_FULL") == "1"
ANTHROPIC_SUT = "tests.suts.sdk_anthropic:app,path=/v1/chat,body=tests/suts/anthropic-body.yaml"
OPENAI_SUT = "tests.suts.sdk_openai:app,path=/api/ask,body.prompt.text=${content}"
GOOGLE_SUT = "tests.suts.sdk_google:app,path=/gemini,body.question=${content}"
# each backend's own event names, read through its dialect file (google: the wire format)
DIALECTS = {
    ANTHROPIC_SUT: "tests/suts/sdk_anthropic.dialect.yaml",
    OPENAI_SUT: "tests/suts/sdk_openai.dialect.yaml",
    GOOGLE_SUT: "streambench",
}
CHAT_FIXTURES = [
    "chat-hello",
    "chat-unicode-json-looking",
    "failover-openai-chat",
    "retry-after-429",
]
CHUNKINGS = ["events", "random:min=1,max=64", "deltas:1"]


def plain_text_streams(api: str) -> list[tuple[Path, str]]:
    """Corpus cassettes of ``api`` answering 200 with text, no tool calls and no error."""
    found = []
    for path in sorted(CORPUS.glob("*.yaml")):
        (transcript,) = load_inputs([path])
        summary = summarize(transcript.meta.api, decode_all(transcript.response.body))
        if transcript.meta.api != api or transcript.response.status != 200:
            continue
        if summary.text and not summary.tool_json and not summary.errors:
            found.append((path, summary.text))
    return found


def corpus_case(folder: Path, cassette: Path, text: str) -> Path:
    folder.mkdir(parents=True)
    case = {
        "name": cassette.stem[:40],
        "mode": "chat",
        "request": {"content": "Hello"},
        "upstream": [str(cassette)],
        "expect": {"text": text},
    }
    (folder / "case.yaml").write_text(yaml.safe_dump(case, allow_unicode=True))
    return folder


def assert_clean(frame: object) -> None:
    for _, row in frame.iterrows():  # type: ignore[attr-defined]
        where = f"{row['case']} {row['chunking']}"
        assert row["terminal"] == "done", (where, row["sut_error"], row["error_message"])
        assert row["streamed_text"] == row["expected_text"], where
        assert row["violations"] == [], (where, row["violations"])


# ---------------------------------------------------------------------------- contract


def test_contract_options_build_the_route_headers_and_body_from_the_case(tmp_path: Path) -> None:
    template = tmp_path / "body.yaml"
    template.write_text(
        "message: ${content}\ncode: ${context.expression}\nhistory: ${history:-[]}\n"
        "label: 'case ${case} in ${mode}'\n"
    )
    sut = parse_sut(f"my.app:app,path=/chat,method=put,header.x-team=a,body={template}")
    assert sut.contract.path == "/chat" and sut.contract.method == "PUT"  # type: ignore[attr-defined]
    assert ("x-team", "a") in sut.contract.header_list(3)  # type: ignore[attr-defined]
    body = {"mode": "job_code", "content": "fix it", "context": {"expression": "a = 1"}}
    assert sut.contract.render(body, case="c1") == {  # type: ignore[attr-defined]
        "message": "fix it",
        "code": "a = 1",
        "history": [],
        "label": "case c1 in job_code",
    }
    inline = parse_sut("http://127.0.0.1:9/x,body.q.text=${content},body.n=3")
    assert inline.request_json({"content": "hi"}) == {"q": {"text": "hi"}, "n": 3}
    assert inline.contract.path == "/x"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("my.app:app,route=/chat", "unknown in-process option 'route'"),
        ("my.app:app,path=chat", "must start with '/'"),
        ("my.app:app,body=nowhere.yaml", "no such template file"),
        ("my.app:app,clock=fast", "clock='fast' is not one of virtual, real"),
        ("http://h:1/x,clock=real", "unknown http option 'clock'"),
        ("my.app:app,path", "is not key=value"),
    ],
)
def test_bad_sut_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(SpecError, match=message.replace("(", r"\(")):
        parse_sut(spec)


def test_a_template_naming_a_missing_case_field_says_how_to_default_it() -> None:
    sut = parse_sut("my.app:app,body.h=${history}")
    with pytest.raises(SpecError, match=r"\$\{history\}: the case has no such field.*:-VALUE"):
        sut.request_json({"content": "x"})


def test_a_wrong_route_or_body_says_which_option_to_set() -> None:
    case = str(FIXTURES / "chat-hello")
    row = run_one(RunSpec(case, sut="tests.suts.sdk_anthropic:app"))
    assert row["status_code"] == 404 and "path=/your/route" in row["sut_error"]
    row = run_one(RunSpec(case, sut="tests.suts.sdk_anthropic:app,path=/v1/chat"))
    assert row["status_code"] == 422 and "body=FILE.yaml" in row["sut_error"]


def test_the_cli_timeout_defaults_are_the_library_defaults() -> None:
    from streambench.cli.evaluate import run_command

    hints = typing.get_type_hints(run_command, include_extras=True)
    defaults = SutTimeouts()
    for option, value in [
        ("sut_connect_timeout", defaults.connect_s),
        ("sut_read_timeout", defaults.read_s),
        ("sut_timeout", defaults.total_s),
    ]:
        assert f"[default: {value:g}]" in hints[option].__metadata__[0].help


# ---------------------------------------------------------------------------- SDK backends


def test_the_sdk_backends_show_the_recorded_text_on_the_chat_fixtures() -> None:
    chunkings = CHUNKINGS if FULL else ["random:min=1,max=64"]
    frame = run_matrix(
        Matrix(
            cases=[str(FIXTURES / c) for c in CHAT_FIXTURES],
            suts=[ANTHROPIC_SUT],
            dialects=[DIALECTS[ANTHROPIC_SUT]],
            chunkings=chunkings,
        )
    )
    assert len(frame) == len(CHAT_FIXTURES) * len(chunkings)
    assert_clean(frame)
    # the failover fixture went anthropic (529), then openai: both SDKs were intercepted
    failover = frame[frame["case"] == "failover-openai-chat"].iloc[0]
    calls = json.loads(failover["upstream_requests"])
    assert [(c["api"], c["plan"]) for c in calls] == [("anthropic-messages", 0), ("openai-chat", 1)]


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is absent")
@pytest.mark.parametrize(
    ("sut", "api"),
    [
        (ANTHROPIC_SUT, "anthropic-messages"),
        (OPENAI_SUT, "openai-chat"),
        (GOOGLE_SUT, "google-generate"),
    ],
)
def test_the_sdk_backends_show_the_recorded_text_of_every_plain_text_corpus_stream(
    sut: str, api: str, tmp_path: Path
) -> None:
    streams = plain_text_streams(api)
    assert len(streams) >= 4
    chosen = streams if FULL else streams[:3]
    cases = [str(corpus_case(tmp_path / str(i), p, t)) for i, (p, t) in enumerate(chosen)]
    frame = run_matrix(
        Matrix(
            cases=cases,
            suts=[sut],
            dialects=[DIALECTS[sut]],
            chunkings=CHUNKINGS,
        )
    )
    assert len(frame) == len(chosen) * len(CHUNKINGS)
    assert_clean(frame)


def _http_cases(api: str, folder: Path) -> list[str]:
    """The chat fixtures for the anthropic backend; corpus streams for the others."""
    if api == "anthropic-messages":
        return [str(FIXTURES / c) for c in (CHAT_FIXTURES if FULL else CHAT_FIXTURES[::2])]
    streams = plain_text_streams(api)
    chosen = streams if FULL else streams[:1]
    return [str(corpus_case(folder / str(i), p, t)) for i, (p, t) in enumerate(chosen)]


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is absent")
@pytest.mark.parametrize(
    ("sut", "api"),
    [
        (ANTHROPIC_SUT, "anthropic-messages"),
        (OPENAI_SUT, "openai-chat"),
        (GOOGLE_SUT, "google-generate"),
    ],
)
def test_over_http_with_sut_cmd_the_sdk_backends_give_the_in_process_verdicts(
    sut: str, api: str, tmp_path: Path
) -> None:
    module, _, options = sut.partition(",")
    port = free_port()
    uvicorn = shutil.which("uvicorn", path=str(Path(sys.executable).parent))
    assert uvicorn is not None
    axes = {
        "cases": _http_cases(api, tmp_path),
        "chunkings": CHUNKINGS if FULL else ["events"],
        "latencies": ["scale:0.05"],
        "dialects": [DIALECTS[sut]],
    }
    over_http = run_matrix(
        Matrix(
            suts=[f"http://127.0.0.1:{port},{options}"],
            sut_cmd=f"{uvicorn} {module} --port {port} --log-level warning",
            **axes,
        )
    )
    in_process = run_matrix(Matrix(suts=[sut], **axes))

    def verdicts(frame: object) -> list[tuple[str, str, str, str, list[str]]]:
        return [
            (
                r["case"],
                r["chunking"],
                r["terminal"],
                r["streamed_text"],
                [v["rule"] for v in r["violations"]],
            )
            for _, r in frame.iterrows()  # type: ignore[attr-defined]
        ]

    assert verdicts(over_http) == verdicts(in_process)
    assert_clean(over_http)


# ---------------------------------------------------------------------------- broken SUTs


@pytest.mark.parametrize(
    ("sut", "rule"),
    [
        ("tests.suts.wrong_api:app", "wrong-upstream"),
        ("tests.suts.no_provider:app", "no-upstream-call"),
    ],
)
def test_the_upstream_rules_flag_every_run_of_a_broken_backend_on_every_fixture(
    sut: str, rule: str
) -> None:
    chunkings = list(DEFAULT_CHUNKINGS) if FULL else ["events", "bytes:16"]
    # the default matrix's extra cells (the second seed, the mid-stream fault) on top
    matrix = Matrix(
        cases=[str(FIXTURES)], suts=[sut], chunkings=chunkings, also=list(DEFAULT_EXTRA_CELLS)
    )
    frame = run_matrix(matrix)
    assert (
        len(frame) == len(matrix.specs()) > len(list(FIXTURES.glob("*/case.yaml"))) * len(chunkings)
    )
    assert set(frame["seed"]) == {0, 1} and set(frame["fault"]) == {"", MID_STREAM_FAULT}
    for _, row in frame.iterrows():
        if load_case(FIXTURES / row["case"]).refused:  # no stream: the HTTP rules judge it
            assert rule in row["not_checked"], row["case"]
            continue
        assert rule in [v["rule"] for v in row["violations"]], (row["case"], row["chunking"])


def test_the_reference_and_the_sdk_backend_never_trip_the_upstream_rules() -> None:
    frame = run_matrix(Matrix(cases=[str(FIXTURES)], suts=["reference"], chunkings=["events"]))
    rules = {v["rule"] for vs in frame["violations"] for v in vs}
    assert not rules & {"wrong-upstream", "no-upstream-call"}


# ---------------------------------------------------------------------------- misbehaving SUTs


def test_a_sut_calling_sys_exit_or_print_cannot_change_the_exit_code_or_stdout() -> None:
    exe = shutil.which("streambench", path=str(Path(sys.executable).parent))
    assert exe is not None
    done = subprocess.run(
        [
            exe,
            "run",
            "--case",
            str(FIXTURES / "chat-hello"),
            "--sut",
            "tests.suts.misbehaving:app",
            "--sut",
            "tests.suts.misbehaving:app,path=/interrupt",
            "--chunking",
            "events",
            "--format",
            "json",
            "--out",
            "/tmp/streambench-misbehaving",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert sorted(r["sut_error"].split(":")[0] for r in rows) == ["KeyboardInterrupt", "SystemExit"]
    assert "DEBUG: starting the reply" in done.stderr


def test_a_sut_changing_os_environ_leaves_the_environment_as_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    before = dict(os.environ)
    sut = parse_sut("tests.suts.misbehaving:app,path=/environ")
    plan = build_plan(
        synth.make_transcript(
            "openai-chat", synth.render("openai-chat", text="hi"), request_body={}
        )
    )
    response = sut.call({}, [plan], SutTimeouts())
    assert b"key set: True" in b"".join(data for _, data in response.chunks)  # the dummy key
    assert dict(os.environ) == before


def test_a_sync_sdk_in_a_worker_thread_stops_with_a_clear_line_or_runs_in_real_time() -> None:
    case = str(FIXTURES / "chat-hello")
    virtual = run_one(RunSpec(case, sut="tests.suts.sync_sdk:app", latency="scale:0.1"))
    assert "blocked outside the event loop" in virtual["sut_error"]
    assert "clock=real" in virtual["sut_error"]
    real = run_one(RunSpec(case, sut="tests.suts.sync_sdk:app,clock=real", latency="scale:0.1"))
    assert real["terminal"] == "done" and real["violations"] == []
    assert real["streamed_text"] == real["expected_text"]


class _Hostile(socketserver.BaseRequestHandler):
    answers: typing.ClassVar[dict[str, bytes | None]] = {
        "/before-headers": b"",
        "/bad-status": b"HTTP/1.1 twohundred OK\r\n\r\n",
        "/huge-header": b"HTTP/1.1 200 OK\r\nx-big: " + b"a" * 1_000_000 + b"\r\n\r\n",
        "/mid-event": b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        b"transfer-encoding: chunked\r\n\r\n10\r\nevent: chunk\ndat\r\n",
        "/silent": None,
    }

    def handle(self) -> None:
        request = self.request.recv(65536).decode("latin-1")
        path = request.split(" ")[1] if " " in request else ""
        answer = self.answers.get(path, b"")
        if answer is None:
            threading.Event().wait(3)
            return
        with contextlib.suppress(OSError):
            self.request.sendall(answer)


@pytest.fixture
def hostile_server() -> Iterator[str]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Hostile)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_hostile_http_sut_is_a_row_with_sut_error_never_an_aborted_matrix(
    hostile_server: str,
) -> None:
    suts = [hostile_server + path for path in _Hostile.answers]
    frame = run_matrix(
        Matrix(
            cases=[str(FIXTURES / "chat-hello")],
            suts=[*suts, "reference"],
            chunkings=["events"],
            timeouts=SutTimeouts(connect_s=1, read_s=0.5, total_s=5),
        )
    )
    errors = dict(zip(frame["sut"], frame["sut_error"], strict=True))
    assert not isinstance(errors.pop("reference"), str)
    assert len(errors) == len(suts)
    for sut, error in errors.items():
        assert error, sut
    assert "Timeout" in errors[hostile_server + "/silent"]
    assert "peer closed connection" in errors[hostile_server + "/mid-event"]


# ---------------------------------------------------------------------------- upstream rules


def _upstream_slugs(calls: list[UpstreamCall] | None, n_upstreams: int = 1) -> list[str]:
    state = consume([UIEvent(0.0, "text", text="Hi"), UIEvent(1.0, "done", text="Hi")])
    ctx = RunContext(state, "chat", n_upstreams=n_upstreams, upstream_calls=calls)
    return [v.rule for v in check_rules(ctx, default_profile())]


def test_the_upstream_rules_judge_what_the_replay_saw() -> None:
    anthropic = "POST https://api.anthropic.com/v1/messages"
    right = UpstreamCall(
        "POST", "/v1/messages", "anthropic-messages", "anthropic-messages", anthropic
    )
    wrong = UpstreamCall(
        "POST", "/v1/chat/completions", "openai-chat", "anthropic-messages", anthropic
    )
    assert _upstream_slugs([right]) == []
    assert _upstream_slugs([]) == ["no-upstream-call"]
    assert _upstream_slugs(None) == []  # not known for this run: nothing to judge
    assert _upstream_slugs([right, wrong]) == ["wrong-upstream"]
    state = consume([UIEvent(0.0, "done", text="")])
    ctx = RunContext(state, "chat", upstream_calls=[wrong])
    (violation,) = check_rules(ctx, {"wrong-upstream": {}})
    assert "/v1/chat/completions (openai-chat)" in violation.message
    assert "anthropic-messages (POST https://api.anthropic.com/v1/messages)" in violation.message
    # a call beyond the case's recordings is answered by a recording again: not judged
    cycled = UpstreamCall(
        "POST", "/v1/chat/completions", "openai-chat", "anthropic-messages", anthropic, cycled=True
    )
    assert _upstream_slugs([right, cycled]) == []
    generic = UpstreamCall("POST", "/x", "generic-sse", "generic-sse", "POST /x")
    assert _upstream_slugs([generic]) == []


# ---------------------------------------------------------------------------- aiohttp


@contextlib.contextmanager
def off_loopback_connects() -> Iterator[list[str]]:
    """Every socket connect or name lookup to a host off loopback, while the block runs."""
    seen: list[str] = []
    connect, lookup = socket.socket.connect, socket.getaddrinfo
    loopback = ("127.0.0.1", "::1", "localhost")

    def guarded_connect(self: socket.socket, address: typing.Any) -> typing.Any:
        if isinstance(address, tuple) and address[0] not in loopback:
            seen.append(f"connect {address[0]}")
        return connect(self, address)

    def guarded_lookup(host: typing.Any, *args: typing.Any, **kwargs: typing.Any) -> typing.Any:
        if host not in loopback and host is not None:
            seen.append(f"lookup {host}")
        return lookup(host, *args, **kwargs)

    with (
        mock.patch.object(socket.socket, "connect", guarded_connect),
        mock.patch.object(socket, "getaddrinfo", guarded_lookup),
    ):
        yield seen


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is absent")
def test_with_aiohttp_installed_google_genai_is_answered_in_process_and_nothing_leaves(
    tmp_path: Path,
) -> None:
    # google-genai sends through aiohttp whenever it is importable (the test extra installs it)
    assert importlib.util.find_spec("aiohttp") is not None
    (stream, text), *_ = plain_text_streams("google-generate")
    case = str(corpus_case(tmp_path / "g", stream, text))
    with off_loopback_connects() as seen:
        frame = run_matrix(Matrix(cases=[case], suts=[GOOGLE_SUT], chunkings=["events"]))
    assert_clean(frame)
    assert list(frame["upstream_calls"]) == [1]
    assert seen == []


def test_an_aiohttp_call_in_process_is_stopped_before_it_leaves_with_a_line_saying_why() -> None:
    with off_loopback_connects() as seen:
        row = run_one(RunSpec(str(FIXTURES / "chat-hello"), sut="tests.suts.aiohttp_client:app"))
    assert seen == []
    assert row["terminal"] == "error" and "no-upstream-call" in [
        v["rule"] for v in row["violations"]
    ]
    assert "aiohttp requests are not answered by the replay" in row["error_message"]
    assert "--sut-cmd" in row["error_message"]
