"""Atomic file writes: a temp file in the target's folder, then ``os.replace``.

A reader (or a crash) sees the old file or the new one, never half of one; with
:func:`replace_folder`, every old file of a folder or every new one, never a mix. The file gets
the permissions a plain ``open(path, "w")`` would give (``0o666`` less the umask), not
``mkstemp``'s private ``0o600``: reports and transcripts are meant to be shared.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from streambench.errors import OutputError


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_read_umask()  # read once: os.umask can only be read by setting it


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(temp_path)``, then move the temp file onto ``path``; returns ``path``.

    A path that cannot be written (a folder, read-only, a full disk) raises :class:`OutputError`
    naming it; the old file, if any, stays as it was.
    """
    if path.is_dir():
        raise OutputError(f"{path}: cannot write: is a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write: {exc.strerror or exc}") from None
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8, line ends as given) atomically to ``path``."""

    def write(tmp: Path) -> None:
        with tmp.open("w", encoding="utf-8", newline="") as handle:
            handle.write(text)

    return atomic_write(path, write)


_RENAME_EXCHANGE = 2  # Linux renameat2 flag: swap two paths in one step
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths atomically (Linux renameat2); False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    flags = _RENAME_EXCHANGE
    return renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), flags) == 0


def _temp_prefix(folder: Path) -> str:
    return f".{folder.name}.tmp-"


def replace_folder(folder: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(temp_folder)``, then put the temp folder in place of ``folder`` in one
    swap: a reader (or a crash) sees every old file or every new one, never a mix. Temp
    folders a killed run left beside ``folder`` are removed first."""
    parent = folder.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        for stale in parent.glob(_temp_prefix(folder) + "*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(folder), dir=parent))
    except OSError as exc:
        raise OutputError(f"{folder}: cannot write: {exc.strerror or exc}") from None
    try:
        write(tmp)
        os.chmod(tmp, 0o777 & ~_read_umask())
        if folder.exists() and not folder.is_dir():
            raise OutputError(f"{folder}: cannot write: is a file, not a folder")
        if not folder.exists():
            os.rename(tmp, folder)
        elif _exchange(tmp, folder):
            shutil.rmtree(tmp)  # (now the old folder)
        else:
            old = Path(f"{tmp}.old")
            os.rename(folder, old)
            os.rename(tmp, folder)
            shutil.rmtree(old)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OutputError):
            raise
        raise OutputError(f"{folder}: cannot write: {exc.strerror or exc}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder
