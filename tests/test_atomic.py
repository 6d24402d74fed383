"""Atomic writes (transcripts, reports, experiment pages): all or nothing, shareable modes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from streambench._atomic import atomic_write, atomic_write_text


def test_the_file_gets_the_mode_a_plain_open_would(tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    written = atomic_write_text(tmp_path / "sub" / "atomic.txt", "héllo\r\n")
    assert written.read_bytes() == "héllo\r\n".encode()
    assert stat.S_IMODE(written.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = atomic_write_text(tmp_path / "report.html", "old")

    def half_then_fail(tmp: Path) -> None:
        tmp.write_text("new, but only half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["report.html"]
