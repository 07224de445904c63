"""The hazard log and the tests agree (DCB0129 traceability).

docs/clinical-safety/hazard-log.md lists each hazard under a heading `## HAZ-NNN — title` and,
in its section, the tests that show its controls work, written `tests/file.py::test_name`. Tests
carry `@pytest.mark.hazard("HAZ-NNN", ...)` (several ids in one mark, or stacked marks). This file
fails when:
- a hazard in the log has no test marked with it;
- a test is marked with a hazard the log does not have (or with an id not shaped HAZ-NNN);
- a test the log lists does not exist, or exists without that hazard's mark.
The marks are read from the test files' syntax trees (no import, no collection), so it is fast.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOG = ROOT / "docs" / "clinical-safety" / "hazard-log.md"
README = ROOT / "docs" / "clinical-safety" / "README.md"
CASE = ROOT / "docs" / "clinical-safety" / "safety-case.md"
TESTS = ROOT / "tests"

HEADING = re.compile(r"^##\s+(HAZ-\d{3})\b", re.MULTILINE)
ANY_HEADING = re.compile(r"^#{1,2}\s", re.MULTILINE)
LISTED = re.compile(r"`(tests/[\w/]+\.py::[\w:]+)`")
HAZ_ID = re.compile(r"HAZ-\d{3}")


def parse_log(text: str) -> dict[str, set[str]]:
    """Each hazard id in the log and the test node ids (`tests/f.py::name`) its section lists.
    A section runs from its `## HAZ-NNN` heading to the next heading of level 1 or 2. Raises
    ValueError for an id given twice."""
    hazards: dict[str, set[str]] = {}
    for match in HEADING.finditer(text):
        hid = match[1]
        if hid in hazards:
            raise ValueError(f"{hid} has two sections in the hazard log")
        following = ANY_HEADING.search(text, match.end())
        section = text[match.end(): following.start() if following else len(text)]
        hazards[hid] = set(LISTED.findall(section))
    return hazards


def _hazard_ids(decorator: ast.expr) -> list[str] | None:
    """The ids of a `pytest.mark.hazard(...)` decorator, or None when it is another decorator."""
    if not isinstance(decorator, ast.Call):
        return None
    func = decorator.func
    if not (isinstance(func, ast.Attribute) and func.attr == "hazard"
            and isinstance(func.value, ast.Attribute) and func.value.attr == "mark"):
        return None
    ids = []
    for arg in decorator.args:
        if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
            raise TypeError(f"line {decorator.lineno}: hazard ids must be string literals")
        ids.append(arg.value)
    if not ids:
        raise ValueError(f"line {decorator.lineno}: a hazard mark names no hazard")
    return ids


def marks_in_source(source: str, relpath: str) -> dict[str, set[str]]:
    """Test node id (`relpath::name`, `relpath::Class::name`) -> the hazard ids its marks name
    (only tests with at least one hazard mark), and every other test with an empty set."""
    tree = ast.parse(source)
    found: dict[str, set[str]] = {}

    def visit(body: list[ast.stmt], prefix: str, inherited: set[str]) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                own = {i for d in node.decorator_list for i in (_hazard_ids(d) or [])}
                visit(node.body, f"{prefix}{node.name}::", inherited | own)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
                ids = set(inherited)
                for d in node.decorator_list:
                    ids.update(_hazard_ids(d) or [])
                found[f"{relpath}::{prefix}{node.name}"] = ids

    visit(tree.body, "", set())
    return found


def collect_marks(tests_dir: Path = TESTS, root: Path = ROOT) -> dict[str, set[str]]:
    """Every test function in tests/ (files test_*.py) and the hazard ids it is marked with."""
    out: dict[str, set[str]] = {}
    for path in sorted(tests_dir.rglob("test_*.py")):
        if "node_modules" in path.parts:
            continue
        rel = path.relative_to(root).as_posix()
        out.update(marks_in_source(path.read_text(encoding="utf-8"), rel))
    return out


def traceability_problems(log: dict[str, set[str]], marks: dict[str, set[str]]) -> list[str]:
    """Everything on which the hazard log and the tests' marks disagree, one line each."""
    problems = []
    marked_by: dict[str, set[str]] = defaultdict(set)
    for test, ids in marks.items():
        for hid in ids:
            marked_by[hid].add(test)
            if not HAZ_ID.fullmatch(hid):
                problems.append(f"{test} is marked {hid!r}, which is not a hazard id (HAZ-NNN)")
            elif hid not in log:
                problems.append(f"{test} is marked {hid}, which is not in the hazard log")
    for hid, listed in sorted(log.items()):
        if not marked_by.get(hid):
            problems.append(f"{hid} has no test marked with it")
        if not listed:
            problems.append(f"{hid} lists no test in the hazard log")
        for test in sorted(listed):
            if test not in marks:
                problems.append(f"{hid} lists {test}, which does not exist")
            elif hid not in marks[test]:
                problems.append(f"{hid} lists {test}, which lacks @pytest.mark.hazard({hid!r})")
    return problems


SEVERITIES = ("minor", "significant", "considerable", "major", "catastrophic")
LIKELIHOODS = ("very low", "low", "medium", "high", "very high")
# DCB0129's risk matrix: MATRIX[likelihood][severity] is the risk rating 1-5.
MATRIX = {
    "very high": dict(zip(SEVERITIES, (3, 4, 4, 5, 5))),
    "high": dict(zip(SEVERITIES, (2, 3, 3, 4, 5))),
    "medium": dict(zip(SEVERITIES, (2, 2, 3, 3, 4))),
    "low": dict(zip(SEVERITIES, (1, 2, 2, 3, 4))),
    "very low": dict(zip(SEVERITIES, (1, 1, 2, 2, 3))),
}
RISK = re.compile(r"\*\*(Initial|Residual) risk\*\*\s*\|\s*severity ([a-z]+), likelihood ([a-z ]+?): \*\*(\d)\*\*")


def risks_in_log(text: str) -> dict[str, dict[str, tuple[str, str, int]]]:
    """Per hazard: {'Initial'|'Residual': (severity, likelihood, rating)} as the log states them."""
    out: dict[str, dict[str, tuple[str, str, int]]] = {}
    for match in HEADING.finditer(text):
        following = ANY_HEADING.search(text, match.end())
        section = text[match.end(): following.start() if following else len(text)]
        out[match[1]] = {kind: (sev, lik, int(r)) for kind, sev, lik, r in RISK.findall(section)}
    return out


# ---------------------------------------------------------------------------------------------
# The real log against the real tests


def test_the_hazard_log_and_the_tests_hazard_marks_agree():
    log = parse_log(LOG.read_text(encoding="utf-8"))
    assert log, f"no `## HAZ-NNN` section in {LOG}"
    problems = traceability_problems(log, collect_marks())
    assert not problems, "hazard log and tests disagree:\n" + "\n".join(problems)


def test_hazard_ids_are_numbered_in_order_from_one():
    ids = list(parse_log(LOG.read_text(encoding="utf-8")))
    assert ids == [f"HAZ-{n:03d}" for n in range(1, len(ids) + 1)]


def test_every_hazard_states_initial_and_residual_risk_by_the_matrix():
    problems = []
    for hid, risks in risks_in_log(LOG.read_text(encoding="utf-8")).items():
        for kind in ("Initial", "Residual"):
            if kind not in risks:
                problems.append(f"{hid}: no '**{kind} risk** | severity ..., likelihood ...: **N**' row")
                continue
            sev, lik, rating = risks[kind]
            if sev not in SEVERITIES or lik not in LIKELIHOODS:
                problems.append(f"{hid}: {kind} risk has severity {sev!r}, likelihood {lik!r}")
            elif MATRIX[lik][sev] != rating:
                problems.append(f"{hid}: {kind} risk {sev} x {lik} is {MATRIX[lik][sev]} by the matrix, not {rating}")
        if {"Initial", "Residual"} <= risks.keys() and risks["Residual"][2] > risks["Initial"][2]:
            problems.append(f"{hid}: residual risk is higher than initial risk")
    assert not problems, "\n".join(problems)


def test_the_safety_case_summary_table_matches_the_log():
    """Its hazard table lists every hazard once, in order, with the log's initial and residual
    ratings (`| HAZ-001 | hazard | 3 → 2 |`)."""
    row = re.compile(r"^\|\s*(HAZ-\d{3})\s*\|[^|]*\|\s*\**(\d)\**\s*→\s*\**(\d)\**\s*\|\s*$", re.MULTILINE)
    table = [(hid, int(a), int(b)) for hid, a, b in row.findall(CASE.read_text(encoding="utf-8"))]
    risks = risks_in_log(LOG.read_text(encoding="utf-8"))
    assert table == [(hid, r["Initial"][2], r["Residual"][2]) for hid, r in risks.items()]


def test_the_checker_rules_and_validators_the_log_names_exist():
    """A control named as "`code` (rule `function`)" is a checker rule declaring that code, and
    every `check_...` the log names is a validator in scheduler/validate.py."""
    from scheduler import validate
    from scheduler.check import RULES

    text = LOG.read_text(encoding="utf-8")
    declared = {r.name: set(r.codes) for r in RULES}
    named = re.findall(r"`([a-z_]+)` \(rule `([a-z_]+)`", text)
    assert named
    assert [(code, fn) for code, fn in named if code not in declared.get(fn, set())] == []
    validators = set(re.findall(r"`(check_[a-z_]+)`", text))
    assert validators
    assert sorted(v for v in validators if not callable(getattr(validate, v, None))) == []


def test_the_readme_states_the_same_matrix():
    rows = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        cells = [c.strip().strip("*").lower() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0] in LIKELIHOODS and all(c.isdigit() for c in cells[1:]):
            rows[cells[0]] = dict(zip(SEVERITIES, map(int, cells[1:])))
    assert rows == MATRIX


# ---------------------------------------------------------------------------------------------
# The checks themselves, on small made-up logs and test files

SAMPLE_LOG = """# Hazard log
## HAZ-001 — first
Tests: `tests/test_a.py::test_one`, `tests/test_a.py::TestGroup::test_two`
## HAZ-002 — second
- `tests/test_b.py::test_three`
## Risk matrix
`tests/test_a.py::test_not_evidence` is outside every hazard section.
"""

SAMPLE_A = '''
import pytest

@pytest.mark.hazard("HAZ-001")
def test_one():
    pass

@pytest.mark.hazard("HAZ-001", "HAZ-002")
class TestGroup:
    @pytest.mark.slow
    def test_two(self):
        pass

@pytest.mark.hazard("HAZ-002")
@pytest.mark.hazard("HAZ-001")
@pytest.mark.parametrize("x", [1])
async def test_stacked(x):
    pass

def test_not_evidence():
    pass

def helper():
    pass
'''


def test_the_log_parser_reads_sections_and_listed_tests():
    assert parse_log(SAMPLE_LOG) == {
        "HAZ-001": {"tests/test_a.py::test_one", "tests/test_a.py::TestGroup::test_two"},
        "HAZ-002": {"tests/test_b.py::test_three"},
    }
    with pytest.raises(ValueError, match="HAZ-001 has two sections"):
        parse_log(SAMPLE_LOG + "\n## HAZ-001 — again\n")


def test_marks_are_read_from_single_multiple_stacked_and_class_decorators():
    assert marks_in_source(SAMPLE_A, "tests/test_a.py") == {
        "tests/test_a.py::test_one": {"HAZ-001"},
        "tests/test_a.py::TestGroup::test_two": {"HAZ-001", "HAZ-002"},
        "tests/test_a.py::test_stacked": {"HAZ-001", "HAZ-002"},
        "tests/test_a.py::test_not_evidence": set(),
    }
    with pytest.raises(TypeError, match="string literals"):
        marks_in_source("import pytest\nH = 'HAZ-001'\n@pytest.mark.hazard(H)\ndef test_x(): pass\n", "t.py")
    with pytest.raises(ValueError, match="names no hazard"):
        marks_in_source("import pytest\n@pytest.mark.hazard()\ndef test_x(): pass\n", "t.py")


def test_each_kind_of_disagreement_is_reported():
    log = parse_log(SAMPLE_LOG)
    marks = marks_in_source(SAMPLE_A, "tests/test_a.py")
    marks["tests/test_b.py::test_three"] = {"HAZ-002"}
    assert traceability_problems(log, marks) == []

    unmarked = {**marks, "tests/test_b.py::test_three": set(),
                "tests/test_a.py::test_stacked": {"HAZ-001"}, "tests/test_a.py::TestGroup::test_two": {"HAZ-001"}}
    assert traceability_problems(log, unmarked) == [
        "HAZ-002 has no test marked with it",
        "HAZ-002 lists tests/test_b.py::test_three, which lacks @pytest.mark.hazard('HAZ-002')",
    ]
    unknown = {**marks, "tests/test_a.py::test_not_evidence": {"HAZ-009", "HAZ-1"}}
    assert sorted(traceability_problems(log, unknown)) == [
        "tests/test_a.py::test_not_evidence is marked 'HAZ-1', which is not a hazard id (HAZ-NNN)",
        "tests/test_a.py::test_not_evidence is marked HAZ-009, which is not in the hazard log",
    ]
    missing = {k: v for k, v in marks.items() if k != "tests/test_b.py::test_three"}
    assert traceability_problems(log, missing) == [
        "HAZ-002 lists tests/test_b.py::test_three, which does not exist"]
    assert traceability_problems({**log, "HAZ-003": set()}, marks) == [
        "HAZ-003 has no test marked with it", "HAZ-003 lists no test in the hazard log"]
