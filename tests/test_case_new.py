"""``streambench case new --from RECORDING -o DIR``: a case folder from a recording that runs
clean as written, whose expectation is really compared, and bad input that says what is wrong."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import CORPUS_DIR, cli_exit_code, corpus_files, run_rows, verdicts
from streambench.runner.cases import load_case, split_context, write_case
from streambench.runner.matrix import Matrix
from streambench.transcript import load_inputs, save, synth

ROOT = Path(__file__).resolve().parents[1]
RECORDINGS = sorted((ROOT / "recordings").glob("*.yaml"))
FULL = os.environ.get("STREAMBENCH_FULL") == "1"
# The APIs the reference (the default SUT) calls; a recording of another API gets wrong-upstream.
REFERENCE_APIS = ("anthropic-messages", "openai-chat")


# Known failures of the reference itself, not of the case: the run of the bare transcript fails too.
def new_case(capsys: pytest.CaptureFixture[str], recording: Path, out: Path, *extra: str) -> str:
    assert cli_exit_code(["case", "new", "--from", str(recording), "-o", str(out), *extra]) == 0
    return capsys.readouterr().err


def api_of(recording: Path) -> str:
    return load_inputs([recording])[0].meta.api


@pytest.mark.parametrize("recording", RECORDINGS, ids=[p.stem for p in RECORDINGS])
def test_a_case_from_every_bundled_recording_runs_clean(
    recording: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = tmp_path / "c"
    said = new_case(capsys, recording, case)
    assert f"streambench run --case {case}" in said
    written = load_case(case)
    assert written.expect_text  # the expectation is written down, not left to the recording
    assert (case / recording.name).read_bytes() == recording.read_bytes()
    rows = run_rows(capsys, tmp_path / "reports", "--case", str(case))
    assert len(rows) == len(Matrix(cases=[str(case)]).specs())  # the default cells
    if api_of(recording) not in REFERENCE_APIS:
        # the default SUT cannot call this API: the case grades exactly as the transcript does
        assert all("wrong-upstream" in rules for *_, rules in verdicts(rows))
        assert verdicts(rows) == verdicts(
            run_rows(capsys, tmp_path / "direct", "--case", str(recording))
        )
        return
    for row in rows:
        assert row["violations"] == [], (row["chunking"], row["fault"])
        if row["fault"]:  # the mid-stream cut: an error showing a prefix of the answer
            assert row["terminal"] == "error" and row["final_code"] is None
            assert written.expect_text.startswith(row["streamed_text"])
            continue
        assert row["terminal"] == "done", row["chunking"]
        assert row["streamed_text"] == written.expect_text
        if written.expect_code is not None:
            assert row["final_code"] == written.expect_code


def test_the_job_code_case_carries_the_code_context_and_expects_the_edited_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new_case(capsys, ROOT / "recordings" / "anthropic-job-code-text-first.yaml", tmp_path / "c")
    case = load_case(tmp_path / "c")
    assert (case.mode, case.request["order"]) == ("job_code", "text_first")
    assert case.request["content"] == "Add a function that counts the items."
    assert case.expression == "fn(state => state);"
    assert case.expect_code is not None and "state.total = state.items.length" in case.expect_code
    text = (tmp_path / "c" / "case.yaml").read_text()
    for key in ("name:", "mode:", "request:", "upstream:", "expect:", "  text:", "  code:"):
        before = text.split(f"\n{key}", 1)[0].rstrip("\n").rsplit("\n", 1)[-1]
        assert before.lstrip().startswith("# "), f"no comment above {key}"


def test_split_context_reads_the_prompt_shapes_that_carry_code() -> None:
    reference = "My current job code:\n```\nfn(s => s);\n```\n\nAdd a step"
    assert split_context(reference) == ("Add a step", "fn(s => s);")
    trailing = "Fix it.\n\nYAML:\n```yaml\njobs: {}\n```\n"
    assert split_context(trailing) == ("Fix it.", "jobs: {}")
    assert split_context("Explain this:\n\nhello") == ("Explain this:\n\nhello", "")


def corpus_sample() -> list[Path]:
    """Corpus cassettes of the APIs the reference calls (every third one in the short form)."""
    spoken = [p for p in corpus_files() if api_of(p) in REFERENCE_APIS]
    return spoken if FULL else spoken[::3]


@pytest.mark.skipif(not corpus_files(), reason="../shared/corpus is absent")
def test_cases_from_corpus_cassettes_run_clean_and_grade_as_the_cassette(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = corpus_sample()
    assert len(sample) >= 10
    for cassette in sample:
        new_case(capsys, cassette, tmp_path / "cases" / cassette.stem)
    chunkings = [] if FULL else ["--chunking", "events"]
    rows = run_rows(capsys, tmp_path / "reports", "--case", str(tmp_path / "cases"), *chunkings)
    bare = [arg for cassette in sample for arg in ("--case", str(cassette))]
    direct = {r["case"]: r for r in run_rows(capsys, tmp_path / "direct", *bare, *chunkings)}
    assert len(rows) == len(sample) * (6 if FULL else 1)
    for row in rows:
        rules = sorted(v["rule"] for v in row["violations"])
        bare = direct[row["case"]]
        assert (row["terminal"], row["streamed_text"]) == (bare["terminal"], bare["streamed_text"])
        assert rules == [], (row["case"], row["chunking"], rules)


@pytest.mark.parametrize(
    ("recording", "key", "rule"),
    [
        ("anthropic-chat.yaml", "text", "wrong-text"),
        ("anthropic-job-code-changes-first.yaml", "code", "wrong-code"),
        ("anthropic-workflow.yaml", "yaml", "wrong-code"),
    ],
)
def test_an_edited_wrong_expectation_is_flagged(
    recording: str, key: str, rule: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = tmp_path / "c"
    new_case(capsys, ROOT / "recordings" / recording, case)
    data = yaml.safe_load((case / "case.yaml").read_text())
    data["expect"][key] = data["expect"][key].replace("e", "E", 1)
    (case / "case.yaml").write_text(yaml.safe_dump(data, allow_unicode=True))
    axes = ["--chunking", "events", "--chunking", "bytes:16"]
    rows = run_rows(capsys, tmp_path / "reports", "--case", str(case), *axes)
    assert [sorted({v["rule"] for v in r["violations"]}) for r in rows] == [[rule], [rule]]


def test_the_mode_option_overrides_the_recorded_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a job_code answer read as chat: the JSON after the prefill is the text the user must see
    recording = ROOT / "recordings" / "anthropic-job-code-changes-first.yaml"
    new_case(capsys, recording, tmp_path / "c", "--mode", "chat")
    case = load_case(tmp_path / "c")
    assert case.mode == "chat" and case.expect_code is None
    assert case.expect_text is not None and '"action": "replace"' in case.expect_text


BAD_INPUT = [
    (
        ["--from", "{tmp}/nowhere.yaml", "-o", "{tmp}/out"],
        "--from: {tmp}/nowhere.yaml: no such file",
    ),
    (["--from", "{tmp}", "-o", "{tmp}/out"], "--from: {tmp}: is a folder, not a recording"),
    (["--from", "{root}/README.md", "-o", "{tmp}/out"], "--from: not a transcript or cassette"),
    (
        ["--from", "{root}/fixtures/chat-hello/case.yaml", "-o", "{tmp}/out"],
        "not a streambench transcript",
    ),
    (["--from", "{rec}", "-o", "{tmp}/full"], "--out: {tmp}/full: exists and is not empty"),
    (["--from", "{rec}", "-o", "{tmp}/full/x"], "--out: {tmp}/full/x: is a file"),
    (["--from", "{rec}", "-o", "{tmp}/out", "--mode", "code"], "--mode: 'code' is not one of"),
    (
        ["--from", "{rec}", "-o", "{tmp}/out", "--mode", "workflow"],
        "--mode: {rec}: the recorded answer does not read as a workflow answer",
    ),
]


@pytest.mark.parametrize(("argv", "message"), BAD_INPUT)
def test_bad_input_is_one_line_naming_the_option_and_writes_nothing(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("mine")
    names = {"tmp": tmp_path, "root": ROOT, "rec": ROOT / "recordings" / "anthropic-chat.yaml"}
    assert cli_exit_code(["case", "new", *(a.format(**names) for a in argv)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert message.format(**names) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]
    assert (tmp_path / "full" / "x").read_text() == "mine"


def test_a_failure_while_writing_leaves_no_half_written_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_case(ROOT / "recordings" / "anthropic-chat.yaml", tmp_path / "c")
    assert list(tmp_path.iterdir()) == []


TRICKY_TEXTS = [
    "  leading spaces\nand a trailing one \n",
    "tabs\there\n\n\nblank lines, # not a comment, key: value",
    "line\u2028separator and \u0085 next-line, \r\n CRLF",
    '{"looks": "like JSON"}\n- a list item?\n',
    "no newline at all",
]


@pytest.mark.parametrize("text", TRICKY_TEXTS)
def test_the_written_expectation_loads_back_exactly(text: str, tmp_path: Path) -> None:
    body = synth.render("anthropic-messages", text=text)
    request = {"messages": [{"role": "user", "content": "Say it\n\nexactly: " + text}]}
    transcript = synth.make_transcript("anthropic-messages", body, request_body=request)
    save(transcript, tmp_path / "rec.yaml")
    case = load_case(write_case(tmp_path / "rec.yaml", tmp_path / "c"))
    assert case.expect_text == text
    assert case.request["content"] == "Say it\n\nexactly: " + text


def test_the_reference_shows_a_mistral_answer_streamed_as_lists_of_parts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Mistral's chat deltas carry `content` as a list of thinking / text parts.
    cassette = CORPUS_DIR / "test_mistral_model_thinking_part_iter-0-b140a49e.yaml"
    rows = run_rows(capsys, tmp_path, "--case", str(cassette))
    # done without a fault; under the default matrix's mid-stream cut, an error after a prefix
    assert {(r["terminal"], bool(r["fault"])) for r in rows} == {("done", False), ("error", True)}
    answer = next(r["streamed_text"] for r in rows if not r["fault"])
    assert answer.startswith("To cross the street safely")
    assert all(r["streamed_text"] == answer for r in rows if not r["fault"])
    assert all(answer.startswith(r["streamed_text"]) for r in rows if r["fault"])
    assert all(r["violations"] == [] for r in rows)
