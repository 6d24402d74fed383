"""The python examples in docs/pytest-plugin.md run as written (each block is a test file)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "pytest-plugin.md"
BLOCK = re.compile(r"```python\n# (?P<name>test_\w+\.py)\n(?P<code>.*?)```", re.DOTALL)


def test_every_documented_example_passes(pytester: pytest.Pytester) -> None:
    blocks = list(BLOCK.finditer(DOC.read_text(encoding="utf-8")))
    assert len(blocks) == 3
    for block in blocks:
        pytester.makepyfile(**{block["name"][:-3]: block["code"]})
    shutil.copy(ROOT / "fixtures" / "chat-hello" / "upstream.yaml", pytester.path / "hello.yaml")
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3 + 12 + 1)
