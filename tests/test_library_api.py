"""The curated API: ``streambench.run`` is ``streambench run`` from Python."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import streambench
from streambench.runner.matrix import DEFAULT_CHUNKINGS, MID_STREAM_FAULT, Matrix

ROOT = Path(__file__).resolve().parents[1]


def _rows(records: list[dict]) -> list[dict]:
    return sorted(records, key=lambda r: json.dumps([r["case"], r["chunking"], r["seed"]]))


def test_run_equals_the_cli_on_the_default_matrix(monkeypatch, tmp_path, capsys) -> None:
    from tests.conftest import cli_exit_code

    monkeypatch.chdir(ROOT)
    library = streambench.run()
    assert cli_exit_code(["run", "--format", "json", "--out", str(tmp_path)]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert len(library) == len(cli) == len(Matrix().specs()) > 0
    assert set(library["chunking"]) == set(DEFAULT_CHUNKINGS)
    assert set(library["seed"]) == {0, 1} and set(library["fault"]) == {"", MID_STREAM_FAULT}
    assert _rows(json.loads(library.to_json(orient="records"))) == _rows(cli)


def test_overrides_and_matrix_objects(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    one = streambench.run(cases=["fixtures/chat-hello"], chunkings=["events"])
    same = streambench.run(Matrix(cases=["fixtures/chat-hello"]), chunkings=["events"])
    assert list(one["case"]) == list(same["case"]) == ["chat-hello"]
    assert one.drop(columns=["timeline_json"]).equals(same.drop(columns=["timeline_json"]))


def test_a_matrix_file_with_out_runs(tmp_path) -> None:
    matrix = tmp_path / "m.yaml"
    case = ROOT / "fixtures" / "chat-hello"
    matrix.write_text(f"case: [{case}]\nchunking: events\nout: here\n")
    rows = streambench.run(matrix)
    assert list(rows["case"]) == ["chat-hello"]


def test_unknown_axis_is_one_line(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    with pytest.raises(streambench.ConfigError, match="unknown axis 'chunking'"):
        streambench.run(chunking=["events"])


def test_lazy_names_resolve() -> None:
    for name in streambench.__all__:
        assert getattr(streambench, name) is not None
    transcript = streambench.load_transcript(ROOT / "recordings" / "anthropic-chat.yaml")
    plan = streambench.build_plan(transcript, "bytes:7")
    assert plan.body == transcript.response.body


def test_library_errors_name_parameters_and_the_cli_names_options(capsys) -> None:
    from tests.conftest import cli_exit_code

    from streambench.runner.dask_executor import make_executor

    with pytest.raises(streambench.ConfigError) as raised:
        make_executor("cluster")
    assert str(raised.value).startswith("executor: 'cluster'")
    assert raised.value.for_cli().startswith("--executor: 'cluster'")
    assert cli_exit_code(["run", "--executor", "cluster"]) == 2
    assert "--executor: 'cluster': expected one of local, dask" in capsys.readouterr().err
