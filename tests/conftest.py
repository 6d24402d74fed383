"""Shared test fixtures: the real provider corpus beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CORPUS_DIR = Path(os.environ.get("STREAMBENCH_CORPUS", REPO_ROOT.parent / "shared" / "corpus"))


def corpus_files() -> list[Path]:
    """Every cassette in ../shared/corpus (empty when the folder is absent)."""
    if not CORPUS_DIR.is_dir():
        return []
    return sorted(CORPUS_DIR.glob("*.yaml"))


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    if not CORPUS_DIR.is_dir():
        pytest.skip(f"corpus folder {CORPUS_DIR} is absent (it sits beside the checkout)")
    return CORPUS_DIR
