"""Test cases: a request to a streaming assistant, the upstream streams it gets, what must come out.

A case is a folder with ``case.yaml``::

    name: unicode-escaped
    mode: job_code                    # chat | job_code | workflow
    request: {content: "...", context: {expression: "..."}}   # POSTed as JSON
    upstream: [upstream.yaml]         # transcripts or cassettes, one per upstream call, in order
    expect: {code: "...", text: "..."}   # code (job_code) or yaml (workflow), and text
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streambench._yaml import check_json, load_yaml
from streambench.answer import MODES
from streambench.errors import ConfigError


@dataclass(frozen=True)
class Case:
    name: str
    mode: str
    request: dict[str, Any]
    upstream: list[Path]
    expect_text: str
    expect_code: str | None = None
    expect_yaml: str | None = None
    path: Path | None = None
    # the tool whose input carries the changes, when a backend calls several
    tool: str | None = None

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


def load_case(path: str | Path) -> Case:
    """Load ``case.yaml`` (or the folder holding it); a bad file raises one-line ConfigError."""
    path = Path(path)
    if path.is_dir():
        path = path / "case.yaml"
    data = load_yaml(path, "case")
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
    expect = data.get("expect")
    if not isinstance(expect, dict) or not isinstance(expect.get("text"), str):
        raise _fail(path, "expect", "must be a mapping with a text string")
    return Case(
        name=name,
        mode=mode,
        request=request,
        upstream=files,
        expect_text=expect["text"],
        expect_code=_optional_string(path, expect, "code"),
        expect_yaml=_optional_string(path, expect, "yaml"),
        path=path,
        tool=tool,
    )


def case_files(paths: Iterable[str | Path]) -> list[Path]:
    """The case.yaml files that case files or folders name; a folder without case.yaml is
    searched one level down for them."""
    files: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir() and not (path / "case.yaml").is_file():
            found = sorted(path.glob("*/case.yaml"))
            if not found:
                raise ConfigError(f"{path}: no case.yaml in it or its subfolders")
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
