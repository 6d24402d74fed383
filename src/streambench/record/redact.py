"""Redaction before anything is written or sent, and the secret scanner behind ``streambench scan``.

One :class:`Redactor` serves every path that writes or sends: the recorder, the proxy, cassette
import, the reference server's error events and their log lines. It removes credentials by
header name (:data:`~streambench.transcript.SENSITIVE_HEADERS` and names ending like one, plus
configured), inside any header value (a ``Bearer eyJ...`` in a custom header), in URLs (userinfo,
:data:`QUERY_PARAMS` plus configured), in JSON bodies (values, and keys named like a credential),
and in response bodies after content decoding (a gzip body is stored decoded). Response bodies
keep their byte length (secrets become ``*``) so the recorded chunk boundaries still add up.

The scanner looks for the same :data:`SECRET_PATTERNS`, decodes ``body_b64`` / ``!!binary``
blocks (and gzip inside them) first, and ignores :data:`PLACEHOLDERS` (``YOUR_API_KEY``,
``<redacted>``, ``${KEY}``, ``sk-...``) and prose (``bearer authentication``).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

from streambench._yaml import load_yaml
from streambench.errors import ConfigError
from streambench.transcript import REDACTED, SENSITIVE_HEADERS, Transcript, encoding

# Query parameters and JSON keys that hold a credential (compared lower-case).
QUERY_PARAMS = frozenset(
    {"key", "api_key", "apikey", "api-key", "access_token", "token", "auth", "auth_token",
     "client_secret", "password", "secret", "sig", "signature", "x-goog-api-key",
     "x-amz-security-token", "x-amz-signature", "refresh_token", "id_token", "session_token"}
)  # fmt: skip
JSON_KEYS = QUERY_PARAMS - {"key", "token", "auth", "sig", "signature"}  # common in API bodies
# A header whose name ends like one of these is a credential whatever its prefix.
_HEADER_SUFFIXES = ("-api-key", "-auth-token", "-security-token", "-session-token",
                    "-access-token", "-secret")  # fmt: skip

_EDGE = r"(?<![A-Za-z0-9_\-])"
_QUERY_NAMES = "|".join(sorted((re.escape(n) for n in QUERY_PARAMS), key=len, reverse=True))
_JSON_NAMES = "|".join(sorted((re.escape(n) for n in JSON_KEYS), key=len, reverse=True))
_HEADER_NAMES = "|".join(
    sorted((re.escape(n) for n in SENSITIVE_HEADERS - {"cookie", "set-cookie"}), key=len)[::-1]
)

# Every secret format, as a regex whose ``secret`` group (or whole match) is the secret.
SECRET_PATTERNS: dict[str, re.Pattern[str]] = {
    "anthropic-key": re.compile(_EDGE + r"sk-ant-[A-Za-z0-9_\-]{16,}"),
    "openai-project-key": re.compile(_EDGE + r"sk-proj-[A-Za-z0-9_\-]{16,}"),
    "openai-key": re.compile(_EDGE + r"sk-(?!ant-|proj-)[A-Za-z0-9_\-]{20,}"),
    "google-key": re.compile(_EDGE + r"AIza[0-9A-Za-z_\-]{35}"),
    "aws-access-key": re.compile(_EDGE + r"(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Za-z0-9])"),
    "jwt": re.compile(_EDGE + r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*"),
    "bearer-token": re.compile(r"(?i)\bbearer\s+(?P<secret>[A-Za-z0-9._~+/\-]{8,}=*)"),
    "basic-auth": re.compile(r"(?i)\bbasic\s+(?P<secret>[A-Za-z0-9+/]{6,}={0,2})(?![\w+/=])"),
    "api-key-header": re.compile(
        r"(?i)(?<![\w-])(?:" + _HEADER_NAMES + r")[\"']?\s*[:=]\s*[\"']?"
        r"(?!bearer\s|basic\s)(?P<secret>[A-Za-z0-9_\-+/=.:]{8,})"
    ),
    "cookie": re.compile(
        r"(?i)(?<![\w-])(?:set-)?cookie[\"']?\s*:\s*[\"']?(?P<secret>[^\s;=\"']+=[^\s;\"']{8,})"
    ),
    "json-key": re.compile(
        r"(?i)\\?[\"'](?:" + _JSON_NAMES + r")\\?[\"']\s*:\s*\\?[\"'](?P<secret>[^\"'\\\s]{6,})"
    ),
    "key-query-param": re.compile(
        r"(?i)[?&](?:" + _QUERY_NAMES + r")=(?P<secret>[^&\s\"'<>#]{6,})"
    ),
    "url-userinfo": re.compile(
        r"(?i)\b[a-z][a-z0-9+.\-]*://(?P<secret>[^/\s@\"'<>:]*:[^/\s@\"'<>]+)@"
    ),
}
# Documented stand-ins that are not secrets: matched against the secret part of a finding.
PLACEHOLDERS: tuple[re.Pattern[str], ...] = (
    re.compile(r"^<[^<>]*>$"),  # <redacted>, <your-key>
    re.compile(r"^\*+$"),  # masked in a body
    re.compile(r"^\$\{?[A-Za-z_][A-Za-z0-9_]*\}?$"),  # $KEY, ${OPENAI_API_KEY}
    re.compile(r"^\{\{?[^{}]*\}?\}$"),  # {key}, {{ token }}
    re.compile(r"^(?:YOUR|MY|THE)[_\-A-Z0-9]*$", re.IGNORECASE),  # YOUR_API_KEY
    re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$"),  # API_KEY, OPENAI_API_KEY
    re.compile(r"(?i)x{6,}|\.\.\.|…|redacted|placeholder|changeme|example|dummy|not-a-real"),
)
# Replaced as ``<redacted>`` in text; in a body, by ``*`` of the same length.
_KEY_ONLY = ("anthropic-key", "openai-project-key", "openai-key", "google-key")
KEY_PATTERNS = {k: SECRET_PATTERNS[k] for k in _KEY_ONLY}  # the bare provider key formats


def is_placeholder(secret: str) -> bool:
    """Whether ``secret`` is a documented stand-in (see :data:`PLACEHOLDERS`), not a secret."""
    return any(p.search(secret) for p in PLACEHOLDERS)


def _is_secret(kind: str, secret: str) -> bool:
    if is_placeholder(secret):
        return False
    if kind == "bearer-token":
        # Prose ("bearer authentication") has no digit; real tokens do.
        return any(c.isdigit() for c in secret)
    if kind == "basic-auth":
        try:
            decoded = base64.b64decode(secret + "=" * (-len(secret) % 4), validate=True)
        except (binascii.Error, ValueError):
            return False
        return b":" in decoded and decoded.isascii()
    if kind == "url-userinfo":
        return not is_placeholder(secret.partition(":")[2])
    if kind in ("api-key-header", "key-query-param", "json-key"):
        return any(c.isdigit() for c in secret) or len(secret) >= 16
    return True


def _secret_span(match: re.Match[str]) -> tuple[int, int]:
    return match.span("secret") if "secret" in match.re.groupindex else match.span()


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


def compile_patterns(
    patterns: Iterable[str], where: str | None = None, param: str = "patterns"
) -> tuple[re.Pattern[str], ...]:
    """The regexes, each checked: valid, and never matching the empty string. Errors name
    ``where`` (a file), else the parameter ``param``."""
    compiled = []
    for p in patterns:
        try:
            pattern = re.compile(p)
        except re.error as exc:
            raise _config_error(
                f"pattern {p!r} is not a valid regex: {exc}", where, param
            ) from None
        if pattern.fullmatch(""):
            raise _config_error(f"pattern {p!r} matches the empty string", where, param)
        compiled.append(pattern)
    return tuple(compiled)


def _config_error(detail: str, where: str | None, param: str) -> ConfigError:
    """An error naming the file ``where`` when the value came from one, else ``param``."""
    return ConfigError(f"{where}: {detail}") if where else ConfigError(detail, param=param)


def _names(values: Iterable[str], what: str, where: str | None, param: str) -> frozenset[str]:
    names = frozenset(v.strip().lower() for v in values)
    if "" in names:
        raise _config_error(f"an empty {what} name", where, param)
    return names


def make_config(
    headers: Iterable[str] = (),
    query_params: Iterable[str] = (),
    json_paths: Iterable[str] = (),
    patterns: Iterable[str] = (),
    where: str | None = None,
) -> RedactionConfig:
    """A config from lists; errors name ``where`` (a file), else the parameter."""
    return RedactionConfig(
        _names(headers, "header", where, "headers"),
        _names(query_params, "query parameter", where, "query_params"),
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
        raise ConfigError(f"{p}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    return make_config(
        lists["headers"], lists["query"], lists["json_paths"], lists["patterns"], str(p)
    )


def _bytes_pattern(pattern: re.Pattern[str]) -> re.Pattern[bytes]:
    return re.compile(pattern.pattern.encode(), pattern.flags & ~re.UNICODE)


@dataclass(frozen=True)
class Redactor:
    """Credentials out of transcripts, URLs, headers, bodies and log text (see the module doc)."""

    config: RedactionConfig = field(default_factory=RedactionConfig)

    @property
    def _patterns(self) -> tuple[tuple[str, re.Pattern[str]], ...]:
        custom = tuple((f"pattern {p.pattern}", p) for p in self.config.patterns)
        return (*SECRET_PATTERNS.items(), *self._query_patterns, *custom)

    @property
    def _query_patterns(self) -> tuple[tuple[str, re.Pattern[str]], ...]:
        if not self.config.query_params:
            return ()
        names = "|".join(re.escape(n) for n in sorted(self.config.query_params))
        pattern = re.compile(r"(?i)[?&](?:" + names + r")=(?P<secret>[^&\s\"'<>#]+)")
        return (("key-query-param", pattern),)

    def _sub(self, text: str, replacement: Callable[[str], str]) -> str:
        for kind, pattern in self._patterns:

            def swap(m: re.Match[str], kind: str = kind) -> str:
                start, end = _secret_span(m)
                secret = m.string[start:end]
                if kind.startswith("pattern ") or _is_secret(kind, secret):
                    whole = m.group()
                    i, j = start - m.start(), end - m.start()
                    return whole[:i] + replacement(secret) + whole[j:]
                return m.group()

            text = pattern.sub(swap, text)
        return text

    def text(self, text: str) -> str:
        """``text`` with every secret replaced by ``<redacted>`` (logs, URLs, error messages)."""
        return self._sub(text, lambda _: REDACTED)

    def body_bytes(self, body: bytes) -> bytes:
        """Secrets become ``*`` of the same byte length: chunk boundaries stay valid."""
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = body.decode("latin-1")  # one char per byte: lengths are kept either way
            return self._sub(text, lambda s: "*" * len(s)).encode("latin-1")
        return self._sub(text, lambda s: "*" * len(s.encode())).encode("utf-8")

    def header_names(self) -> frozenset[str]:
        return SENSITIVE_HEADERS | self.config.headers

    def is_sensitive_header(self, name: str) -> bool:
        name = name.lower()
        return name in self.header_names() or name.endswith(_HEADER_SUFFIXES)

    def headers(self, headers: dict[str, str]) -> dict[str, str]:
        return {
            k: REDACTED if self.is_sensitive_header(k) else self.text(v) for k, v in headers.items()
        }

    def url(self, url: str) -> str:
        """``url`` without userinfo, with credential query parameters replaced."""
        try:
            parts = urlsplit(url)
            netloc = parts.netloc
        except ValueError:
            return self.text(url)
        if "@" in netloc:
            netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
        names = QUERY_PARAMS | self.config.query_params
        query = parts.query
        if query:
            pairs = [
                (k, REDACTED if k.lower() in names else v)
                for k, v in parse_qsl(query, keep_blank_values=True)
            ]
            query = "&".join(
                f"{quote(k, safe='')}={quote(v, safe='<>')}" if v or "=" in query else k
                for k, v in pairs
            )
        return self.text(urlunsplit(parts._replace(netloc=netloc, query=query)))

    def json_body(self, body: Any) -> Any:
        for path in self.config.json_paths:
            body = _redact_path(body, path.split("."))
        return _map_json(body, self.text)

    def transcript(self, t: Transcript) -> Transcript:
        """A redacted copy; a content-encoded response body is stored decoded (or dropped)."""
        response = t.response
        notes = t.meta.notes
        if encoding.codings(response.headers):
            response, note = _decoded_response(t)
            notes = f"{notes}; {note}" if notes else note
        request = replace(
            t.request,
            url=self.url(t.request.url),
            headers=self.headers(t.request.headers),
            body=self.json_body(t.request.body),
        )
        response = replace(
            response,
            headers=self.headers(response.headers),
            body=self.body_bytes(response.body),
        )
        meta = replace(
            t.meta,
            source=None if t.meta.source is None else self.text(t.meta.source),
            notes=None if notes is None else self.text(notes),
        )
        return replace(t, meta=meta, request=request, response=response)


def _decoded_response(t: Transcript) -> tuple[Any, str]:
    """The response with its body decoded (chunk sizes per decoded chunk), and a note."""
    response = t.response
    coding = ", ".join(encoding.codings(response.headers))
    bodies = t.chunk_bodies()
    pieces = [response.body] if bodies is None else [b for _, b in bodies]
    decoded = encoding.decode(response.headers, pieces, complete=not t.meta.truncated)
    headers = encoding.without_coding(response.headers)
    if decoded.error is not None:
        note = f"content-encoding {coding}: {decoded.error}; body dropped"
        chunks = None if response.chunks is None else []
        return replace(response, headers=headers, body=b"", chunks=chunks), note
    chunks = None
    if response.chunks is not None:
        chunks = [
            (t_ms, len(b)) for (t_ms, _), b in zip(response.chunks, decoded.pieces, strict=True)
        ]
    note = f"content-encoding {coding} decoded"
    return replace(response, headers=headers, body=decoded.body, chunks=chunks), note


def _redact_path(data: Any, path: list[str]) -> Any:
    if not path:
        return REDACTED
    head, rest = path[0], path[1:]
    if isinstance(data, dict):
        return {k: _redact_path(v, rest) if head in ("*", k) else v for k, v in data.items()}
    if isinstance(data, list):
        return [_redact_path(v, rest) if head in ("*", str(i)) else v for i, v in enumerate(data)]
    return data


def _map_json(data: Any, fn: Callable[[str], str]) -> Any:
    """Strings through ``fn``; values of credential-named keys (:data:`JSON_KEYS`) replaced."""
    if isinstance(data, str):
        return fn(data)
    if isinstance(data, dict):
        return {
            k: REDACTED
            if isinstance(k, str) and k.lower() in JSON_KEYS and isinstance(v, str) and v
            else _map_json(v, fn)
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [_map_json(v, fn) for v in data]
    return data


# --- scanning -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    path: Path
    line: int
    kind: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.kind}"


def _findings_in_line(line: str, kinds: tuple[tuple[str, re.Pattern[str]], ...]) -> Iterator[str]:
    for kind, pattern in kinds:
        for m in pattern.finditer(line):
            start, end = _secret_span(m)
            if kind.startswith("pattern ") or _is_secret(kind, line[start:end]):
                yield kind
                break


def scan_text(text: str, path: Path, extra: tuple[re.Pattern[str], ...] = ()) -> Iterator[Finding]:
    """Findings in ``text``; encoded blocks (``body_b64``, ``!!binary``) are decoded first."""
    kinds = (*SECRET_PATTERNS.items(), *((f"pattern {p.pattern}", p) for p in extra))
    for number, line in enumerate(text.splitlines(), start=1):
        for kind in _findings_in_line(line, kinds):
            yield Finding(path, number, kind)
    for number, decoded in _encoded_blocks(text):
        for inner in decoded.splitlines():
            for kind in _findings_in_line(inner, kinds):
                yield Finding(path, number, f"{kind} (in an encoded body)")


def _encoded_blocks(text: str) -> Iterator[tuple[int, str]]:
    """``(line, decoded text)`` of each base64 block: ``body_b64: |`` or ``!!binary`` scalars,
    gunzipped when they hold gzip."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if "body_b64:" not in line and "!!binary" not in line:
            i += 1
            continue
        start = i + 1
        rest = line.split("!!binary", 1)[1] if "!!binary" in line else line.split("body_b64:", 1)[1]
        rest = rest.strip().strip("\"'")
        block: list[str] = []
        if rest and rest[0] not in "|>":
            block.append(rest)
        else:
            indent = len(line) - len(line.lstrip())
            i += 1
            while i < len(lines) and (
                not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent
            ):
                block.append(lines[i].strip())
                i += 1
            i -= 1
        i += 1
        decoded = _decode_block("".join(block).replace("\\n", ""))
        if decoded is not None:
            yield start, decoded


def _decode_block(data: str) -> str | None:
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None
    coding = encoding.sniff(raw)
    if coding is not None:
        decoded = encoding.decode({"content-encoding": coding}, [raw], complete=False)
        if decoded.error is not None:
            return None
        raw = decoded.body
    return raw.decode("utf-8", errors="replace")


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
    """Secrets in the files (folders recursively): :data:`SECRET_PATTERNS` outside
    :data:`PLACEHOLDERS`, inside encoded bodies too, and ``extra`` patterns."""
    findings: list[Finding] = []
    for path in _scan_files(paths):
        try:
            text = path.read_bytes().decode("utf-8", errors="replace")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
        findings.extend(scan_text(text, path, extra))
    return findings
