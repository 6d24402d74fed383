"""The import direction of docs/architecture.md, checked from the code: no stage imports one
above it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "streambench"
UTILITIES = {"errors", "_atomic", "_yaml", "_server", "_pacing"}
# stage -> the stages it may import (besides itself and the utilities), as in the doc
ALLOWED: dict[str, set[str]] = {
    "sse": set(),
    "providers": {"sse"},
    "answer": set(),
    "transcript": {"sse", "providers"},
    "record": {"transcript", "replay", "answer", "providers", "sse"},
    "replay": {"transcript", "providers", "sse"},
    "reference": {"answer", "record", "providers", "sse"},
    "suts": {"replay", "reference", "transcript", "providers", "sse"},
    "grade": {"answer", "replay", "transcript", "providers", "sse"},
}
BELOW_RUNNER = set(ALLOWED) | {"suts", "grade"}
ALLOWED["runner"] = BELOW_RUNNER
ALLOWED["report"] = {"runner", "grade"}
ALLOWED["uses"] = BELOW_RUNNER | {"runner", "report"}
ALLOWED["testing"] = BELOW_RUNNER | {"runner", "report"}
TOP = {"cli", "__init__", "__main__"}  # may import anything


def _stage(module: str) -> str:
    """``streambench.grade.rules`` -> ``grade``; ``streambench`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> set[str]:
    """The streambench modules ``path`` imports, wherever the import statement is."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "streambench":
                found |= {f"streambench.{alias.name}" for alias in node.names}
            elif node.module.startswith("streambench."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("streambench.")}
    return found


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out.append((".".join(parts).removesuffix(".__init__"), path))
    return out


def test_every_stage_is_placed() -> None:
    stages = {_stage(module) for module, _ in _modules()}
    assert stages - set(ALLOWED) - UTILITIES - TOP == set()


@pytest.mark.parametrize(("module", "path"), _modules(), ids=[m for m, _ in _modules()])
def test_imports_go_down_the_stages(module: str, path: Path) -> None:
    stage = _stage(module)
    if stage in TOP:
        return
    allowed = ALLOWED.get(stage, set()) | UTILITIES | {stage}
    if stage in UTILITIES:
        allowed = UTILITIES
    upward = sorted(
        target
        for target in _imports(path)
        if _stage(target) not in allowed and _stage(target) != "__version__"
    )
    assert upward == [], f"{module} ({stage}) imports a stage above it: {upward}"
