"""The default matrix's extra cells (a second seed, a mid-stream fault) and ``also:``: a matrix
is a union of cross products, and an axis the user names holds on every run."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from tests.conftest import cli_exit_code

from streambench.runner.cases import case_files
from streambench.runner.matrix import (
    DEFAULT_CHUNKINGS,
    DEFAULT_EXTRA_CELLS,
    MID_STREAM_FAULT,
    ExtraCells,
    Matrix,
    build_matrix,
    load_matrix,
)

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
N_CASES = len(case_files([str(FIXTURES)]))


def _cells(matrix: Matrix) -> Counter[tuple[str, int, str]]:
    """How many runs each (chunking, seed, fault) has."""
    return Counter((s.chunking, s.seed, ";".join(s.faults)) for s in matrix.specs())


def test_the_default_matrix_adds_a_second_seed_and_the_mid_stream_fault_as_extra_cells() -> None:
    matrix = Matrix(cases=[str(FIXTURES)])
    cells = _cells(matrix)
    # every chunking at seed 0 without a fault, for every case
    assert all(cells[(c, 0, "")] == N_CASES for c in DEFAULT_CHUNKINGS)
    # the second seed where a chunking draws from it
    assert cells[("random:min=1,max=64", 1, "")] == N_CASES
    # the fault under events and deltas:1, left out where the case has no 20th character
    skipped = {s.case_path for s, _ in matrix.skipped}
    assert {s.chunking for s, _ in matrix.skipped} == {"events", "deltas:1"}
    assert cells[("events", 0, MID_STREAM_FAULT)] == N_CASES - len(skipped) > 0
    assert cells[("deltas:1", 0, MID_STREAM_FAULT)] == N_CASES - len(skipped)
    base = N_CASES * len(DEFAULT_CHUNKINGS)
    assert sum(cells.values()) == base + N_CASES + 2 * (N_CASES - len(skipped)) < 2 * base


@pytest.mark.parametrize(
    ("pins", "kept"),
    [
        ({}, 2),
        ({"suts": ["reference", "reference:order=text_first"]}, 2),
        ({"latencies": ["tokens:rate=50"]}, 2),
        ({"seeds": [3]}, 1),  # the fault cells stay, at seed 3
        ({"faults": [()]}, 1),  # the seed cells stay
        ({"seeds": [0], "faults": [()]}, 0),  # pinned to the defaults is pinned too
        ({"chunkings": ["events"]}, 0),
    ],
)
def test_a_pinned_axis_holds_on_every_run(pins: dict[str, list[object]], kept: int) -> None:
    matrix, _ = build_matrix(cases=[str(FIXTURES / "chat-hello")], **pins)  # type: ignore[arg-type]
    assert len(matrix.extra_cells()) == kept
    specs = matrix.specs()
    for axis, field in (("seeds", "seed"), ("chunkings", "chunking"), ("suts", "sut")):
        if axis in pins:
            assert {getattr(s, field) for s in specs} == set(pins[axis])
    if "faults" in pins:
        assert {s.faults for s in specs} == set(pins["faults"])
    if not kept:
        product = len(pins.get("chunkings", DEFAULT_CHUNKINGS))
        assert len(specs) == product


def test_the_python_api_pins_the_same_way_and_also_replaces_the_defaults() -> None:
    case = [str(FIXTURES / "chat-hello")]
    assert Matrix(cases=case, seeds=[0]).extra_cells() == [DEFAULT_EXTRA_CELLS[1]]
    assert len(Matrix(cases=case, also=[]).specs()) == len(DEFAULT_CHUNKINGS)
    cells = ExtraCells(seeds=[7], suts=["reference:order=text_first"])
    matrix = Matrix(cases=case, chunkings=["events", "utf8"], also=[cells])
    assert sorted((s.sut, s.chunking, s.seed) for s in matrix.specs()) == [
        ("reference", "events", 0),
        ("reference", "utf8", 0),
        ("reference:order=text_first", "events", 7),
        ("reference:order=text_first", "utf8", 7),
    ]
    # a cell the main product already has runs once
    again = Matrix(cases=case, chunkings=["events"], also=[ExtraCells(seeds=[0, 1])])
    assert sorted(s.seed for s in again.specs()) == [0, 1]


def test_a_matrix_file_adds_cells_with_also(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(
        f"case: [{FIXTURES / 'chat-hello'}, {FIXTURES / 'chat-empty'}]\n"
        "chunking: [events, utf8]\n"
        "also:\n"
        "  - {seed: 1, chunking: 'random:min=1,max=8'}\n"
        f"  - fault: '{MID_STREAM_FAULT}'\n"
    )
    args = ["run", str(matrix), "--format", "json", "--out", str(tmp_path / "out")]
    assert cli_exit_code(args) == 0
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    cells = Counter((r["chunking"], r["seed"], r["fault"]) for r in rows)
    assert cells == {
        ("events", 0, ""): 2,
        ("utf8", 0, ""): 2,
        ("random:min=1,max=8", 1, ""): 2,
        # the fault cells inherit both chunkings; the empty answer has no 20th character
        ("events", 0, MID_STREAM_FAULT): 1,
        ("utf8", 0, MID_STREAM_FAULT): 1,
    }
    assert sum(r["n_violations"] for r in rows) == 0
    assert "2 runs left out (else=skip)" in captured.err
    # a command-line axis drops the file's cells that set it; the others inherit it
    built, _ = build_matrix(matrix, seeds=[5])
    assert built.extra_cells() == [ExtraCells(faults=[(MID_STREAM_FAULT,)])]
    assert {s.seed for s in built.specs()} == {5}
    built, _ = build_matrix(matrix, also=[])
    assert len(built.specs()) == 4
    # a file without also: that names an axis pins it, as on the command line
    matrix.write_text(f"case: [{FIXTURES / 'chat-hello'}]\nseed: [0]\n")
    built, _ = build_matrix(matrix)
    assert built.extra_cells() == [DEFAULT_EXTRA_CELLS[1]]


def test_the_documented_default_cells_are_the_defaults(tmp_path: Path) -> None:
    doc = (ROOT / "docs" / "evaluation.md").read_text()
    section = doc[doc.index("### Extra cells (`also:`)") :]
    block = section[section.index("```yaml\n") + len("```yaml\n") : section.index("```\n", 10)]
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(block)
    assert load_matrix(matrix)["also"] == list(DEFAULT_EXTRA_CELLS)
