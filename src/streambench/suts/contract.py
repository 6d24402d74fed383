"""The SUT contract: which route, method and headers a SUT is called with, and the JSON body
built from the case by a template.

A template is any YAML/JSON value; a string ``"${name}"`` is replaced by the case field's
value (any JSON type), ``"... ${name} ..."`` interpolates it as text, and ``${name:-default}``
gives a YAML default when the case has no such field. Names are the request's fields
(``content``, ``context``, ``history``, ...), dotted paths into them (``context.expression``),
``mode``, ``case`` (the case's name) and ``request`` (the whole request).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from streambench._yaml import load_yaml
from streambench.errors import SpecError

_PLACEHOLDER = re.compile(r"\$\{([^}:]+)(?::-([^}]*))?\}")
_MISSING = object()
METHODS = ("POST", "PUT", "PATCH")
# Contract options every ASGI and HTTP SUT takes (header.NAME and body.KEY are families).
CONTRACT_OPTIONS = frozenset({"path", "method", "body"})


@dataclass(frozen=True)
class Contract:
    """How a case becomes the SUT's request. ``body`` None sends the case's request as is."""

    path: str = "/messages"
    method: str = "POST"
    headers: tuple[tuple[str, str], ...] = ()
    body: Any = None
    body_source: str = ""  # where the template came from, for messages
    # a case's HTTP surface (runner/cases.py): bytes sent instead of the rendered JSON, and
    # the status it expects (a status the case expects needs no hint, see explain_status)
    raw_body: bytes | None = None
    expect_status: int | None = None

    def for_case(
        self,
        headers: tuple[tuple[str, str], ...] = (),
        raw_body: bytes | None = None,
        status: int | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> Contract:
        """This contract with a case's HTTP surface: its request headers (which win), raw
        body, expected status, method and path (None: the contract's)."""
        names = {k for k, _ in headers}
        own = tuple((k, v) for k, v in self.headers if k not in names) + headers
        return replace(
            self,
            headers=own,
            raw_body=raw_body,
            expect_status=status,
            method=method or self.method,
            path=path or self.path,
        )

    def payload(self, rendered: Any) -> bytes:
        """The request body: the case's raw body, else ``rendered`` as JSON."""
        return self.raw_body if self.raw_body is not None else json.dumps(rendered).encode()

    def render(self, body: dict[str, Any], case: str = "") -> Any:
        """The JSON to send for the case's request ``body`` (``mode`` included)."""
        if self.body is None:
            return body
        fields = {**body, "request": body, "case": case}
        return _render(self.body, fields, self.body_source)

    def header_list(self, content_length: int) -> list[tuple[str, str]]:
        """Request headers: the SSE defaults, then the contract's own (which win)."""
        own = {k.lower() for k, _ in self.headers}
        defaults = [
            ("content-type", "application/json"),
            ("accept", "text/event-stream"),
        ]
        merged = [(k, v) for k, v in defaults if k not in own] + list(self.headers)
        return [*merged, ("content-length", str(content_length))]


def thread_of(chunks: list[tuple[float, bytes]]) -> str | None:
    """The thread an answer opened: the ``id`` of its first SSE ``thread`` event, or the JSON
    answer's ``thread.id`` (docs/wire-format.md); None when it names none."""
    from streambench.sse import SSEDecoder

    body = b"".join(data for _, data in chunks)
    decoder = SSEDecoder()
    events = [*decoder.feed(body), *decoder.close()]
    found = next((e.data for e in events if e.event == "thread"), None)
    try:
        value = json.loads(found if found is not None else body)
    except (ValueError, RecursionError):
        return None
    value = value.get("thread", value) if isinstance(value, dict) and found is None else value
    thread = value.get("id") if isinstance(value, dict) else None
    return thread if isinstance(thread, str) else None


def _lookup(fields: dict[str, Any], name: str) -> Any:
    value: Any = fields
    for part in name.strip().split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _resolve(match: re.Match[str], fields: dict[str, Any], source: str) -> Any:
    name, default = match.group(1), match.group(2)
    value = _lookup(fields, name)
    if value is not _MISSING:
        return value
    if default is not None:
        return yaml.safe_load(default) if default else ""
    known = ", ".join(sorted(k for k in fields if k != "request"))
    raise SpecError(
        f"body template {source}: ${{{name}}}: the case has no such field (known: {known});"
        f" give a default as ${{{name}:-VALUE}}"
    )


def _render(template: Any, fields: dict[str, Any], source: str) -> Any:
    if isinstance(template, dict):
        return {k: _render(v, fields, source) for k, v in template.items()}
    if isinstance(template, list):
        return [_render(v, fields, source) for v in template]
    if not isinstance(template, str):
        return template
    whole = _PLACEHOLDER.fullmatch(template)
    if whole:
        return _resolve(whole, fields, source)

    def text(match: re.Match[str]) -> str:
        value = _resolve(match, fields, source)
        return value if isinstance(value, str) else json.dumps(value)

    return _PLACEHOLDER.sub(text, template)


def _set_dotted(target: dict[str, Any], dotted: str, value: Any, spec: str) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        child = target.setdefault(part, {})
        if not isinstance(child, dict):
            raise SpecError(f"sut {spec!r}: body.{dotted}: {part!r} is already a value")
        target = child
    target[last] = value


def parse_contract(options: dict[str, str], spec: str, base: Path | None = None) -> Contract:
    """The contract from a SUT spec's options: ``path=/chat``, ``method=PUT``,
    ``header.NAME=VALUE``, ``body=FILE.yaml`` and/or ``body.KEY=VALUE`` (dotted keys nest;
    values are YAML scalars or ``${field}``). Unknown keys are left for the caller."""
    path = options.get("path", "/messages")
    if not path.startswith("/"):
        raise SpecError(f"sut {spec!r}: path={path!r} must start with '/'")
    method = options.get("method", "POST").upper()
    if method not in METHODS:
        raise SpecError(f"sut {spec!r}: method={method!r} is not one of {', '.join(METHODS)}")
    headers = tuple(
        (key.partition(".")[2].lower(), value)
        for key, value in options.items()
        if key.startswith("header.") and key != "header."
    )
    body: Any = None
    source = ""
    if "body" in options:
        file = Path(options["body"])
        if base is not None and not file.is_absolute():
            file = base / file
        if not file.is_file():
            raise SpecError(f"sut {spec!r}: body={options['body']!r}: no such template file")
        body, source = load_yaml(file, "body template"), str(file)
    inline = {k.partition(".")[2]: v for k, v in options.items() if k.startswith("body.")}
    if inline:
        if body is None:
            body, source = {}, spec
        if not isinstance(body, dict):
            raise SpecError(f"sut {spec!r}: body.KEY= needs a mapping template")
        for dotted, raw in inline.items():
            value = raw if _PLACEHOLDER.fullmatch(raw) else yaml.safe_load(raw)
            _set_dotted(body, dotted, value, spec)
    return Contract(path, method, headers, body, source)


def contract_keys(options: dict[str, str]) -> set[str]:
    """The options :func:`parse_contract` reads."""
    return {k for k in options if k in CONTRACT_OPTIONS or k.startswith(("header.", "body."))}


def explain_status(status: int, contract: Contract, where: str) -> str | None:
    """What to set when the SUT refused the request itself (404, 405, 415, 422), else None
    (also for the status the case expects)."""
    if status == contract.expect_status:
        return None
    sent = f"{contract.method} {contract.path}"
    if status == 404:
        return f"{where} answered 404 to {sent}: set its route with path=/your/route"
    if status == 405:
        return f"{where} answered 405 to {sent}: set the method with method=PUT (or the route)"
    if status == 415:
        return (
            f"{where} answered 415 to {sent} (content-type application/json): set"
            " header.content-type=... or a body template with body=FILE.yaml"
        )
    if status == 422:
        return (
            f"{where} answered 422 to {sent}: the body does not match what it expects; build it"
            " with body=FILE.yaml or body.KEY=${field}"
        )
    return None
