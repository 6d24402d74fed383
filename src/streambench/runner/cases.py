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

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streambench._yaml import check_json, load_yaml
from streambench.answer import MODES
from streambench.errors import ConfigError, StreambenchError
from streambench.grade.expect import recorded_mode
from streambench.transcript import is_cassette, load_inputs

TERMINALS = ("done", "error")


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

    @property
    def expression(self) -> str:
        """The request's code or workflow YAML (``context.expression``): edits apply to it."""
        context = self.request.get("context")
        return str(context.get("expression", "")) if isinstance(context, dict) else ""

    def request_body(self) -> dict[str, Any]:
        """The JSON to POST: the case's request, with its mode when the request has none."""
        return {"mode": self.mode, **self.request}


def _fail(path: Path, field: str, problem: str) -> ConfigError:
    return ConfigError(f"{path}: {field}: {problem}")


def _optional_string(path: Path, data: dict[str, Any], field: str) -> str | None:
    value = data.get(field)
    if value is not None and not isinstance(value, str):
        raise _fail(path, f"expect.{field}", "must be a string")
    return value


def _is_transcript(path: Path, data: Any) -> bool:
    return (
        path.name != "case.yaml"
        and isinstance(data, dict)
        and ("streambench" in data or is_cassette(data))
    )


def transcript_case(path: Path) -> Case:
    """A transcript (or cassette) as a case: the recorded request's last user message is the
    content, its prefill (if any) the mode and order; nothing is expected beyond the recording."""
    try:
        transcript = load_inputs([path])[0]
    except (StreambenchError, IndexError) as exc:
        raise ConfigError(f"{path}: not a case.yaml and not a usable transcript: {exc}") from None
    body = transcript.request.body if isinstance(transcript.request.body, dict) else {}
    users = [
        m for m in body.get("messages") or [] if isinstance(m, dict) and m.get("role") == "user"
    ]
    content = _message_text(users[-1].get("content")) if users else ""
    request: dict[str, Any] = {"content": content or "Hello", "context": {"expression": ""}}
    mode, order = recorded_mode(body)
    if order != "changes_first":
        request["order"] = order
    return Case(name=path.stem, mode=mode, request=request, upstream=[path], path=path)


def _message_text(content: Any) -> str:
    """A chat message's text: a string, or the text parts of a content list."""
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else []
    return "".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))


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
    upstream = data.get("upstream")
    if not isinstance(upstream, list) or not upstream:
        raise _fail(path, "upstream", "must be a non-empty list of transcript paths")
    files = [path.parent / str(item) for item in upstream]
    for item, file in zip(upstream, files, strict=True):
        if not file.is_file():
            raise _fail(path, "upstream", f"{item!r} does not exist (relative to the case file)")
    tool = data.get("tool")
    if tool is not None and (not isinstance(tool, str) or not tool):
        raise _fail(path, "tool", "must be the name of the tool that carries the changes")
    expect = data.get("expect") or {}
    if not isinstance(expect, dict):
        raise _fail(path, "expect", "must be a mapping (text, code, yaml, terminal)")
    unknown = sorted(set(expect) - {"text", "code", "yaml", "terminal"})
    if unknown:
        raise _fail(path, f"expect.{unknown[0]}", "unknown key (known: text, code, yaml, terminal)")
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
    )


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
