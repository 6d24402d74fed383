"""Faults: what goes wrong, where, with each provider's real error bodies and events.

``http:STATUS@start`` answers with the provider's error response instead of the stream;
the others act at a position of the delivered stream: ``event=N`` (0-based index of the
SSE event, after any content re-split), ``bytes=N`` (delivered bytes) or ``text=N``
(content characters).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from streambench.errors import SpecError
from streambench.replay.specs import parse_term
from streambench.sse import SSEEvent

FAULT_KINDS = ("http", "disconnect", "error-event", "stall", "truncate", "garbage", "duplicate")
_POSITIONS = {
    "disconnect": ("event", "bytes", "text"),
    "error-event": ("event",),
    "stall": ("event",),
    "truncate": ("event",),
    "garbage": ("event",),
    "duplicate": ("event",),
}


@dataclass(frozen=True)
class Fault:
    """One fault. ``at`` is start, event, bytes or text; ``pos`` the index there."""

    spec: str
    kind: str
    at: str
    pos: int = 0
    status: int = 0
    stall_ms: float = 0.0
    retry_after_s: float | None = None

    def fail(self, why: str) -> SpecError:
        return SpecError(f"fault {self.spec!r}: {why}")


def parse_fault(spec: str) -> Fault:
    """``kind@pos=N[,k=v]`` or ``http:STATUS@start[,retry_after=S]``."""
    head, at_sign, where = spec.strip().partition("@")
    if not at_sign or not where:
        raise SpecError(f"fault {spec!r}: expected kind@event=N (or http:STATUS@start)")
    term = parse_term(head, spec)
    if term.name not in FAULT_KINDS:
        raise SpecError(
            f"fault {spec!r}: unknown fault {term.name!r} (known: {', '.join(FAULT_KINDS)})"
        )
    position, _, rest = where.partition(",")
    options = parse_term(f"x:{rest}", spec).options if rest else {}
    if term.name == "http":
        if term.options or term.arg is None:
            raise SpecError(f"fault {spec!r}: use http:STATUS@start")
        status = term.integer("", minimum=100)
        if position != "start" or not 400 <= status <= 599:
            raise SpecError(f"fault {spec!r}: use http:STATUS@start with a 4xx/5xx status")
        if set(options) - {"retry_after"}:
            raise SpecError(f"fault {spec!r}: http faults take only retry_after=S")
        retry = options.get("retry_after")
        retry_s = parse_term(f"x:{retry}", spec).number("", minimum=0) if retry else None
        return Fault(spec, "http", "start", status=status, retry_after_s=retry_s)
    if term.arg is not None or term.options:
        raise SpecError(f"fault {spec!r}: {term.name!r} takes no argument before '@'")
    key, eq, value = position.partition("=")
    if not eq or key not in _POSITIONS[term.name]:
        allowed = " | ".join(f"{k}=N" for k in _POSITIONS[term.name])
        raise SpecError(f"fault {spec!r}: position must be {allowed}")
    pos_term = parse_term(f"x:{value}", spec)
    pos = pos_term.integer("", minimum=0)
    allowed_options = {"ms"} if term.name == "stall" else set()
    if set(options) - allowed_options:
        raise SpecError(
            f"fault {spec!r}: unknown option {sorted(set(options) - allowed_options)[0]!r}"
        )
    stall_ms = 0.0
    if term.name == "stall":
        if "ms" not in options:
            raise SpecError(f"fault {spec!r}: stall needs ms=M (stall@event=N,ms=M)")
        stall_ms = parse_term(f"x:{options['ms']}", spec).number("", minimum=0)
    return Fault(spec, term.name, key, pos=pos, stall_ms=stall_ms)


# ----------------------------------------------------------------- provider error responses

_OPENAI_SERVER_ERROR = "The server had an error while processing your request. Sorry about that!"
_ANTHROPIC_ERRORS = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: (
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: (
        "rate_limit_error",
        "This request would exceed the rate limit for your organization of 50 requests per"
        " minute. For details, refer to: https://docs.claude.com/en/api/rate-limits.",
    ),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}
_OPENAI_ERRORS = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for gpt-4o in organization org-streambench on requests per min"
        " (RPM): Limit 500, Used 500, Requested 1. Please try again in 120ms.",
    ),
    500: (
        "server_error",
        None,
        _OPENAI_SERVER_ERROR,
    ),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}
_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
_REQUEST_ID = "req_011CStreambenchReplay000"


def _provider_family(api: str) -> str:
    if api == "anthropic-messages":
        return "anthropic"
    return "google" if api == "google-generate" else "openai"


def http_error(api: str, status: int, retry_after_s: float | None) -> tuple[dict[str, str], bytes]:
    """Headers and JSON body the provider of ``api`` answers with for ``status``."""
    family = _provider_family(api)
    headers = {"content-type": "application/json"}
    if family == "anthropic":
        kind, message = _ANTHROPIC_ERRORS.get(status, ("api_error", "Internal server error"))
        body: object = {
            "type": "error",
            "error": {"type": kind, "message": message},
            "request_id": _REQUEST_ID,
        }
        headers["request-id"] = _REQUEST_ID
        headers["x-should-retry"] = (
            "true" if status in (408, 409, 429) or status >= 500 else "false"
        )
        if status == 429:
            headers["anthropic-ratelimit-requests-limit"] = "50"
            headers["anthropic-ratelimit-requests-remaining"] = "0"
    elif family == "openai":
        kind, code, message = _OPENAI_ERRORS.get(status, _OPENAI_ERRORS[500])
        body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        headers["x-request-id"] = _REQUEST_ID
        if status == 429:
            headers["x-ratelimit-limit-requests"] = "500"
            headers["x-ratelimit-remaining-requests"] = "0"
            headers["x-ratelimit-reset-requests"] = "120ms"
    else:
        state = _GOOGLE_STATUS.get(status, "INTERNAL")
        message = "The model is overloaded. Please try again later." if status == 503 else state
        body = {"error": {"code": status, "message": message, "status": state}}
    if retry_after_s is None and status == 429:
        retry_after_s = 1
    if retry_after_s is not None:
        headers["retry-after"] = f"{retry_after_s:g}"
    return headers, json.dumps(body, separators=(",", ":")).encode()


def error_event(api: str, sequence_number: int = 0) -> SSEEvent:
    """The provider's own mid-stream error event (after which it closes the stream)."""
    family = _provider_family(api)
    if api == "anthropic-messages":
        data: object = {
            "type": "error",
            "error": {"type": "overloaded_error", "message": "Overloaded"},
            "request_id": _REQUEST_ID,
        }
        return SSEEvent(event="error", data=json.dumps(data, separators=(",", ":")))
    if api == "openai-responses":
        data = {
            "type": "error",
            "code": "server_error",
            "message": _OPENAI_SERVER_ERROR,
            "param": None,
            "sequence_number": sequence_number,
        }
        return SSEEvent(event="error", data=json.dumps(data, separators=(",", ":")))
    if family == "google":
        data = {
            "error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}
        }
    else:
        data = {
            "error": {
                "message": _OPENAI_SERVER_ERROR,
                "type": "server_error",
                "param": None,
                "code": None,
            }
        }
    return SSEEvent(data=json.dumps(data, separators=(",", ":")))
