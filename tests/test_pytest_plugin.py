"""The pytest plugin, exercised the way users use it: test files run with pytester."""

from __future__ import annotations

from pathlib import Path

import pytest

from streambench.testing.pytest_plugin import Streambench, Variant
from streambench.transcript import save, synth

pytest_plugins = ["pytester"]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# Model output that is itself the inside of a JSON string: an escaped é, quotes, a backslash.
ESCAPED_ANSWER = r"caf\u00e9 says \"hi\" \\ then na\u00efve r\u00e9sum\u00e9"


@pytest.fixture
def user_project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A user's project folder holding two recorded anthropic streams."""
    for name, text in (("hello", "Hello there, streaming world"), ("escaped", ESCAPED_ANSWER)):
        body = synth.render("anthropic-messages", text=text)
        request = {"model": synth.DEFAULT_MODELS["anthropic-messages"], "stream": True}
        transcript = synth.make_transcript("anthropic-messages", body, request_body=request)
        save(transcript, pytester.path / f"{name}.yaml")
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    return pytester


def test_fixture_replays_into_httpx_on_virtual_time(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(
        """
        import asyncio
        import json

        import httpx
        import pytest
        from httpx_sse import aconnect_sse

        URL = "https://api.anthropic.com/v1/messages"

        async def ask():
            # the code under test: streams an answer from anthropic over httpx
            parts = []
            async with httpx.AsyncClient() as client:
                async with aconnect_sse(client, "POST", URL, json={"stream": True}) as source:
                    async for event in source.aiter_sse():
                        if event.event == "content_block_delta":
                            parts.append(json.loads(event.data)["delta"]["text"])
            return "".join(parts)

        async def test_text_arrives_whole_under_any_split(streambench):
            loop = asyncio.get_running_loop()
            started = loop.time()
            with streambench.replay(
                "hello.yaml", chunking="bytes:3", latency="const:ttfb=30000,gap=1000"
            ) as upstream:
                text = await ask()
            assert text == "Hello there, streaming world"
            assert upstream.requests[0].completed
            # 30 s to the first byte, passed on the loop's virtual clock
            assert loop.time() - started >= 30

        async def test_mid_stream_disconnect_raises(streambench):
            with streambench.replay("hello.yaml", fault="disconnect@event=4"):
                with pytest.raises(httpx.RemoteProtocolError):
                    await ask()
        """
    )
    result = user_project.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_marker_parametrizes_over_the_matrix(user_project: pytest.Pytester) -> None:
    case = next(p for p in sorted(FIXTURES.glob("*/case.yaml")))
    user_project.makepyfile(
        f"""
        import httpx
        import pytest

        @pytest.mark.streambench(
            cases=["hello.yaml"],
            chunkings=["bytes:1", "deltas:adversarial"],
            faults=["", "truncate@event=3"],
        )
        def test_matrix(streambench):
            variant = streambench.variant
            with streambench.replay(speed=float("inf")) as upstream:
                body = httpx.post("https://api.anthropic.com/v1/messages", json={{}}).read()
            assert upstream.plans[0].spec["chunking"] == variant.chunking
            complete = b"message_stop" in body
            assert complete == (variant.fault == "")

        @pytest.mark.streambench(cases=[{str(case.parent)!r}])
        def test_case_folder(streambench):
            assert streambench.case.name
            assert len(streambench.plans()) == len(streambench.case.upstream)
        """
    )
    result = user_project.runpytest("-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["*test_matrix?hello-bytes:1-truncate@event=3-seed0? PASSED*"])


def test_marker_misuse_is_reported(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(
        test_missing_case="""
        import pytest

        @pytest.mark.streambench(cases=["missing.yaml"])
        def test_x(streambench):
            pass
        """,
        test_no_fixture="""
        import pytest

        @pytest.mark.streambench(cases=["hello.yaml"])
        def test_without_fixture():
            pass
        """,
    )
    result = user_project.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*case 'missing.yaml': no such file or folder*"])
    result.stdout.fnmatch_lines(["*test_without_fixture: the test must take the streambench*"])


def test_hypothesis_finds_the_two_character_escape_buffer_bug(
    user_project: pytest.Pytester,
) -> None:
    user_project.makepyfile(
        r'''
        import json
        import math
        import re

        import httpx
        from httpx_sse import connect_sse
        from hypothesis import HealthCheck, Phase, given, settings

        from streambench.testing.strategies import delta_chunkings, seeds

        INCOMPLETE_ESCAPE = re.compile(r"(?<!\\)(\\\\)*\\(u[0-9a-fA-F]{0,3})?$")

        def naive_decode(deltas):
            """Holds back a trailing backslash, or a backslash and one more char: 2 chars."""
            out, pending = [], ""
            for delta in deltas:
                buf = pending + delta
                cut = len(buf) - (1 if buf.endswith("\\") else 2 if buf[-2:-1] == "\\" else 0)
                buf, pending = buf[:cut], buf[cut:]
                try:
                    out.append(json.loads('"' + buf + '"'))
                except json.JSONDecodeError:
                    out.append(buf)  # shows the raw escape: the leak users reported
            return "".join(out)

        def correct_decode(deltas):
            """Holds back exactly an incomplete escape, however long."""
            out, pending = [], ""
            for delta in deltas:
                buf = pending + delta
                match = INCOMPLETE_ESCAPE.search(buf)
                cut = len(buf) if match is None else match.start() + len(match.group(1) or "")
                buf, pending = buf[:cut], buf[cut:]
                out.append(json.loads('"' + buf + '"'))
            return "".join(out)

        CLIENT = httpx.Client()  # one client for all examples: creating one costs ~0.1 s

        def deltas_from_provider():
            url = "https://api.anthropic.com/v1/messages"
            with connect_sse(CLIENT, "POST", url, json={}) as source:
                return [
                    json.loads(event.data)["delta"]["text"]
                    for event in source.iter_sse()
                    if event.event == "content_block_delta"
                ]

        def check(streambench, decode, chunking, seed):
            with streambench.replay("escaped.yaml", chunking=chunking, seed=seed, speed=math.inf):
                deltas = deltas_from_provider()
            raw = "".join(deltas)
            assert decode(deltas) == json.loads('"' + raw + '"')

        PROPERTY = settings(
            max_examples=30,
            deadline=None,
            phases=[phase for phase in Phase if phase is not Phase.explain],  # keeps CI fast
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )

        @PROPERTY
        @given(chunking=delta_chunkings(), seed=seeds())
        def test_naive_handler(streambench, chunking, seed):
            check(streambench, naive_decode, chunking, seed)

        @PROPERTY
        @given(chunking=delta_chunkings(), seed=seeds())
        def test_correct_handler(streambench, chunking, seed):
            check(streambench, correct_decode, chunking, seed)
        '''
    )
    result = user_project.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    # hypothesis reports the counterexample ("Falsifying example" / "Failing test case")
    result.stdout.re_match_lines([r".*(Falsifying example|Failing test case): test_naive_handler"])
    assert "test_correct_handler" not in "".join(
        line for line in result.outlines if line.startswith("FAILED")
    )


def test_faults_hit_the_first_upstream_call_only() -> None:
    variant = Variant(
        FIXTURES / "failover-openai-chat", chunking="bytes:7", fault="disconnect@bytes=3"
    )
    bench = Streambench(FIXTURES, variant)
    first, second = bench.plans()
    assert first.spec["faults"] == ["disconnect@bytes=3"]
    assert second.spec["faults"] == []
    assert first.spec["chunking"] == second.spec["chunking"] == "bytes:7"
    assert bench.plans("chat-hello/upstream.yaml", fault=[])[0].spec["faults"] == []
