"""Every ```python example in docs/ runs as written, from a folder laid out like the checkout
(docs/pytest-plugin.md's examples are pytest files: tests/test_docs_pytest_plugin.py runs
them with pytester)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from streambench.cli import main
from streambench.grade.rules import RULES

REPO = Path(__file__).resolve().parents[1]
PYTEST_FILE_DOCS = {"pytest-plugin.md"}
EXAMPLES = [
    pytest.param(doc, i, code, id=f"{doc.name}#{i}")
    for doc in sorted((REPO / "docs").glob("*.md"))
    if doc.name not in PYTEST_FILE_DOCS
    for i, code in enumerate(re.findall(r"```python\n(.*?)```", doc.read_text(), re.S))
]


def _prepare(folder: Path, doc: str) -> None:
    """What the page's earlier shell steps leave behind."""
    shutil.copytree(REPO / "recordings", folder / "recordings")
    (folder / "fixtures").symlink_to(REPO / "fixtures")
    if doc == "experiments.md":  # `streambench run MATRIX --out runs/a|b`, as the page shows
        for matrix, out in (("changes_first", "runs/a"), ("text_first", "runs/b")):
            with pytest.raises(SystemExit) as exited:
                main(["run", f"fixtures/experiments/{matrix}.yaml", "--out", out])
            assert exited.value.code in (0, None)


def test_docs_have_python_examples() -> None:
    assert len(EXAMPLES) >= 6


@pytest.mark.parametrize(("doc", "index", "code"), EXAMPLES)
def test_doc_example_runs(
    doc: Path, index: int, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _prepare(tmp_path, doc.name)
    registered = dict(RULES)  # an example's register_rule must not leak into other tests
    try:
        exec(compile(code, f"{doc}#{index}", "exec"), {"__name__": f"docs_{doc.stem}"})
    finally:
        RULES.clear()
        RULES.update(registered)
