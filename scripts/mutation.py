"""Measure the oracle: a mutation campaign over the reference stack, judged by run + gate alone.

``python scripts/mutation.py`` (not in CI: tens of minutes on two cores)

1. copies ``src/`` and ``fixtures/`` into a scratch folder and lets cosmic-ray list every
   mutant of the reference modules (its standard operators);
   the answer parser lives in ``streambench/answer.py``, which the grader also imports to
   read the upstream's answer: mutating it there would bend the yardstick with the system.
   So the scratch tree gets a private copy, ``reference/_answer.py``, the reference's own
   imports are pointed at it, and only the copy is mutated (only its parts the reference
   imports: the shapes, prefills and the incremental parser); the grader keeps the
   pristine ``streambench.answer``;
2. runs the oracle (ORACLE_STAGES: the main job, the tool-call designs, the store failures, a
   second seed and a mid-stream disconnect) once on the unmutated copy under a line tracer:
   every stage must pass the gate, and a mutant on a line no stage executes cannot change
   what the oracle sees (it survives without being run);
3. draws a seeded sample, applies each mutant alone (``cosmic-ray apply``) and runs
   ``streambench run`` then ``streambench gate`` stage by stage: the mutant is killed when
   either exits non-zero or the runs exceed their time limit. No pytest, no other check;
4. prints the mutation score over the non-equivalent mutants and every survivor; mutants
   listed in ``scripts/mutation_equivalent.txt`` (one line each, with its line and reason) are left
   out of the score.

Results go to ``--results`` as JSON lines, one per mutant, as they finish; ``--resume``
continues a campaign that was stopped, keeping its killed and equivalent verdicts (of the
same mutant: same key and line) and judging the other mutants again (after a new fixture or
rule).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The answer format, shared by the reference and the grader; see SUT_ANSWER.
ANSWER = "src/streambench/answer.py"
SUT_ANSWER = "src/streambench/reference/_answer.py"
MODULES = (
    SUT_ANSWER,
    "src/streambench/reference/assistant.py",
    "src/streambench/reference/app.py",
    "src/streambench/reference/chain.py",
    "src/streambench/reference/edits.py",
)
# The oracle: the main job's matrix, with a second seed and a mid-stream disconnect on the
# upstream that serves each case (a case without a 20th character is left out of it); the
# tool-call designs (``reference:structured=tool`` in both orders, over the recordings of
# fixtures/experiments/make_tool_recordings.py) under the default chunkings; the store-failure
# cases (fixtures/store-failure.yaml). Run as stages, cheapest first: a mutant is killed by
# the first stage whose run or gate fails, so the verdict is the whole matrix's, and a killed
# mutant costs one stage. Each stage holds whole groups of the cross-run rules (every
# chunking of one case x SUT x seed without faults) or its runs only.
DISCONNECT = "disconnect@text=20,call=served,else=skip"
ORACLE_STAGES: tuple[tuple[str, ...], ...] = (
    # the main job's runs under one chunking first: a per-run violation there is one of the
    # whole matrix's, at a sixth of its cost (most mutants die here)
    ("--chunking", "events"),
    (),  # the main job
    ("--case", "fixtures/experiments/tool_changes_first", "--sut", "reference:structured=tool"),
    (
        *("--case", "fixtures/experiments/tool_text_first"),
        *("--sut", "reference:structured=tool,order=text_first"),
    ),
    ("fixtures/store-failure.yaml",),  # a store that fails its writes
    ("--seed", "0", "--seed", "1", "--fault", DISCONNECT),
    ("--seed", "1", "--fault", "none"),
)
EQUIVALENT_FILE = ROOT / "scripts" / "mutation_equivalent.txt"
# Traces the reference modules' executed lines while running the CLI in this process.
TRACER = """
import json, sys, threading
from pathlib import Path
root = str(Path(sys.argv[1]).resolve())
seen = set()
def tracer(frame, event, arg):
    name = frame.f_code.co_filename
    if not name.startswith(root):
        return None
    def lines(frame, event, arg):
        if event == "line":
            seen.add((name, frame.f_lineno))
        return lines
    seen.add((name, frame.f_lineno))
    return lines
sys.settrace(tracer)
threading.settrace(tracer)
from streambench.cli import main
sys.argv = ["streambench", *sys.argv[3:]]
try:
    main()
except SystemExit as stop:
    code = stop.code
else:
    code = 0
finally:
    sys.settrace(None)
Path(OUT).write_text(json.dumps(sorted(seen)))
sys.exit(code)
"""


@dataclass(frozen=True)
class Mutant:
    module: str  # relative to the tree, e.g. src/streambench/reference/chain.py
    operator: str
    occurrence: int
    line: int

    @property
    def key(self) -> str:
        return f"{Path(self.module).name} {self.operator} {self.occurrence}"


@dataclass
class Outcome:
    key: str
    module: str
    line: int
    operator: str
    occurrence: int
    status: str  # killed | survived | unreached | equivalent
    why: str  # what killed it (failed rules, exit code, timeout) or the equivalence reason
    diff: str
    seconds: float


def scratch_tree(tree: Path, scratch: Path) -> None:
    """The parts of the tree a run needs: the package and the bundled cases, with the
    reference reading the answer format from its own copy (SUT_ANSWER)."""
    for part in ("src", "fixtures"):
        shutil.copytree(tree / part, scratch / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(scratch / ANSWER, scratch / SUT_ANSWER)
    own = SUT_ANSWER.removeprefix("src/").removesuffix(".py").replace("/", ".")
    for module in (scratch / "src/streambench/reference").glob("*.py"):
        code = module.read_text()
        if "from streambench.answer import" in code:
            module.write_text(code.replace("from streambench.answer import", f"from {own} import"))
    # The optional C decoder is built in place by the install, not kept in git.
    for built in (ROOT / "src/streambench/sse").glob("_speedups*.so"):
        target = scratch / "src/streambench/sse" / built.name
        if not target.exists():
            shutil.copyfile(built, target)


def list_mutants(scratch: Path) -> list[Mutant]:
    """Every mutant cosmic-ray's standard operators make of MODULES, in a stable order."""
    from cosmic_ray.work_db import WorkDB, use_db

    modules = ", ".join(json.dumps(m) for m in MODULES)
    config = scratch / "cosmic-ray.toml"
    config.write_text(
        "[cosmic-ray]\n"
        f"module-path = [{modules}]\n"
        'timeout = 600.0\nexcluded-modules = []\ntest-command = "true"\n'
        '[cosmic-ray.distributor]\nname = "local"\n'
    )
    session = scratch / "session.sqlite"
    subprocess.run(["cosmic-ray", "init", str(config), str(session)], cwd=scratch, check=True)
    mutants = []
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item in db.work_items:
            for spec in item.mutations:
                mutants.append(
                    Mutant(
                        str(spec.module_path),
                        spec.operator_name,
                        spec.occurrence,
                        spec.start_pos[0],
                    )
                )
    return sorted(mutants, key=lambda m: (m.module, m.operator, m.occurrence))


def used_lines(path: Path, names: set[str]) -> set[int]:
    """The lines of the top-level definitions ``names`` need in the module at ``path``,
    following the module-level names each one mentions."""
    tree = ast.parse(path.read_text())
    defined: dict[str, ast.stmt] = {}
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", node)]
        for target in targets:
            name = getattr(target, "name", None) or getattr(target, "id", None)
            if name:
                defined[name] = node
    wanted, todo = set(), [n for n in names if n in defined]
    while todo:
        name = todo.pop()
        if name in wanted:
            continue
        wanted.add(name)
        mentioned = {n.id for n in ast.walk(defined[name]) if isinstance(n, ast.Name)}
        todo += [n for n in mentioned if n in defined and n not in wanted]
    return {
        line
        for name in wanted
        for line in range(defined[name].lineno, (defined[name].end_lineno or 0) + 1)
    }


def sut_answer_names(scratch: Path) -> set[str]:
    """What the reference imports from its copy of the answer format."""
    own = SUT_ANSWER.removeprefix("src/").removesuffix(".py").replace("/", ".")
    names: set[str] = set()
    for module in (scratch / "src/streambench/reference").glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == own:
                names |= {alias.name for alias in node.names}
    return names


def load_equivalent(path: Path) -> dict[str, tuple[int, str]]:
    """``module operator occurrence line  # reason`` lines -> (line, reason); the line pins the
    entry to one mutant (a later edit of the module renumbers the occurrences)."""
    found: dict[str, tuple[int, str]] = {}
    if not path.is_file():
        return found
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, reason = line.partition("#")
        words = key.split()
        if not sep or not reason.strip() or len(words) != 4 or not words[3].isdigit():
            sys.exit(f"{path}:{number}: expected 'module operator occurrence line  # reason'")
        found[" ".join(words[:3])] = (int(words[3]), reason.strip())
    return found


def oracle(scratch: Path, env: dict[str, str], timeout_s: float) -> tuple[bool, str]:
    """run + gate on the scratch tree, stage by stage (ORACLE_STAGES): (passed, what failed
    first). ``timeout_s`` bounds the whole oracle."""
    deadline = time.monotonic() + timeout_s
    for number, axes in enumerate(ORACLE_STAGES, start=1):
        passed, why = _stage(scratch, env, axes, deadline - time.monotonic())
        if not passed:
            return False, f"stage {number}: {why}"
    return True, ""


def _stage(
    scratch: Path, env: dict[str, str], axes: tuple[str, ...], timeout_s: float
) -> tuple[bool, str]:
    out = scratch / "reports"
    shutil.rmtree(out, ignore_errors=True)
    try:
        run = subprocess.run(
            ["streambench", "run", *axes, "--jobs", "1", "--format", "jsonl", "--out", out],
            cwd=scratch,
            env=env,
            capture_output=True,
            text=True,
            timeout=max(timeout_s, 1.0),
        )
    except subprocess.TimeoutExpired:
        return False, "run exceeded the time limit"
    if run.returncode:
        tail = (run.stderr.strip().splitlines() or ["?"])[-1]
        return False, f"run exit {run.returncode}: {tail[:160]}"
    gate = subprocess.run(
        ["streambench", "gate", str(out)], cwd=scratch, env=env, capture_output=True, text=True
    )
    if gate.returncode:
        failed = [
            line.split(":")[0].removeprefix("FAIL ")
            for line in gate.stdout.splitlines()
            if line.startswith("FAIL")
        ]
        return False, f"gate exit {gate.returncode}: {', '.join(failed)}"[:300]
    return True, ""


def traced_lines(scratch: Path, env: dict[str, str]) -> set[tuple[str, int]]:
    """The reference lines the oracle executes, from one traced run of each stage (each must
    pass the gate)."""
    root = scratch.resolve()
    seen: set[tuple[str, int]] = set()
    for number, axes in enumerate(ORACLE_STAGES, start=1):
        out = scratch / f"trace-{number}.json"
        script = TRACER.replace("OUT", json.dumps(str(out)))
        reports = scratch / f"reports-baseline-{number}"
        command = [sys.executable, "-c", script, str(scratch / "src"), "-", "run", *axes]
        subprocess.run(
            [*command, "--out", str(reports)], cwd=scratch, env=env, check=True, capture_output=True
        )
        gate = subprocess.run(
            ["streambench", "gate", str(reports)], cwd=scratch, env=env, capture_output=True
        )
        if gate.returncode:
            sys.exit(
                f"the unmutated reference fails the gate on stage {number} ({' '.join(axes)}):"
                " fix that before measuring the oracle"
            )
        seen |= {
            (str(Path(name).relative_to(root)), line) for name, line in json.loads(out.read_text())
        }
    return seen


def _compiles(path: Path) -> bool:
    """A mutant that does not compile fails every import, reached or not."""
    try:
        compile(path.read_text(), str(path), "exec")
    except SyntaxError:
        return False
    return True


def diff_of(scratch: Path, pristine: Path, module: str) -> str:
    result = subprocess.run(
        ["diff", "-U0", str(pristine / module), str(scratch / module)],
        capture_output=True,
        text=True,
    )
    lines = [line for line in result.stdout.splitlines() if line[:1] in "+-"][2:]
    return " | ".join(line.strip() for line in lines)[:300]


def draw(scratch: Path, args: argparse.Namespace) -> tuple[list[Mutant], list[Mutant]]:
    """Every mutant of the scratch tree, and the seeded sample of them."""
    # Of the copy, only what the reference uses is its code (the rest is the grader's).
    used = used_lines(scratch / SUT_ANSWER, sut_answer_names(scratch))
    mutants = [m for m in list_mutants(scratch) if m.module != SUT_ANSWER or m.line in used]
    return mutants, random.Random(args.seed).sample(mutants, min(args.sample, len(mutants)))


def report(args: argparse.Namespace) -> list[Outcome]:
    """The sample's last verdicts in ``--results`` (a resumed campaign appends), with the
    equivalent list applied as it is now; mutants of the sample not judged yet are left out."""
    with tempfile.TemporaryDirectory(prefix="streambench-mutation-") as folder:
        scratch = Path(folder) / "tree"
        scratch_tree(Path(args.tree).resolve(), scratch)
        _, sample = draw(scratch, args)
    latest = {}
    for row in Path(args.results).read_text().splitlines():
        outcome = Outcome(**json.loads(row))
        latest[outcome.key, outcome.line] = outcome
    equivalent = load_equivalent(Path(args.equivalent))
    outcomes = [latest[m.key, m.line] for m in sample if (m.key, m.line) in latest]
    for outcome in outcomes:
        line, reason = equivalent.get(outcome.key, (0, ""))
        if outcome.status != "killed" and line == outcome.line:
            outcome.status, outcome.why = "equivalent", reason
    print(f"{len(outcomes)} of the sample's {len(sample)} mutants have a verdict")
    return outcomes


def campaign(args: argparse.Namespace) -> list[Outcome]:
    tree = Path(args.tree).resolve()
    done: dict[str, Outcome] = {}
    results = Path(args.results)
    if args.resume and results.is_file():
        for line in results.read_text().splitlines():
            outcome = Outcome(**json.loads(line))
            # killed and equivalent verdicts stand; the rest are judged again
            if outcome.status in ("killed", "equivalent"):
                done[outcome.key] = outcome
    elif results.exists():
        results.unlink()
    equivalent = load_equivalent(Path(args.equivalent))
    with tempfile.TemporaryDirectory(prefix="streambench-mutation-") as folder:
        scratch, pristine = Path(folder) / "tree", Path(folder) / "pristine"
        scratch_tree(tree, scratch)
        scratch_tree(tree, pristine)
        # The scratch copy shadows the installed package; no bytecode so a restored file is
        # never served from a stale .pyc.
        env = {**os.environ, "PYTHONPATH": str(scratch / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
        mutants, sample = draw(scratch, args)
        print(f"{len(mutants)} mutants of {len(MODULES)} modules; sample of {len(sample)}")
        print(
            "baseline: the unmutated oracle, stage by stage (under a line tracer) ...", flush=True
        )
        if args.no_trace:  # every mutant is run: slower per mutant, no baseline trace
            if not oracle(scratch, env, args.timeout_s)[0]:
                sys.exit("the unmutated reference fails the gate: fix that before measuring")
            executed = None
        elif args.trace and Path(args.trace).is_file():
            executed = {(m, n) for m, n in json.loads(Path(args.trace).read_text())}
        else:
            executed = traced_lines(scratch, env)
            if args.trace:
                Path(args.trace).write_text(json.dumps(sorted(executed)))
        shard, shards = (int(part) for part in args.shard.split("/"))
        started = time.monotonic()
        with results.open("a") as sink:
            for number, mutant in enumerate(sample, start=1):
                if (number - 1) % shards != shard:
                    continue
                # a verdict stands only for the same mutant: an edit of the module renumbers
                # cosmic-ray's occurrences, so a key on another line is another mutant
                if mutant.key in done and done[mutant.key].line == mutant.line:
                    continue
                if time.monotonic() - started > args.budget_min * 60:
                    print(f"budget of {args.budget_min} min spent after {number - 1} mutants")
                    break
                outcome = judge(mutant, scratch, pristine, env, executed, equivalent, args)
                done[outcome.key] = outcome
                sink.write(json.dumps(asdict(outcome)) + "\n")
                sink.flush()
                print(
                    f"[{number}/{len(sample)}] {outcome.status:10} {mutant.key} "
                    f"(line {mutant.line}, {outcome.seconds:.0f} s) {outcome.why}",
                    flush=True,
                )
    lines = {m.key: m.line for m in sample}
    return [o for k, o in done.items() if lines.get(k) == o.line]


def judge(
    mutant: Mutant,
    scratch: Path,
    pristine: Path,
    env: dict[str, str],
    executed: set[tuple[str, int]] | None,
    equivalent: dict[str, tuple[int, str]],
    args: argparse.Namespace,
) -> Outcome:
    started = time.monotonic()
    # what ``cosmic-ray apply`` does, without its ~1 s of imports per mutant
    from cosmic_ray.mutating import apply_mutation
    from cosmic_ray.plugins import get_operator

    apply_mutation(scratch / mutant.module, get_operator(mutant.operator)(), mutant.occurrence)
    try:
        diff = diff_of(scratch, pristine, mutant.module)
        if equivalent.get(mutant.key, (0, ""))[0] == mutant.line:
            status, why = "equivalent", equivalent[mutant.key][1]
        elif (
            executed is not None
            and (mutant.module, mutant.line) not in executed
            and _compiles(scratch / mutant.module)
        ):
            status, why = "unreached", "the oracle never executes this line"
        else:
            passed, why = oracle(scratch, env, args.timeout_s)
            status = "survived" if passed else "killed"
    finally:
        shutil.copyfile(pristine / mutant.module, scratch / mutant.module)
    return Outcome(
        mutant.key,
        mutant.module,
        mutant.line,
        mutant.operator,
        mutant.occurrence,
        status,
        why,
        diff,
        round(time.monotonic() - started, 1),
    )


def summary(outcomes: list[Outcome]) -> str:
    counts = {s: sum(o.status == s for o in outcomes) for s in ("killed", "survived", "unreached")}
    counts["equivalent"] = sum(o.status == "equivalent" for o in outcomes)
    scored = counts["killed"] + counts["survived"] + counts["unreached"]
    score = counts["killed"] / scored if scored else float("nan")
    lines = [
        f"{len(outcomes)} mutants judged: {counts['killed']} killed, {counts['survived']} "
        f"survived, {counts['unreached']} never executed by the oracle, "
        f"{counts['equivalent']} equivalent",
        f"mutation score (killed / non-equivalent): {counts['killed']}/{scored} = {score:.1%}",
    ]
    alive = sorted(
        (o for o in outcomes if o.status in ("survived", "unreached")),
        key=lambda o: (o.module, o.line),
    )
    if alive:
        lines.append("surviving mutants:")
        lines += [
            f"  {o.status:9} {o.key} (line {o.line}): {o.diff or '(no textual change)'}"
            for o in alive
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=int, default=200, help="mutants to draw (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--timeout-s", type=float, default=300.0, help="per-mutant run limit")
    parser.add_argument("--budget-min", type=float, default=120.0, help="stop after this long")
    parser.add_argument("--tree", default=str(ROOT), help="checkout to mutate (default: this)")
    parser.add_argument("--results", default="mutation-results.jsonl", help="JSON lines out")
    parser.add_argument("--equivalent", default=str(EQUIVALENT_FILE), help="equivalent mutants")
    parser.add_argument("--resume", action="store_true", help="keep finished mutants")
    parser.add_argument(
        "--no-trace",
        action="store_true",
        help="skip the traced baseline (slow on a big matrix): run every mutant, none unreached",
    )
    parser.add_argument("--report-only", action="store_true", help="summarise --results only")
    parser.add_argument(
        "--shard",
        default="0/1",
        help="K/N: judge the sample's mutants K, K+N, ... (N campaigns in parallel, one results"
        " file)",
    )
    parser.add_argument(
        "--trace",
        default=None,
        help="the baseline's executed lines: read from this file when it exists (an earlier"
        " campaign of the same tree wrote it), else traced and written there",
    )
    args = parser.parse_args()
    outcomes = report(args) if args.report_only else campaign(args)
    print(summary(outcomes))


if __name__ == "__main__":
    main()
