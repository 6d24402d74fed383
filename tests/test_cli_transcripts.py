"""``streambench import`` and ``streambench inspect``: outputs, and every error path exits 2."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import cli_exit_code, corpus_files

from streambench.transcript import Meta, Request, Response, Transcript, load, save


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    code = cli_exit_code(argv)
    out, err = capsys.readouterr()
    return code, out, err


def timed_transcript(path: Path) -> Path:
    delta = '{"type":"content_block_delta","delta":{"type":"text_delta","text":"Hi"}}'
    body = f"event: content_block_delta\ndata: {delta}\n\n".encode()
    return save(
        Transcript(
            meta=Meta(provider="anthropic", api="anthropic-messages"),
            request=Request(url="https://api.anthropic.com/v1/messages"),
            response=Response(body=body, chunks=[(120.0, 40), (250.5, len(body) - 40)]),
        ),
        path,
    )


@pytest.mark.skipif(not corpus_files(), reason="corpus folder ../shared/corpus is absent")
def test_import_turns_every_corpus_cassette_into_a_transcript(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["import", *map(str, corpus_files()), "-o", str(tmp_path / "out")], capsys)
    assert code == 0
    written = sorted((tmp_path / "out").glob("*.yaml"))
    assert len(written) == 88
    assert "imported 88 streamed interaction(s) from 88 cassette(s)" in out
    assert out.count("\n") == 89  # a line per file and the summary
    t = load(tmp_path / "out" / "test_google_model_iter_stream-0-26d9074f-0.yaml")
    assert (t.meta.provider, t.meta.api) == ("google", "google-generate")
    assert t.meta.source and t.meta.source.endswith(
        "test_google_model_iter_stream-0-26d9074f.yaml#0"
    )
    assert t.response.chunks is None
    assert t.response.body.endswith(b'"responseId": "1lpeaMTxIpW1nvgP-O3vwQY"}\r\n\r\n')


@pytest.mark.skipif(not corpus_files(), reason="corpus folder ../shared/corpus is absent")
def test_inspect_json_covers_cassettes_and_transcripts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cassette = next(p for p in corpus_files() if "tool_use_failed_error" in p.name)
    timed = timed_transcript(tmp_path / "timed.yaml")
    code, out, _ = run(["inspect", str(cassette), str(tmp_path), "--format", "json"], capsys)
    assert code == 0
    first, second = json.loads(out)
    assert first["file"] == f"{cassette.name}#0"
    assert (first["provider"], first["api"], first["stop_reason"]) == ("groq", "openai-chat", None)
    assert first["errors"] and "Tool call validation failed" in first["errors"][0]
    assert second["file"] == timed.name
    assert second["duration_ms"] == 250.5 and second["text_chars"] == 2 and second["events"] == 1


def test_inspect_table_and_summary_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    timed_transcript(tmp_path / "timed.yaml")
    code, out, _ = run(["inspect", str(tmp_path)], capsys)
    assert code == 0
    row = next(line for line in out.splitlines() if "timed.yaml" in line)
    assert "anthropic-messages" in row and "250" in row
    summary = "1 stream(s) from 1 file(s), 1 events, 0 with error events, 0 non-streamed"
    assert out.splitlines()[-1].startswith(summary)


def test_inspect_empty_folder_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["inspect", str(tmp_path)], capsys)
    assert code == 0 and "no transcripts or streamed cassettes found" in out


GOOD_HEAD = "streambench: 1\nmeta:\n  provider: x\n  api: openai-chat\n"
ERROR_CASES = {
    "missing file": (None, "no such file or folder"),
    "bad yaml": ("streambench: 1\nmeta: [x\n", "not valid YAML"),
    "wrong version": ("streambench: 7\nmeta: {}\n", ":1: transcript format version 7"),
    "chunks not summing": (
        GOOD_HEAD + "response:\n  body: abc\n  chunks: [[0, 1]]\n",
        ":7: response.chunks lengths sum to 1, but the body has 3 bytes",
    ),
    "unknown api": (
        "streambench: 1\nmeta:\n  provider: x\n  api: smoke-signals\n",
        ":4: meta.api 'smoke-signals' is unknown",
    ),
}


@pytest.mark.parametrize("command", ["inspect", "import"])
@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_every_error_path_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, command: str
) -> None:
    text, message = ERROR_CASES[case]
    path = tmp_path / "bad.yaml"
    if text is not None:
        path.write_text(text)
    argv = [command, str(path)] + (["-o", str(tmp_path / "out")] if command == "import" else [])
    code, out, err = run(argv, capsys)
    assert code == 2
    assert out == ""
    if command == "import" and case in ("wrong version", "chunks not summing", "unknown api"):
        message = "not a vcrpy cassette"  # a transcript (good or bad) is not import's input
    assert err.count("\n") == 1 and err.startswith(f"streambench: error: {path}")
    assert message in err and "Traceback" not in err


def test_console_script_error_is_one_line_without_traceback(tmp_path: Path) -> None:
    script = shutil.which("streambench") or str(Path(sys.executable).parent / "streambench")
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD_HEAD + "response:\n  body: abc\n  chunks: [[0, 1]]\n")
    result = subprocess.run(
        [script, "inspect", str(bad)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"streambench: error: {bad}:7: response.chunks lengths sum to 1, but the body has 3 bytes\n"
    )
