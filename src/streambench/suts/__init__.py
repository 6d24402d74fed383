"""Systems under test: one :class:`SystemUnderTest` shape, three kinds.

Spec strings: ``reference`` / ``reference:order=text_first,seed=3`` (the bundled reference
app in process), ``module:attr[,k=v...]`` (an ASGI app or a zero-argument factory, in
process), ``http://host:port[/path][,k=v...]`` (a running server whose provider base URLs
point at a :class:`ReplayHost`). ASGI and HTTP SUTs take the contract options of
:mod:`streambench.suts.contract` (``path=``, ``method=``, ``header.NAME=``, ``body=FILE``,
``body.KEY=``); in-process ones also ``clock=virtual|real``.

In-process SUTs run on virtual time and every upstream request they make is answered by
:func:`streambench.replay.mock_upstream`; HTTP SUTs run in real time.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from streambench.errors import SpecError
from streambench.replay.specs import parse_options, parse_term
from streambench.suts.base import SutResponse, SutTimeouts, SystemUnderTest, Turn
from streambench.suts.contract import Contract, contract_keys, parse_contract
from streambench.suts.http import HttpSut, ReplayHost, replay_host, sut_process
from streambench.suts.inprocess import (
    CLOCKS,
    AsgiSut,
    InProcessSut,
    ReferenceSut,
    load_asgi,
    reference_options,
)

__all__ = [
    "AsgiSut",
    "Contract",
    "HttpSut",
    "InProcessSut",
    "ReferenceSut",
    "ReplayHost",
    "SutResponse",
    "SutTimeouts",
    "SystemUnderTest",
    "Turn",
    "load_asgi",
    "parse_sut",
    "replay_host",
    "sut_process",
]


def _split(spec: str) -> tuple[str, dict[str, str]]:
    """``target,k=v,...`` -> target and options (the one spec grammar's ``k=v`` list)."""
    target, comma, rest = spec.partition(",")
    if comma and not rest.strip():
        raise SpecError(f"sut {spec!r}: nothing after ','")
    return target.strip(), parse_options(rest, spec) if comma else {}


def _clock(options: dict[str, str], spec: str) -> str:
    clock = options.get("clock", "virtual")
    if clock not in CLOCKS:
        raise SpecError(f"sut {spec!r}: clock={clock!r} is not one of {', '.join(CLOCKS)}")
    return clock


def _check_known(options: dict[str, str], known: set[str], spec: str, kind: str) -> None:
    unknown = sorted(set(options) - known)
    if unknown:
        raise SpecError(
            f"sut {spec!r}: unknown {kind} option {unknown[0]!r} (known: path, method,"
            " header.NAME, body, body.KEY" + (", clock" if kind == "in-process" else "") + ")"
        )


def parse_sut(spec: str, base: Path | None = None) -> SystemUnderTest:
    """The SUT a spec string names; bad specs raise a one-line SpecError quoting the spec.
    ``base``: the folder relative ``body=`` template paths resolve against."""
    if spec == "reference" or spec.startswith("reference:"):
        term = parse_term(spec, spec)
        if term.arg is not None:
            raise SpecError(f"sut {spec!r}: options are key=value (reference:order=text_first)")
        options = dict(term.options)
        unknown = sorted(set(options) - reference_options())
        if unknown:
            raise SpecError(f"sut {spec!r}: unknown reference option {unknown[0]!r}")
        return ReferenceSut(spec, clock=_clock(options, spec), options=options)
    target, options = _split(spec)
    if target.startswith(("http://", "https://")):
        _check_known(options, contract_keys(options), spec, "http")
        if "path" not in options:
            options["path"] = _url_path(target)
        return HttpSut(spec, target, parse_contract(options, spec, base))
    module, colon, attr = target.partition(":")
    if not colon or not module or not attr:
        raise SpecError(
            f"sut {spec!r}: expected reference[:k=v,...], module:attr[,k=v,...] or"
            " http://host:port/path[,k=v,...]"
        )
    _check_known(options, contract_keys(options) | {"clock"}, spec, "in-process")
    return AsgiSut(spec, parse_contract(options, spec, base), _clock(options, spec), target)


def _url_path(url: str) -> str:
    """The path part of ``url`` with its query (``/`` when empty)."""
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
