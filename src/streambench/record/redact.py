"""Redaction before anything touches disk, and the secret scanner behind ``streambench scan``.

:class:`Redactor` removes credentials from a transcript: sensitive headers (Authorization,
API keys, cookies), ``key=`` / ``api_key=`` query parameters, provider key formats anywhere
in the request, and whatever a config adds (headers, query parameters, JSON-body paths,
regexes). Response bodies keep their byte length (matches become ``*``) so the recorded chunk
boundaries still add up.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from streambench._yaml import load_yaml
from streambench.errors import ConfigError
from streambench.transcript import REDACTED, SENSITIVE_HEADERS, Transcript

QUERY_PARAMS = frozenset({"key", "api_key", "apikey", "access_token"})

# Provider key formats; the lookbehind keeps them from matching inside longer tokens.
_EDGE = r"(?<![A-Za-z0-9_\-])"
KEY_PATTERNS: dict[str, re.Pattern[str]] = {
    "anthropic-key": re.compile(_EDGE + r"sk-ant-[A-Za-z0-9_\-]{16,}"),
    "openai-project-key": re.compile(_EDGE + r"sk-proj-[A-Za-z0-9_\-]{16,}"),
    "openai-key": re.compile(_EDGE + r"sk-(?!ant-|proj-)[A-Za-z0-9_\-]{20,}"),
    "google-key": re.compile(_EDGE + r"AIza[0-9A-Za-z_\-]{35}"),
}
# Places a credential sits in a saved file: header lines and query strings.
_NOT_REDACTED = r"(?!<redacted>|\*+\b)"
CONTEXT_PATTERNS: dict[str, re.Pattern[str]] = {
    "bearer-token": re.compile(r"(?i)\bbearer\s+" + _NOT_REDACTED + r"[A-Za-z0-9._~+/\-]{8,}=*"),
    "api-key-header": re.compile(
        r"(?i)\b(?:x-api-key|api-key|x-goog-api-key)[\"']?\s*:\s*[\"']?"
        + _NOT_REDACTED
        + r"[A-Za-z0-9_\-]{8,}"
    ),
    "key-query-param": re.compile(
        r"(?i)[?&](?:key|api_key|apikey|access_token)=" + _NOT_REDACTED + r"[^&\s\"'<]{8,}"
    ),
}


@dataclass(frozen=True)
class RedactionConfig:
    """What to redact beyond the built-ins. ``json_paths`` are dotted (``metadata.user_id``;
    ``*`` matches any key or list index)."""

    headers: frozenset[str] = frozenset()
    query_params: frozenset[str] = frozenset()
    json_paths: tuple[str, ...] = ()
    patterns: tuple[re.Pattern[str], ...] = ()

    def merged(self, other: RedactionConfig) -> RedactionConfig:
        return RedactionConfig(
            self.headers | other.headers,
            self.query_params | other.query_params,
            self.json_paths + other.json_paths,
            self.patterns + other.patterns,
        )


def compile_patterns(patterns: Iterable[str], where: str) -> tuple[re.Pattern[str], ...]:
    compiled = []
    for p in patterns:
        try:
            compiled.append(re.compile(p))
        except re.error as exc:
            raise ConfigError(f"{where}: pattern {p!r} is not a valid regex: {exc}") from None
    return tuple(compiled)


def make_config(
    headers: Iterable[str] = (),
    query_params: Iterable[str] = (),
    json_paths: Iterable[str] = (),
    patterns: Iterable[str] = (),
    where: str = "options",
) -> RedactionConfig:
    return RedactionConfig(
        frozenset(h.lower() for h in headers),
        frozenset(query_params),
        tuple(json_paths),
        compile_patterns(patterns, where),
    )


def load_config(path: str | Path) -> RedactionConfig:
    """A redaction config YAML: ``headers``, ``query``, ``json_paths``, ``patterns`` (lists)."""
    p = Path(path)
    data = load_yaml(p, "redaction config") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: a redaction config is a mapping")
    lists: dict[str, list[str]] = {}
    for key in ("headers", "query", "json_paths", "patterns"):
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{p}: {key} must be a list of strings")
        lists[key] = value
    unknown = set(data) - set(lists)
    if unknown:
        raise ConfigError(f"{p}: unknown key(s) {', '.join(sorted(unknown))}")
    return make_config(
        lists["headers"], lists["query"], lists["json_paths"], lists["patterns"], str(p)
    )


@dataclass(frozen=True)
class Redactor:
    config: RedactionConfig = field(default_factory=RedactionConfig)

    @property
    def _patterns(self) -> tuple[re.Pattern[str], ...]:
        return (*KEY_PATTERNS.values(), *self.config.patterns)

    def text(self, text: str) -> str:
        for pattern in self._patterns:
            text = pattern.sub(REDACTED, text)
        return text

    def body_bytes(self, body: bytes) -> bytes:
        """Matches become ``*`` of the same byte length: chunk boundaries stay valid."""
        for pattern in self._patterns:
            raw = re.compile(pattern.pattern.encode(), pattern.flags & ~re.UNICODE)
            body = raw.sub(lambda m: b"*" * len(m.group()), body)
        return body

    def headers(self, headers: dict[str, str]) -> dict[str, str]:
        names = SENSITIVE_HEADERS | self.config.headers
        return {k: REDACTED if k.lower() in names else self.text(v) for k, v in headers.items()}

    def url(self, url: str) -> str:
        parts = urlsplit(url)
        if not parts.query:
            return self.text(url)
        names = QUERY_PARAMS | self.config.query_params
        query = [
            (k, REDACTED if k in names or k.lower() in names else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ]
        return self.text(urlunsplit(parts._replace(query=urlencode(query, safe="<>"))))

    def json_body(self, body: Any) -> Any:
        for path in self.config.json_paths:
            body = _redact_path(body, path.split("."))
        return _map_strings(body, self.text)

    def transcript(self, t: Transcript) -> Transcript:
        request = replace(
            t.request,
            url=self.url(t.request.url),
            headers=self.headers(t.request.headers),
            body=self.json_body(t.request.body),
        )
        response = replace(
            t.response,
            headers=self.headers(t.response.headers),
            body=self.body_bytes(t.response.body),
        )
        return replace(t, request=request, response=response)


def _redact_path(data: Any, path: list[str]) -> Any:
    if not path:
        return REDACTED
    head, rest = path[0], path[1:]
    if isinstance(data, dict):
        return {k: _redact_path(v, rest) if head in ("*", k) else v for k, v in data.items()}
    if isinstance(data, list):
        return [_redact_path(v, rest) if head in ("*", str(i)) else v for i, v in enumerate(data)]
    return data


def _map_strings(data: Any, fn: Any) -> Any:
    if isinstance(data, str):
        return fn(data)
    if isinstance(data, dict):
        return {k: _map_strings(v, fn) for k, v in data.items()}
    if isinstance(data, list):
        return [_map_strings(v, fn) for v in data]
    return data


# --- scanning -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    path: Path
    line: int
    kind: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.kind}"


def scan_text(text: str, path: Path, extra: tuple[re.Pattern[str], ...] = ()) -> Iterator[Finding]:
    kinds = {**KEY_PATTERNS, **CONTEXT_PATTERNS}
    kinds.update({f"pattern {p.pattern}": p for p in extra})
    for number, line in enumerate(text.splitlines(), start=1):
        for kind, pattern in kinds.items():
            if pattern.search(line):
                yield Finding(path, number, kind)


def _scan_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            yield from sorted(f for f in p.rglob("*") if f.is_file() and ".git" not in f.parts)
        elif p.is_file():
            yield p
        else:
            raise ConfigError(f"{p}: no such file or folder")


def scan(paths: Iterable[str | Path], extra: tuple[re.Pattern[str], ...] = ()) -> list[Finding]:
    """Secrets in the files (folders recursively): provider key formats, bearer tokens,
    key headers and query parameters that are not redacted, and ``extra`` patterns."""
    findings: list[Finding] = []
    for path in _scan_files(paths):
        try:
            text = path.read_bytes().decode("utf-8", errors="replace")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
        findings.extend(scan_text(text, path, extra))
    return findings
