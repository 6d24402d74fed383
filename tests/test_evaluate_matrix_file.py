"""``streambench run MATRIX.yaml``: axes from the file, paths relative to it, command-line
options over the file's, and bad files rejected with one line naming the file and the key."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from tests.conftest import cli_exit_code

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CASES = ("chat-hello", "failover-openai-chat")


@pytest.fixture
def matrix_dir(tmp_path: Path) -> Path:
    """A folder elsewhere holding two cases beside the matrix file."""
    folder = tmp_path / "suite"
    for name in CASES:
        shutil.copytree(FIXTURES / name, folder / "cases" / name)
    return folder


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli_exit_code(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_matrix_file_runs_its_axes_with_paths_relative_to_it(
    matrix_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    matrix = matrix_dir / "matrix.yaml"
    matrix.write_text(
        "case: [cases/chat-hello, cases/failover-openai-chat/case.yaml]\n"
        "chunking: [events, 'deltas:1']\n"
        "fault: 'http:529@start'\n"
        "seed: 3\n"
        "out: results\n"
    )
    monkeypatch.chdir(tmp_path)  # not the matrix's folder: paths resolve against the file
    code, out, _ = run(["run", str(matrix), "--format", "json"], capsys)
    assert code == 0
    rows = json.loads(out)
    assert sorted((r["case"], r["chunking"]) for r in rows) == sorted(
        (c, k) for c in CASES for k in ("events", "deltas:1")
    )
    assert {(r["fault"], r["seed"], r["sut"]) for r in rows} == {("http:529@start", 3, "reference")}
    # The fault hits each case's first upstream: the failover case's second one answers.
    outcomes = {(r["case"], r["terminal"], r["upstream_calls"]) for r in rows}
    assert outcomes == {("chat-hello", "error", 1), ("failover-openai-chat", "done", 2)}
    assert (matrix_dir / "results" / "results.parquet").is_file()


def test_command_line_axes_override_the_file(
    matrix_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    matrix = matrix_dir / "matrix.yaml"
    matrix.write_text("cases: [cases]\nchunkings: [events, utf8]\n")
    args = ["run", str(matrix), "--chunking", "bytes:7", "--format", "json"]
    code, out, _ = run([*args, "--out", str(tmp_path / "out")], capsys)
    assert code == 0
    rows = json.loads(out)
    assert {r["chunking"] for r in rows} == {"bytes:7"}
    assert {r["case"] for r in rows} == set(CASES)


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ("case: [cases]\nchunkings: [events]\ncolour: blue\n", "unknown key 'colour'"),
        ("case: [cases]\nchunking: [events, 'bytes:0']\n", "chunking: spec 'bytes:0'"),
        ("case: [cases]\nfaults: ['', 'explode@event=2']\n", "faults: fault 'explode@event=2'"),
        ("case: [cases]\nlatency: 'warp:9'\n", "latency: spec 'warp:9'"),
        ("case: [cases]\nsut: [reference, nomodule]\n", "sut: sut 'nomodule'"),
        ("case: [cases]\ndialect: klingon\n", "dialect: dialect 'klingon'"),
        ("case: [cases]\nseed: [one]\n", "seed: must be integers"),
        ("case: [cases]\nalso: [{seed: [one]}]\n", "also[0]: seed: must be integers"),
        ("case: [cases]\nalso: [{seed: 1}, {chunking: 'bytes:0'}]\n", "also[1]: chunking: spec"),
        ("case: [cases]\nalso: [{colour: blue}]\n", "also[0]: unknown key 'colour'"),
        ("case: [cases]\nalso: [{seed: []}]\n", "also[0]: seed: an empty list gives no runs"),
        ("case: [cases]\nalso: [seed]\n", "also[0]: a mapping of axes"),
        ("case: [cases]\nalso: {seed: 1}\n", "also: a list of extra cells"),
        ("- just\n- a list\n", "a matrix is a mapping"),
        ("case: [cases\n", "not valid YAML"),
    ],
)
def test_a_bad_matrix_file_exits_2_with_one_line_naming_file_and_key(
    content: str, named: str, matrix_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    matrix = matrix_dir / "matrix.yaml"
    matrix.write_text(content)
    code, out, err = run(["run", str(matrix), "--out", str(matrix_dir / "out")], capsys)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"streambench: error: {matrix}: ")
    assert named in err
    assert not (matrix_dir / "out").exists()  # nothing ran


def test_a_missing_matrix_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["run", str(tmp_path / "nope.yaml")], capsys)
    assert code == 2
    assert err.count("\n") == 1 and f"{tmp_path / 'nope.yaml'}: cannot read matrix" in err


def test_a_module_sut_is_found_from_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streambench.suts import load_asgi

    (tmp_path / "my_team_sut.py").write_text(
        "async def app(scope, receive, send):\n    pass\n", encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "my_team_sut", raising=False)
    app = load_asgi("my_team_sut:app")
    assert app.__module__ == "my_team_sut" and app.__name__ == "app"


def test_files_read_with_libyaml_equal_pyyaml_s_reading_and_errors_keep_its_words(
    tmp_path: Path,
) -> None:
    """load_yaml parses with libyaml when PyYAML has it (case files read in pure Python were
    half of checking the default matrix); what it returns is PyYAML's own reading of every
    bundled YAML, and a broken file's message (and line) is still PyYAML's, not libyaml's."""
    import yaml

    from streambench._yaml import SAFE_LOADER, load_yaml
    from streambench.errors import ConfigError

    files = sorted(FIXTURES.rglob("*.yaml"))
    assert len(files) > 30
    for path in files:
        assert load_yaml(path, "case") == yaml.safe_load(path.read_text(encoding="utf-8")), path
    bad = tmp_path / "bad.yaml"
    bad.write_text("case: a: b")
    with pytest.raises(ConfigError) as raised:
        load_yaml(bad, "matrix")
    assert (
        str(raised.value) == f"{bad}: not valid YAML (line 1): mapping values are not allowed here"
    )
    if SAFE_LOADER is not yaml.SafeLoader:  # libyaml words it "... in this context"
        with pytest.raises(yaml.YAMLError, match="not allowed in this context"):
            yaml.load(bad.read_text(), Loader=SAFE_LOADER)
