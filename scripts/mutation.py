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
2. runs the main job once on the unmutated copy under a line tracer: it must pass the gate,
   and a mutant on a line that job never executes cannot change what it sees (it survives
   without being run);
3. draws a seeded sample, applies each mutant alone (``cosmic-ray apply``) and runs
   ``streambench run`` then ``streambench gate``: the mutant is killed when either exits
   non-zero or the run exceeds its time limit. No pytest, no other check;
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
# The oracle's matrix: the main job's, with a second seed and a mid-stream disconnect on the
# upstream that serves each case (a case without a 20th character is left out of it).
ORACLE_AXES = (
    *("--seed", "0", "--seed", "1"),
    *("--fault", "none", "--fault", "disconnect@text=20,call=served,else=skip"),
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
    """run + gate on the scratch tree: (passed, what failed)."""
    out = scratch / "reports"
    shutil.rmtree(out, ignore_errors=True)
    try:
        run = subprocess.run(
            ["streambench", "run", *ORACLE_AXES, "--jobs", "1", "--format", "jsonl", "--out", out],
            cwd=scratch,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        return False, f"run exceeded {timeout_s:.0f} s"
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
    """The reference lines the main job executes, from one traced run (which must pass)."""
    out = scratch / "trace.json"
    script = TRACER.replace("OUT", json.dumps(str(out)))
    reports = scratch / "reports-baseline"
    subprocess.run(
        [sys.executable, "-c", script, str(scratch / "src"), "-", "run", "--out", str(reports)],
        cwd=scratch,
        env=env,
        check=True,
        capture_output=True,
    )
    gate = subprocess.run(
        ["streambench", "gate", str(reports)], cwd=scratch, env=env, capture_output=True
    )
    if gate.returncode:
        sys.exit("the unmutated reference fails the gate: fix that before measuring the oracle")
    root = scratch.resolve()
    return {(str(Path(name).relative_to(root)), line) for name, line in json.loads(out.read_text())}


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
        print("baseline: the unmutated main job (under a line tracer) ...", flush=True)
        if args.no_trace:  # every mutant is run: slower per mutant, no baseline trace
            if not oracle(scratch, env, args.timeout_s)[0]:
                sys.exit("the unmutated reference fails the gate: fix that before measuring")
            executed = None
        else:
            executed = traced_lines(scratch, env)
        started = time.monotonic()
        with results.open("a") as sink:
            for number, mutant in enumerate(sample, start=1):
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
    subprocess.run(
        ["cosmic-ray", "apply", mutant.module, mutant.operator, str(mutant.occurrence)],
        cwd=scratch,
        check=True,
        capture_output=True,
    )
    try:
        diff = diff_of(scratch, pristine, mutant.module)
        if equivalent.get(mutant.key, (0, ""))[0] == mutant.line:
            status, why = "equivalent", equivalent[mutant.key][1]
        elif (
            executed is not None
            and (mutant.module, mutant.line) not in executed
            and _compiles(scratch / mutant.module)
        ):
            status, why = "unreached", "the main job never executes this line"
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
        f"survived, {counts['unreached']} never executed by the main job, "
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
    args = parser.parse_args()
    outcomes = report(args) if args.report_only else campaign(args)
    print(summary(outcomes))


if __name__ == "__main__":
    main()
