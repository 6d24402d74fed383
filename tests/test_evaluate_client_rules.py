"""Client model, dialects, rules, profiles and quality over hand-built event timelines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from streambench.errors import ConfigError, SpecError
from streambench.grade.client import consume
from streambench.grade.dialects import UIEvent, dialect_parser
from streambench.grade.expect import Answer, Outcome
from streambench.grade.profile import default_profile, load_profile
from streambench.grade.quality import code_quality
from streambench.grade.rules import RULES, Rule, RunContext, check_rules, register_rule
from streambench.grade.upstream import analyse_upstream


def ev(t: float, kind: str, text: str | None = None, code: str | None = None, **data) -> UIEvent:
    return UIEvent(t, kind, text=text, code=code, data=data)


def slugs(events: list[UIEvent], mode: str = "job_code", **ctx) -> list[str]:
    context = RunContext(consume(events), mode, **ctx)
    return [v.rule for v in check_rules(context, default_profile())]


GOOD = [
    ev(0, "meta", "thread"),
    ev(1, "status", "Thinking..."),
    ev(5, "changes", code="x = 1"),
    ev(6, "text", "Set x"),
    ev(7, "text", " to 1."),
    ev(9, "done", "Set x to 1.", code="x = 1"),
]


def test_a_clean_changes_first_stream_breaks_no_rule() -> None:
    assert slugs(GOOD, expected_text="Set x to 1.") == []


def test_client_applies_changes_once_and_dedupes_the_final_message() -> None:
    state = consume(GOOD)
    assert [(a.t_ms, a.source) for a in state.applied] == [(5, "changes")]
    assert state.streamed_text == "Set x to 1."
    assert state.status is None
    assert state.terminal_kind == "done"


def test_client_applies_a_differing_final_code_and_it_is_a_provisional_mismatch() -> None:
    events = [*GOOD[:-1], ev(9, "done", "Set x to 1.", code="x = 2")]
    assert [a.source for a in consume(events).applied] == ["changes", "final"]
    assert slugs(events) == ["provisional-mismatch"]


def test_text_before_changes_and_missing_changes() -> None:
    late = [ev(1, "text", "Hi"), ev(4, "changes", code="c"), ev(5, "done", "Hi", code="c")]
    assert slugs(late) == ["text-before-changes"]
    # A request that asks for the older text-first order gets what it asked for.
    assert slugs(late, requested_order="text_first") == []
    none = [ev(1, "text", "Hi"), ev(5, "done", "Hi", code="c")]
    assert slugs(none) == ["missing-changes"]
    # An error before the structured part completed upstream expects no changes ...
    assert slugs([ev(1, "error", "")], structured_complete_ms=None) == []
    # ... but one after it does.
    assert slugs([ev(9, "error", "")], structured_complete_ms=3.0) == ["missing-changes"]
    assert slugs(none, mode="chat") == []


def test_terminal_rules() -> None:
    events = [*GOOD, ev(10, "text", "!"), ev(11, "status", "Done"), ev(12, "done", "x")]
    found = slugs(events)
    assert found.count("event-after-terminal") == 1
    assert found.count("status-after-terminal") == 1
    assert found.count("terminal-count") == 1
    assert slugs(GOOD[:-1]) == ["terminal-count"]


def test_text_mismatch_escape_leak_and_json_leak() -> None:
    leaky = [
        ev(1, "changes", code="c"),
        ev(2, "text", "caf\\u00e9 ok"),
        ev(3, "text", '"}'),
        ev(4, "done", "café ok", code="c"),
    ]
    found = slugs(leaky, expected_text="café ok")
    assert found == ["wrong-text", "text-mismatch", "escape-leak", "json-leak"]
    # JSON the expected text itself contains is not a leak.
    own = [
        ev(1, "changes", code="c"),
        ev(2, "text", 'ends {"a": "b"}'),
        ev(3, "done", 'ends {"a": "b"}', code="c"),
    ]
    assert slugs(own, expected_text='ends {"a": "b"}') == []


def test_duplicate_after_failover_and_no_fallthrough() -> None:
    answer = "The answer is forty-two."
    dup = [ev(1, "text", "The ans"), ev(5, "text", answer), ev(6, "done", "The ans" + answer)]
    assert "duplicate-after-failover" in slugs(dup, mode="chat", expected_text=answer)
    clean = [ev(1, "text", "The ans"), ev(2, "error", "The ans", message="boom")]
    cut = (Outcome("error", Answer(answer), "upstream 1 failed after content"),)
    assert slugs(clean, mode="chat", expected=cut) == []
    early = [ev(1, "status", "Thinking..."), ev(2, "error", "", message="529")]
    assert slugs(early, mode="chat", n_upstreams=2, first_upstream_failed_early=True) == [
        "no-fallthrough"
    ]
    assert slugs(early, mode="chat", n_upstreams=1, first_upstream_failed_early=True) == []


def test_partial_mismatch_and_double_apply() -> None:
    partial = [ev(1, "text", "abc"), ev(2, "error", "ab", message="x")]
    assert slugs(partial, mode="chat") == ["partial-mismatch"]
    twice = [ev(1, "changes", code="c"), ev(2, "changes", code="c"), ev(3, "done", "", code="c")]
    assert slugs(twice) == ["double-apply"]


def test_every_rule_is_documented() -> None:
    docs = (Path(__file__).parents[1] / "docs" / "rules.md").read_text()
    for slug, rule in RULES.items():
        assert f"## `{slug}`" in docs
        assert rule.description


def test_profile_selects_rules_and_parameters(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("default: off\nrules:\n  duplicate-after-failover: {min_overlap_chars: 3}\n")
    assert load_profile(path) == {"duplicate-after-failover": {"min_overlap_chars": 3}}
    path.write_text("rules:\n  text-before-changes: off\n")
    assert "text-before-changes" not in load_profile(path)
    assert len(load_profile(path)) == len(default_profile()) - 1
    path.write_text("rules:\n  no-such-rule: on\n")
    with pytest.raises(ConfigError, match=r"p\.yaml: rules\.no-such-rule: unknown rule"):
        load_profile(path)
    path.write_text("rules:\n  escape-leak: {x: 1}\n")
    with pytest.raises(ConfigError, match="unknown parameter 'x'"):
        load_profile(path)


def test_streambench_dialect_parses_the_wire_format() -> None:
    parse = dialect_parser("streambench")
    changes = json.dumps(
        {"code": "c", "code_edits": [{}, {}], "patches_applied": 1, "warnings": ["w"]}
    )
    events = [
        *parse(1, "status", '{"message": "Thinking..."}'),
        *parse(2, "changes", changes),
        *parse(3, "chunk", '{"content": "hi"}'),
        *parse(4, "done", '{"content": "hi", "code": "c", "yaml": null}'),
    ]
    assert [(e.kind, e.text, e.code) for e in events] == [
        ("status", "Thinking...", None),
        ("changes", None, "c"),
        ("text", "hi", None),
        ("done", "hi", "c"),
    ]
    quality = code_quality(consume(events), "c")
    assert quality["code_exact"] is True and quality["code_similarity"] == 100
    assert (quality["patches_applied"], quality["patches_failed"]) == (1, 1)
    assert quality["warnings"] == ["w"]
    with pytest.raises(SpecError, match="dialect 'x'"):
        dialect_parser("x")


def test_anthropic_and_openai_dialects() -> None:
    anthropic = dialect_parser("anthropic")
    delta = {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "yo"}}
    thinking = {
        "type": "content_block_delta",
        "delta": {"type": "thinking_delta", "thinking": "hm"},
    }
    kinds = [
        (e.kind, e.text)
        for e in [
            *anthropic(1, "content_block_delta", json.dumps(thinking)),
            *anthropic(2, "content_block_delta", json.dumps(delta)),
            *anthropic(3, "message_stop", '{"type": "message_stop"}'),
        ]
    ]
    assert kinds == [("status", "hm"), ("text", "yo"), ("done", None)]
    openai = dialect_parser("openai-chat")
    chunk = {"choices": [{"delta": {"content": "yo"}}]}
    assert [(e.kind, e.text) for e in openai(1, "", json.dumps(chunk))] == [("text", "yo")]
    assert [e.kind for e in openai(2, "", "[DONE]")] == ["done"]


def test_upstream_analysis_finds_when_code_edits_completed() -> None:
    timeline = [
        (10.0, "text", '{"action": "rewrite", "new_code": "x"}'),
        (20.0, "text", '],\n  "text_answer": "caf\\u00'),
        (30.0, "text", 'e9"\n}'),
    ]
    content = analyse_upstream(timeline, "job_code")
    assert content.structured_complete_ms == 20.0
    assert content.text_times_ms == [20.0, 20.0, 20.0, 30.0]
    chat = analyse_upstream(
        [(5.0, "text", "ab"), (7.0, "thinking", "zz"), (9.0, "text", "c")], "chat"
    )
    assert chat.structured_complete_ms is None
    assert chat.text_times_ms == [5.0, 5.0, 9.0]


@pytest.fixture
def registry() -> Iterator[dict[str, Rule]]:
    """The rule registry, restored after the test (registering is global)."""
    saved = dict(RULES)
    yield RULES
    RULES.clear()
    RULES.update(saved)


def _shouting(ctx: RunContext, params: dict[str, object]) -> list[tuple[str, float | None]]:
    text = ctx.state.streamed_text
    return [("shouted", None)] if text.count("!") > int(str(params["max"])) else []


@pytest.mark.usefixtures("registry")
def test_a_registered_rule_runs_and_profiles_accept_its_slug(tmp_path: Path) -> None:
    register_rule("too-excited", "More than max exclamation marks.", _shouting, {"max": 0})
    loud = [ev(1, "text", "Hi!"), ev(2, "done", "Hi!")]
    ctx = RunContext(consume(loud), "chat")
    assert [v.rule for v in check_rules(ctx, default_profile())] == ["too-excited"]
    path = tmp_path / "p.yaml"
    path.write_text("rules:\n  too-excited: {max: 2}\n")
    assert load_profile(path)["too-excited"] == {"max": 2}
    assert check_rules(ctx, load_profile(path)) == []
    path.write_text("rules:\n  too-excited: {maximum: 2}\n")
    with pytest.raises(ConfigError, match="unknown parameter 'maximum'"):
        load_profile(path)


@pytest.mark.parametrize(
    ("slug", "message"),
    [("terminal-count", "already registered"), ("Bad Slug", "lowercase"), ("x-", "lowercase")],
)
@pytest.mark.usefixtures("registry")
def test_register_rule_rejects_taken_and_malformed_slugs(slug: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        register_rule(slug, "d", _shouting)
    with pytest.raises(ConfigError, match="callable"):
        register_rule("fine-slug", "d", "not a function")  # type: ignore[arg-type]
