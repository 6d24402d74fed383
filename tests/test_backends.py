"""Three example backends graded as a user grades their own: only ``--sut`` options (route,
body template, a query flag) and each backend's dialect file, through the CLI, in process and
over HTTP (``--sut-cmd``). Each is clean when correct and flagged with the right rule when its
bug is switched on, with the same verdicts both ways.

- ``sdk_anthropic`` (official anthropic SDK, tool-call code edits): ``?eager=1`` streams the
  text before the code (``text-before-changes``);
- ``sdk_openai`` (official openai SDK, chat): ``?escape_newlines=1`` shows ``\\n`` escapes
  (``escape-leak``);
- ``tool_backend`` (OpenAI tool calls, two in parallel): ``?schema=v1`` drops the final code
  (``missing-changes``, ``wrong-code``); ``?fast=1`` leaks JSON escapes (``escape-leak``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conftest import cli_exit_code, free_port, run_rows, verdicts
from streambench.transcript import synth
from test_dialects import TEXT, edit_call, make_case

ROOT = Path(__file__).resolve().parents[1]
SUTS = "tests/suts"
ANTHROPIC = ("tests.suts.sdk_anthropic:app", "/v1/chat", f"body={SUTS}/anthropic-body.yaml")
OPENAI = ("tests.suts.sdk_openai:app", "/api/ask", "body.prompt.text=${content}")
TOOLS = ("tests.suts.tool_backend:app", "/v1/edit", f"body={SUTS}/tool_backend-body.yaml")
DIALECT = {
    ANTHROPIC: f"{SUTS}/sdk_anthropic.dialect.yaml",
    OPENAI: f"{SUTS}/sdk_openai.dialect.yaml",
    TOOLS: f"{SUTS}/tool_backend.dialect.yaml",
}
AXES = ["--chunking", "events", "--chunking", "deltas:adversarial", "--latency", "scale:0.05"]


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tool-call job_code case per API (synth), and chat cases written by ``case new``."""
    folder = tmp_path_factory.mktemp("backends")
    anthropic_tool = make_case(
        folder / "anthropic-tool", "anthropic-messages", tool_calls=(edit_call(),)
    )
    parallel = (
        synth.ToolCall("lookup_docs", json.dumps({"q": "state.data"})),
        edit_call("answer", text_answer=TEXT),
    )
    openai_tools = make_case(
        folder / "openai-tools", "openai-chat", text="", tool_calls=parallel, expect_text=TEXT
    )
    chats = {}
    for name in ("anthropic-chat", "openai-chat"):
        recording = ROOT / "recordings" / f"{name}.yaml"
        argv = ["case", "new", "--from", str(recording), "-o", str(folder / name)]
        assert cli_exit_code(argv) == 0
        chats[name] = folder / name
    return {"anthropic-tool": anthropic_tool, "openai-tools": openai_tools, **chats}


def grade(case: Path, sut: str, dialect: str, *extra: str) -> list[str]:
    """The arguments of ``streambench run --case CASE --sut SUT --dialect FILE ...``."""
    return ["--case", str(case), "--sut", sut, "--dialect", dialect, *AXES, *extra]


GRADED = [
    # (backend, case, query flag, the rules its bug must get; () = clean)
    (ANTHROPIC, "anthropic-tool", "", ()),
    (ANTHROPIC, "anthropic-tool", "?eager=1", ("text-before-changes",)),
    (ANTHROPIC, "anthropic-chat", "", ()),
    (OPENAI, "openai-chat", "", ()),
    (OPENAI, "openai-chat", "?escape_newlines=1", ("escape-leak",)),
    (TOOLS, "openai-tools", "", ()),
    (TOOLS, "openai-tools", "?schema=v1", ("missing-changes", "wrong-code")),
    (TOOLS, "openai-tools", "?fast=1", ("escape-leak",)),
]


@pytest.mark.parametrize(
    ("backend", "case", "flag", "rules"),
    GRADED,
    ids=[f"{b[0].split('.')[-1].split(':')[0]}-{c}{f}" for b, c, f, _ in GRADED],
)
def test_each_backend_is_graded_in_process_and_over_http_with_the_same_verdicts(
    backend: tuple[str, str, str],
    case: str,
    flag: str,
    rules: tuple[str, ...],
    cases: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.chdir(ROOT)  # module:attr and the template paths are the user's, from the repo
    module, path, body = backend
    spec = f"{module},path={path}{flag},{body}"
    in_process = run_rows(capsys, tmp_path / "a", *grade(cases[case], spec, DIALECT[backend]))
    port = free_port()
    uvicorn = f"{sys.executable} -m uvicorn {module} --port {port} --log-level warning"
    sut = f"http://127.0.0.1:{port}{path}{flag},{body}"
    argv = grade(cases[case], sut, DIALECT[backend], "--sut-cmd", uvicorn)
    over_http = run_rows(capsys, tmp_path / "b", *argv)
    assert verdicts(over_http) == verdicts(in_process)
    for row in in_process:
        where = (case, flag, row["chunking"])
        found = sorted({v["rule"] for v in row["violations"]})
        assert row["terminal"] == "done" and row["upstream_calls"] == 1, where
        assert row["unknown_events"] == 0 and row["dialect_used"] == DIALECT[backend], where
        if rules:
            assert set(rules) <= set(found), (where, found)
        else:
            assert found == [], (where, found)
            assert row["streamed_text"] == row["expected_text"], where
