"""Importing CSV files: roster sessions and due reviews (the shape a recall search exports).

Rows are parsed cell by cell into values (dates as YYYY-MM-DD or DD/MM/YYYY, yes/no flags,
site:minutes lists); every malformed cell is a `Problem` naming the file, row and column, and a
row with any problem is left out. `merge_csv` adds the rows to (a copy of) scenario data and
remembers which row and column each merged value came from, so later problems name the row.
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import io
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from scheduler.problems import PathT, Problem, did_you_mean
from scheduler.scenario_io.messages import CLOCK, not_real_date

SESSIONS_COLUMNS: tuple[str, ...] = (
    "clinician_id", "date", "start", "end", "site_id", "on_bank_holiday", "room_id"
)
SESSIONS_REQUIRED: tuple[str, ...] = ("clinician_id", "date", "start", "end", "site_id")

DUE_REVIEWS_REQUIRED: tuple[str, ...] = (
    "patient_id", "review_type_id", "window_start", "window_end"
)
# Optional patient columns: column -> path of the Patient field it sets.
PATIENT_COLUMNS: dict[str, tuple[str, ...]] = {
    "named_clinician_id": ("named_clinician_id",),
    "wants_continuity": ("wants_continuity",),
    "priority": ("priority",),
    "reachable_sites": ("reachable_sites",),
    "extra_time_factor": ("needs", "extra_time_factor"),
    "wheelchair": ("needs", "wheelchair"),
    "carer_attending": ("needs", "carer_attending"),
    "interpreter_language": ("needs", "interpreter_language"),
    "opt_out_consolidation": ("opt_out_consolidation",),
    "joint_consultation": ("joint_consultation",),
    "preferred_time": ("preferred_time",),
}
DUE_REVIEWS_COLUMNS: tuple[str, ...] = (
    *DUE_REVIEWS_REQUIRED,
    "due_review_id",
    *PATIENT_COLUMNS,
)


class _CellError(ValueError):
    pass


_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0"}


def _cell_text(text: str) -> str:
    return text


def _cell_bool(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise _CellError(f"{text!r} is not a yes/no value: use true/false, yes/no, y/n or 1/0")


def _cell_int(text: str) -> int:
    if not re.fullmatch(r"\s*[-+]?\d+\s*", text):
        raise _CellError(f"{text!r} is not a whole number")
    return int(text)


def _cell_float(text: str) -> float:
    if re.fullmatch(r"\s*[-+]?\d+,\d+\s*", text):
        raise _CellError(f"{text!r} is not a number: use a decimal point, e.g. 1.5")
    try:
        number = float(text)
    except ValueError:
        raise _CellError(f"{text!r} is not a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise _CellError(f"{text!r} is not a number")
    return number


def _cell_date(text: str) -> dt.date:
    value = re.sub(r"\s+00:00(:00)?$", "", text.strip())  # spreadsheets add a midnight time
    iso = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", value)
    uk = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{2}|\d{4})", value)
    if uk and len(uk[3]) == 2:
        raise _CellError(f"{text!r}: write the year with four digits, e.g. 22/03/2027")
    if iso:
        year, month, day = int(iso[1]), int(iso[2]), int(iso[3])
    elif uk:
        year, month, day = int(uk[3]), int(uk[2]), int(uk[1])
    else:
        raise _CellError(f"{text!r} is not a date: write YYYY-MM-DD or DD/MM/YYYY")
    try:
        return dt.date(year, month, day)
    except ValueError:
        raise _CellError(not_real_date(text, year, month, day)) from None


def _cell_time(text: str) -> dt.time:
    match = CLOCK.fullmatch(text)
    if not match:
        raise _CellError(f"{text!r} is not a time: write HH:MM, e.g. 08:30")
    hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise _CellError(f"{text!r} is a time outside the day: use 00:00 to 23:59")
    if second:
        raise _CellError(f"{text!r}: times are to the minute (HH:MM)")
    return dt.time(hour, minute)


def _cell_reachable_sites(text: str) -> list[dict[str, Any]]:
    sites: list[dict[str, Any]] = []
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        site, colon, minutes = part.rpartition(":")
        if not colon or not site.strip():
            raise _CellError(
                f"{part!r}: write each reachable site as site:minutes, separated by ';' "
                "(e.g. riverside:10;hub:25)"
            )
        if not re.fullmatch(r"\s*\d+\s*", minutes):
            raise _CellError(f"{part!r}: travel minutes {minutes.strip()!r} is not a whole number")
        sites.append({"site_id": site.strip(), "travel_minutes": int(minutes)})
    if not sites:
        raise _CellError(f"{text!r}: write reachable sites as site:minutes;site:minutes")
    return sites


_PATIENT_PARSERS: dict[str, Callable[[str], Any]] = {
    "named_clinician_id": _cell_text,
    "wants_continuity": _cell_bool,
    "priority": _cell_int,
    "reachable_sites": _cell_reachable_sites,
    "extra_time_factor": _cell_float,
    "wheelchair": _cell_bool,
    "carer_attending": _cell_bool,
    "interpreter_language": _cell_text,
    "opt_out_consolidation": _cell_bool,
    "joint_consultation": _cell_bool,
    "preferred_time": _cell_text,
}


@dataclass
class CsvRow:
    """One usable CSV data row: its spreadsheet row number and its parsed, non-empty values."""

    row: int
    values: dict[str, Any]


def _header_name(cell: str) -> str:
    return re.sub(r"[\s\-]+", "_", cell.strip().lower())


def _read_table(
    text: str, source: str, required: tuple[str, ...], allowed: tuple[str, ...]
) -> tuple[list[tuple[int, dict[str, str]]], list[Problem]]:
    """Rows (number, {column: cell}) of a CSV with a header row, blank rows skipped."""
    problems: list[Problem] = []
    rows: list[tuple[int, dict[str, str]]] = []
    text = text.lstrip("\ufeff")
    records: list[list[str]] = []
    # strict: a quote left open would otherwise swallow every row after it without a word.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        records = list(reader)
    except csv.Error as error:
        reason = str(error)
        if "unexpected end of data" in reason:
            reason = 'a quote (") is opened and never closed'
        problems.append(Problem(source, f"row {reader.line_num}", f"CSV could not be read: {reason}"))
        return rows, problems
    if not records or not any(cell.strip() for cell in records[0]):
        columns = ",".join(required)
        problems.append(Problem(source, "row 1", f"no header row: the first row must be {columns}"))
        return rows, problems
    header = [_header_name(cell) for cell in records[0]]
    if len(header) == 1 and ";" in records[0][0]:
        problems.append(
            Problem(source, "row 1", "columns must be separated by commas, not semicolons")
        )
        return rows, problems
    usable: dict[int, str] = {}
    for position, name in enumerate(header):
        if not name:
            continue
        if name not in allowed:
            problems.append(
                Problem(
                    source,
                    f"row 1, column {position + 1}",
                    f"unknown column '{records[0][position].strip()}'"
                    + did_you_mean(name, allowed, "columns"),
                )
            )
        elif name in usable.values():
            problems.append(
                Problem(source, f"row 1, column {position + 1}", f"column '{name}' appears twice")
            )
        else:
            usable[position] = name
    missing = [name for name in required if name not in usable.values()]
    for name in missing:
        problems.append(Problem(source, "row 1", f"missing column '{name}'"))
    if missing:
        return rows, problems
    for number, record in enumerate(records[1:], start=2):
        if not any(cell.strip() for cell in record):
            continue
        if len(record) > len(header) and any(cell.strip() for cell in record[len(header) :]):
            problems.append(
                Problem(
                    source,
                    f"row {number}",
                    f"row has {len(record)} cells but the header has {len(header)} columns",
                )
            )
            continue
        cells = {name: (record[pos] if pos < len(record) else "") for pos, name in usable.items()}
        rows.append((number, cells))
    return rows, problems


def _cell_problem(source: str, row: int, column: str, message: str) -> Problem:
    return Problem(source, f"row {row}, column '{column}'", message)


def read_sessions_csv(
    text: str, source: str = "sessions.csv"
) -> tuple[list[CsvRow], list[Problem]]:
    """Parse a roster sessions CSV: clinician_id,date,start,end,site_id[,on_bank_holiday][,room_id].

    Returns the rows that are usable as `RosterSession` data (dates and times parsed) and a
    problem for every malformed cell; a row with any problem is left out.
    """
    table, problems = _read_table(text, source, SESSIONS_REQUIRED, SESSIONS_COLUMNS)
    parsers: dict[str, Callable[[str], Any]] = {
        "clinician_id": _cell_text,
        "date": _cell_date,
        "start": _cell_time,
        "end": _cell_time,
        "site_id": _cell_text,
        "on_bank_holiday": _cell_bool,
        "room_id": _cell_text,
    }
    rows: list[CsvRow] = []
    for number, cells in table:
        values, cell_problems = _parse_cells(cells, parsers, SESSIONS_REQUIRED, source, number)
        problems.extend(cell_problems)
        if not cell_problems:
            rows.append(CsvRow(number, values))
    return rows, problems


def read_due_reviews_csv(
    text: str, source: str = "due_reviews.csv"
) -> tuple[list[CsvRow], list[Problem]]:
    """Parse a due reviews CSV (the shape a recall search exports).

    Columns: patient_id,review_type_id,window_start,window_end, then optionally due_review_id and
    the patient columns in `PATIENT_COLUMNS`. Values are keyed by column name.
    """
    rows, problems, _ = _read_due_reviews(text, source)
    return rows, problems


def _read_due_reviews(text: str, source: str) -> tuple[list[CsvRow], list[Problem], set[str]]:
    """Also returns the patient ids that have a malformed row."""
    table, problems = _read_table(text, source, DUE_REVIEWS_REQUIRED, DUE_REVIEWS_COLUMNS)
    parsers: dict[str, Callable[[str], Any]] = {
        "patient_id": _cell_text,
        "review_type_id": _cell_text,
        "window_start": _cell_date,
        "window_end": _cell_date,
        "due_review_id": _cell_text,
        **_PATIENT_PARSERS,
    }
    rows: list[CsvRow] = []
    bad_patients: set[str] = set()
    for number, cells in table:
        values, cell_problems = _parse_cells(cells, parsers, DUE_REVIEWS_REQUIRED, source, number)
        problems.extend(cell_problems)
        if cell_problems:
            bad_patients.add(cells.get("patient_id", "").strip())
        else:
            rows.append(CsvRow(number, values))
    return rows, problems, bad_patients


def _parse_cells(
    cells: dict[str, str],
    parsers: Mapping[str, Callable[[str], Any]],
    required: tuple[str, ...],
    source: str,
    row: int,
) -> tuple[dict[str, Any], list[Problem]]:
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    for column, cell in cells.items():
        text = cell.strip()
        if not text:
            if column in required:
                problems.append(_cell_problem(source, row, column, "empty: a value is required"))
            continue
        try:
            values[column] = parsers[column](text)
        except _CellError as error:
            problems.append(_cell_problem(source, row, column, str(error)))
    return values, problems


@dataclass(frozen=True)
class CsvOrigin:
    """Where merged data came from: a CSV file and row, and the column of each field.

    `columns` maps a path below the merged item (e.g. ('needs', 'wheelchair')) to the column
    and row that gave it.
    """

    source: str
    row: int
    column: str | None = None
    columns: Mapping[PathT, tuple[str, int]] = field(default_factory=dict)


@dataclass
class CsvMerge:
    """The scenario data with CSV rows merged in (a copy), and everything wrong with the CSVs.

    `origins` maps the path of each merged item (('sessions', 31), ('patients', 8) or
    ('patients', 2, 'due_reviews', 3)) or field to its CSV row, so later problems can name the
    row and column instead of a field path.
    """

    data: Any
    problems: list[Problem] = field(default_factory=list)
    origins: dict[PathT, CsvOrigin] = field(default_factory=dict)


_MISSING = object()


def _nested_get(mapping: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if not isinstance(mapping, Mapping) or key not in mapping:
            return _MISSING
        mapping = mapping[key]
    return mapping


def _nested_set(mapping: dict, keys: tuple[str, ...]) -> dict | None:
    """The dict that holds keys[-1], creating intermediate dicts; None if something in the way
    is not a mapping."""
    for key in keys[:-1]:
        if key not in mapping:
            mapping[key] = {}
        mapping = mapping[key]
        if not isinstance(mapping, dict):
            return None
    return mapping


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        def key(item: Any) -> str:
            return json.dumps(item, sort_keys=True, default=str)

        return sorted(a, key=key) == sorted(b, key=key)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) == float(b)
    return a == b


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ";".join(f"{item.get('site_id')}:{item.get('travel_minutes')}" for item in value
                        if isinstance(item, Mapping))
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _due_review_from(row: CsvRow) -> dict[str, Any]:
    due = {key: row.values[key] for key in ("review_type_id", "window_start", "window_end")}
    if "due_review_id" in row.values:
        due["id"] = row.values["due_review_id"]
    return due


def _due_origin(source: str, row: int) -> CsvOrigin:
    columns = {(key,): (key, row) for key in ("review_type_id", "window_start", "window_end")}
    columns[("id",)] = ("due_review_id", row)
    return CsvOrigin(source, row, None, columns)


def merge_csv(
    data: Any,
    sessions_csv_text: str | None = None,
    due_reviews_csv_text: str | None = None,
    *,
    sessions_source: str = "sessions.csv",
    due_reviews_source: str = "due_reviews.csv",
) -> CsvMerge:
    """Merge CSV text into (a deep copy of) raw scenario data.

    Session rows are appended to `sessions`. Due review rows for a patient already in the data
    add due reviews to it (its patient columns must be empty or agree with the data; a field the
    data leaves out is filled in); rows for a new patient create it, and its patient columns
    must agree across its rows (empty cells are "not given"). A malformed row is left out and
    reported; a new patient with any malformed row is left out entirely.
    """
    merged = CsvMerge(copy.deepcopy(data))
    target = merged.data if isinstance(merged.data, dict) else None
    if sessions_csv_text is not None:
        rows, problems = read_sessions_csv(sessions_csv_text, sessions_source)
        merged.problems.extend(problems)
        if target is not None and rows:
            _merge_sessions(target, rows, sessions_source, merged)
    if due_reviews_csv_text is not None:
        rows, problems, bad_patients = _read_due_reviews(due_reviews_csv_text, due_reviews_source)
        merged.problems.extend(problems)
        if target is not None and rows:
            _merge_due_reviews(target, rows, bad_patients, due_reviews_source, merged)
    return merged


def _merge_sessions(target: dict, rows: list[CsvRow], source: str, merged: CsvMerge) -> None:
    sessions = target.setdefault("sessions", [])
    if not isinstance(sessions, list):
        merged.problems.append(
            Problem(source, "", "rows not added: 'sessions' in the scenario is not a list")
        )
        return
    for row in rows:
        merged.origins[("sessions", len(sessions))] = CsvOrigin(
            source, row.row, None, {(column,): (column, row.row) for column in SESSIONS_COLUMNS}
        )
        sessions.append(dict(row.values))


def _merge_due_reviews(
    target: dict,
    rows: list[CsvRow],
    bad_patient_ids: set[str],
    source: str,
    merged: CsvMerge,
) -> None:
    patients = target.setdefault("patients", [])
    if not isinstance(patients, list):
        merged.problems.append(
            Problem(source, "", "rows not added: 'patients' in the scenario is not a list")
        )
        return
    existing: dict[str, int] = {}
    for index, patient in enumerate(patients):
        ident = patient.get("id") if isinstance(patient, Mapping) else None
        if isinstance(ident, str):
            existing.setdefault(ident, index)
    by_patient: dict[str, list[CsvRow]] = {}
    for row in rows:
        by_patient.setdefault(row.values["patient_id"], []).append(row)
    for patient_id, patient_rows in by_patient.items():
        if patient_id in existing:
            _add_to_existing(patients, existing[patient_id], patient_rows, source, merged)
        elif patient_id not in bad_patient_ids:  # else left out: its rows were reported
            _create_patient(patients, patient_id, patient_rows, source, merged)


def _add_to_existing(
    patients: list, index: int, rows: list[CsvRow], source: str, merged: CsvMerge
) -> None:
    patient = patients[index]
    for row in rows:
        conflicts = []
        fills: list[tuple[str, tuple[str, ...], Any]] = []
        for column, keys in PATIENT_COLUMNS.items():
            if column not in row.values:
                continue
            current = _nested_get(patient, keys)
            if current is _MISSING:
                fills.append((column, keys, row.values[column]))
            elif not _same(current, row.values[column]):
                conflicts.append(
                    _cell_problem(
                        source,
                        row.row,
                        column,
                        f"patient '{row.values['patient_id']}' already has "
                        f"{'.'.join(keys)} = {_show(current)!r} in the scenario, "
                        f"not {_show(row.values[column])!r}; leave the cell empty or make them "
                        "agree",
                    )
                )
        if conflicts:
            merged.problems.extend(conflicts)
            continue
        for column, keys, value in fills:
            holder = _nested_set(patient, keys)
            if holder is not None and keys[-1] not in holder:
                holder[keys[-1]] = value
                merged.origins[("patients", index, *keys)] = CsvOrigin(source, row.row, column)
        dues = patient.setdefault("due_reviews", [])
        if isinstance(dues, list):
            merged.origins[("patients", index, "due_reviews", len(dues))] = _due_origin(
                source, row.row
            )
            dues.append(_due_review_from(row))


def _create_patient(
    patients: list, patient_id: str, rows: list[CsvRow], source: str, merged: CsvMerge
) -> None:
    first = rows[0].row
    patient: dict[str, Any] = {"id": patient_id, "due_reviews": []}
    columns: dict[PathT, tuple[str, int]] = {("id",): ("patient_id", first)}
    for column, keys in PATIENT_COLUMNS.items():
        columns[keys] = (column, first)
    given: dict[str, tuple[Any, int]] = {}
    problems: list[Problem] = []
    for row in rows:
        for column, keys in PATIENT_COLUMNS.items():
            if column not in row.values:
                continue
            value = row.values[column]
            if column not in given:
                given[column] = (value, row.row)
                columns[keys] = (column, row.row)
                holder = _nested_set(patient, keys)
                assert holder is not None  # the new patient only holds dicts
                holder[keys[-1]] = value
            elif not _same(given[column][0], value):
                earlier, earlier_row = given[column]
                problems.append(
                    _cell_problem(
                        source,
                        row.row,
                        column,
                        f"patient '{patient_id}' has {_show(earlier)!r} on row {earlier_row} "
                        f"but {_show(value)!r} here; every row of one patient must agree "
                        "(or leave the cell empty)",
                    )
                )
    if problems:
        merged.problems.extend(problems)
        return
    index = len(patients)
    for position, row in enumerate(rows):
        patient["due_reviews"].append(_due_review_from(row))
        merged.origins[("patients", index, "due_reviews", position)] = _due_origin(source, row.row)
    merged.origins[("patients", index)] = CsvOrigin(source, first, None, columns)
    patients.append(patient)
