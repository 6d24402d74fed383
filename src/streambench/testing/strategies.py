"""Hypothesis strategies for property tests of streaming code.

Each strategy generates what a user passes to the replay: spec strings (the same vocabulary as
``--chunking``, ``--latency`` and ``--fault``) or whole :class:`~streambench.transcript.Transcript`
objects. A typical property: "for any split and any single fault, my handler's output is the
same"::

    from hypothesis import given
    from streambench.testing.strategies import chunkings, faults

    @given(chunking=chunkings(), fault=faults(max_event=5))
    def test_handler(streambench, chunking, fault): ...
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from hypothesis import strategies as st

from streambench.replay.faults import FAULT_KINDS, FAULTS
from streambench.transcript import Transcript, synth

# Faults that need a structured answer (JSON text or tool input), two tool calls, blocks of
# several kinds, or a provider with a refusal shape (not generic SSE): drawn only when asked for.
STRUCTURED_FAULT_KINDS = ("empty-edits", "bad-json", "refusal", "tool", "blocks")
ANY_STREAM_FAULT_KINDS = tuple(k for k in FAULT_KINDS if k not in STRUCTURED_FAULT_KINDS)


def seeds() -> st.SearchStrategy[int]:
    """Replay seeds (what ``--seed`` takes). Example: ``seeds().example() -> 4021``."""
    return st.integers(min_value=0, max_value=2**32 - 1)


def transport_chunkings() -> st.SearchStrategy[str]:
    """Byte-level splits. Example: ``'bytes:3'``, ``'random:min=1,max=9'``, ``'utf8'``."""
    sizes = st.integers(min_value=1, max_value=64)
    return st.one_of(
        sizes.map(lambda n: f"bytes:{n}"),
        st.tuples(sizes, sizes).map(lambda p: f"random:min={min(p)},max={max(p)}"),
        st.sampled_from(["events", "lines", "coalesce", "utf8", "crlf"]),
    )


def delta_chunkings() -> st.SearchStrategy[str]:
    """Content-level re-splits of the deltas. Example: ``'deltas:2'``, ``'deltas:adversarial'``."""
    return st.one_of(
        st.integers(min_value=1, max_value=16).map(lambda n: f"deltas:{n}"),
        st.sampled_from(["deltas:random", "deltas:adversarial"]),
    )


def chunkings(*, transport: bool = True, deltas: bool = True) -> st.SearchStrategy[str]:
    """Any chunking spec, of either level or both composed (a content re-split, then a byte
    split). Example: ``'bytes:7'``, ``'deltas:1'``, ``'deltas:adversarial+bytes:3'``."""
    if transport and deltas:
        both = st.tuples(delta_chunkings(), transport_chunkings()).map("+".join)
        return st.one_of(transport_chunkings(), delta_chunkings(), both)
    if transport:
        return transport_chunkings()
    if deltas:
        return delta_chunkings()
    raise ValueError("chunkings(): enable transport and/or deltas")


def latencies(*, jitter: bool = True) -> st.SearchStrategy[str]:
    """Latency model specs. Example: ``'const:ttfb=120,gap=15'``, ``'tokens:rate=50,ttfb=300'``."""
    ms = st.integers(min_value=0, max_value=2000)
    base = st.one_of(
        st.just("recorded"),
        st.sampled_from([0.1, 0.5, 1, 2, 10]).map(lambda f: f"scale:{f}"),
        st.tuples(ms, st.integers(0, 200)).map(lambda p: f"const:ttfb={p[0]},gap={p[1]}"),
        st.tuples(st.integers(1, 500), ms).map(lambda p: f"tokens:rate={p[0]},ttfb={p[1]}"),
    )
    if not jitter:
        return base
    return st.one_of(
        base,
        st.tuples(base, st.integers(1, 50)).map(lambda p: f"{p[0]}+jitter:sd={p[1]}"),
    )


def faults(
    *, max_event: int = 8, max_bytes: int = 256, kinds: Sequence[str] = ANY_STREAM_FAULT_KINDS
) -> st.SearchStrategy[str]:
    """One fault spec positioned within a stream of at least ``max_event`` events / ``max_bytes``
    bytes, transport or content (a stream with some content; google streams take no pings).
    ``kinds`` defaults to every kind a stream with content takes; add
    :data:`STRUCTURED_FAULT_KINDS` for answers with a JSON part.
    Example: ``'disconnect@event=3'``, ``'http:529@start'``, ``'stall@event=2,ms=800'``,
    ``'stop:max_tokens@text=40%'``, ``'reformat:compact'``, ``'pings:2'``,
    ``'tool:split-args'``, ``'blocks:reorder'``."""
    unknown = sorted(set(kinds) - set(FAULT_KINDS))
    if unknown:
        raise ValueError(f"faults(): unknown kind(s) {', '.join(unknown)}")
    event = st.integers(min_value=1, max_value=max_event)
    by_kind: dict[str, st.SearchStrategy[str]] = {
        "http": st.sampled_from([429, 500, 503, 529]).map(lambda s: f"http:{s}@start"),
        "disconnect": st.one_of(
            event.map(lambda n: f"disconnect@event={n}"),
            st.integers(1, max_bytes).map(lambda n: f"disconnect@bytes={n}"),
        ),
        "error-event": event.map(lambda n: f"error-event@event={n}"),
        "stall": st.tuples(event, st.integers(1, 5000)).map(
            lambda p: f"stall@event={p[0]},ms={p[1]}"
        ),
        "truncate": event.map(lambda n: f"truncate@event={n}"),
        "garbage": event.map(lambda n: f"garbage@event={n}"),
        "duplicate": event.map(lambda n: f"duplicate@event={n}"),
        "stop": st.integers(0, 99).map(lambda p: f"stop:max_tokens@text={p}%"),
        "reformat": st.sampled_from(FAULTS["reformat"].args).map(lambda a: f"reformat:{a}"),
        "escape": st.sampled_from(FAULTS["escape"].args).map(lambda a: f"escape:{a}"),
        "pings": st.integers(1, 5).map(lambda n: f"pings:{n}"),
        "empty-deltas": st.integers(1, 5).map(lambda n: f"empty-deltas:{n}"),
        "empty-edits": st.just("empty-edits"),
        "refusal": st.just("refusal"),
        "tool": st.sampled_from(FAULTS["tool"].args).map(lambda a: f"tool:{a}"),
        "blocks": st.just("blocks:reorder"),
        "bad-json": st.integers(0, 8).map(lambda n: f"bad-json@char={n}"),
    }
    return st.one_of(*(by_kind[kind] for kind in kinds))


def stream_texts(*, escapes: bool = True) -> st.SearchStrategy[str]:
    """Assistant texts that stress decoders: quotes, backslashes, non-ASCII, emoji, newlines.

    Example: ``'caf\\u00e9 "ok" \\\\ 🎉'``."""
    alphabet = st.characters(blacklist_categories=("Cs",))
    tricky = st.sampled_from(['"', "\\", "\n", "é", "🎉", "\\u00e9", "€"] if escapes else ["é"])
    return st.lists(st.one_of(st.text(alphabet, min_size=1, max_size=8), tricky), max_size=12).map(
        "".join
    )


@st.composite
def transcripts(
    draw: st.DrawFn,
    *,
    apis: Sequence[str] = synth.APIS,
    texts: st.SearchStrategy[str] | None = None,
) -> Transcript:
    """Valid provider streams (via :mod:`streambench.transcript.synth`) carrying a drawn
    text, cut into drawn deltas, with event arrival times. Example: an anthropic-messages
    transcript whose text is ``'héllo "x"'`` in deltas ``['hé', 'llo "', 'x"']``."""
    api = draw(st.sampled_from(list(apis)))
    text = draw(texts if texts is not None else stream_texts())
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(text) - 1)), max_size=len(text))))
    bounds = [0, *(c for c in cuts if c < len(text)), len(text)]
    deltas = [text[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    body = synth.render(api, deltas=deltas)
    n_events = len(synth.event_spans(body))
    gaps = draw(st.lists(st.integers(0, 200), min_size=n_events, max_size=n_events))
    times = [float(sum(gaps[: i + 1])) for i in range(n_events)]
    request = {"model": synth.DEFAULT_MODELS[api], "stream": True}
    return synth.make_transcript(api, body, request_body=request, chunk_times_ms=times)
