"""Record a provider's stream: every raw chunk with its arrival time, into a transcript file.

The transcript is redacted before it is written, written atomically, and written whatever
happens: an HTTP error is recorded as such; an interrupt (SIGINT, SIGTERM) or a dropped
connection leaves ``meta.truncated: true`` with every byte received so far.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from streambench._yaml import check_json, load_yaml
from streambench.errors import ConfigError, OutputError, StreambenchError, TranscriptError
from streambench.providers import apis, registry
from streambench.providers.base import ProviderAPI
from streambench.record.redact import Redactor
from streambench.transcript import Meta, Request, Response, Transcript, load, save

if TYPE_CHECKING:
    import httpx


@dataclass(frozen=True)
class ProviderSpec:
    """A ``--provider`` choice: the API it speaks (URLs, key variable, body: from its module)."""

    api: str

    @property
    def wire(self) -> ProviderAPI:
        return registry.get(self.api)

    @property
    def vendor(self) -> str:
        return self.wire.provider

    @property
    def key_env(self) -> str | None:
        return self.wire.key_env


def _provider_names() -> dict[str, ProviderSpec]:
    """``--provider`` names, one per registered API: the vendor when it has one API, the API's
    name where a vendor has several, ``url`` for any other SSE endpoint (generic-sse)."""
    names = registry.api_names()
    vendors = Counter(registry.get(name).provider for name in names)
    specs = {}
    for name in names:
        vendor = registry.get(name).provider
        key = "url" if name == "generic-sse" else vendor if vendors[vendor] == 1 else name
        specs[key] = ProviderSpec(name)
    return specs


PROVIDERS: dict[str, ProviderSpec] = _provider_names()


def _spec(provider: str) -> ProviderSpec:
    if provider not in PROVIDERS:
        raise ConfigError(f"{provider!r}: expected one of {', '.join(PROVIDERS)}", param="provider")
    return PROVIDERS[provider]


def build_body(
    provider: str, request: dict[str, Any] | None, prompt: str | None, model: str | None
) -> dict[str, Any]:
    """The request body: ``request`` (or a minimal one) with ``prompt`` as the last user
    message and ``model`` set, streaming switched on."""
    body = request or {}
    for key in ("messages", "contents"):
        if key in body and not isinstance(body[key], list):
            raise ConfigError(f"request: {key!r} must be a list, got {type(body[key]).__name__}")
    return _spec(provider).wire.build_body(request, prompt, model)


def request_url(provider: str, base_url: str | None, model: str) -> str:
    spec = _spec(provider)
    if provider == "url":
        if not base_url:
            raise ConfigError("url needs base_url (the full endpoint URL)", param="provider")
        return base_url
    return spec.wire.url(model, base_url)


def auth_headers(provider: str) -> dict[str, str]:
    """Credentials from the environment, in the header each provider expects."""
    spec = _spec(provider)
    return spec.wire.auth_headers(os.environ.get(spec.key_env, "") if spec.key_env else "")


def load_request(path: str | Path) -> dict[str, Any]:
    """A request body file (JSON or YAML mapping)."""
    p = Path(path)
    data = load_yaml(p, "request")  # (JSON is YAML)
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: a request file holds the JSON body, a mapping")
    check_json(data, f"{p}: request")
    return data


class Interrupted(KeyboardInterrupt):
    """SIGTERM turned into an exception so the recorder can save what it has."""


@contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """Make SIGTERM raise like Ctrl-C does, for the duration (main thread only)."""

    def on_term(signum: int, frame: object) -> None:
        raise Interrupted(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _signals_blocked() -> Iterator[None]:
    """Hold SIGINT/SIGTERM while a file is being written: a signal then cannot cut the save."""
    mask = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, mask)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def save_redacted(t: Transcript, path: Path, redactor: Redactor) -> Path:
    with _signals_blocked():
        return save(redactor.transcript(t), path)


class RecordError(StreambenchError):
    """A recording got no response at all (no connection, refused, a bad URL): nothing saved."""


@dataclass(frozen=True)
class Timeouts:
    """Bounds on one upstream call: to connect, between two reads, and for the whole call."""

    connect_s: float = 10.0
    read_s: float = 60.0
    total_s: float = 600.0

    def __post_init__(self) -> None:
        for name in ("connect_s", "read_s", "total_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                option = "--" + name.removesuffix("_s") + "-timeout"
                raise ConfigError(f"{option} {value!r}: must be a number of seconds > 0")

    def httpx(self) -> httpx.Timeout:
        import httpx

        return httpx.Timeout(self.read_s, connect=self.connect_s)


def check_url(url: str, param: str = "base_url") -> str:
    """``url`` when it is an http(s) URL with a host and a valid port, else one clear error
    about the parameter ``param``."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(
            f"{Redactor().url(url)!r}: not a valid URL ({exc})", param=param
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{Redactor().url(url)!r}: expected an http:// or https:// URL", param=param
        )
    if port is not None and not 0 < port <= 65535:
        raise ConfigError(f"port {port} is out of range (1-65535)", param=param)
    return url


def partial_path(target: Path) -> Path:
    """Where a new recording goes while a complete one sits at ``target``."""
    return target.with_name(f"{target.stem}.partial{target.suffix}")


def record(
    url: str,
    body: Any,
    *,
    out: str | Path,
    provider: str,
    api: str | None = None,
    headers: dict[str, str] | None = None,
    method: str = "POST",
    redactor: Redactor | None = None,
    timeouts: Timeouts | None = None,
    notes: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    transport: httpx.BaseTransport | None = None,
) -> Transcript:
    """Send one streaming request and write its transcript to ``out``; returns it (redacted).

    Chunk times are ms since the request was sent, read from ``clock``. On KeyboardInterrupt
    (SIGINT, or SIGTERM under :func:`signals_as_interrupts`) the partial transcript is saved
    with ``truncated: true`` and the interrupt propagates. No response at all raises
    :class:`RecordError` and writes nothing. A complete transcript already at ``out`` is only
    replaced by a complete one: a truncated new one goes to :func:`partial_path`.
    """
    import httpx  # here, not at module level: the CLI reads PROVIDERS for its help text

    check_url(url)
    redactor = redactor or Redactor()
    timeouts = timeouts or Timeouts()
    final = Path(out)
    if final.is_dir():
        raise OutputError(f"{final}: cannot write: is a folder")
    target = partial_path(final) if is_recorded(final) else final
    meta = Meta(
        provider=_spec(provider).vendor,
        api=api or "generic-sse",
        recorded_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        source=f"streambench record {redactor.url(url)}",
        notes=notes,
        truncated=True,
    )
    # identity: the raw chunks are then the body bytes themselves, not a compressed stream
    # (a user's -H accept-encoding still wins; the redactor then stores the body decoded).
    request_headers = {
        "content-type": "application/json",
        "accept": "text/event-stream",
        "accept-encoding": "identity",
    }
    request_headers.update(headers or {})
    content = json.dumps(body).encode() if not isinstance(body, bytes) else body
    transcript = Transcript(
        meta=meta,
        request=Request(method, url, request_headers, body),
        response=Response(status=200, headers={}, body=b"", chunks=[]),
    )
    received = bytearray()
    chunks: list[tuple[float, int]] = []

    def snapshot(truncated: bool) -> Transcript:
        transcript.meta.truncated = truncated
        transcript.response.body = bytes(received)
        transcript.response.chunks = list(chunks)
        if api is None and received:
            # --provider url: the vendor and API are whatever the stream turns out to be.
            transcript.meta.provider, transcript.meta.api = apis.detect(url, bytes(received))
        return transcript

    responded = False
    try:
        with httpx.Client(timeout=timeouts.httpx(), transport=transport) as client:
            t0 = clock()
            request = client.build_request(method, url, content=content, headers=request_headers)
            response = client.send(request, stream=True)
            try:
                transcript.response.status = response.status_code
                transcript.response.headers = dict(response.headers)
                responded = True
                # From here on the file on disk is always a loadable transcript.
                save_redacted(snapshot(True), target, redactor)
                for chunk in response.iter_raw():
                    chunks.append((round((clock() - t0) * 1000, 3), len(chunk)))
                    received += chunk
                    if clock() - t0 > timeouts.total_s:
                        raise TimeoutError
            finally:
                response.close()
    except TimeoutError:
        transcript.meta.notes = _join(notes, f"stopped at the total timeout {timeouts.total_s}s")
        return _finish(snapshot(True), target, redactor)
    except httpx.HTTPError as exc:
        if not responded:
            reason = redactor.text(f"{type(exc).__name__}: {exc}".rstrip(": "))
            raise RecordError(
                f"{redactor.url(url)}: no response ({reason}); nothing saved"
            ) from None
        transcript.meta.notes = _join(notes, f"connection ended early: {type(exc).__name__}")
        return _finish(snapshot(True), target, redactor)
    except KeyboardInterrupt:
        if responded:
            _finish(snapshot(True), target, redactor)
        raise
    done = _finish(snapshot(False), target, redactor)
    if target != final:
        os.replace(target, final)
        done.path = final
    return done


def _join(notes: str | None, extra: str) -> str:
    return f"{notes}; {extra}" if notes else extra


def _finish(t: Transcript, target: Path, redactor: Redactor) -> Transcript:
    save_redacted(t, target, redactor)
    done = redactor.transcript(t)
    done.path = target
    return done


@dataclass(frozen=True)
class Entry:
    """One recording of a batch: its file name (without folder) and its request body."""

    name: str
    body: dict[str, Any]


def _variant_body(body: dict[str, Any], variant: dict[str, Any], provider: str) -> dict[str, Any]:
    body = {**body, **variant.get("body", {})}
    if variant.get("system") is not None:
        if provider == "anthropic":
            body["system"] = variant["system"]
        elif provider == "openai-chat":
            system = {"role": "system", "content": variant["system"]}
            body["messages"] = [system, *body.get("messages", [])]
        else:
            body["instructions"] = variant["system"]
    if variant.get("prefill") is not None and "messages" in body:
        body["messages"] = [
            *body["messages"],
            {"role": "assistant", "content": variant["prefill"]},
        ]
    return body


def plan_entries(
    provider: str,
    request: dict[str, Any] | None,
    prompt: str | None,
    model: str | None,
    repeat: int = 1,
    matrix: dict[str, Any] | None = None,
    source: str = "matrix",
) -> list[Entry]:
    """The recordings of a batch: prompts x variants x repeats (a matrix), or ``repeat`` copies
    of one request. Names are stable, so a rerun skips what is already recorded."""
    if matrix is None:
        body = build_body(provider, request, prompt, model)
        return [Entry(f"{i + 1:03d}", body) for i in range(repeat)]
    prompts = matrix.get("prompts")
    variants = matrix.get("variants") or [{"name": "default"}]
    if not isinstance(prompts, list) or not prompts:
        raise ConfigError(f"{source}: 'prompts' must be a non-empty list")
    if not isinstance(variants, list):
        raise ConfigError(f"{source}: 'variants' must be a list")
    repeat = matrix.get("repeat", repeat)
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        raise ConfigError(f"{source}: repeat {repeat!r} must be a whole number >= 1")
    entries = []
    for i, p in enumerate(prompts):
        if not isinstance(p, dict) or not isinstance(p.get("text"), str):
            raise ConfigError(f"{source}: prompts[{i}] needs a 'text' string")
        body = build_body(provider, request, p["text"], model)
        for j, v in enumerate(variants):
            if not isinstance(v, dict):
                raise ConfigError(f"{source}: variants[{j}] must be a mapping")
            unknown = set(v) - {"name", "prefill", "system", "body"}
            if unknown:
                raise ConfigError(f"{source}: variants[{j}]: unknown key(s) {sorted(unknown)}")
            if not isinstance(v.get("body", {}), dict):
                raise ConfigError(f"{source}: variants[{j}].body must be a mapping")
            for key in ("system", "prefill"):
                if v.get(key) is not None and not isinstance(v[key], str):
                    raise ConfigError(f"{source}: variants[{j}].{key} must be a string")
            name = f"{p.get('name', f'p{i + 1}')}-{v.get('name', f'v{j + 1}')}"
            for k in range(repeat):
                suffix = f"-{k + 1:03d}" if repeat > 1 else ""
                entries.append(Entry(safe_name(name + suffix), _variant_body(body, v, provider)))
    _no_duplicates(entries, source)
    return entries


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str) -> str:
    """A file name from user data: one path segment of ``[A-Za-z0-9._-]``, never ``..``."""
    cleaned = _UNSAFE.sub("_", name).strip("._") or "_"
    return cleaned[:120]


def _no_duplicates(entries: list[Entry], source: str) -> None:
    seen: dict[str, int] = {}
    for entry in entries:
        seen[entry.name.lower()] = seen.get(entry.name.lower(), 0) + 1
    twice = sorted(name for name, count in seen.items() if count > 1)
    if twice:
        raise ConfigError(
            f"{source}: two recordings would share the file name(s) {', '.join(twice)}:"
            " give the prompts / variants distinct names"
        )


def is_recorded(path: Path) -> bool:
    """Whether a complete (not truncated) transcript is already at ``path``."""
    if not path.is_file():
        return False
    try:
        return not load(path).meta.truncated
    except TranscriptError:
        return False
