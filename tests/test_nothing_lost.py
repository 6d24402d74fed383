"""Nothing lost, nothing hangs: recordings never replace a good file with a worse one, names
from user data stay under -o, proxy sessions never overwrite, a failed save never breaks the
relayed stream, upstream calls are bounded, servers stop on SIGTERM mid-stream, reports of one
run are swapped in together, and a matrix is checked whole before its first run."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hostile import closes_before_headers, hostile_app
from streambench import _atomic
from streambench._server import running_server
from streambench.cli import main
from streambench.errors import ConfigError, TranscriptError
from streambench.record import proxy as proxy_module
from streambench.record.fake_provider import fake_provider_app
from streambench.record.proxy import proxy_app
from streambench.record.recorder import (
    RecordError,
    Timeouts,
    build_body,
    partial_path,
    plan_entries,
    record,
)
from streambench.report.files import REPORT_FILES, write_reports
from streambench.runner import matrix as matrix_module
from streambench.runner.matrix import Matrix, run_matrix
from streambench.transcript import load

REPO = Path(__file__).resolve().parents[1]
RECORDING = str(REPO / "recordings" / "anthropic-chat.yaml")
BODY = build_body("anthropic", None, "hello there " * 20, None)


def _record(url: str, out: Path, **kwargs: object) -> object:
    return record(
        f"{url}/v1/messages", BODY, out=out, provider="anthropic", api="anthropic-messages",
        **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip


def test_a_failed_recording_never_replaces_a_complete_one(tmp_path: Path) -> None:
    target = tmp_path / "t.yaml"
    with running_server(fake_provider_app(rate=0)) as url:
        _record(url, target)
        good = target.read_bytes()
        with closes_before_headers() as closed, pytest.raises(RecordError, match="no response"):
            _record(closed, target)
        assert target.read_bytes() == good
        # Cut short mid-stream: kept beside the good file, which stays as it was.
        t = _record(url, target, headers={"x-fake-fail": "drop@3"})
    assert target.read_bytes() == good
    assert t.meta.truncated and t.path == partial_path(target)  # type: ignore[attr-defined]
    assert load(partial_path(target)).meta.truncated


def test_a_failed_recording_exits_non_zero_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with closes_before_headers() as closed, pytest.raises(SystemExit) as exited:
        main(["record", "--provider", "url", "--base-url", closed, "--prompt", "hi", "-o",
              str(tmp_path / "x.yaml")])  # fmt: skip
    assert exited.value.code == 2
    assert "no response" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_truncated_recording_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with running_server(fake_provider_app(rate=0)) as url, pytest.raises(SystemExit) as exited:
        main(["record", "--base-url", url, "--prompt", "hi " * 50, "-H", "x-fake-fail: drop@2",
              "-o", str(tmp_path / "x.yaml")])  # fmt: skip
    assert exited.value.code == 1
    assert "cut short" in capsys.readouterr().err
    assert load(tmp_path / "x.yaml").meta.truncated


def test_matrix_names_stay_under_out_and_duplicates_are_an_error() -> None:
    matrix = {"prompts": [{"name": "../outside/x", "text": "a"}, {"name": "/abs/y", "text": "b"}]}
    names = [e.name for e in plan_entries("anthropic", None, None, None, 1, matrix)]
    assert names == ["outside_x-default", "abs_y-default"]
    assert all("/" not in n and not n.startswith(".") for n in names)
    twice = {"prompts": [{"name": "a", "text": "x"}, {"name": "a", "text": "y"}]}
    with pytest.raises(ConfigError, match="share the file name"):
        plan_entries("anthropic", None, None, None, 1, twice)


def test_record_stops_a_stalled_and_a_trickling_upstream(tmp_path: Path) -> None:
    with running_server(hostile_app()) as url:
        start = time.monotonic()
        stalled = record(
            f"{url}/stall", BODY, out=tmp_path / "s.yaml", provider="url",
            timeouts=Timeouts(connect_s=2, read_s=0.5, total_s=30),
        )  # fmt: skip
        trickled = record(
            f"{url}/trickle", BODY, out=tmp_path / "t.yaml", provider="url",
            timeouts=Timeouts(connect_s=2, read_s=5, total_s=1),
        )  # fmt: skip
    assert time.monotonic() - start < 10
    assert stalled.meta.truncated and "ReadTimeout" in (stalled.meta.notes or "")
    assert trickled.meta.truncated and "total timeout" in (trickled.meta.notes or "")


def test_proxy_answers_502_when_the_upstream_closes_before_headers(tmp_path: Path) -> None:
    with closes_before_headers() as upstream, running_server(proxy_app(upstream, tmp_path)) as p:
        response = httpx.post(f"{p}/v1/messages", json={"stream": True}, timeout=10)
    assert response.status_code == 502
    assert "no response" in response.json()["error"]["message"]


def test_proxy_stops_a_stalled_upstream(tmp_path: Path) -> None:
    timeouts = Timeouts(connect_s=2, read_s=0.5, total_s=30)
    with (
        running_server(hostile_app()) as upstream,
        running_server(proxy_app(upstream, tmp_path, timeouts=timeouts)) as proxy,
    ):
        start = time.monotonic()
        response = httpx.post(f"{proxy}/stall", json={}, timeout=20)
    assert response.status_code == 200 and time.monotonic() - start < 10
    (saved,) = tmp_path.glob("*.yaml")
    assert load(saved).meta.truncated


def _stream_through(proxy: str) -> bytes:
    with httpx.Client(timeout=10) as client:
        response = client.post(f"{proxy}/v1/messages", json={**BODY, "stream": True})
    response.raise_for_status()
    return response.content


def test_proxy_sessions_continue_numbering_and_never_overwrite(tmp_path: Path) -> None:
    with running_server(fake_provider_app(rate=0)) as upstream:
        for _ in range(2):  # two sessions (restarts) on the same folder
            with running_server(proxy_app(upstream, tmp_path)) as proxy:
                _stream_through(proxy)
                _stream_through(proxy)
    names = sorted(p.name for p in tmp_path.glob("*.yaml"))
    assert [n[:4] for n in names] == ["0001", "0002", "0003", "0004"]


def test_a_proxy_that_cannot_save_still_relays_the_whole_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    def full_disk(*args: object, **kwargs: object) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(proxy_module, "save", full_disk)
    with running_server(fake_provider_app(rate=0)) as upstream:
        direct = _stream_through(upstream)
        with running_server(proxy_app(upstream, tmp_path)) as proxy:
            relayed = _stream_through(proxy)
    assert relayed == direct and b"message_stop" in relayed
    assert "could not save the call" in capfd.readouterr().err


@pytest.mark.parametrize(
    ("argv", "path"),
    [
        (["fake-provider", "--rate", "2"], "/v1/messages"),
        (["proxy", "--upstream", "UPSTREAM", "-o", "OUT"], "/v1/messages"),
        (["serve", RECORDING, "-l", "const:ttfb=0,gap=2000"], "/"),
        (["reference-server", "--db", "OUT/ref.db"], "/messages"),
    ],
    ids=["fake-provider", "proxy", "serve", "reference-server"],
)  # fmt: skip
def test_servers_stop_on_sigterm_mid_stream_within_the_grace(
    argv: list[str], path: str, tmp_path: Path
) -> None:
    with running_server(fake_provider_app(rate=2)) as upstream:
        argv = [upstream if a == "UPSTREAM" else a.replace("OUT", str(tmp_path)) for a in argv]
        env = {**os.environ, "ANTHROPIC_BASE_URL": upstream, "STREAMBENCH_PROVIDERS": "anthropic"}
        proc = subprocess.Popen(
            [sys.executable, "-c", "from streambench.cli import main; main()", *argv],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        try:
            url = _wait_for_url(proc)
            with (
                httpx.Client(timeout=30) as client,
                client.stream(
                    "POST",
                    url + path,
                    json={**BODY, "stream": True, "content": "hi " * 40},
                    headers={"accept": "text/event-stream"},
                ) as response,
            ):
                next(response.iter_raw())  # streaming now
                proc.send_signal(signal.SIGTERM)
                start = time.monotonic()
                proc.wait(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert time.monotonic() - start < 8
    assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")


def _wait_for_url(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None and proc.stderr is not None
    deadline = time.monotonic() + 30
    stream = proc.stdout if "proxy" not in proc.args[3:] else proc.stderr  # type: ignore[index]
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line and proc.poll() is not None:
            break
        match = re.search(r"http://[\d.]+:\d+", line)
        if match:
            return match.group()
    raise AssertionError("the server printed no URL")


@pytest.mark.parametrize("host", ["0.0.0.0", ""])
def test_a_non_loopback_bind_warns_once_naming_what_is_exposed(
    host: str, capfd: pytest.CaptureFixture[str]
) -> None:
    from streambench._server import bind_socket

    sock = bind_socket(host, 0, exposes="can read the served transcripts")
    sock.close()
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "warning: listening on every interface" in err
    assert "can read the served transcripts" in err
    bind_socket("127.0.0.1", 0, exposes="x").close()
    assert capfd.readouterr().err == ""


def test_reports_of_one_run_are_swapped_in_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = run_matrix(Matrix([str(REPO / "fixtures" / "chat-hello")]))
    out = tmp_path / "reports"
    write_reports(frame, out)
    before = {name: (out / name).read_bytes() for name in REPORT_FILES}

    def killed(*args: object) -> None:  # the run dies before the swap
        raise KeyboardInterrupt

    monkeypatch.setattr(_atomic.os, "chmod", killed)
    with pytest.raises(KeyboardInterrupt):
        write_reports(frame.head(0), out)
    assert {name: (out / name).read_bytes() for name in REPORT_FILES} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reports"]  # no temp folder left
    monkeypatch.undo()
    (tmp_path / ".reports.tmp-stale").mkdir()  # as a SIGKILL mid-write leaves it
    write_reports(frame, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reports"]
    assert sorted(p.name for p in out.iterdir()) == sorted(REPORT_FILES)


def test_a_matrix_is_checked_whole_before_its_first_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "zz-broken"
    broken.mkdir()
    (broken / "t.yaml").write_text("streambench: 1\nmeta: {provider: a, api: nope}\n")
    (broken / "case.yaml").write_text(
        "name: zz\nmode: chat\nrequest: {content: hi}\nupstream: [t.yaml]\nexpect: {text: x}\n"
    )
    runs: list[object] = []
    monkeypatch.setattr(matrix_module, "run_one", lambda spec, host=None: runs.append(spec))
    with pytest.raises(TranscriptError, match=r"meta\.api 'nope'"):
        run_matrix(Matrix([str(REPO / "fixtures" / "chat-hello"), str(broken)]))
    assert runs == []


def test_no_temp_file_is_left_when_a_write_fails(tmp_path: Path) -> None:
    def fail(path: Path) -> None:
        path.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        _atomic.atomic_write(tmp_path / "f.txt", fail)
    assert os.listdir(tmp_path) == []


def test_serve_logs_nothing_when_a_client_leaves_early(capfd: pytest.CaptureFixture[str]) -> None:
    from streambench.replay import build_plan, replay_app

    plan = build_plan(load(RECORDING), "events", "const:ttfb=0,gap=500", (), 0)
    with running_server(replay_app([plan])) as url:
        for _ in range(3):
            with httpx.Client(timeout=10) as client, client.stream("POST", url) as response:
                next(response.iter_raw())  # one event, then hang up mid-gap
        time.sleep(0.3)
    assert "Traceback" not in capfd.readouterr().err
