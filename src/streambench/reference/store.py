"""Threads and messages in SQLite: the user row before the upstream call, the reply after."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streambench.errors import ConfigError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS threads (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    thread_id TEXT NOT NULL REFERENCES threads(id),
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    code TEXT,
    yaml TEXT,
    provider TEXT,
    model TEXT,
    latency_ms REAL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_thread ON messages(thread_id, created_at);
"""
_MESSAGE_COLUMNS = (
    "id, thread_id, role, content, code, yaml, provider, model, latency_ms, created_at"
)


class StoreError(Exception):
    """Persisting failed (the caller decides whether that ends the request)."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Store:
    """One SQLite connection (``":memory:"`` works); calls are short and run on the loop thread."""

    def __init__(self, path: str | Path) -> None:
        try:
            if str(path) != ":memory:":
                if Path(path).is_dir():
                    raise IsADirectoryError(21, "is a folder")
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            with self._db:
                self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise ConfigError(f"database {path}: cannot open: {why}") from None

    def close(self) -> None:
        self._db.close()

    def thread_exists(self, thread_id: str) -> bool:
        row = self._db.execute("SELECT 1 FROM threads WHERE id = ?", (thread_id,)).fetchone()
        return row is not None

    def create_thread(self) -> str:
        thread_id = uuid.uuid4().hex
        with self._wrap():
            self._db.execute("INSERT INTO threads VALUES (?, ?)", (thread_id, _now()))
        return thread_id

    def messages(self, thread_id: str) -> list[dict[str, Any]]:
        rows = self._db.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE thread_id = ? ORDER BY rowid",
            (thread_id,),
        )
        return [dict(row) for row in rows]

    def add_user_message(self, thread_id: str, content: str) -> dict[str, Any]:
        return self._insert({"thread_id": thread_id, "role": "user", "content": content})

    def add_assistant_message(
        self,
        thread_id: str,
        content: str,
        *,
        code: str | None,
        yaml: str | None,
        provider: str,
        model: str,
        latency_ms: float,
    ) -> dict[str, Any]:
        row = {
            "thread_id": thread_id,
            "role": "assistant",
            "content": content,
            "code": code,
            "yaml": yaml,
            "provider": provider,
            "model": model,
            "latency_ms": latency_ms,
        }
        return self._insert(row)

    def _insert(self, fields: dict[str, Any]) -> dict[str, Any]:
        row = {"id": uuid.uuid4().hex, **fields, "created_at": _now()}
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self._wrap():
            self._db.execute(
                f"INSERT INTO messages ({columns}) VALUES ({marks})", tuple(row.values())
            )
        return row

    @contextmanager
    def _wrap(self) -> Iterator[None]:
        """Commit on success; roll back and raise :class:`StoreError` on an SQLite error."""
        try:
            yield
        except sqlite3.Error as exc:
            self._db.rollback()
            raise StoreError(f"persisting failed: {exc}") from exc
        self._db.commit()
