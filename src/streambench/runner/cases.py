"""Test cases: a request to a streaming assistant, the upstream streams it gets, what must come out.

A case is a folder with ``case.yaml`` (docs/cases.md has every key)::

    name: unicode-escaped
    mode: job_code                    # chat | job_code | workflow
    request: {content: "...", context: {expression: "..."}}   # POSTed as JSON
    upstream: [upstream.yaml]         # transcripts or cassettes, one per upstream call, in order
    expect: {code: "...", text: "..."}   # optional: else the recorded answer is expected

A transcript file is a case too (:func:`transcript_case`): its recorded request gives the
content and the mode, its recorded answer the expectation.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from streambench._atomic import replace_folder
from streambench._yaml import check_json, load_yaml
from streambench.answer import MODES, SHAPES
from streambench.errors import ConfigError, StreambenchError
from streambench.grade.expect import recorded_answer, recorded_mode, served_upstream, upstream_fate
from streambench.providers import registry
from streambench.transcript import Transcript, is_cassette, load_inputs

TERMINALS = ("done", "error")


@dataclass(frozen=True)
class EarlierTurn:
    """A turn sent before the case's request on the same thread (``turns`` in case.yaml)."""

    request: dict[str, Any]
    upstream: list[Path]


@dataclass(frozen=True)
class Case:
    name: str
    mode: str
    request: dict[str, Any]
    upstream: list[Path]
    expect_text: str | None = None  # None: the recorded answer's text is expected
    expect_code: str | None = None
    expect_yaml: str | None = None
    expect_terminal: str | None = None  # None: derived (docs/rules.md, expected outcome)
    path: Path | None = None
    # the tool whose input carries the changes, when a backend calls several
    tool: str | None = None
    # the HTTP surface (docs/cases.md): a raw body sent instead of the request's JSON, request
    # headers on top of the SUT's, the HTTP status and the error text the answer must carry
    http_body: bytes | None = None
    http_headers: tuple[tuple[str, str], ...] = ()
    http_method: str | None = None  # None: the SUT's (POST)
    http_path: str | None = None  # None: the SUT's (/messages)
    expect_status: int | None = None  # None: 200 (a JSON answer's error: 502)
    expect_error: str | None = None  # a text the JSON answer's ``error`` must contain
    # earlier turns of the thread, sent first; the request continues the thread they opened
    turns: tuple[EarlierTurn, ...] = ()

    @property
    def has_http(self) -> bool:
        """The case states some of its HTTP surface (else the SUT's contract is used as is)."""
        return (
            bool(self.http_headers)
            or self.expect_status is not None
            or any(v is not None for v in (self.http_body, self.http_method, self.http_path))
        )

    @property
    def wants_json(self) -> bool:
        """The request does not accept ``text/event-stream``: the answer is one JSON body."""
        accept = dict(self.http_headers).get("accept")
        return accept is not None and "text/event-stream" not in accept

    @property
    def refused(self) -> bool:
        """The case expects the SUT to refuse the request (an HTTP status of 400 or more with
        no run behind it), not to answer it."""
        return (
            self.expect_status is not None
            and self.expect_status >= 400
            and not (self.wants_json and self.expect_status == 502)
        )

    @property
    def expression(self) -> str:
        """The request's code or workflow YAML (``context.expression``): edits apply to it."""
        context = self.request.get("context")
        return str(context.get("expression", "")) if isinstance(context, dict) else ""

    def request_body(self) -> dict[str, Any]:
        """The JSON to POST: the case's request, with its mode when the request has none."""
        return {"mode": self.mode, **self.request}

    def turn_bodies(self) -> list[dict[str, Any]]:
        """The JSON of each earlier turn, as :meth:`request_body`."""
        return [{"mode": self.mode, **turn.request} for turn in self.turns]


def _fail(path: Path, field: str, problem: str) -> ConfigError:
    return ConfigError(f"{path}: {field}: {problem}")


def _optional_string(path: Path, data: dict[str, Any], field: str) -> str | None:
    value = data.get(field)
    if value is not None and not isinstance(value, str):
        raise _fail(path, f"expect.{field}", "must be a string")
    return value


_EXPECT_KEYS = ("text", "code", "yaml", "terminal", "status", "error")
_HTTP_KEYS = ("body", "headers", "method", "path")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True)
class _Http:
    body: bytes | None
    headers: tuple[tuple[str, str], ...]
    method: str | None
    path: str | None


def _keyed(path: Path, data: dict[str, Any], key: str, known: Sequence[str]) -> dict[str, Any]:
    """The case's optional mapping ``key`` (empty when absent), whose keys must be ``known``."""
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise _fail(path, key, f"must be a mapping ({', '.join(known)})")
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise _fail(path, f"{key}.{unknown[0]}", f"unknown key (known: {', '.join(known)})")
    return value


def _http(path: Path, data: dict[str, Any]) -> _Http:
    """A case's ``http`` mapping: raw body, headers, method and path."""
    http = _keyed(path, data, "http", _HTTP_KEYS)
    body = http.get("body")
    if isinstance(body, str):
        body = body.encode("utf-8")
    elif body is not None and not isinstance(body, bytes):
        raise _fail(path, "http.body", "must be a string (sent as UTF-8) or !!binary bytes")
    headers = http.get("headers") or {}
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and k and isinstance(v, str) for k, v in headers.items()
    ):
        raise _fail(path, "http.headers", "must be a mapping of header names to strings")
    for name, value in headers.items():
        if not (name.isascii() and value.isascii()) or "\n" in value or "\r" in value:
            raise _fail(path, f"http.headers.{name}", "must be one line of ASCII")
    method = http.get("method")
    if method is not None and method not in HTTP_METHODS:
        raise _fail(path, "http.method", f"{method!r} is not one of {', '.join(HTTP_METHODS)}")
    route = http.get("path")
    if route is not None and (not isinstance(route, str) or not route.startswith("/")):
        raise _fail(path, "http.path", f"{route!r} must be a path starting with '/'")
    return _Http(body, tuple((k.lower(), v) for k, v in headers.items()), method, route)


def _upstream(path: Path, upstream: Any, field: str) -> list[Path]:
    if not isinstance(upstream, list) or not upstream:
        raise _fail(path, field, "must be a non-empty list of transcript paths")
    files = [path.parent / str(item) for item in upstream]
    for item, file in zip(upstream, files, strict=True):
        if not file.is_file():
            raise _fail(path, field, f"{item!r} does not exist (relative to the case file)")
    return files


def _turns(path: Path, data: dict[str, Any]) -> tuple[EarlierTurn, ...]:
    turns = data.get("turns") or []
    if not isinstance(turns, list):
        raise _fail(path, "turns", "must be a list of {request, upstream} turns")
    found = []
    for number, turn in enumerate(turns, start=1):
        where = f"turns[{number}]"
        if not isinstance(turn, dict) or set(turn) != {"request", "upstream"}:
            raise _fail(path, where, "must be a mapping with request and upstream (only)")
        request = turn["request"]
        if not isinstance(request, dict) or not isinstance(request.get("content"), str):
            raise _fail(path, f"{where}.request", "must be a mapping with a content string")
        check_json(request, f"{path}: {where}.request")
        found.append(EarlierTurn(request, _upstream(path, turn["upstream"], f"{where}.upstream")))
    if found and "thread_id" in data["request"]:
        raise _fail(
            path, "request.thread_id", "the request continues the turns' thread: leave it out"
        )
    return tuple(found)


def _status(path: Path, expect: dict[str, Any]) -> int | None:
    status = expect.get("status")
    if status is not None and (
        not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599
    ):
        raise _fail(path, "expect.status", f"{status!r} is not an HTTP status (100-599)")
    return status


def _is_transcript(path: Path, data: Any) -> bool:
    return (
        path.name != "case.yaml"
        and isinstance(data, dict)
        and ("streambench" in data or is_cassette(data))
    )


# Where a recorded prompt carries the user's code: the reference's own prompt
# (reference/assistant.py user_prompt), or a trailing "Code:" / "YAML:" section.
_CONTEXT_PROMPTS = (
    re.compile(
        r"\AMy current (?:job code|workflow YAML):\n```[^\n]*\n(?P<code>.*?)\n```\n\n"
        r"(?P<content>.*)\Z",
        re.S,
    ),
    re.compile(
        r"\A(?P<content>.*?)\n\n(?:code|job code|workflow|yaml|workflow yaml):[ \t]*\n+"
        r"(?P<code>.*)\Z",
        re.S | re.I,
    ),
)
_FENCE = re.compile(r"\A```[^\n]*\n(?P<code>.*?)\n?```\s*\Z", re.S)


def split_context(prompt: str) -> tuple[str, str]:
    """(content, code) of a recorded user message that embeds the user's code or workflow
    YAML; ``(prompt, "")`` when it embeds none."""
    for pattern in _CONTEXT_PROMPTS:
        found = pattern.match(prompt)
        if found and found["content"].strip() and found["code"].strip():
            code = found["code"]
            fenced = _FENCE.match(code.strip())
            return found["content"].strip(), fenced["code"] if fenced else code
    return prompt, ""


def recorded_request(transcript: Transcript, mode: str | None = None) -> tuple[str, dict[str, Any]]:
    """(mode, request) a recorded upstream request implies: its last user message is the
    content (with the code context split off in job_code / workflow), its prefill the mode and
    order; ``mode`` overrides the recorded one."""
    body = transcript.request.body if isinstance(transcript.request.body, dict) else {}
    prompt = registry.lookup(transcript.meta.api).read_prompt(body).user_text
    recorded, order = recorded_mode(body)
    mode = mode or recorded
    content, expression = split_context(prompt) if mode in SHAPES else (prompt, "")
    request: dict[str, Any] = {"content": content or "Hello", "context": {"expression": expression}}
    if mode == recorded and order != "changes_first":
        request["order"] = order
    return mode, request


def transcript_case(path: Path) -> Case:
    """A transcript (or cassette) as a case (:func:`recorded_request`); nothing is expected
    beyond the recording."""
    try:
        transcript = load_inputs([path])[0]
    except (StreambenchError, IndexError) as exc:
        raise ConfigError(f"{path}: not a case.yaml and not a usable transcript: {exc}") from None
    mode, request = recorded_request(transcript)
    return Case(name=path.stem, mode=mode, request=request, upstream=[path], path=path)


def load_case(path: str | Path) -> Case:
    """Load ``case.yaml`` (or the folder holding it), or a transcript as a case
    (:func:`transcript_case`); a bad file raises one-line ConfigError."""
    path = Path(path)
    if path.is_dir():
        path = path / "case.yaml"
    data = load_yaml(path, "case")
    if _is_transcript(path, data):
        return transcript_case(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping with name, mode, request, upstream, expect")
    name = data.get("name", path.parent.name)
    if not isinstance(name, str) or not name:
        raise _fail(path, "name", "must be a non-empty string")
    mode = data.get("mode", "chat")
    if mode not in MODES:
        raise _fail(path, "mode", f"{mode!r} is not one of {', '.join(MODES)}")
    request = data.get("request")
    if not isinstance(request, dict) or not isinstance(request.get("content"), str):
        raise _fail(path, "request", "must be a mapping with a content string")
    check_json(request, f"{path}: request")
    files = _upstream(path, data.get("upstream"), "upstream")
    tool = data.get("tool")
    if tool is not None and (not isinstance(tool, str) or not tool):
        raise _fail(path, "tool", "must be the name of the tool that carries the changes")
    expect = _keyed(path, data, "expect", _EXPECT_KEYS)
    http = _http(path, data)
    terminal = expect.get("terminal")
    if terminal is not None and terminal not in TERMINALS:
        raise _fail(path, "expect.terminal", f"{terminal!r} is not one of {', '.join(TERMINALS)}")
    return Case(
        name=name,
        mode=mode,
        request=request,
        upstream=files,
        expect_text=_optional_string(path, expect, "text"),
        expect_code=_optional_string(path, expect, "code"),
        expect_yaml=_optional_string(path, expect, "yaml"),
        expect_terminal=terminal,
        path=path,
        tool=tool,
        http_body=http.body,
        http_headers=http.headers,
        http_method=http.method,
        http_path=http.path,
        expect_status=_status(path, expect),
        expect_error=_optional_string(path, expect, "error"),
        turns=_turns(path, data),
    )


def surface_keys(case: Case, folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a case.yaml written into ``folder`` from ``case`` needs besides its request and
    upstream to be the same case: its ``http`` and ``turns`` keys (the turns' recordings copied
    into ``folder``), and its ``expect.status`` / ``expect.error``. (keys, expect keys)"""
    keys: dict[str, Any] = {}
    http = {
        "body": case.http_body,
        "headers": dict(case.http_headers) or None,
        "method": case.http_method,
        "path": case.http_path,
    }
    if any(v is not None for v in http.values()):
        keys["http"] = {k: v for k, v in http.items() if v is not None}
    turns = []
    for number, turn in enumerate(case.turns, start=1):
        names = []
        for index, source in enumerate(turn.upstream, start=1):
            names.append(f"turn-{number}-{index}.yaml")
            shutil.copyfile(source, folder / names[-1])
        turns.append({"request": turn.request, "upstream": names})
    if turns:
        keys["turns"] = turns
    expect = {"status": case.expect_status, "error": case.expect_error}
    return keys, {k: v for k, v in expect.items() if v is not None}


def case_files(paths: Iterable[str | Path]) -> list[Path]:
    """The case files that case files or folders name; a folder without case.yaml is searched
    one level down for case.yaml files, else taken as a folder of transcripts (*.yaml)."""
    files: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir() and not (path / "case.yaml").is_file():
            found = sorted(path.glob("*/case.yaml")) or sorted(
                p for p in path.glob("*.y*ml") if p.suffix in (".yaml", ".yml")
            )
            if not found:
                raise ConfigError(f"{path}: no case.yaml or transcript in it or its subfolders")
            files.extend(found)
        elif path.is_dir():
            files.append(path / "case.yaml")
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError(f"{path}: no such case file or folder")
    return files


def load_cases(paths: Iterable[str | Path]) -> list[Case]:
    """Cases from case files or folders (see :func:`case_files`)."""
    return [load_case(file) for file in case_files(paths)]


# ---------------------------------------------------------------------------- new cases


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings as ``|`` blocks, so the written expectation reads as it shows."""


def _represent_block(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_BlockDumper.add_representer(str, _represent_block)
_WIDE = 1 << 16  # one line per sentence: an expectation is edited, not read on a terminal


def _yaml_entry(key: str, value: Any, comment: str, indent: str = "") -> str:
    """``key: value`` as YAML under a ``# comment`` line; exact (checked by loading it back:
    a block scalar that would not load back is written quoted)."""
    entry = {key: value}
    text = yaml.dump(entry, Dumper=_BlockDumper, allow_unicode=True, sort_keys=False, width=_WIDE)
    if yaml.safe_load(text) != entry:
        text = yaml.safe_dump(entry, allow_unicode=True, sort_keys=False, width=_WIDE)
    lines = [f"# {line}" for line in comment.split("\n")] + text.rstrip("\n").split("\n")
    return "".join(f"{indent}{line}\n" if line else "\n" for line in lines)


def _case_text(
    source: Path,
    name: str,
    upstream: str,
    mode: str,
    request: dict[str, Any],
    expect: dict[str, str],
) -> str:
    """The commented case.yaml of :func:`write_case`."""
    parts = [
        f"# A streambench case written by `streambench case new` from {source.name}.\n"
        "# Edit any key (docs/cases.md has them all); `streambench run --case FOLDER` grades it.\n",
        _yaml_entry("name", name, "the case's id in reports"),
        _yaml_entry("mode", mode, "chat | job_code | workflow: how the answer is read and checked"),
        _yaml_entry(
            "request",
            request,
            "POSTed as JSON to the SUT (mode added when absent): content is the user's message,\n"
            "context.expression the code / YAML it edits",
        ),
        _yaml_entry(
            "upstream",
            [upstream],
            "the recordings answering the SUT's upstream calls, in order (relative to this file)",
        ),
    ]
    if not expect:
        parts.append(
            "# expect: the recording's answer could not be decoded; without expect a run expects"
            " the answer\n# of the recording that serves it. State text / code / yaml here.\n"
        )
        return "\n".join(parts)
    notes = {
        "text": "the answer text the user must see (decoded from the recording)",
        "code": "the code the user must end with: the recorded code_edits applied to\n"
        "request.context.expression",
        "yaml": "the workflow YAML the user must end with (decoded from the recording)",
    }
    body = "".join(_yaml_entry(k, v, notes[k], indent="  ") for k, v in expect.items())
    parts.append(
        "# what the user must end up with; a key left out expects the recording's answer\n"
        "# (terminal: done | error states the end of runs without faults; default: derived)\n"
        f"expect:\n{body}"
    )
    return "\n".join(parts)


def write_case(source: str | Path, out: str | Path, mode: str | None = None) -> Path:
    """Write a case folder ``out`` from the recording ``source`` (a transcript or cassette):
    ``case.yaml`` (named as the folder) whose request (:func:`recorded_request`) and
    expectation (the recorded answer's text and code / YAML) come from the recording, next to a
    byte-exact copy of it.

    ``mode`` overrides the recorded mode. The folder appears whole or not at all; a missing or
    unreadable recording, a folder ``out`` that is not empty, or a ``mode`` the recorded answer
    does not read as, raise a one-line :class:`ConfigError` naming the parameter."""
    source, out = Path(source), Path(out)
    if not source.is_file():
        problem = "is a folder, not a recording" if source.is_dir() else "no such file"
        raise ConfigError(f"{source}: {problem}", param="source")
    if mode is not None and mode not in MODES:
        raise ConfigError(f"{mode!r} is not one of {', '.join(MODES)}", param="mode")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        problem = "is a file" if not out.is_dir() else "exists and is not empty"
        raise ConfigError(f"{out}: {problem}; name a new folder", param="out")
    try:
        transcripts = load_inputs([source])
    except StreambenchError as exc:
        raise ConfigError(f"not a transcript or cassette: {exc}", param="source") from None
    if not transcripts:
        raise ConfigError(f"{source}: no streamed interaction in it", param="source")
    recorded, _ = recorded_request(transcripts[0])
    mode, request = recorded_request(transcripts[0], mode)
    served = transcripts[served_upstream([upstream_fate(t) for t in transcripts])]
    answer = recorded_answer(served, mode, request["context"]["expression"])
    if answer.text is None and mode != recorded and served.response.status == 200:
        raise ConfigError(
            f"{source}: the recorded answer does not read as a {mode} answer"
            f" (the recording's mode: {recorded})",
            param="mode",
        )
    expect = {} if answer.text is None else {"text": answer.text}
    if answer.code is not None:
        expect["yaml" if mode == "workflow" else "code"] = answer.code
    upstream = "upstream.yaml" if source.name == "case.yaml" else source.name
    text = _case_text(source, out.resolve().name, upstream, mode, request, expect)

    def write(folder: Path) -> None:
        shutil.copyfile(source, folder / upstream)
        (folder / "case.yaml").write_text(text, encoding="utf-8")

    return replace_folder(out, write)
