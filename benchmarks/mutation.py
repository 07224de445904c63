"""Mutation testing of the modules whose tests guard what matters: the checker, the store's
organisation filters, publishing and the metrics.

    python benchmarks/mutation.py [--modules check,store,publish,metrics] [--max-mutants 50]
                                  [--seed 1] [--timeout-factor 3] [--with-postgresql]
                                  [--list] [--json out.json] [--project DIR]

Run on demand, not in CI (pytest never collects this file: it lives outside `tests/` and its
name is not `test_*.py`). It never touches the work tree it is given: the project (default: the
checkout this script sits in, as it is on disk) is copied to a temporary directory and only the
copy is mutated, one mutant at a time, the original text written back after each.

A small AST mutator of our own (see benchmarks/README.md for why not mutmut or cosmic-ray):
every candidate change in a module's files is listed in source order, at most `--max-mutants`
of them are drawn with `random.Random(seed)`, and each drawn mutant is a one-place text splice
of the source, checked to parse and to change the syntax tree. The kinds of change:

- comparisons `==`/`!=`, `<`/`<=`, `>`/`>=`, `is`/`is not`, `in`/`not in` swapped;
- arithmetic and set operators `+`/`-`, `*`/`/`, `//` to `/`, `&`/`|` (also in `+=`/`-=`);
- `and`/`or` swapped, `not` dropped, unary minus dropped;
- `True`/`False` swapped, a number constant n made n + 1;
- `return x` made `return None`;
- a filter clause removed: one argument of `.where(...)`/`.filter(...)` (or the whole call
  when it has one), one `if` of a comprehension.

Each module's tests run in a child forked from this process (which has imported the third-party
libraries once, but never the project's own modules, so every child imports the mutated copy
afresh), with `-p no:cacheprovider -x -q`, one at a time. A mutant is *killed* when a test fails
(or the tests cannot even be collected), *survived* when they all pass, *timed out* when they
take longer than `--timeout-factor` times the unmutated run (at least `--min-timeout` s).
The survivor rate is survived / mutants run.

Only the tests listed for each module in TARGETS run, in the order listed (the quickest
discriminating ones first, so most mutants die early). By default the service tests run on
SQLite only (`-k "not postgresql"`); `--with-postgresql` runs both databases.
"""

from __future__ import annotations

import argparse
import ast
import copy
import importlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Target:
    files: tuple[tuple[str, tuple[str, ...] | None], ...]  # (path, only these top-level functions)
    tests: tuple[str, ...]  # pytest node ids / paths, in the order they run
    deselect: str = ""  # a -k expression, joined with "not postgresql" unless --with-postgresql


# What each module is mutated in, and the tests that cover it. Keep the selections short: every
# mutant that survives runs all of them (50 mutants per module, 30 minutes in all on 2 cores).
TARGETS: dict[str, Target] = {
    "check": Target(
        files=(("scheduler/check.py", None),),
        tests=("tests/test_comparison.py", "tests/test_check.py", "tests/test_engine_gap.py",
               "tests/test_properties.py"),
        # a wall-clock bound: on a loaded machine it could "kill" a mutant by timing alone
        deselect="not test_large_plan_is_checked_quickly",
    ),
    "store": Target(
        # the store, and the organisation checks of the request dependencies (key, role)
        files=(("api/store.py", None), ("api/deps.py", ("caller", "require"))),
        tests=(
            "tests/test_api.py::test_access_is_per_organisation_and_keys_are_checked",
            "tests/test_api.py::test_revoked_key_stops_working",
            "tests/test_api.py::test_bad_scenarios_are_422_with_every_problem_and_nothing_saved",
            "tests/test_api.py::test_upload_scenario_with_csv_files",
            "tests/test_api.py::test_plan_end_to_end_with_views_and_checked_result",
            "tests/test_api.py::test_new_version_keeps_old_plans_on_their_version",
            "tests/test_api.py::test_versions_and_plan_numbers_count_within_their_own_scenario",
            "tests/test_api.py::test_failed_solve_leaves_no_plan_and_says_why",
            "tests/test_api_consistency.py::test_concurrent_edits_each_get_their_own_version",
            "tests/test_api_consistency.py::test_addresses_and_names_the_database_cannot_hold_are_client_errors",
            # every route with an id, called with another organisation's keys (issue 11)
            "tests/test_api_isolation.py::test_another_organisation_reaches_nothing_of_north",
        ),
    ),
    "publish": Target(
        files=(("api/publish.py", None),),
        tests=(
            "tests/test_api_calendar.py::test_publish_update_and_cancel_keep_uids_and_raise_sequence",
            "tests/test_api_calendar.py::test_sensitive_clinic_gets_no_invite_but_stays_in_feeds",
            "tests/test_api_calendar.py::test_feeds_share_uids_with_invites_and_tokens_resist_attacks",
            "tests/test_api_consistency.py::test_an_earlier_plan_can_be_published_again_and_feeds_follow",
            "tests/test_api_consistency.py::test_a_clinic_becoming_sensitive_cancels_the_invite_and_back_sends_a_new_one",
        ),  # not the publication race (4 s): it tests the scenario lock, which no mutant here removes
    ),
    "metrics": Target(
        files=(("scheduler/metrics.py", None),),
        # every solve in these goes through the checker, which recomputes the metrics on its own
        # (tests/test_check.py never calls metrics.py: the checker is independent of it)
        tests=("tests/test_comparison.py", "tests/test_planner.py", "tests/test_engine_gap.py",
               "tests/test_properties.py"),
        # the 200-patient month (13 s) and two extra interpreters (3 s): the same checks as the rest
        deselect="not test_practice_month_sample and not test_same_plan_in_separate_processes",
    ),
}

# Imported once here so that each forked child only imports the project itself.
PRELOAD = (
    "pytest", "_pytest.python", "hypothesis", "hypothesis.strategies", "ortools.sat.python.cp_model",
    "pydantic", "pendulum", "yaml", "holidays", "sqlalchemy", "sqlalchemy.orm", "alembic", "psycopg",
    "fastapi", "fastapi.testclient", "starlette", "httpx", "anyio", "icalendar", "typer", "rich",
    "uvicorn", "vobject", "schemathesis",
)
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", "venv", "__pycache__", ".hypothesis", ".pytest_cache",
                                     "node_modules", "*.egg-info", "*.db", "*.pyc")


# ---------------------------------------------------------------------------------------------
# Mutants

@dataclass
class Mutant:
    path: str
    line: int
    function: str
    kind: str
    before: str
    after: str
    start: int = field(repr=False)  # character offsets of the replaced text in the source
    end: int = field(repr=False)
    replacement: str = field(repr=False)
    status: str = ""
    seconds: float = 0.0
    killed_by: str = ""

    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def change(self) -> str:
        return f"{self.kind}: `{self.before}` -> `{self.after}`" + (f" (in {self.function})" if self.function else "")


SYMBOL = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Is: "is",
          ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in", ast.Add: "+", ast.Sub: "-", ast.Mult: "*",
          ast.Div: "/", ast.FloorDiv: "//", ast.BitAnd: "&", ast.BitOr: "|", ast.And: "and", ast.Or: "or"}
COMPARE_SWAP = {ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE,
                ast.GtE: ast.Gt, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
BINOP_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
              ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd}
FILTER_CALLS = ("where", "filter", "filter_by")


def _short(text: str, limit: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Finder(ast.NodeVisitor):
    """Every candidate mutant of one file, in source order. Skips annotations, decorators,
    f-strings and docstrings (text is never mutated)."""

    def __init__(self, path: str, source: str, only: tuple[str, ...] | None):
        self.path, self.source, self.only = path, source, only
        lines = source.splitlines(keepends=True)
        self.line_starts = [0]
        for line in lines:
            self.line_starts.append(self.line_starts[-1] + len(line))
        self.lines = lines
        self.functions: list[str] = []
        self.found: list[Mutant] = []

    # positions: ast gives UTF-8 byte columns
    def _offset(self, line: int, col: int) -> int:
        text = self.lines[line - 1]
        return self.line_starts[line - 1] + len(text.encode("utf-8")[:col].decode("utf-8"))

    def _active(self) -> bool:
        return self.only is None or (bool(self.functions) and self.functions[0] in self.only)

    def _add(self, node: ast.AST, new: ast.AST, kind: str, *, statement: bool = False,
             before: str | None = None, after: str | None = None) -> None:
        if not self._active():
            return
        start = self._offset(node.lineno, node.col_offset)
        end = self._offset(node.end_lineno, node.end_col_offset)
        text = ast.unparse(new)
        replacement = text if statement else f"({text})"
        if before is None and node.lineno == node.end_lineno and len(ast.unparse(node)) < 16:
            # a short change (a constant, `not x`) reads better in its line
            line = self.lines[node.lineno - 1].rstrip("\n")
            s, e = start - self.line_starts[node.lineno - 1], end - self.line_starts[node.lineno - 1]
            lo, hi = max(0, s - 30), min(len(line), e + 30)
            head = ("..." if lo > len(line) - len(line.lstrip()) else "") + line[lo:s].lstrip()
            tail = line[e:hi] + ("..." if hi < len(line) else "")
            before, after = head + line[s:e] + tail, head + text + tail
        self.found.append(Mutant(
            path=self.path, line=node.lineno, function=".".join(self.functions), kind=kind,
            before=_short(before if before is not None else ast.unparse(node)),
            after=_short(after if after is not None else text),
            start=start, end=end, replacement=replacement))

    # scopes and things never mutated
    def visit_FunctionDef(self, node):
        self.functions.append(node.name)
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None:
                self.visit(default)
        self._body(node.body)
        self.functions.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        self.functions.append(node.name)
        self._body(node.body)
        self.functions.pop()

    def visit_Module(self, node):
        self._body(node.body)

    def _body(self, body):
        for i, statement in enumerate(body):
            if i == 0 and isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
                continue  # docstring
            self.visit(statement)

    def visit_AnnAssign(self, node):
        if node.value is not None:
            self.visit(node.value)

    def visit_ImportFrom(self, node):
        return

    def visit_Import(self, node):
        return

    def visit_JoinedStr(self, node):
        return

    # the mutations
    def visit_Compare(self, node):
        for i, op in enumerate(node.ops):
            swap = COMPARE_SWAP.get(type(op))
            if swap:
                new = copy.deepcopy(node)
                new.ops[i] = swap()
                self._add(node, new, f"`{SYMBOL[type(op)]}` -> `{SYMBOL[swap]}`")
        self.generic_visit(node)

    def visit_BinOp(self, node):
        swap = BINOP_SWAP.get(type(node.op))
        if swap:
            new = copy.deepcopy(node)
            new.op = swap()
            self._add(node, new, f"`{SYMBOL[type(node.op)]}` -> `{SYMBOL[swap]}`")
        self.generic_visit(node)

    def visit_AugAssign(self, node):
        swap = {ast.Add: ast.Sub, ast.Sub: ast.Add}.get(type(node.op))
        if swap:
            new = copy.deepcopy(node)
            new.op = swap()
            self._add(node, new, f"`{SYMBOL[type(node.op)]}=` -> `{SYMBOL[swap]}=`", statement=True)
        self.generic_visit(node)

    def visit_BoolOp(self, node):
        swap = ast.Or if isinstance(node.op, ast.And) else ast.And
        new = copy.deepcopy(node)
        new.op = swap()
        self._add(node, new, f"`{SYMBOL[type(node.op)]}` -> `{SYMBOL[swap]}`")
        self.generic_visit(node)

    def visit_UnaryOp(self, node):
        if isinstance(node.op, (ast.Not, ast.USub)):
            self._add(node, copy.deepcopy(node.operand), "`not` dropped" if isinstance(node.op, ast.Not)
                      else "unary `-` dropped")
        self.generic_visit(node)

    def visit_Constant(self, node):
        value = node.value
        if isinstance(value, bool):
            self._add(node, ast.Constant(not value), f"`{value}` -> `{not value}`")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            self._add(node, ast.Constant(value + 1), "constant + 1")

    def visit_Return(self, node):
        if node.value is not None and not (isinstance(node.value, ast.Constant) and node.value.value is None):
            self._add(node, ast.Return(ast.Constant(None)), "`return x` -> `return None`", statement=True)
        self.generic_visit(node)

    def visit_Call(self, node):
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in FILTER_CALLS and not node.keywords:
            if len(node.args) == 1:
                self._add(node, copy.deepcopy(func.value), f"`.{func.attr}(...)` removed",
                          before=f".{func.attr}({ast.unparse(node.args[0])})", after="(no filter)")
            elif len(node.args) > 1:
                for i, arg in enumerate(node.args):
                    new = copy.deepcopy(node)
                    del new.args[i]
                    self._add(node, new, f"`.{func.attr}` clause removed", before=ast.unparse(arg),
                              after="(clause removed)")
        self.generic_visit(node)

    def _comprehension(self, node):
        for g, generator in enumerate(node.generators):
            for i, condition in enumerate(generator.ifs):
                new = copy.deepcopy(node)
                del new.generators[g].ifs[i]
                self._add(node, new, "comprehension `if` removed", before=f"if {ast.unparse(condition)}",
                          after="(no condition)")
        self.generic_visit(node)

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _comprehension


def find_mutants(root: Path, target: Target) -> list[Mutant]:
    found: list[Mutant] = []
    for path, only in target.files:
        source = (root / path).read_text(encoding="utf-8")
        original = ast.dump(ast.parse(source))
        finder = _Finder(path, source, only)
        finder.visit(ast.parse(source))
        seen = set()
        for mutant in finder.found:
            key = (mutant.start, mutant.end, mutant.replacement)
            if key in seen:
                continue
            seen.add(key)
            try:
                changed = ast.dump(ast.parse(apply(source, mutant))) != original
            except SyntaxError:
                changed = False
            if changed:  # a splice that does not parse or changes nothing is not a mutant
                found.append(mutant)
    return found


def apply(source: str, mutant: Mutant) -> str:
    return source[: mutant.start] + mutant.replacement + source[mutant.end:]


def choose(mutants: list[Mutant], limit: int, seed: int) -> list[Mutant]:
    if len(mutants) <= limit:
        return list(mutants)
    picked = random.Random(seed).sample(range(len(mutants)), limit)
    return [mutants[i] for i in sorted(picked)]


# ---------------------------------------------------------------------------------------------
# Running the tests in a forked child

class _Recorder:
    """pytest plugin (in the child): the first failure, to name the test that killed a mutant."""

    def __init__(self):
        self.first = ""

    def pytest_runtest_logreport(self, report):
        if report.failed and not self.first:
            self.first = report.nodeid + ("" if report.when == "call" else f" ({report.when})")

    def pytest_collectreport(self, report):
        if report.failed and not self.first:
            self.first = f"collecting {report.nodeid or 'tests'}"


def _module_name(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def run_tests(work: Path, args: list[str], modules: list[str], timeout: float, log: Path) -> dict:
    """Run pytest with `args` in `work` in a forked child; its exit code, first failure, the files
    the target modules were imported from, and the time it took (status "timeout" past `timeout`)."""
    result_file = work / ".mutation-result.json"
    result_file.unlink(missing_ok=True)
    shutil.rmtree(work / ".hypothesis", ignore_errors=True)
    sys.stdout.flush()
    sys.stderr.flush()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child
        code = 70
        try:
            os.setpgid(0, 0)  # its own process group, so a timeout ends whatever the tests started
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.chdir(work)
            import pytest

            recorder = _Recorder()
            code = int(pytest.main(args, plugins=[recorder]))
            files = {m: getattr(sys.modules.get(m), "__file__", None) for m in modules}
            result_file.write_text(json.dumps({"code": code, "first": recorder.first, "files": files}))
        except BaseException as exc:  # noqa: BLE001
            print(f"mutation harness: {type(exc).__name__}: {exc}", flush=True)
        finally:
            os._exit(code)
    deadline = started + timeout
    status = None
    # The child is only reaped after its process group is ended: until then its pid (the group's
    # id) cannot be given to anyone else, so the kill reaches only what these tests started.
    while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        if time.monotonic() > deadline:
            status = "timeout"
            break
        time.sleep(0.05)
    seconds = time.monotonic() - started
    try:  # a child past its time, or anything the tests left running
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    _, _, usage = os.wait4(pid, 0)
    cpu = usage.ru_utime + usage.ru_stime  # the child and the processes it waited for
    if status == "timeout":
        return {"status": "timeout", "seconds": seconds, "cpu": cpu, "first": "", "files": {}, "code": None}
    data = json.loads(result_file.read_text()) if result_file.exists() else {"code": None, "first": "", "files": {}}
    code = data["code"]
    if code == 0:
        status = "survived"
    elif code in (1, 2):  # tests failed; collection failed (the mutant broke an import)
        status = "killed"
    else:
        status = "error"  # 3 internal error, 4 usage, 5 nothing collected, None: harness failure
    return {"status": status, "seconds": seconds, "cpu": cpu, "first": data["first"], "files": data["files"],
            "code": code}


def pytest_args(target: Target, with_postgresql: bool) -> list[str]:
    selectors = [s for s in (target.deselect, "" if with_postgresql else "not postgresql") if s]
    args = ["-p", "no:cacheprovider", "-x", "-q", "--hypothesis-seed=0"]
    if selectors:
        args += ["-k", " and ".join(f"({s})" for s in selectors)]
    return args + list(target.tests)


# ---------------------------------------------------------------------------------------------

def prepare_copy(project: Path) -> Path:
    work = Path(tempfile.mkdtemp(prefix="onevisit-mutation-"))
    shutil.copytree(project, work, ignore=COPY_IGNORE, dirs_exist_ok=True)
    return work


def isolate(work: Path) -> None:
    """Make the copy's modules win over anything installed (the project is installed in editable
    mode pointing at the real work tree), here and in any process the tests start."""
    sys.path[:] = [str(work)] + [p for p in sys.path if p and Path(p).resolve() != Path(__file__).resolve().parent]
    os.environ["PYTHONPATH"] = os.pathsep.join([str(work), *filter(None, [os.environ.get("PYTHONPATH")])])
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"  # a stale .pyc can never hide a mutant
    sys.dont_write_bytecode = True


def preload() -> None:
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    for name in list(sys.modules):
        if name.split(".")[0] in ("api", "scheduler", "tests"):
            raise SystemExit(f"mutation: project module {name} was imported by the harness itself")


def commit_of(project: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(project), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modules", default=",".join(TARGETS), help="comma-separated, from: " + ", ".join(TARGETS))
    parser.add_argument("--max-mutants", type=int, default=50, help="per module (default 50)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout-factor", type=float, default=3.0,
                        help="a mutant times out past this many times the unmutated run (default 3)")
    parser.add_argument("--min-timeout", type=float, default=20.0, help="seconds (default 20)")
    parser.add_argument("--with-postgresql", action="store_true",
                        help="run the service tests on PostgreSQL too (default: SQLite only)")
    parser.add_argument("--project", type=Path, default=ROOT, help="the checkout to copy (default: this one)")
    parser.add_argument("--list", action="store_true", help="list the chosen mutants, run nothing")
    parser.add_argument("--json", type=Path, help="write every mutant and its outcome here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # progress shows as it happens, also into a file

    if os.environ.get("PYTHONHASHSEED") is None and not args.list:  # the same set orders every run
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})

    names = [n.strip() for n in args.modules.split(",") if n.strip()]
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        parser.error(f"unknown module(s) {unknown}; choose from {list(TARGETS)}")
    project = args.project.resolve()
    began = time.monotonic()
    commit = commit_of(project)
    print(f"OneVisit mutation testing of {project}" + (f" (HEAD {commit}, files as on disk)" if commit else ""))
    print(f"seed {args.seed}, at most {args.max_mutants} mutants per module, timeout "
          f"{args.timeout_factor:g}x the unmutated run (at least {args.min_timeout:g} s), "
          f"{'SQLite and PostgreSQL' if args.with_postgresql else 'SQLite only'}")

    chosen = {}
    for name in names:
        everything = find_mutants(project, TARGETS[name])
        chosen[name] = (len(everything), choose(everything, args.max_mutants, args.seed))
    if args.list:
        for name, (total, mutants) in chosen.items():
            print(f"\n== {name}: {total} candidates, {len(mutants)} chosen")
            for m in mutants:
                print(f"  {m.where():28} {m.change()}")
        return 0

    work = prepare_copy(project)
    print(f"mutating a copy in {work}\n")
    isolate(work)
    preload()
    summary = []
    try:
        for name, (total, mutants) in chosen.items():
            summary.append(run_module(name, TARGETS[name], total, mutants, work, args))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    elapsed = time.monotonic() - began
    print("\n== summary")
    print(f"{'module':8} {'generated':>9} {'run':>4} {'killed':>6} {'survived':>8} {'timed out':>9} {'errors':>6} "
          f"{'survivor rate':>13} {'time':>7} {'CPU':>6}")
    for row in summary:
        rate = f"{row['survived'] / row['run']:.0%}" if row["run"] else "-"
        print(f"{row['module']:8} {row['generated']:>9} {row['run']:>4} {row['killed']:>6} {row['survived']:>8} "
              f"{row['timeout']:>9} {row['error']:>6} {rate:>13} {row['seconds']:>6.0f}s {row['cpu_seconds']:>5.0f}s")
    cpu = sum(row["cpu_seconds"] for row in summary)
    print(f"total time {elapsed / 60:.1f} min (CPU of the test runs {cpu / 60:.1f} min; "
          f"load average at the end {os.getloadavg()[0]:.1f})")
    if args.json:
        args.json.write_text(json.dumps({"project": str(project), "commit": commit, "seed": args.seed,
                                         "max_mutants": args.max_mutants, "modules": summary,
                                         "seconds": round(elapsed, 1)}, indent=1))
    return 1 if any(row.get("baseline_failed") or row["error"] for row in summary) else 0


def run_module(name: str, target: Target, total: int, mutants: list[Mutant], work: Path, args) -> dict:
    files = ", ".join(p + ("" if only is None else f" ({', '.join(only)})") for p, only in target.files)
    print(f"== {name}: {files}")
    test_args = pytest_args(target, args.with_postgresql)
    print("tests: pytest " + " ".join(a if " " not in a else repr(a) for a in test_args))
    modules = [_module_name(p) for p, _ in target.files]
    log = work / f".mutation-{name}.log"
    row = {"module": name, "generated": total, "run": 0, "killed": 0, "survived": 0, "timeout": 0, "error": 0,
           "seconds": 0.0, "cpu_seconds": 0.0, "mutants": []}
    started = time.monotonic()

    baseline = run_tests(work, test_args, modules, 3600, log)
    row["cpu_seconds"] += baseline["cpu"]
    misplaced = [m for m in modules if not str(baseline["files"].get(m) or "").startswith(str(work))]
    if baseline["status"] != "survived" or misplaced:
        reason = (f"imported from elsewhere: {[(m, baseline['files'].get(m)) for m in misplaced]}" if misplaced
                  and baseline["status"] == "survived" else f"exit code {baseline['code']}, {baseline['first']}")
        print(f"baseline FAILED ({reason}); log:\n{log.read_text()[-3000:] if log.exists() else ''}")
        row["baseline_failed"] = True
        return row
    timeout = max(args.timeout_factor * baseline["seconds"], args.min_timeout)
    print(f"unmutated: all pass in {baseline['seconds']:.1f} s; timeout per mutant {timeout:.0f} s")
    print(f"{total} candidate mutants, {len(mutants)} run")

    sources = {p: (work / p).read_text(encoding="utf-8") for p, _ in target.files}
    for i, mutant in enumerate(mutants, 1):
        path = work / mutant.path
        path.write_text(apply(sources[mutant.path], mutant), encoding="utf-8")
        try:
            outcome = run_tests(work, test_args, modules, timeout, log)
        finally:
            path.write_text(sources[mutant.path], encoding="utf-8")
        module = _module_name(mutant.path)
        loaded = outcome["files"].get(module)
        if loaded and not loaded.startswith(str(work)):
            raise SystemExit(f"mutation: {module} was imported from {loaded}, not the copy")
        mutant.status, mutant.seconds, mutant.killed_by = outcome["status"], outcome["seconds"], outcome["first"]
        row["cpu_seconds"] += outcome["cpu"]
        row[mutant.status] += 1
        row["run"] += 1
        detail = f" by {mutant.killed_by}" if mutant.status == "killed" and mutant.killed_by else ""
        if mutant.status == "error":
            detail = f" (pytest exit code {outcome['code']})"
        print(f"  [{i:2}/{len(mutants)}] {mutant.where():26} {mutant.change()}  -> {mutant.status.upper()} "
              f"{mutant.seconds:.1f} s{detail}", flush=True)
    row["seconds"] = time.monotonic() - started
    row["mutants"] = [{k: v for k, v in asdict(m).items() if k not in ("start", "end", "replacement")}
                      for m in mutants]
    rate = f"{row['survived'] / row['run']:.0%}" if row["run"] else "-"
    print(f"{name}: generated {total}, run {row['run']}, killed {row['killed']}, survived {row['survived']}, "
          f"timed out {row['timeout']}, errors {row['error']}, survivor rate {rate}; {row['seconds']:.0f} s, "
          f"CPU {row['cpu_seconds']:.0f} s")
    survivors = [m for m in mutants if m.status == "survived"]
    if survivors:
        print("survivors:")
        for m in survivors:
            print(f"  {m.where()}  {m.change()}")
    print()
    return row


if __name__ == "__main__":
    sys.exit(main())
