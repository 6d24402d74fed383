"""Perceived smoothness: exact metric values on hand-built streams, the `jank` rule (off by
default, on in the bundled smooth profile), jank on the bundled recordings re-timed, and the
rows' percentiles."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from tests.conftest import cli_exit_code

from streambench.errors import ConfigError
from streambench.grade.client import consume
from streambench.grade.dialects import UIEvent
from streambench.grade.metrics import SMOOTHNESS_COLUMNS, mean, percentile, smoothness
from streambench.grade.profile import bundled_profiles, default_profile, load_profile
from streambench.grade.rules import RunContext, check_rules
from streambench.replay import build_plan
from streambench.runner.matrix import RunSpec, run_one
from streambench.transcript import load_inputs

REPO = Path(__file__).resolve().parents[1]
RECORDING = REPO / "recordings" / "anthropic-chat.yaml"


def text(t: float, value: str) -> UIEvent:
    return UIEvent(t, "text", text=value)


def done(t: float) -> UIEvent:
    return UIEvent(t, "done")


def metrics(*events: UIEvent) -> dict[str, float]:
    return smoothness(consume(events))


def test_one_big_chunk() -> None:
    m = metrics(UIEvent(10, "status", text="Thinking..."), text(100, "Hello world, how are you?"))
    assert math.isnan(m["paint_rate_cps"]) and math.isnan(m["second_paint_ms"])
    assert m["jump_chars_max"] == 25 and m["jump_share_max"] == 1.0
    assert m["midword_paint_share"] == 0.0
    assert m["stall_count"] == 0 and m["stall_ms_max"] == 0.0
    assert math.isnan(m["itl_per_chunk_ms"]) and math.isnan(m["itl_per_token_ms"])


def test_word_by_word() -> None:
    words = ["Hello", " world!", " how", " are", " you"]  # 5+7+4+4+4 = 24 chars
    m = metrics(*(text(100 + 100 * i, w) for i, w in enumerate(words)), done(520))
    assert m["paint_rate_cps"] == 24 / 0.4
    assert m["jump_chars_max"] == 7 and m["jump_share_max"] == 7 / 24
    assert m["midword_paint_share"] == 0.0
    assert m["stall_count"] == 0 and m["stall_ms_max"] == 100
    assert m["second_paint_ms"] == 200
    assert m["itl_per_chunk_ms"] == 100  # vLLM: four gaps of 100 ms
    assert m["itl_per_token_ms"] == 400 / 5  # GenAI-Perf: "world" and "!" are two tokens


def test_mid_word_cuts_and_events_that_arrive_together() -> None:
    m = metrics(text(0, "Hel"), text(10, "lo wo"), text(10, ""), text(20, "rld"), text(20, "!"))
    # three paints: "Hel" | "lo wo" | "rld!"; the first two end inside a word
    assert m["jump_chars_max"] == 5 and m["midword_paint_share"] == 2 / 3
    assert m["second_paint_ms"] == 10
    # vLLM counts the chunk that arrived with another as a 0 ms sample; GenAI-Perf spreads 20 ms
    assert m["itl_per_chunk_ms"] == 20 / 3
    assert m["itl_per_token_ms"] == 20 / 4  # lo, wo, rld, !


def test_a_stall_and_the_wait_for_done() -> None:
    m = metrics(text(100, "Hello"), text(1300, " world"), done(2000))
    assert m["stall_count"] == 2 and m["stall_ms_max"] == 1200
    assert m["paint_rate_cps"] == 11 / 1.2
    assert all(math.isnan(v) for v in metrics(done(5)).values())
    assert set(metrics(done(5))) == set(SMOOTHNESS_COLUMNS)


def jank(events: list[UIEvent], profile: dict) -> list[str]:
    context = RunContext(consume(events), "chat")
    return [v.message for v in check_rules(context, profile) if v.rule == "jank"]


def test_jank_is_off_by_default_and_on_in_the_smooth_profile() -> None:
    big = [text(100, "x" * 60), text(200, "y" * 10), done(1500)]
    assert "jank" not in default_profile()
    assert jank(big, default_profile()) == []
    assert "smooth" in bundled_profiles()
    smooth = load_profile("smooth")
    assert set(smooth) == set(default_profile()) | {"jank"}
    assert jank(big, smooth) == [
        "60 chars painted at once (86% of the answer; max_jump_chars 40)",
        "text stood still for 1300 ms (max_stall_ms 1000)",
    ]
    smooth_stream = [text(100 + 50 * i, " word") for i in range(10)] + [done(600)]
    assert jank(smooth_stream, smooth) == []


def test_profiles_by_name_and_their_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"profile 'smoth': no such file .*bundled: smooth"):
        load_profile("smoth")
    own = tmp_path / "p.yaml"
    own.write_text("default: off\nrules:\n  jank: {max_stall_ms: 200}\n")
    assert load_profile(own) == {"jank": {"max_stall_ms": 200}}


@pytest.fixture(scope="module")
def recording_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A chat case over the bundled anthropic recording (recorded word-by-word deltas)."""
    transcript = load_inputs([RECORDING])[0]
    plan = build_plan(transcript, "events", None, (), 0)
    answer = "".join(t for _, kind, t in plan.content_timeline if kind == "text")
    case = tmp_path_factory.mktemp("rec") / "case.yaml"
    body = {
        "name": "recorded-chat",
        "mode": "chat",
        "request": {"content": "How do I cross the street?"},
        "upstream": [str(RECORDING)],
        "expect": {"text": answer},
    }
    case.write_text(yaml.safe_dump(body))
    return case


def test_recording_in_three_big_chunks_is_jank_word_by_word_is_not(recording_case: Path) -> None:
    body = load_inputs([RECORDING])[0].response.body
    thirds = f"bytes:{len(body) // 3 + 1}"  # the recorded stream re-timed into 3 chunks
    word_by_word = run_one(RunSpec(str(recording_case), chunking="events", profile_path="smooth"))
    chunky = run_one(RunSpec(str(recording_case), chunking=thirds, profile_path="smooth"))
    assert word_by_word["terminal"] == chunky["terminal"] == "done"
    assert word_by_word["violations"] == []
    assert word_by_word["jump_chars_max"] < 10
    rules = [v["rule"] for v in chunky["violations"]]
    assert rules == ["jank"] * 3
    assert chunky["jump_share_max"] > 0.3
    # Under the default profile the same chunky run is clean: jank is opt-in.
    assert run_one(RunSpec(str(recording_case), chunking=thirds))["violations"] == []


def test_a_backend_that_batches_text_is_jank_the_reference_is_not(recording_case: Path) -> None:
    spec = {"chunking": "events", "profile_path": "smooth"}
    batching = run_one(RunSpec(str(recording_case), sut="tests.suts.batching:app", **spec))
    reference = run_one(RunSpec(str(recording_case), **spec))
    assert batching["streamed_text"] == reference["streamed_text"]
    assert {v["rule"] for v in batching["violations"]} == {"jank"}
    assert batching["jump_chars_max"] >= 100
    assert reference["violations"] == []
    assert reference["jump_chars_max"] <= 40


def test_cli_profile_by_name(
    recording_case: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = load_inputs([RECORDING])[0].response.body
    args = ["run", "--case", str(recording_case), "--chunking", f"bytes:{len(body) // 3 + 1}"]
    args += ["--out", str(tmp_path), "--profile"]
    assert cli_exit_code([*args, "smooth"]) == 0
    assert "jank" in capsys.readouterr().out
    assert cli_exit_code([*args, "smoth"]) == 2
    err = capsys.readouterr().err
    assert "profile 'smoth': no such file" in err and "Traceback" not in err


@given(
    st.one_of(
        st.lists(st.floats(-1e9, 1e9, allow_nan=False), max_size=40),
        st.lists(st.integers(0, 10_000), max_size=40),
        st.lists(st.floats(allow_nan=True, allow_infinity=False), min_size=1, max_size=5),
    ),
    st.sampled_from([50, 95, 0, 100, 37.5]),
)
def test_the_percentiles_of_a_row_are_numpys_to_the_bit(values: list[float], q: float) -> None:
    expected = float(np.percentile(values, q)) if values else math.nan
    got = percentile(values, q)
    assert (math.isnan(got) and math.isnan(expected)) or got.hex() == expected.hex()


@given(
    st.one_of(
        st.lists(st.floats(-1e9, 1e9, allow_nan=False), max_size=300),
        st.lists(st.integers(0, 10_000), max_size=300),
        st.lists(st.sampled_from([0.0, -0.0, 0.1, 1 / 3]), max_size=20),
        st.lists(st.floats(allow_nan=True, allow_infinity=False), min_size=1, max_size=5),
    )
)
def test_the_mean_of_a_row_is_numpys_to_the_bit(values: list[float]) -> None:
    """itl_per_chunk_ms is numpy's pairwise mean, computed without numpy."""
    with np.errstate(over="ignore"):  # a sum past the largest float is inf in both
        expected = float(np.mean(values)) if values else math.nan
    got = mean(values)
    assert (math.isnan(got) and math.isnan(expected)) or got.hex() == expected.hex()


def test_the_mean_of_many_values_sums_pairwise_like_numpy() -> None:
    """Above 128 values numpy halves the sum (a plain running sum differs in the last bits)."""
    values = [0.1 * (i % 7) + 1e-9 * i for i in range(5000)]
    assert mean(values).hex() == float(np.mean(values)).hex()


def test_grading_imports_no_numpy() -> None:
    """The per-run grader is plain Python: numpy costs start-up and a few values need none."""
    modules = [f"streambench.grade.{m}" for m in ("metrics", "rules", "expect", "upstream")]
    code = f"import sys, {', '.join(modules)}; print('numpy' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
