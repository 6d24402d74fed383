"""The client model: the lightning #4517 browser client's UI state over a stream of UI events.

It shows the latest status line until text or the terminal arrives, appends streamed text,
applies ``changes`` the moment they arrive and, when the final message lands, applies its
code only when it differs from what was already applied (the dedupe that prevents
double application). Everything it sees is kept on a timeline for rules and reports.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from streambench.grade.dialects import UIEvent


@dataclass(frozen=True)
class Applied:
    """Code or YAML put into the editor/canvas at ``t_ms``; ``source`` is changes or final."""

    t_ms: float
    code: str
    source: str


@dataclass
class ClientState:
    status: str | None = None
    # Deltas kept as parts and joined on read: ``str +=`` on an attribute copies every time.
    _text_parts: list[str] = field(default_factory=list, repr=False)
    applied: list[Applied] = field(default_factory=list)
    terminals: list[UIEvent] = field(default_factory=list)
    timeline: list[UIEvent] = field(default_factory=list)

    @property
    def streamed_text(self) -> str:
        """Every text delta so far, in order (what the user read)."""
        if len(self._text_parts) > 1:
            self._text_parts[:] = ["".join(self._text_parts)]
        return self._text_parts[0] if self._text_parts else ""

    @property
    def terminal(self) -> UIEvent | None:
        """The first terminal event: the one the UI acted on."""
        return self.terminals[0] if self.terminals else None

    @property
    def terminal_kind(self) -> str:
        return self.terminal.kind if self.terminal else "none"

    @property
    def changes(self) -> list[UIEvent]:
        return [ev for ev in self.timeline if ev.kind == "changes"]

    @property
    def final_text(self) -> str | None:
        """The final message's text (None when it ended without one or the dialect has none)."""
        terminal = self.terminal
        return terminal.text if terminal is not None and terminal.kind == "done" else None

    @property
    def final_code(self) -> str | None:
        """Code/YAML of the final message; for dialects without one, the last change applied."""
        terminal = self.terminal
        if terminal is None or terminal.kind != "done":
            return None
        if terminal.code is not None:
            return terminal.code
        return self.applied[-1].code if self.applied else None

    def feed(self, event: UIEvent) -> None:
        self.timeline.append(event)
        if event.kind == "status":
            if not self.terminals:
                self.status = event.text
        elif event.kind == "text":
            self.status = None
            if event.text:
                self._text_parts.append(event.text)
        elif event.kind == "changes":
            if event.code is not None:
                self.applied.append(Applied(event.t_ms, event.code, "changes"))
        elif event.is_terminal:
            self.status = None
            first = not self.terminals
            self.terminals.append(event)
            if first and event.kind == "done" and event.code is not None:
                already = self.applied and self.applied[-1].code == event.code
                if not already:
                    self.applied.append(Applied(event.t_ms, event.code, "final"))


def consume(events: Iterable[UIEvent]) -> ClientState:
    """Feed ``events`` in order into a fresh client and return its state."""
    state = ClientState()
    for event in events:
        state.feed(event)
    return state
