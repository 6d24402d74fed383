"""The JSON answers of the streambench wire format (docs/wire-format.md): what a client that
does not accept ``text/event-stream`` gets, and what a refused request gets.

A run answered as one JSON body is read back into the SSE events it stands for, so the outcome
rules judge it as they judge a stream: ``thread``, ``user``, each status, the ``changes``, then
the answer's text as one ``chunk`` and its ``done`` (``assistant_message``) or ``error``
(``error`` and ``partial_content``). A refused request's body is ``{"error": "..."}``.
"""

from __future__ import annotations

import json
from typing import Any

SseEvent = tuple[float, str, str]  # (t_ms, event name, data)


def body_of(chunks: list[tuple[float, bytes]]) -> tuple[float, bytes]:
    """(when the body ended, ms since the request; the whole body)."""
    return (chunks[-1][0] if chunks else 0.0), b"".join(data for _, data in chunks)


def _object(body: bytes) -> tuple[dict[str, Any] | None, str | None]:
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        start = body[:40].decode("utf-8", "replace")
        return None, f"the body is not JSON (it starts {start!r})"
    if not isinstance(value, dict):
        return None, f"the body is JSON {type(value).__name__}, not an object"
    return value, None


def run_answer_events(chunks: list[tuple[float, bytes]]) -> tuple[list[SseEvent], str | None]:
    """The SSE events a run's JSON answer stands for, and what is wrong with its shape (None:
    the documented shape). A body that is no JSON object gives no events."""
    t_ms, body = body_of(chunks)
    answer, problem = _object(body)
    if answer is None:
        return [], problem
    events: list[SseEvent] = []

    def add(name: str, data: Any) -> None:
        events.append((t_ms, name, json.dumps(data, ensure_ascii=False)))

    problems = []
    for key, name in (("thread", "thread"), ("user_message", "user")):
        if isinstance(answer.get(key), dict):
            add(name, answer[key])
        else:
            problems.append(f"{key} is not an object")
    statuses = answer.get("statuses")
    if not isinstance(statuses, list) or not all(isinstance(s, str) for s in statuses):
        problems.append("statuses is not a list of strings")
        statuses = []
    for status in statuses:
        add("status", {"message": status})
    changes = answer.get("changes")
    if isinstance(changes, dict):
        add("changes", changes)
    elif changes is not None:
        problems.append("changes is neither null nor an object")
    final, error = answer.get("assistant_message"), answer.get("error")
    if isinstance(final, dict) and error is None:
        add("chunk", {"content": final.get("content")})
        add("done", final)
    elif isinstance(error, str) and final is None:
        partial = answer.get("partial_content")
        if not isinstance(partial, str):
            problems.append("an error answer without a partial_content string")
            partial = ""
        add("chunk", {"content": partial})
        add("error", {"message": error, "partial_content": partial})
    else:
        problems.append("not exactly one of assistant_message (an object) and error (a string)")
    return events, "; ".join(problems) or None


def refusal_problem(chunks: list[tuple[float, bytes]], expected_error: str | None) -> str | None:
    """What is wrong with a refused request's body (None: a JSON object whose ``error`` string
    contains ``expected_error``, when one is expected)."""
    _, body = body_of(chunks)
    answer, problem = _object(body)
    if answer is None:
        return problem
    error = answer.get("error")
    if not isinstance(error, str) or not error.strip():
        return f"the body {body[:80].decode('utf-8', 'replace')!r} has no error message"
    if expected_error is not None and expected_error not in error:
        return f"the error {error!r} does not say {expected_error!r}"
    return None
