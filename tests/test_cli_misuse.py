"""Misuse of any command: one line naming the file, spec, option or field, exit 2, no
traceback, nothing on stdout (transcript-specific error paths: test_cli_transcripts.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streambench.cli import main

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
    (["chaos", "--providers", "nope"], "--providers 'nope': unknown"),
    (["experiment", "order", MISSING], f"{MISSING}: cannot read matrix"),
    (["record", "--provider", "nope", "--prompt", "hi", "-o", "OUT"], "--provider 'nope'"),
    (["proxy", "--upstream", "notaurl", "-o", "OUT"], "--upstream 'notaurl'"),
    (["fake-provider", "--script", MISSING], f"{MISSING}: cannot read script"),
    (["reference-server", "--port", "99999"], "--port 99999"),
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
