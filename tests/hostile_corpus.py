"""A corpus of hostile and malformed scenario input, shared by the command-line and API tests.

Each `Case` is a scenario file (and optionally CSV files) that a hostile or careless user could
send, with the words the refusal must contain: the field, row or reason it names. The tutorial
sample is the starting point, so each case is wrong in exactly one way.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL_TEXT = (ROOT / "sample_rosters" / "tutorial.yaml").read_text()
TUTORIAL = yaml.safe_load(TUTORIAL_TEXT)


@dataclass(frozen=True)
class Case:
    """One hostile input. `files` maps a role ('scenario', 'sessions_csv', 'due_reviews_csv') to
    (file name, bytes); `expect` are words the error must contain (case-sensitive)."""

    name: str
    files: dict[str, tuple[str, bytes]]
    expect: tuple[str, ...]
    json_body: bool = field(default=False)  # also send the scenario as a JSON request body


def _alias_bomb(levels: int, width: int = 9) -> bytes:
    """Each level a list of `width` aliases of the level above: width**levels values expanded."""
    lines = ['lol0: &lol0 "lol"']
    for level in range(1, levels + 1):
        refs = ", ".join([f"*lol{level - 1}"] * width)
        lines.append(f"lol{level}: &lol{level} [{refs}]")
    return ("\n".join(lines) + "\n").encode()


def _tutorial_with(change) -> dict:
    data = copy.deepcopy(TUTORIAL)
    change(data)
    return data


def _yaml(data: dict) -> bytes:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False).encode()


def _json(data: dict) -> bytes:
    return json.dumps(data, default=str).encode()


def _set(path: tuple, value):
    def change(data: dict) -> None:
        holder = data
        for key in path[:-1]:
            holder = holder[key]
        holder[path[-1]] = value

    return change


def _scenario_cases() -> list[Case]:
    cases = [
        Case("alias bomb, 9 levels", {"scenario": ("bomb.yaml", _alias_bomb(9))}, ("aliases",)),
        Case("alias bomb, 6 levels", {"scenario": ("bomb6.yaml", _alias_bomb(6, 12))}, ("aliases",)),
        Case("self-referencing alias", {"scenario": ("loop.yaml", b"loop: &loop [*loop]\n")}, ("*loop", "loop")),
        Case("self-merging mapping", {"scenario": ("merge.yaml", b"a: &a\n  <<: *a\n  b: 1\n")}, ("*a",)),
        Case("deep block nesting", {"scenario": ("deep.yaml", "".join(
            "  " * depth + f"k{depth}:\n" for depth in range(300)).encode())}, ("nested",)),
        Case("deep flow nesting", {"scenario": ("flow.yaml", b"x: " + b"[" * 50_000 + b"]" * 50_000)}, ("nest",)),
        Case("deep JSON nesting", {"scenario": ("deep.json", b"[" * 100_000 + b"]" * 100_000)}, ("nested",)),
        Case("not UTF-8", {"scenario": ("latin.yaml", "name: Caf\u00e9\n".encode("latin-1"))}, ("UTF-8",)),
        Case("seed beyond 32 bits", {"scenario": ("seed.json", _json(_tutorial_with(
            _set(("solver", "seed"), 10**12))))}, ("solver.seed", "2147483647"), json_body=True),
        Case("seed false", {"scenario": ("seedbool.json", _json(_tutorial_with(
            _set(("solver", "seed"), False))))}, ("solver.seed", "whole number"), json_body=True),
        Case("tiny time limit", {"scenario": ("tiny.json", _json(_tutorial_with(
            _set(("solver", "time_limit_seconds"), 5e-324))))}, ("solver.time_limit_seconds",), json_body=True),
        Case("NaN time limit", {"scenario": ("nan.json", TUTORIAL_JSON_NAN)}, ("solver.time_limit_seconds", "not a number")),
        Case("YAML .nan latitude", {"scenario": ("nan.yaml", _yaml(_tutorial_with(
            _set(("sites", 0, "latitude"), float("nan")))))}, ("latitude", "not a number")),
        Case("huge priority", {"scenario": ("prio.json", _json(_tutorial_with(
            _set(("patients", 0, "priority"), 10**40))))}, ("priority", "at most 3"), json_body=True),
        Case("5,000-digit number", {"scenario": ("digits.yaml", TUTORIAL_TEXT.replace(
            "seed: 7", "seed: " + "9" * 5000).encode())}, ("solver.seed",)),
        Case("address with VT and FF", {"scenario": ("vt.json", _json(_tutorial_with(
            _set(("sites", 0, "address"), "1 High Street\x0bTown\x0cAB1 2CD"))))},
            ("address", "vertical tab"), json_body=True),
        Case("name with CR LF", {"scenario": ("crlf.yaml", _yaml(_tutorial_with(
            _set(("clinicians", 0, "name"), "Nurse Ellis\r\nBcc: everyone@example.org"))))},
            ("clinicians", "name", "line break")),
        Case("line separator in a room name", {"scenario": ("ls.json", _json(_tutorial_with(
            _set(("rooms", 0, "name"), "Room\u20281"))))}, ("rooms", "U+2028"), json_body=True),
        Case("C1 control in a reason", {"scenario": ("c1.json", _json(_tutorial_with(
            _set(("leave",), [{"clinician_id": TUTORIAL["clinicians"][0]["id"],
                               "start_date": TUTORIAL["horizon_start"].isoformat(),
                               "end_date": TUTORIAL["horizon_start"].isoformat(),
                               "reason": "sick\x85leave"}]))))}, ("leave", "reason", "U+0085"), json_body=True),
        Case("NUL in a name", {"scenario": ("nul.json", _json(_tutorial_with(
            _set(("name",), "tut\x00orial"))))}, ("name", "NUL"), json_body=True),
        Case("a list, not a mapping", {"scenario": ("list.json", b"[1, 2, 3]")}, ("mapping",), json_body=True),
    ]
    return cases


TUTORIAL_JSON_NAN = _json(_tutorial_with(_set(("solver", "time_limit_seconds"), 30.0))).replace(
    b'"time_limit_seconds": 30.0', b'"time_limit_seconds": NaN')

_SESSIONS_HEADER = b"clinician_id,date,start,end,site_id\n"


def _csv_cases() -> list[Case]:
    scenario = ("tutorial.yaml", TUTORIAL_TEXT.encode())
    clinician = TUTORIAL["clinicians"][0]["id"]
    site = TUTORIAL["sites"][0]["id"]
    day = TUTORIAL["horizon_start"].isoformat()
    return [
        Case("CSV with a NUL", {"scenario": scenario, "sessions_csv": (
            "nul.csv", _SESSIONS_HEADER + f"{clinician},{day},09:00,12:00,{site}\x00\n".encode())},
            ("nul.csv",)),
        Case("CSV with an unterminated quote", {"scenario": scenario, "sessions_csv": (
            "quote.csv", _SESSIONS_HEADER + f'"{clinician},{day},09:00,12:00,{site}\n'.encode())},
            ("quote.csv",)),
        Case("CSV with a 200,000-character cell", {"scenario": scenario, "sessions_csv": (
            "wide.csv", _SESSIONS_HEADER + b'"' + b"x" * 200_000 + f'",{day},09:00,12:00,{site}\n'.encode())},
            ("wide.csv",)),
        Case("a spreadsheet saved as .xlsx, named .csv", {"scenario": scenario, "due_reviews_csv": (
            "recall.csv", b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00" + bytes(range(256)) * 4)},
            ("recall.csv",)),
        Case("CSV with semicolons", {"scenario": scenario, "sessions_csv": (
            "semi.csv", f"clinician_id;date;start;end;site_id\n{clinician};{day};09:00;12:00;{site}\n".encode())},
            ("semi.csv", "semicolons")),
        Case("CSV cell with a form feed", {"scenario": scenario, "due_reviews_csv": (
            "ff.csv", b"patient_id,review_type_id,window_start,window_end,interpreter_language\n"
            + f"P999,{TUTORIAL['review_types'][0]['id']},{day},{day},Pol\x0cish\n".encode())},
            ("ff.csv", "form feed")),
    ]


CASES: list[Case] = _scenario_cases() + _csv_cases()
