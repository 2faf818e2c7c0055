#!/usr/bin/env python
"""Mutation testing for gptlab: put one small bug at a time into the package and see whether the tests notice.

A test suite can pass and still check little. This runner makes *mutants*: copies
of one gptlab module with one realistic slip (an off-by-one, a flipped
comparison, a dropped call), runs a fast subset of the tests against each, and
reports which mutants the tests *killed* (some test failed), which *survived*
(every test passed: a gap, or an equivalent mutant that behaves like the
original) and which hit the time limit (counted as killed, as mutmut does).

    python tools/mutants.py                         # 100 mutants sampled (seed 0) from the critical modules
    python tools/mutants.py --sample 30 --seed 1    # another, smaller sample
    python tools/mutants.py --modules generation --sample 0   # every mutant of one module (slow)
    python tools/mutants.py --list                  # list the mutants, run nothing
    python tools/mutants.py --json run.json         # keep the results; later, after new tests:
    python tools/mutants.py --rerun run.json        #   run only that run's survivors again
    make mutants MUTANTS_ARGS="--sample 40"

Mutations (stdlib `ast`, one per mutant, only inside functions and methods:
module-level tables such as the dataset registry and the presets are data):
    comparisons   < <=, > >=, == !=, is / is not, in / not in   (each swapped with its partner)
    arithmetic    + -, * /, // /, ** *, % //                       (also in +=, -=, ...)
    constants     an int n -> n + 1, a float x -> 2x (0.0 -> 1.0), True <-> False
    logic         and <-> or, `not x` -> x, `-x` -> x, `if c:` / `while c:` -> `if not c:`
    statements    a call statement (`loss.backward()`) or a `raise` -> `pass`
Strings, f-strings (error messages), docstrings, annotations and `stacklevel=`
are left alone.

How a mutant runs: the repository's gptlab/, tests/ and pyproject.toml are copied
once into a temp folder; for each mutant the module is rewritten there
(ast.unparse of the mutated tree), then `pytest -x` runs that module's test subset
(TESTS below, or --tests) with the temp folder first on PYTHONPATH, so subprocesses
the tests start import the mutant too. The unmutated copy runs first and must pass;
each mutant gets 3x its time (at least 60 s) before it counts as a timeout.

Equivalent mutants: a survivor that cannot change behaviour (e.g. `x >= 0` vs
`x > 0` where x is never 0) is not a gap. List such mutants, one per line as the
runner prints them (`gptlab/model.py:25:11 ...`, line:column) with a `# why` comment, in
tools/mutants_equivalent.txt: they are reported but left out of the score.
Line numbers shift as code changes, so re-check that file after edits.

Exit status: 0, or 1 when some non-equivalent mutant survived.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("model", "generation", "tokenizers", "training", "data")
# Fast test subsets per module (pytest arguments): the tests that exercise it, quick files
# first (pytest -x stops at the first failure). End-to-end runs (training for tens of steps,
# resume after kill -9, the CLI in subprocesses) are left out: with them a mutant costs minutes.
TESTS: dict[str, list[str]] = {
    "model": ["tests/test_config.py", "tests/test_model.py", "tests/test_attention.py"],
    "generation": ["tests/test_generation.py", "tests/test_cli.py", "-k", "test_generation or cli_generate"],
    "tokenizers": ["tests/test_tokenizers.py"],
    "training": ["tests/test_training.py", "tests/test_checkpoint.py", "-k",
                 "grad_accum or tokens_per or two_dim or another_format or bad_config or presets or lr_schedule or get_batch "
                 "or weight_decay or bf16 or bad_training or refuses or round_trip or damaged or bad_checkpoint or unpickled "
                 "or atomic or other_files"],
    "data": ["tests/test_data.py"],
}
EQUIVALENT = ROOT / "tools" / "mutants_equivalent.txt"

SWAP_CMP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
            ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
SWAP_BIN = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
            ast.Pow: ast.Mult, ast.Mod: ast.FloorDiv}
SYMBOL = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.Is: "is",
          ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in", ast.Add: "+", ast.Sub: "-", ast.Mult: "*",
          ast.Div: "/", ast.FloorDiv: "//", ast.Pow: "**", ast.Mod: "%", ast.And: "and", ast.Or: "or"}


@dataclass(frozen=True)
class Mutant:
    module: str
    site: int  # index of the mutated node in the traversal order of `_sites`
    choice: int  # which of that node's mutations
    line: int
    col: int
    label: str

    @property
    def name(self) -> str:
        return f"gptlab/{self.module}.py:{self.line}:{self.col} {self.label}"


# ---------------------------------------------------------------- finding and applying mutations


def _sites(tree: ast.AST):
    """(parent, field, index, node) for every node that is code inside a function, in a fixed order."""

    def walk(node, parent, field, index, in_function):
        if isinstance(node, ast.JoinedStr):
            return  # f-strings: message text
        if isinstance(node, ast.keyword) and node.arg == "stacklevel":
            return
        if in_function:
            yield parent, field, index, node
        inside = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        for f, value in ast.iter_fields(node):
            if f in ("annotation", "returns", "decorator_list", "type_comment"):
                continue
            children = value if isinstance(value, list) else [value]
            for i, child in enumerate(children):
                if not isinstance(child, ast.AST):
                    continue
                if f == "body" and i == 0 and _is_docstring(child):
                    continue
                yield from walk(child, node, f, i if isinstance(value, list) else None, inside)

    yield from walk(tree, None, None, None, False)


def _is_docstring(node: ast.AST) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _replace(parent: ast.AST, field: str, index: int | None, new: ast.AST) -> None:
    if index is None:
        setattr(parent, field, new)
    else:
        getattr(parent, field)[index] = new


def _mutations(parent, field, index, node) -> list[tuple[str, callable]]:
    """The mutations of one node: (label, function that applies it in place)."""
    out = []
    if isinstance(node, ast.Compare):
        for k, op in enumerate(node.ops):
            if type(op) in SWAP_CMP:
                new = SWAP_CMP[type(op)]
                out.append((f"`{SYMBOL[type(op)]}` -> `{SYMBOL[new]}`", lambda k=k, new=new: node.ops.__setitem__(k, new())))
    elif isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in SWAP_BIN:
        new = SWAP_BIN[type(node.op)]
        out.append((f"`{SYMBOL[type(node.op)]}` -> `{SYMBOL[new]}`", lambda: setattr(node, "op", new())))
    elif isinstance(node, ast.BoolOp):
        new = ast.Or if isinstance(node.op, ast.And) else ast.And
        out.append((f"`{SYMBOL[type(node.op)]}` -> `{SYMBOL[new]}`", lambda: setattr(node, "op", new())))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
        sym = "not " if isinstance(node.op, ast.Not) else "-"
        out.append((f"`{sym}x` -> `x`", lambda: _replace(parent, field, index, node.operand)))
    elif isinstance(node, ast.Constant) and not isinstance(node.value, (str, bytes)) and node.value is not None:
        v = node.value
        if isinstance(v, bool):
            out.append((f"`{v}` -> `{not v}`", lambda: setattr(node, "value", not v)))
        elif isinstance(v, int):
            out.append((f"`{v}` -> `{v + 1}`", lambda: setattr(node, "value", v + 1)))
        elif isinstance(v, float):
            new_v = v * 2 if v else 1.0
            out.append((f"`{v!r}` -> `{new_v!r}`", lambda: setattr(node, "value", new_v)))
    elif isinstance(node, (ast.If, ast.While)):
        kind = "if" if isinstance(node, ast.If) else "while"
        out.append((f"`{kind} c:` -> `{kind} not c:`", lambda: setattr(node, "test", ast.UnaryOp(ast.Not(), node.test))))
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and index is not None:
        what = ast.unparse(node.value.func)[:40]
        out.append((f"call `{what}(...)` removed", lambda: _replace(parent, field, index, ast.Pass())))
    elif isinstance(node, ast.Raise) and index is not None:
        out.append(("`raise ...` -> `pass`", lambda: _replace(parent, field, index, ast.Pass())))
    return out


def find_mutants(module: str, source: str) -> list[Mutant]:
    tree = ast.parse(source)
    found = []
    for site, (parent, field, index, node) in enumerate(_sites(tree)):
        for choice, (label, _) in enumerate(_mutations(parent, field, index, node)):
            found.append(Mutant(module, site, choice, getattr(node, "lineno", 0), getattr(node, "col_offset", 0), label))
    return found


def mutated_source(m: Mutant, source: str) -> str:
    tree = ast.parse(source)
    for site, (parent, field, index, node) in enumerate(_sites(tree)):
        if site == m.site:
            _mutations(parent, field, index, node)[m.choice][1]()
            return ast.unparse(ast.fix_missing_locations(tree)) + "\n"
    raise RuntimeError(f"mutant {m.name} not found in the source")


# ---------------------------------------------------------------- running


def _pytest(work: Path, args: list[str], timeout: float) -> tuple[str, float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(work), os.environ.get("PYTHONPATH", "")]),
           "PYTHONDONTWRITEBYTECODE": "1", "MPLBACKEND": "Agg"}
    env.setdefault("GPTLAB_DATA_DIR", str(ROOT / "data"))  # share the checkout's data cache
    t0 = time.perf_counter()
    try:
        r = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *args],
                           cwd=work, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - t0
    status = {0: "survived", 5: "no tests"}.get(r.returncode, "killed")
    return status, time.perf_counter() - t0


def load_equivalent() -> dict[str, str]:
    out = {}
    if EQUIVALENT.exists():
        for line in EQUIVALENT.read_text(encoding="utf-8").splitlines():
            name, _, why = line.partition("#")
            if name.strip():
                out[name.strip()] = why.strip()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modules", nargs="+", default=list(MODULES), choices=MODULES, help="gptlab modules to mutate")
    p.add_argument("--sample", type=int, default=100, help="run this many mutants drawn at random (0: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample")
    p.add_argument("--tests", nargs=argparse.REMAINDER, help="pytest arguments for every module (default: TESTS subsets)")
    p.add_argument("--list", action="store_true", help="list the mutants and exit")
    p.add_argument("--timeout", type=float, help="seconds per mutant; skips the baseline runs (use when the tests are known to pass)")
    p.add_argument("--json", type=Path, help="also write the results to this JSON file")
    p.add_argument("--rerun", type=Path, help="run only the survivors recorded in this --json file (after adding tests)")
    args = p.parse_args(argv)

    sources = {mod: (ROOT / "gptlab" / f"{mod}.py").read_text(encoding="utf-8") for mod in args.modules}
    mutants = [m for mod in args.modules for m in find_mutants(mod, sources[mod])]
    total = len(mutants)
    if args.rerun:
        survivors = {r["mutant"] for r in json.loads(args.rerun.read_text())["results"] if r["status"] == "survived"}
        mutants = [m for m in mutants if m.name in survivors]
    elif args.sample and args.sample < total:
        mutants = random.Random(args.seed).sample(mutants, args.sample)  # random order: a run cut short is still a sample
    if args.list:
        for m in mutants:
            print(m.name)
        print(f"{len(mutants)} of {total} mutants", file=sys.stderr)
        return 0
    equivalent = load_equivalent()

    def stop(signum, frame):  # `kill PID` as well as Ctrl-C: clean up the temp copy, report what ran
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    with tempfile.TemporaryDirectory(prefix="gptlab-mutants-") as tmp:
        work = Path(tmp)
        shutil.copytree(ROOT / "gptlab", work / "gptlab", ignore=shutil.ignore_patterns("__pycache__"))
        for mod, src in sources.items():  # exactly the text the mutants were made from
            (work / "gptlab" / f"{mod}.py").write_text(src, encoding="utf-8")
        shutil.copytree(ROOT / "tests", work / "tests", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy2(ROOT / "pyproject.toml", work / "pyproject.toml")
        timeouts = {}
        for mod in sorted({m.module for m in mutants}):
            if args.timeout:
                timeouts[mod] = args.timeout
                continue
            tests = args.tests or TESTS[mod]
            status, secs = _pytest(work, tests, timeout=3600)
            if status != "survived":
                print(f"the tests for {mod} ({' '.join(tests)}) do not pass on unmutated code ({status}); fix that first", file=sys.stderr)
                return 2
            timeouts[mod] = max(60.0, 3 * secs)
            print(f"baseline {mod}: tests pass in {secs:.0f} s; limit per mutant {timeouts[mod]:.0f} s", flush=True)

        print(f"running {len(mutants)} of {total} mutants of {', '.join(args.modules)} (seed {args.seed})", flush=True)
        results = []
        try:
            _run_all(mutants, sources, work, args.tests, timeouts, equivalent, results)
        except KeyboardInterrupt:  # Ctrl-C: report what ran so far
            print(f"interrupted after {len(results)} mutants", flush=True)
    return _report(results, equivalent, args, total)


def _run_all(mutants, sources, work, tests, timeouts, equivalent, results) -> None:
    """Run each mutant against its module's tests; append one result dict per mutant to `results`."""
    for n, m in enumerate(mutants, 1):
        target = work / "gptlab" / f"{m.module}.py"
        original = sources[m.module]
        try:
            src = mutated_source(m, original)
            compile(src, str(target), "exec")
        except (SyntaxError, ValueError) as e:
            status, secs = f"invalid ({e})", 0.0
        else:
            target.write_text(src, encoding="utf-8")
            try:
                status, secs = _pytest(work, tests or TESTS[m.module], timeouts[m.module])
            finally:
                target.write_text(original, encoding="utf-8")
        if status == "survived" and m.name in equivalent:
            status = "equivalent"
        results.append({"mutant": m.name, "status": status, "seconds": round(secs, 1)})
        print(f"[{n}/{len(mutants)}] {status:10s} {m.name}  ({secs:.0f} s)", flush=True)


def _report(results, equivalent, args, total) -> int:
    """Print the counts, the score and every survivor; exit status 1 if a non-equivalent mutant survived."""
    counts = {s: sum(r["status"] == s for r in results) for s in ("killed", "timeout", "survived", "equivalent")}
    scored = counts["killed"] + counts["timeout"] + counts["survived"]
    score = (counts["killed"] + counts["timeout"]) / scored if scored else 1.0
    print(f"\n{len(results)} mutants: {counts['killed']} killed, {counts['timeout']} timeouts, {counts['survived']} survived, "
          f"{counts['equivalent']} equivalent, {len(results) - sum(counts.values())} invalid/other")
    print(f"mutation score (killed + timeouts) / non-equivalent: {score:.1%}")
    for r in results:
        if r["status"] in ("survived", "equivalent"):
            note = f"  # {equivalent[r['mutant']]}" if r["status"] == "equivalent" else ""
            print(f"  {r['status']:10s} {r['mutant']}{note}")
    if args.json:
        args.json.write_text(json.dumps({"modules": args.modules, "seed": args.seed, "sample": args.sample, "total": total,
                                         "counts": counts, "score": score, "results": results}, indent=1) + "\n")
    return 1 if counts["survived"] else 0


if __name__ == "__main__":
    sys.exit(main())
