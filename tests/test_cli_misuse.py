"""Misuse of any command: one line naming the file, spec, option or field, exit 2, no
traceback, nothing on stdout (transcript-specific error paths: test_cli_transcripts.py)."""

from __future__ import annotations

import base64
import os
import zlib
from pathlib import Path

import pytest

from streambench.cli import main
from streambench.transcript import encoding

REPO = Path(__file__).resolve().parents[1]
CASE = str(REPO / "fixtures" / "chat-hello")
RECORDING = str(REPO / "recordings" / "openai-chat.yaml")
MISSING = "/nonexistent/streambench.yaml"

# argv (BAD stands for a file of invalid YAML) -> what the one line must say
MISUSES: list[tuple[list[str], str]] = [
    (["replay", RECORDING, "-c", "bytes:0"], "spec 'bytes:0'"),
    (["replay", RECORDING, "-f", "boom@event=1"], "unknown fault 'boom'"),
    (["replay", RECORDING, "-l", "scale:-1"], "scale:-1"),
    (["serve", MISSING], f"{MISSING}: no such file or folder"),
    (["run", "--case", MISSING], f"{MISSING}: no such case file or folder"),
    (["run", "--case", CASE, "--chunking", "what"], "unknown chunking 'what'"),
    (["run", "--case", CASE, "--dialect", "klingon"], "dialect 'klingon': unknown"),
    (["run", "--case", CASE, "--sut", "nope_module:app"], "sut 'nope_module:app': cannot load"),
    (["run", "--case", CASE, "--profile", "BAD"], "not valid YAML"),
    (["run", "--case", CASE, "--format", "xml"], "--format 'xml'"),
    (["run", "BAD"], "not valid YAML"),
    (["gate", str(REPO), "--thresholds", MISSING], "cannot read thresholds"),
    (["chaos", "--providers", "nope"], "--providers: 'nope': unknown"),
    (["experiment", "order", MISSING], f"{MISSING}: cannot read matrix"),
    (["record", "--provider", "nope", "--prompt", "hi", "-o", "OUT"], "--provider 'nope'"),
    (["proxy", "--upstream", "notaurl", "-o", "OUT"], "--upstream: 'notaurl'"),
    (["fake-provider", "--script", MISSING], f"{MISSING}: cannot read script"),
    (["reference-server", "--port", "99999"], "--port: 99999"),
    (["scan", MISSING], f"{MISSING}: no such file or folder"),
]


@pytest.mark.parametrize(("argv", "message"), MISUSES, ids=[" ".join(a[:3]) for a, _ in MISUSES])
def test_misuse_is_one_line_and_exit_2(
    argv: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # (default file locations, e.g. the reference's database)
    monkeypatch.delenv("STREAMBENCH_DB", raising=False)
    bad = tmp_path / "bad.yaml"
    bad.write_text("not: [valid\n")
    argv = [str(bad) if a == "BAD" else str(tmp_path / "out") if a == "OUT" else a for a in argv]
    with pytest.raises(SystemExit) as exited:
        main(argv)
    out, err = capsys.readouterr()
    assert exited.value.code == 2, err
    assert out == ""
    assert err.startswith("streambench: error: ") and err.count("\n") == 1, err
    assert message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]  # nothing written


# --- hostile inputs (issue 14): every crash and every "nonsense accepted" is one line -------

GOOD_CASE = "name: c\nmode: chat\nrequest: {content: hi}\nupstream: [t.yaml]\nexpect: {text: x}\n"
TRANSCRIPT = "streambench: 1\nmeta: {provider: a, api: anthropic-messages}\nresponse: {%s}\n"
NOT_UTF8 = b"name: caf\xe9\n"


def _cassette(interaction: str) -> str:
    return f"interactions:\n- {interaction}\nversion: 1\n"


def _gzip_bomb() -> bytes:
    squeeze = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = bytes(1 << 20)
    return b"".join(squeeze.compress(block) for _ in range(4)) + squeeze.flush()


# name -> content of a file in the inputs folder ("IN/name" in argv)
INPUTS: dict[str, str | bytes] = {
    "t.yaml": TRANSCRIPT % "status: 200, body: ''",
    "results.csv": "case,ttfc_ms,violations\nc,1.0,[]\n",
    "not-utf8.yaml": NOT_UTF8,
    "meta-provider-map.yaml": "streambench: 1\nmeta: {provider: {a: 1}, api: anthropic-messages}\n",
    "status-99999.yaml": TRANSCRIPT % "status: 99999",
    "status-0.yaml": TRANSCRIPT % "status: 0",
    "chunk-inf.yaml": TRANSCRIPT % "status: 200, body: ab, chunks: [[.inf, 2]]",
    "chunk-nan.yaml": TRANSCRIPT % "status: 200, body: ab, chunks: [[.nan, 2]]",
    "header-space.yaml": TRANSCRIPT % "status: 200, headers: {'bad name': x}",
    "cassette-ok.yaml": _cassette(
        "{request: {uri: 'https://api.openai.com/v1/chat/completions'}, response: {status: 200,"
        " headers: {content-type: [text/event-stream]}, body: {string: 'data: {}\n\n'}}}"
    ),
    "cassette-request-list.yaml": _cassette("{request: [1], response: {status: 200}}"),
    "cassette-response-list.yaml": _cassette("{request: {}, response: [1]}"),
    "cassette-status-abc.yaml": _cassette("{request: {}, response: {status: abc}}"),
    "cassette-status-null.yaml": _cassette("{request: {}, response: {status: {code: null}}}"),
    "cassette-corrupt-gzip.yaml": _cassette(
        "{request: {}, response: {status: 200, headers: {content-encoding: [gzip]},"
        " body: {string: !!binary H4sIAAAAAAAAA2JhZGRhdGE=}}}"
    ),
    "cassette-gzip-bomb.yaml": _cassette(
        "{request: {}, response: {status: 200, headers: {content-encoding: [gzip]},"
        f" body: {{string: !!binary {base64.b64encode(_gzip_bomb()).decode()}}}}}}}"
    ),
    "case-date.yaml": GOOD_CASE.replace("{content: hi}", "{content: hi, when: 2024-01-01}"),
    "case-binary.yaml": GOOD_CASE.replace("{content: hi}", "{content: hi, b: !!binary aGk=}"),
    "case-set.yaml": GOOD_CASE.replace("{content: hi}", "{content: hi, s: !!set {a: null}}"),
    "case-laughs.yaml": "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n"
        for p, c in zip("abcdefg", "bcdefgh", strict=True)
    )
    + GOOD_CASE.replace("{content: hi}", "{content: hi, lol: *h}"),
    "thresholds-metrics-list.yaml": "metrics: [ttfc_ms]\n",
    "thresholds-rules-int.yaml": "rules: 5\n",
    "thresholds-baseline-str.yaml": "baseline: x\n",
    "thresholds-text-metric.yaml": "metrics: {case: {p95: {max: 1}}}\n",
    "results-string-violations.csv": 'case,ttfc_ms,violations\nc,1.0,"""oops"""\n',
    "results-bad-violations.csv": "case,ttfc_ms,violations\nc,1.0,[1]\n",
    "profile-abc.yaml": "rules: {duplicate-after-failover: {min_overlap_chars: abc}}\n",
    "profile-negative.yaml": "rules: {duplicate-after-failover: {min_overlap_chars: -5}}\n",
    "request-messages-5.yaml": "messages: 5\n",
    "rec-matrix-repeat-abc.yaml": "prompts: [{text: hi}]\nrepeat: abc\n",
    "rec-matrix-repeat-neg.yaml": "prompts: [{text: hi}]\nrepeat: -3\n",
    "rec-matrix-body.yaml": "prompts: [{text: hi}]\nvariants: [{name: v, body: 5}]\n",
    "rec-matrix-dupes.yaml": "prompts: [{name: a, text: hi}, {name: a, text: ho}]\n",
    "run-matrix-seed.yaml": "case: [IN/case-dir]\nseed: 1.5\n",
    "run-matrix-chunking.yaml": "case: [IN/case-dir]\nchunking: []\n",
    "script-types.yaml": "rules: [{prefill: 5, text: hi}]\n",
    "afile": "keep me\n",
}

HOSTILE: list[tuple[list[str], str]] = [
    # every YAML file kind, not UTF-8
    (["run", "--case", "IN/not-utf8.yaml"], "not UTF-8"),
    (["run", "IN/not-utf8.yaml"], "cannot read matrix: not UTF-8"),
    (["run", "--case", CASE, "--profile", "IN/not-utf8.yaml"], "cannot read profile: not UTF-8"),
    (["gate", "IN/results.csv", "--thresholds", "IN/not-utf8.yaml"], "thresholds: not UTF-8"),
    (["fake-provider", "--script", "IN/not-utf8.yaml"], "cannot read script: not UTF-8"),
    (["record", "--request", "IN/not-utf8.yaml", "-o", "OUT"], "cannot read request: not UTF-8"),
    (["record", "--matrix", "IN/not-utf8.yaml", "-o", "OUT"], "cannot read matrix: not UTF-8"),
    (["record", "--redact-config", "IN/not-utf8.yaml", "-o", "OUT"], "redaction config: not UTF"),
    (["inspect", "IN/not-utf8.yaml"], "not UTF-8"),
    # malformed cassettes and transcripts
    (["import", "IN/cassette-request-list.yaml", "-o", "OUT"], "request must be a mapping"),
    (["import", "IN/cassette-response-list.yaml", "-o", "OUT"], "response must be a mapping"),
    (["import", "IN/cassette-status-abc.yaml", "-o", "OUT"], "status 'abc'"),
    (["import", "IN/cassette-status-null.yaml", "-o", "OUT"], "status None"),
    (["import", "IN/cassette-corrupt-gzip.yaml", "-o", "OUT"], "cannot be decoded"),
    (["import", "IN/cassette-gzip-bomb.yaml", "-o", "OUT"], "decoded body is over"),
    (["inspect", "IN/meta-provider-map.yaml"], "meta.provider must be a string"),
    (["inspect", "IN/status-99999.yaml"], "response.status 99999"),
    (["serve", "IN/status-0.yaml"], "response.status 0"),
    (["inspect", "IN/chunk-inf.yaml"], "t_ms must be a finite number"),
    (["inspect", "IN/chunk-nan.yaml"], "t_ms must be a finite number"),
    (["serve", "IN/header-space.yaml"], "'bad name' is not a valid header name"),
    (["inspect", "/dev/zero"], "not a regular file"),
    (["inspect", "FIFO"], "not a regular file"),
    # case requests that are not JSON
    (["run", "--case", "IN/case-date.yaml"], "request.when: a YAML date is not JSON"),
    (["run", "--case", "IN/case-binary.yaml"], "request.b: a YAML bytes is not JSON"),
    (["run", "--case", "IN/case-set.yaml"], "request.s: a YAML set is not JSON"),
    (["run", "--case", "IN/case-laughs.yaml"], "aliases expanding"),
    # gate
    (["gate", "IN/results.csv", "--thresholds", "IN/thresholds-metrics-list.yaml"], "metrics must"),
    (["gate", "IN/results.csv", "--thresholds", "IN/thresholds-rules-int.yaml"], "rules must be"),
    (["gate", "IN/results.csv", "--thresholds", "IN/thresholds-baseline-str.yaml"], "baseline mu"),
    (["gate", "IN/results.csv", "--thresholds", "IN/thresholds-text-metric.yaml"], "a text column"),
    (["gate", "IN/results-string-violations.csv"], "violations must be a list"),
    (["gate", "IN/results-bad-violations.csv"], "each violation must be a mapping"),
    # profile parameters
    (["run", "--case", CASE, "--profile", "IN/profile-abc.yaml"], "expected a whole number"),
    (["run", "--case", CASE, "--profile", "IN/profile-negative.yaml"], "-5 is below 1"),
    # record arguments
    (["record", "--request", "IN/request-messages-5.yaml", "--prompt", "hi", "-o", "OUT"],
     "'messages' must be a list"),
    (["record", "--matrix", "IN/rec-matrix-repeat-abc.yaml", "-o", "OUT"], "repeat 'abc'"),
    (["record", "--matrix", "IN/rec-matrix-repeat-neg.yaml", "-o", "OUT"], "repeat -3"),
    (["record", "--matrix", "IN/rec-matrix-body.yaml", "-o", "OUT"], "body must be a mapping"),
    (["record", "--matrix", "IN/rec-matrix-dupes.yaml", "-o", "OUT"], "share the file name"),
    (["record", "--provider", "url", "--base-url", "http://[::1", "-o", "OUT"], "not a valid URL"),
    (["record", "--provider", "url", "--base-url", "ftp://h/x", "-o", "OUT"], "http:// or https"),
    (["record", "--provider", "url", "--base-url", "http://h:99999/", "-o", "OUT"], "range"),
    (["record", "--provider", "url", "--base-url", "http://127.0.0.1:1/", "-o", "OUT"],
     "no response (ConnectError"),
    (["record", "--prompt", "hi", "--redact-pattern", "", "-o", "OUT"], "matches the empty"),
    # output paths that are files or folders
    (["run", "--case", CASE, "--out", "IN/afile"], "is a file, not a folder"),
    (["record", "--provider", "url", "--base-url", "http://127.0.0.1:1/", "-o", "IN"],
     "is a folder"),
    (["import", "IN/cassette-ok.yaml", "-o", "IN/afile"], "cannot write"),
    (["reference-server", "--db", "IN"], "cannot open: is a folder"),
    (["reference-server", "--db", "IN/afile"], "file is not a database"),
    # nonsense accepted before
    (["replay", RECORDING, "-l", "const:ttfb=1e308"], "from 0 to 1e+09"),
    (["replay", RECORDING, "-c", "bytes:\u0661"], "must be a number, got '\u0661'"),
    (["run", "IN/run-matrix-seed.yaml"], "seed: must be integers, got 1.5"),
    (["run", "IN/run-matrix-chunking.yaml"], "chunking: an empty list gives no runs"),
    (["fake-provider", "--script", "IN/script-types.yaml"], "prefill must be a string"),
    (["proxy", "--upstream", "http://127.0.0.1:99999", "-o", "OUT"], "Port out of range"),
    (["run", "--case", CASE, "--sut", "http://127.0.0.1:1/", "--replay-port", "99999"],
     "--replay-port: 99999"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "message"), HOSTILE, ids=[" ".join(a)[:60] for a, _ in HOSTILE])
def test_hostile_input_is_one_line_exit_2_nothing_written(
    argv: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STREAMBENCH_DB", raising=False)
    monkeypatch.setattr(encoding, "DECODED_LIMIT_BYTES", 1 << 20)  # the bomb inflates to 4 MiB
    inputs = tmp_path / "IN"
    inputs.mkdir()
    for name, content in INPUTS.items():
        target = inputs / name
        target.write_bytes(content if isinstance(content, bytes) else content.encode())
    (inputs / "case-dir").mkdir()
    (inputs / "case-dir" / "case.yaml").write_text(GOOD_CASE.replace("t.yaml", "../t.yaml"))
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    before = {p: p.read_bytes() for p in inputs.rglob("*") if p.is_file()}
    named = {"FIFO": str(fifo), "OUT": str(tmp_path / "out")}
    argv = [named.get(a, str(inputs) + a[2:] if a.startswith("IN") else a) for a in argv]
    with pytest.raises(SystemExit) as exited:
        main(argv)
    out, err = capsys.readouterr()
    assert exited.value.code == 2, err
    assert out == ""
    assert err.startswith("streambench: error: ") and err.count("\n") == 1, err
    assert message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["IN", "fifo.yaml"]  # nothing written
    assert {p: p.read_bytes() for p in inputs.rglob("*") if p.is_file()} == before
