"""Adding a provider API is one new module in providers/: a toy API's module, put on the
package's path (tests/provider_modules/toy_chat.py, nothing else changed), is recorded from
the fake provider, replayed under a content re-split and a fault, and graded.

It runs in a fresh interpreter: the module must be there when streambench first loads its
providers, as one in src/streambench/providers/ would be."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

MODULES = Path(__file__).parent / "provider_modules"

SCRIPT = """
import json, sys
import streambench.providers
streambench.providers.__path__.append(sys.argv[1])

from streambench._server import running_server
from streambench.grade.expect import recorded_answer
from streambench.grade.upstream import analyse_plan
from streambench.providers import apis, registry
from streambench.record import recorder
from streambench.record.fake_provider import FakeProvider, parse_script
from streambench.replay import build_plan
from streambench.sse import decode_all
from streambench.transcript import load, synth

out = {"names": registry.api_names(), "synth": "toy-chat" in synth.APIS}
rules = parse_script({"rules": [{"match": "weather", "text": "Sunny and 21 degrees in Paris."}]})
with running_server(FakeProvider(rules=rules, rate=0).app()) as url:
    api = registry.get("toy-chat")
    body = api.build_body(None, "weather in Paris?", None)
    recorder.record(
        api.url(api.default_model, url), body, out=sys.argv[2], provider="toy"
    )
t = load(sys.argv[2])
text = apis.summarize(t.meta.api, decode_all(t.response.body)).text
out["recorded"] = [t.meta.provider, t.meta.api, text]
plan = build_plan(t, "deltas:1", None, (), 0)
out["replayed_events"] = len(plan.content_timeline)
out["graded_text"] = analyse_plan(plan, "chat", None).text
cut = build_plan(t, "events", None, ("disconnect@delta=2",), 0)
out["cut"] = [cut.ending, analyse_plan(cut, "chat", None).text]
# its tool calls: the answer tool's input is the expected answer, timed by the grader
edits = [{"action": "rewrite", "new_code": "fn(state => state.data);"}]
call = synth.ToolCall("edit_job_code", json.dumps({"code_edits": edits, "text_answer": "Done."}))
body = synth.render("toy-chat", text="", tool_calls=[call])
tool = synth.make_transcript("toy-chat", body, request_body={}, url=api.url(api.default_model))
answer = recorded_answer(tool, "job_code", "fn(state => state);")
out["tool_answer"] = [answer.text, answer.code]
timed = analyse_plan(build_plan(tool, "events", None, (), 0), "job_code", None)
out["tool_timed"] = [timed.tool, timed.structured_complete_ms is not None, timed.text]
print(json.dumps(out))
"""


def test_a_provider_module_alone_records_replays_and_grades(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(MODULES), str(tmp_path / "toy.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert out["names"][-1] == "generic-sse" and "toy-chat" in out["names"]
    assert out["synth"]  # synth (and the fake provider) render it: it has a renderer
    assert out["recorded"] == ["toy", "toy-chat", "Sunny and 21 degrees in Paris."]
    assert out["replayed_events"] > 3  # one per re-split delta
    assert out["graded_text"] == "Sunny and 21 degrees in Paris."
    ending, text = out["cut"]
    assert ending != "complete" and text and "Sunny and 21 degrees in Paris.".startswith(text)
    # its tool calls, read by its module alone: the expected answer and the grader's timing
    assert out["tool_answer"] == ["Done.", "fn(state => state.data);"]
    assert out["tool_timed"] == ["edit_job_code", True, "Done."]
