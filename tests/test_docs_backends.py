"""docs/backends.md as a user follows it: its shell blocks run as written (in a folder holding
docs/examples/ and recordings/), the FastAPI example is graded clean in process and over HTTP,
the gate passes, and the page's claim that a wrong expectation is flagged holds."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import free_port
from streambench.runner.matrix import Matrix

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "backends.md"
BLOCKS = re.findall(r"```sh\n(.*?)```", DOC.read_text(), re.S)
DOC_PORT = "8765"


def shell(block: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """One of the page's ``sh`` blocks under bash, with this venv's commands first on PATH."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for example in (ROOT / "docs" / "examples").iterdir():
        if example.is_file():
            shutil.copy(example, tmp_path / example.name)
    shutil.copytree(ROOT / "recordings", tmp_path / "recordings")
    return tmp_path


def test_the_page_links_its_example_and_the_readme_links_the_page() -> None:
    text = DOC.read_text()
    for name in ("fastapi_backend.py", "chat-body.yaml", "fastapi_backend.dialect.yaml"):
        assert (ROOT / "docs" / "examples" / name).is_file() and f"(examples/{name})" in text
    assert "(docs/backends.md)" in (ROOT / "README.md").read_text()
    assert len(BLOCKS) >= 5


def test_every_command_of_the_page_runs_and_grades_the_fastapi_example_clean(
    folder: Path,
) -> None:
    port = str(free_port())
    outputs = []
    for block in BLOCKS:
        done = shell(block.replace(DOC_PORT, port), folder)
        assert done.returncode == 0, (block, done.stdout[-2000:], done.stderr[-2000:])
        outputs.append(done.stdout + done.stderr)
    runs = [o for o in outputs if "runs in" in o]
    assert len(runs) == 3  # in process, over HTTP, the matrix file
    # the default cells: six splits, the second seed, the mid-stream disconnect under two
    n_runs = len(Matrix(cases=[str(folder / "cases" / "street")]).specs())
    for output in runs:
        assert f"{n_runs} clean, 0 with violations" in output, output
    assert "passed, 0 failed" in outputs[-1]
    for reports in ("reports", "reports-http"):
        rows = pd.read_parquet(folder / reports / "results.parquet")
        assert len(rows) == n_runs and (rows["upstream_calls"] == 1).all()
        whole, cut = rows[rows["fault"] == ""], rows[rows["fault"] != ""]
        assert len(cut) == 2 and (cut["terminal"] == "error").all()
        shown = zip(cut["expected_text"], cut["streamed_text"], strict=True)
        assert all(expected.startswith(text) for expected, text in shown)
        assert (whole["terminal"] == "done").all()
        assert (whole["streamed_text"] == whole["expected_text"]).all()
        assert (whole["final_text"] == whole["expected_text"]).all()
        assert (rows["unknown_events"] == 0).all()
        assert set(rows["dialect_used"]) == {"fastapi_backend.dialect.yaml"}

    # the page's claim: a wrong expectation in the written case is flagged, and the gate fails
    case_file = folder / "cases" / "street" / "case.yaml"
    case = yaml.safe_load(case_file.read_text())
    case["expect"]["text"] = case["expect"]["text"].replace("street", "road")
    case_file.write_text(yaml.safe_dump(case, allow_unicode=True))
    done = shell(BLOCKS[1], folder)
    rows = pd.read_parquet(folder / "reports" / "results.parquet")
    whole = rows[rows["fault"] == ""]
    assert len(whole) == 7 and all(
        "wrong-text" in {v["rule"] for v in vs} for vs in whole["violations"]
    )
    # cut after 20 characters, before "street": what was shown agrees with the changed answer
    cut = rows[rows["fault"] != ""]
    assert all(vs.size == 0 for vs in cut["violations"]), cut["violations"].tolist()
    assert f"2 clean, {len(whole)} with violations" in done.stderr, done.stderr
    gate = shell("streambench gate reports", folder)
    assert gate.returncode == 1 and "wrong-text" in gate.stdout
