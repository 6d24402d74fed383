"""Transcript files: one recorded HTTP exchange as YAML a reviewer can read, byte-exact.

A transcript keeps the response body byte for byte (``body`` as text, or ``body_b64`` when
it is not valid UTF-8) and, when the recorder saw them, the chunk boundaries with their
arrival times (``chunks: [[t_ms, nbytes], ...]``). vcrpy cassettes load as transcripts too
(:func:`load_inputs`), one per streamed interaction, without chunks.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import stat
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from streambench._atomic import atomic_write_text
from streambench._yaml import SAFE_LOADER
from streambench.errors import TranscriptError
from streambench.providers import apis
from streambench.sse import decode_all
from streambench.transcript import encoding

FORMAT_VERSION = 1
API_NAMES = apis.API_NAMES
# Credential headers by name (the redactor also treats names ending like one as credentials).
SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key",
     "cookie", "set-cookie", "x-amz-security-token", "x-auth-token", "x-access-token",
     "x-csrf-token", "x-session-token"}
)  # fmt: skip
REDACTED = "<redacted>"

# Characters YAML treats as line breaks that PyYAML's emitter writes raw, so that a plain or
# block scalar holding them would not load back to the same string.
_LITERAL_UNSAFE = ("\x85", "\u2028", "\u2029")


@dataclass
class Meta:
    provider: str
    api: str
    recorded_at: str | None = None
    source: str | None = None
    notes: str | None = None
    truncated: bool = False


@dataclass
class Request:
    method: str = "POST"
    url: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None  # parsed JSON when the request body was JSON, else the text


@dataclass
class Response:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunks: list[tuple[float, int]] | None = None  # [(t_ms, nbytes)], lengths sum to len(body)


@dataclass
class Transcript:
    meta: Meta
    request: Request
    response: Response
    path: Path | None = None

    def chunk_bodies(self) -> list[tuple[float, bytes]] | None:
        """The body split at the recorded chunk boundaries, each with its arrival time in ms."""
        if self.response.chunks is None:
            return None
        pieces: list[tuple[float, bytes]] = []
        offset = 0
        for t_ms, nbytes in self.response.chunks:
            pieces.append((t_ms, self.response.body[offset : offset + nbytes]))
            offset += nbytes
        return pieces


# ---------------------------------------------------------------------------- writing


class _Literal(str):
    """A string to emit as a ``|`` block when YAML can hold it exactly."""


class _Flow(list):  # type: ignore[type-arg]
    """A list to emit on one line (``[t_ms, nbytes]``)."""


class _PyDumper(yaml.SafeDumper):
    pass


class _CDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    pass


def _represent_literal(dumper: yaml.SafeDumper, data: _Literal) -> yaml.Node:
    # The emitter falls back to a double-quoted scalar (exact for any text) when it cannot
    # use a block, e.g. for trailing spaces, CR or control characters.
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(data), style="|")


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    # PyYAML emits these line-break characters raw in plain and block scalars, where they load
    # back as "\n" or a space; double quotes escape them.
    style = '"' if any(ch in data for ch in _LITERAL_UNSAFE) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


def _represent_flow(dumper: yaml.SafeDumper, data: _Flow) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)


for _dumper in (_PyDumper, _CDumper):
    _dumper.add_representer(_Literal, _represent_literal)
    _dumper.add_representer(str, _represent_str)
    _dumper.add_representer(_Flow, _represent_flow)

# libyaml's safe loader and emitter when PyYAML was built with it (~15x faster on the corpus);
# both backends round-trip byte-exactly (tests/test_transcript.py runs both).
_DUMPER: type[yaml.SafeDumper] = _CDumper
_LOADER: type[yaml.SafeLoader] = SAFE_LOADER


def _text_scalar(text: str) -> str:
    return text if any(ch in text for ch in _LITERAL_UNSAFE) else _Literal(text)


def _to_document(t: Transcript) -> dict[str, Any]:
    meta: dict[str, Any] = {"provider": t.meta.provider, "api": t.meta.api}
    for key in ("recorded_at", "source", "notes"):
        value = getattr(t.meta, key)
        if value is not None:
            meta[key] = _text_scalar(value) if "\n" in value else value
    meta["truncated"] = t.meta.truncated
    response: dict[str, Any] = {"status": t.response.status, "headers": dict(t.response.headers)}
    try:
        response["body"] = _text_scalar(t.response.body.decode("utf-8"))
    except UnicodeDecodeError:
        response["body_b64"] = _Literal(base64.encodebytes(t.response.body).decode("ascii"))
    if t.response.chunks is not None:
        response["chunks"] = [_Flow([t_ms, nbytes]) for t_ms, nbytes in t.response.chunks]
    return {
        "streambench": FORMAT_VERSION,
        "meta": meta,
        "request": {
            "method": t.request.method,
            "url": t.request.url,
            "headers": dict(t.request.headers),
            "body": t.request.body,
        },
        "response": response,
    }


def dumps(t: Transcript) -> str:
    """The transcript as YAML text; :func:`loads` gives back the same bytes and fields."""
    return yaml.dump(
        _to_document(t),
        Dumper=_DUMPER,
        sort_keys=False,
        allow_unicode=True,
        width=100,
    )


def save(t: Transcript, path: str | Path) -> Path:
    """Write ``t`` to ``path`` atomically (temp file in the same folder + os.replace)."""
    return atomic_write_text(Path(path), dumps(t))


# ---------------------------------------------------------------------------- reading


class _SchemaError(Exception):
    """A field is wrong; ``where`` is its key path, to find the YAML line afterwards."""

    def __init__(self, where: tuple[str | int, ...], what: str) -> None:
        super().__init__(what)
        self.where = where
        self.what = what


def _line_of(text: str, where: tuple[str | int, ...]) -> int | None:
    """1-based line of the deepest node of ``where`` present in the YAML text."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    if node is None:
        return None
    line = node.start_mark.line + 1
    for step in where:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == step:
                    line = key_node.start_mark.line + 1
                    child = value_node
                    break
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value)
        ):
            child = node.value[step]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


def _error(source: str, what: str, line: int | None = None) -> TranscriptError:
    where = f"{source}:{line}" if line is not None else source
    return TranscriptError(f"{where}: {what}")


def _parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        line = mark.line + 1 if mark is not None else None
        raise _error(source, f"not valid YAML: {problem}", line) from None
    except yaml.YAMLError as exc:
        raise _error(source, f"not valid YAML: {' '.join(str(exc).split())}") from None


def _mapping(data: Any, where: tuple[str | int, ...], required: bool = True) -> dict[str, Any]:
    if data is None and not required:
        return {}
    if not isinstance(data, dict):
        name = ".".join(map(str, where)) or "the document"
        raise _SchemaError(where, f"{name} must be a mapping, got {type(data).__name__}")
    return data


def _string(section: dict[str, Any], key: str, where: tuple[str, ...], default: str | None) -> Any:
    value = section.get(key, default)
    if value is not None and not isinstance(value, str):
        raise _SchemaError((*where, key), f"{'.'.join((*where, key))} must be a string")
    return value


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 field-name


def _headers(data: Any, where: tuple[str, ...]) -> dict[str, str]:
    headers = _mapping(data, where, required=False)
    name = ".".join(where)
    for key, value in headers.items():
        if not isinstance(key, str) or not _TOKEN.fullmatch(key):
            raise _SchemaError(where, f"{name}: {key!r} is not a valid header name")
        if isinstance(value, str) and any(c in value for c in "\r\n\0"):
            raise _SchemaError((*where, key), f"{name}.{key} holds a line break")
    return {str(k): "" if v is None else str(v) for k, v in headers.items()}


def _meta(doc: dict[str, Any]) -> Meta:
    meta = _mapping(doc.get("meta"), ("meta",))
    for key in ("provider", "api"):
        if not meta.get(key):
            raise _SchemaError(("meta",), f"meta.{key} is missing")
        if not isinstance(meta[key], str):
            raise _SchemaError(("meta", key), f"meta.{key} must be a string")
    api = meta["api"]
    if api not in API_NAMES:
        raise _SchemaError(
            ("meta", "api"), f"meta.api {api!r} is unknown; expected one of {', '.join(API_NAMES)}"
        )
    truncated = meta.get("truncated", False)
    if not isinstance(truncated, bool):
        raise _SchemaError(("meta", "truncated"), "meta.truncated must be true or false")
    recorded_at = meta.get("recorded_at")
    return Meta(
        provider=str(meta["provider"]),
        api=api,
        # YAML turns an unquoted ISO timestamp into a datetime: keep it as text.
        recorded_at=None if recorded_at is None else str(recorded_at),
        source=_string(meta, "source", ("meta",), None),
        notes=_string(meta, "notes", ("meta",), None),
        truncated=truncated,
    )


def _request(doc: dict[str, Any]) -> Request:
    req = _mapping(doc.get("request"), ("request",), required=False)
    return Request(
        method=_string(req, "method", ("request",), "POST"),
        url=_string(req, "url", ("request",), ""),
        headers=_headers(req.get("headers"), ("request", "headers")),
        body=req.get("body"),
    )


def _body(resp: dict[str, Any]) -> bytes:
    if "body" in resp and "body_b64" in resp:
        raise _SchemaError(("response", "body_b64"), "response has both body and body_b64")
    if "body_b64" in resp:
        encoded = resp["body_b64"]
        if not isinstance(encoded, str):
            raise _SchemaError(("response", "body_b64"), "response.body_b64 must be a string")
        try:
            return base64.b64decode("".join(encoded.split()), validate=True)
        except ValueError:
            raise _SchemaError(
                ("response", "body_b64"), "response.body_b64 is not valid base64"
            ) from None
    body = resp.get("body", "")
    if body is None:
        return b""
    if not isinstance(body, str):
        raise _SchemaError(("response", "body"), "response.body must be text")
    return body.encode("utf-8")


def _chunks(data: Any, body_length: int) -> list[tuple[float, int]] | None:
    if data is None:
        return None
    where: tuple[str | int, ...] = ("response", "chunks")
    if not isinstance(data, list):
        raise _SchemaError(where, "response.chunks must be a list of [t_ms, nbytes]")
    chunks: list[tuple[float, int]] = []
    previous_ms = 0.0
    for i, item in enumerate(data):
        here = (*where, i)
        if not (isinstance(item, list) and len(item) == 2):
            raise _SchemaError(here, f"response.chunks[{i}] must be [t_ms, nbytes]")
        t_ms, nbytes = item
        if isinstance(t_ms, bool) or not isinstance(t_ms, int | float) or not math.isfinite(t_ms):
            raise _SchemaError(here, f"response.chunks[{i}]: t_ms must be a finite number")
        if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
            raise _SchemaError(here, f"response.chunks[{i}]: nbytes must be an integer >= 0")
        if t_ms < 0:
            raise _SchemaError(here, f"response.chunks[{i}]: t_ms {t_ms} is negative")
        if t_ms < previous_ms:
            raise _SchemaError(
                here, f"response.chunks[{i}]: t_ms {t_ms} is before the previous {previous_ms}"
            )
        previous_ms = float(t_ms)
        chunks.append((float(t_ms), nbytes))
    total = sum(n for _, n in chunks)
    if total != body_length:
        raise _SchemaError(
            where, f"response.chunks lengths sum to {total}, but the body has {body_length} bytes"
        )
    return chunks


def _response(doc: dict[str, Any]) -> Response:
    resp = _mapping(doc.get("response"), ("response",))
    status = resp.get("status", 200)
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise _SchemaError(
            ("response", "status"), f"response.status {status!r}: expected an HTTP status 100-599"
        )
    body = _body(resp)
    return Response(
        status=status,
        headers=_headers(resp.get("headers"), ("response", "headers")),
        body=body,
        chunks=_chunks(resp.get("chunks"), len(body)),
    )


def _from_document(doc: Any) -> Transcript:
    doc = _mapping(doc, ())
    version = doc.get("streambench")
    if version is None:
        raise _SchemaError((), "not a streambench transcript (no 'streambench: 1' line)")
    if version != FORMAT_VERSION:
        raise _SchemaError(
            ("streambench",),
            f"transcript format version {version!r} is not supported (expected {FORMAT_VERSION})",
        )
    return Transcript(meta=_meta(doc), request=_request(doc), response=_response(doc))


def _transcript_from_data(data: Any, text: str, source: str) -> Transcript:
    try:
        return _from_document(data)
    except _SchemaError as exc:
        raise _error(source, exc.what, _line_of(text, exc.where)) from None


def loads(text: str, source: str = "<string>") -> Transcript:
    """Parse transcript YAML; errors are one line ``<source>:<line>: <what is wrong>``."""
    return _transcript_from_data(_parse_yaml(text, source), text, source)


READ_LIMIT_BYTES = 1024 * 1024 * 1024  # a transcript file larger than this is refused


def _read_text(path: Path) -> str:
    """The file's text; FIFOs, devices and sockets are refused (they block or never end)."""
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError
        if not stat.S_ISREG(info.st_mode):
            raise _error(str(path), "not a regular file (a FIFO, device or socket)")
        if info.st_size > READ_LIMIT_BYTES:
            raise _error(str(path), f"larger than {READ_LIMIT_BYTES:,} bytes")
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _error(str(path), "no such file") from None
    except IsADirectoryError:
        raise _error(str(path), "is a folder, not a transcript file") from None
    except UnicodeDecodeError as exc:
        raise _error(str(path), f"not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise _error(str(path), exc.strerror or "cannot be read") from None


def load(path: str | Path) -> Transcript:
    """Load one transcript file."""
    p = Path(path)
    t = loads(_read_text(p), str(p))
    t.path = p
    return t


# ---------------------------------------------------------------------------- cassettes


def is_cassette(data: object) -> bool:
    """Whether parsed YAML looks like a vcrpy / pytest-recording cassette."""
    return (
        isinstance(data, dict)
        and "streambench" not in data
        and isinstance(data.get("interactions"), list)
    )


def _single_values(headers: Any) -> dict[str, str]:
    """vcrpy keeps each header as a list of values; a transcript keeps one string."""
    if not isinstance(headers, dict):
        return {}
    flat: dict[str, str] = {}
    for name, value in headers.items():
        values = value if isinstance(value, list) else [value]
        flat[str(name)] = ", ".join(str(v) for v in values)
    return flat


def _header(headers: dict[str, str], name: str) -> str:
    return next((v for k, v in headers.items() if k.lower() == name), "")


def _cassette_body(body: Any) -> bytes:
    """``response.body`` of a cassette: ``{string: str | bytes}`` (bytes when ``!!binary``)."""
    if isinstance(body, dict):
        body = body.get("string", b"")
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    return str(body).encode("utf-8")


def _request_body(body: Any) -> Any:
    if isinstance(body, dict):
        body = body.get("string")
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(body).decode("ascii")
    if isinstance(body, str):
        try:
            return json.loads(body)
        except ValueError:
            return body
    return body


def _leading_comment(text: str) -> str | None:
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return "\n".join(lines) or None


def _cassette_status(resp: dict[str, Any], where: str) -> int:
    status = resp.get("status", 200)
    if isinstance(status, dict):
        status = status.get("code", 200)
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise _SchemaError((), f"{where}.response.status {status!r}: expected an HTTP status")
    return status


def _interaction(interaction: Any, index: int, source: str, notes: str | None) -> Transcript | None:
    """One cassette interaction as a transcript, or None when it is not streamed."""
    where = f"interactions[{index}]"
    if not isinstance(interaction, dict):
        raise _SchemaError((), f"{where} is not a mapping")
    req = interaction.get("request") or {}
    resp = interaction.get("response") or {}
    for name, part in (("request", req), ("response", resp)):
        if not isinstance(part, dict):
            raise _SchemaError((), f"{where}.{name} must be a mapping, got {type(part).__name__}")
    resp_headers = _single_values(resp.get("headers"))
    body = _cassette_body(resp.get("body"))
    status = _cassette_status(resp, where)
    if encoding.codings(resp_headers):
        decoded = encoding.decode(resp_headers, [body])
        if decoded.error is not None:
            raise _SchemaError((), f"{where}.response.body: {decoded.error}")
        body, resp_headers = decoded.body, encoding.without_coding(resp_headers)
    events = decode_all(body)
    if "text/event-stream" not in _header(resp_headers, "content-type") and not events:
        return None
    url = str(req.get("uri") or req.get("url") or "")
    provider, api = apis.detect(url, body, events)
    return Transcript(
        meta=Meta(provider=provider, api=api, source=f"{source}#{index}", notes=notes),
        request=Request(
            method=str(req.get("method") or "POST"),
            url=url,
            # Credentials by name even in memory (a run's rows may quote the request).
            headers={
                k: REDACTED if k.lower() in SENSITIVE_HEADERS else v
                for k, v in _single_values(req.get("headers")).items()
            },
            body=_request_body(req.get("body")),
        ),
        response=Response(status=status, headers=resp_headers, body=body),
    )


def from_cassette(data: Any, text: str, source: str) -> tuple[list[Transcript], int]:
    """The streamed interactions of a parsed cassette as transcripts, and how many were skipped.

    An interaction counts as streamed when its content-type is ``text/event-stream`` or its body
    decodes as at least one SSE event. A compressed body is decoded (capped). Nothing is
    redacted here: :func:`import_cassette` takes the redaction to apply before writing.
    """
    transcripts: list[Transcript] = []
    skipped = 0
    notes = _leading_comment(text)
    for index, interaction in enumerate(data["interactions"]):
        try:
            t = _interaction(interaction, index, source, notes)
        except _SchemaError as exc:
            raise _error(source, exc.what, _line_of(text, ("interactions", index))) from None
        if t is None:
            skipped += 1
        else:
            transcripts.append(t)
    return transcripts, skipped


def _yaml_files(folder: Path) -> Iterator[Path]:
    yield from sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def load_file(path: Path) -> tuple[list[Transcript], int]:
    """A transcript file or a cassette: its transcripts and the count of skipped interactions."""
    text = _read_text(path)
    data = _parse_yaml(text, str(path))
    if is_cassette(data):
        transcripts, skipped = from_cassette(data, text, str(path))
    else:
        transcripts, skipped = [_transcript_from_data(data, text, str(path))], 0
    for t in transcripts:
        t.path = path
    return transcripts, skipped


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; folders become their ``*.yaml`` / ``*.yml`` files (recursive, sorted)."""
    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            files.extend(_yaml_files(p))
        elif p.exists():
            files.append(p)
        else:
            raise _error(str(p), "no such file or folder")
    return files


def load_inputs(paths: Iterable[str | Path]) -> list[Transcript]:
    """Transcripts from transcript files, cassettes and folders of them, in order."""
    return [t for path in expand_paths(paths) for t in load_file(path)[0]]


def cassette_names(files: Sequence[Path]) -> list[str]:
    """The name each cassette's transcripts get: its file stem, unless other cassettes share
    it; then its path below their common folder (``a/chat.yaml``, ``b/chat.yaml`` ->
    ``a-chat``, ``b-chat``; ``chat.yaml``, ``chat.yml`` -> ``chat-yaml``, ``chat-yml``)."""
    resolved = [f.resolve() for f in files]
    stems = Counter(f.stem for f in resolved)
    names = []
    for file in resolved:
        if stems[file.stem] == 1:
            names.append(file.stem)
            continue
        same = [f for f in resolved if f.stem == file.stem]
        below = file.relative_to(os.path.commonpath(same))
        parts = [*below.parent.parts, below.stem]
        if sum(f.parent == file.parent for f in same) > 1:  # same folder: the suffix tells apart
            parts.append(file.suffix.lstrip("."))
        names.append("-".join(parts))
    return names


def import_cassettes(
    paths: Iterable[str | Path], out_dir: str | Path, redact: Callable[[Transcript], Transcript]
) -> tuple[list[Path], list[Transcript], int]:
    """:func:`import_cassette` for cassettes and folders of them, each under its own name
    (:func:`cassette_names`), so no cassette's transcripts overwrite another's. Returns the
    cassette files, the saved transcripts and how many interactions were not streamed."""
    files = list(dict.fromkeys(f.resolve() for f in expand_paths(paths)))
    saved: list[Transcript] = []
    skipped = 0
    for file, name in zip(files, cassette_names(files), strict=True):
        transcripts, file_skipped = import_cassette(file, out_dir, redact, name)
        saved += transcripts
        skipped += file_skipped
    return files, saved, skipped


def import_cassette(
    path: str | Path,
    out_dir: str | Path,
    redact: Callable[[Transcript], Transcript],
    name: str | None = None,
) -> tuple[list[Transcript], int]:
    """Save each streamed interaction of a cassette, through ``redact`` (the recorder's
    redactor), as ``<out_dir>/<name>-<index>.yaml`` (``name``: the file's stem by default).

    Returns the saved transcripts (``path`` set to the written file) and how many interactions
    were skipped as not streamed.
    """
    source = Path(path)
    text = _read_text(source)
    data = _parse_yaml(text, str(source))
    if not is_cassette(data):
        raise _error(str(source), "not a vcrpy cassette (no 'interactions' list)")
    transcripts, skipped = from_cassette(data, text, str(source))
    saved = []
    for t in transcripts:
        index = (t.meta.source or "").rpartition("#")[2]
        redacted = redact(t)
        redacted.path = save(redacted, Path(out_dir) / f"{name or source.stem}-{index}.yaml")
        saved.append(redacted)
    return saved, skipped
