"""The one shape every system under test has: given a case's request body and the replay
plans of its upstream calls, answer the SSE response body as it arrived, with what the
replay saw of each upstream request."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from streambench.replay.plan import ReplayPlan
from streambench.replay.transports import RequestRecord

if TYPE_CHECKING:
    from streambench.suts.http import ReplayHost

# Provider API keys a SUT finds in its environment when the user set none (the replay needs none).
API_KEY_DEFAULTS = {
    "ANTHROPIC_API_KEY": "streambench",
    "OPENAI_API_KEY": "streambench",
    "GOOGLE_API_KEY": "streambench",
}


def api_key_env() -> dict[str, str]:
    """The keys of :data:`API_KEY_DEFAULTS` the environment does not already set."""
    return {k: v for k, v in API_KEY_DEFAULTS.items() if not os.environ.get(k)}


@dataclass(frozen=True)
class SutTimeouts:
    """How long a run may take: ``connect_s`` / ``read_s`` (between two body reads) bound an
    HTTP SUT's socket; ``total_s`` bounds every run, on the SUT's clock (virtual in process)."""

    connect_s: float = 10.0
    read_s: float = 120.0
    total_s: float = 600.0


@dataclass
class SutResponse:
    """``chunks``: the response body as it arrived, ``(t_ms, bytes)`` since the request was sent;
    ``upstream``: every upstream request the replay answered, in order (``started`` on the
    same clock, in seconds since the request)."""

    status: int
    chunks: list[tuple[float, bytes]]
    upstream: list[RequestRecord] = field(default_factory=list)
    sut_error: str | None = None  # the SUT raised, timed out or broke the HTTP exchange

    @property
    def upstream_starts_ms(self) -> list[float]:
        """When each upstream call began, ms since the request was sent."""
        return [record.started * 1000.0 for record in self.upstream]


# An earlier turn of a multi-turn case: the request body and the plans of its upstream calls.
Turn = tuple[dict[str, Any], Sequence[ReplayPlan]]


def all_plans(earlier: Sequence[Turn], plans: Sequence[ReplayPlan]) -> list[ReplayPlan]:
    """Every plan a call serves, in order: the ``earlier`` turns', then the judged turn's."""
    return [plan for _, turn in earlier for plan in turn] + list(plans)


def with_thread(body: dict[str, Any], thread: str | None) -> dict[str, Any]:
    """``body`` continuing ``thread`` (None: as it is)."""
    return body if thread is None else {**body, "thread_id": thread}


def judged_records(
    records: Sequence[RequestRecord], before: int, begun_s: float, earlier_plans: int
) -> list[RequestRecord]:
    """The upstream requests of the judged turn (after the first ``before``), on its own clock
    (``begun_s``: when it was sent) and numbered in its own plans."""
    judged = list(records[before:])
    for record in judged:
        record.started -= begun_s
        record.plan_index -= earlier_plans
    return judged


class SystemUnderTest(Protocol):
    """A system under test, interchangeable in the runner: the bundled reference, an ASGI app
    in process, or an HTTP server.

    ``spec`` is the user's string; ``over_http`` SUTs run in real time, one at a time, with a
    :class:`~streambench.suts.http.ReplayHost` answering their upstream calls.
    """

    spec: str
    over_http: bool

    @property
    def address(self) -> str | None:
        """Where the SUT listens (what ``--sut-cmd`` waits for); None in process."""
        ...

    def request_json(self, body: dict[str, Any]) -> Any:
        """The JSON the SUT is sent for a case's request ``body``."""
        ...

    def call(
        self,
        body: dict[str, Any],
        plans: Sequence[ReplayPlan],
        timeouts: SutTimeouts,
        host: ReplayHost | None = None,
        earlier: Sequence[Turn] = (),
    ) -> SutResponse:
        """Send the case's request (after its ``earlier`` turns, on the thread the first one
        opened); every upstream call gets the next plan."""
        ...
