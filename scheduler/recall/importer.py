"""Importing a recall export into a scenario: every row used, skipped or refused, with why.

`import_recall(scenario, profile, raw, source)` reads the export (CSV or .xlsx,
`scheduler.recall.tables`), maps each row through the profile onto a patient's due review, and
returns the new scenario data with counts and a warning for every row it did not use: skipped
(a duplicate, a due window outside the period, a register the profile does not map, a review
already due in the scenario) or refused (a cell that cannot be read, an NHS number where a
pseudonymous id belongs, a practice not mapped, no travel time). The result is validated with
the scenario loader (`scheduler.scenario_io.scenario_from_dict`), so what is written always loads.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from scheduler.domain import Scenario
from scheduler.privacy import nhs_number_in
from scheduler.problems import Problem, ScenarioError, did_you_mean
from scheduler.recall.profile import Profile
from scheduler.recall.tables import Cell, Table, TableError, read_table
from scheduler.scenario_io import scenario_from_dict
from scheduler.scenario_io.accounting import unused_sessions

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_MONTHS = {name.lower(): number for number, name in enumerate(calendar.month_abbr) if name}
_MONTHS.update({name.lower(): number for number, name in enumerate(calendar.month_name) if name})
_MONTHS["sept"] = 9


def normalise(text: str) -> str:
    """Text compared ignoring case, spaces and punctuation: 'Recall Due-Date' == 'recall due date'."""
    return re.sub(r"[^0-9a-z]+", "", text.lower())


class CellError(ValueError):
    pass


def parse_date(cell: Cell) -> dt.date:
    """A date as UK clinical systems export it: 22/03/2027, 22-Mar-2027, 22 March 2027,
    2027-03-22 (a midnight time after it is ignored), or an Excel date cell."""
    if isinstance(cell, dt.date):
        return cell
    text = re.sub(r"[ T]00:00(:00(\.0+)?)?$", "", cell.strip())
    if match := re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", text):
        year, month, day = int(match[1]), int(match[2]), int(match[3])
    elif match := re.fullmatch(r"(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{2}|\d{4})", text):
        if len(match[3]) == 2:
            raise CellError(f"{cell!r}: write the year with four digits, e.g. 22/03/2027")
        year, month, day = int(match[3]), int(match[2]), int(match[1])
    elif match := re.fullmatch(r"(\d{1,2})[ \-]([A-Za-z]{3,9})[ \-](\d{4})", text):
        month_number = _MONTHS.get(match[2].lower())
        if month_number is None:
            raise CellError(f"{cell!r}: '{match[2]}' is not a month")
        year, month, day = int(match[3]), month_number, int(match[1])
    else:
        raise CellError(f"{cell!r} is not a date: write DD/MM/YYYY, DD-Mon-YYYY or YYYY-MM-DD")
    try:
        return dt.date(year, month, day)
    except ValueError:
        raise CellError(f"{cell!r} is not a real date") from None


def parse_month(cell: Cell) -> tuple[dt.date, dt.date]:
    """A due month as its first and last day: May 2027, May-2027, 05/2027, 2027-05, or a date."""
    if isinstance(cell, dt.date):
        year, month = cell.year, cell.month
    else:
        text = cell.strip()
        if match := re.fullmatch(r"([A-Za-z]{3,9})[ \-](\d{4})", text):
            month_number = _MONTHS.get(match[1].lower())
            if month_number is None:
                raise CellError(f"{cell!r}: '{match[1]}' is not a month")
            year, month = int(match[2]), month_number
        elif match := re.fullmatch(r"(\d{1,2})/(\d{4})", text):
            year, month = int(match[2]), int(match[1])
        elif match := re.fullmatch(r"(\d{4})-(\d{1,2})", text):
            year, month = int(match[1]), int(match[2])
        else:
            try:
                day = parse_date(cell)
            except CellError:
                raise CellError(f"{cell!r} is not a month: write May 2027, 05/2027 or 2027-05") from None
            year, month = day.year, day.month
        if not 1 <= month <= 12:
            raise CellError(f"{cell!r}: {month} is not a month")
    return dt.date(year, month, 1), dt.date(year, month, calendar.monthrange(year, month)[1])


@dataclass
class ImportResult:
    """What an import did. `data` is the new scenario's data; `scenario` the validated scenario.
    `rows_read == due_reviews_added + len(skipped) + len(refused)` always."""

    source: str
    data: dict[str, Any]
    scenario: Scenario
    rows_read: int = 0
    patients_created: int = 0
    due_reviews_added: int = 0
    skipped: list[Problem] = field(default_factory=list)
    refused: list[Problem] = field(default_factory=list)
    roster: list[Problem] = field(default_factory=list)

    @property
    def row_warnings(self) -> list[Problem]:
        """Every export row not used, in row order."""
        return sorted(self.skipped + self.refused, key=_row_key)

    @property
    def warnings(self) -> list[Problem]:
        """The export's rows not used, then the roster sessions the planner will not use."""
        return self.row_warnings + self.roster

    def counts(self) -> dict[str, int]:
        return {"rows_read": self.rows_read, "patients_created": self.patients_created,
                "due_reviews_added": self.due_reviews_added, "skipped": len(self.skipped),
                "refused": len(self.refused)}

    def summary(self) -> str:
        return (f"{self.source}: {self.rows_read} row(s) read, {self.patients_created} patient(s) created, "
                f"{self.due_reviews_added} due review(s) added, {len(self.skipped)} skipped, "
                f"{len(self.refused)} refused.")


def _row_key(problem: Problem) -> int:
    match = re.match(r"row (\d+)", problem.location)
    return int(match[1]) if match else 0


def _check_profile(profile: Profile, scenario: Scenario, profile_source: str) -> None:
    """Every review type the profile names must be the scenario's or the standard catalogue's
    (`scheduler.catalogue`); a catalogue type the scenario lacks only skips its rows."""
    from scheduler.catalogue import review_types as catalogue_types

    types = [t.id for t in scenario.review_types]
    known = sorted({*types, *(t.id for t in catalogue_types())})
    problems = []
    for index, register in enumerate(profile.registers):
        if register.review_type not in known:
            problems.append(Problem(profile_source, f"registers[{index}].review_type",
                                    f"unknown review type '{register.review_type}': not one of the scenario's "
                                    "review_types nor of the standard catalogue"
                                    + did_you_mean(register.review_type, known, "review types")))
    if problems:
        raise ScenarioError(problems)


def _column_positions(table: Table, profile: Profile, profile_source: str) -> dict[str, int]:
    """Profile key -> position of its column in the export; ScenarioError naming the missing."""
    found: dict[str, int] = {}
    header = {}
    for position, name in enumerate(table.header):
        if name.strip():
            header.setdefault(normalise(name), position)
    problems = []
    for key, wanted in profile.columns.model_dump().items():
        if wanted is None:
            continue
        position = header.get(normalise(wanted))
        if position is None:
            shown = [name for name in table.header if name.strip()]
            problems.append(Problem(table.source, f"row {table.header_row}",
                                    f"missing column '{wanted}' (columns.{key} in the profile {profile_source})"
                                    + did_you_mean(wanted, shown, "columns")))
        else:
            found[key] = position
    if problems:
        raise ScenarioError(problems)
    return found


def import_recall(scenario: Scenario, profile: Profile, raw: bytes, source: str, *,
                  profile_source: str = "profile", scenario_source: str = "scenario") -> ImportResult:
    """Add an export's rows to (a copy of) the scenario. Raises ScenarioError when the export or
    the profile cannot be used at all (unreadable, a column missing, a review type or site the
    scenario lacks), or when the result does not validate; row-level problems are warnings."""
    _check_profile(profile, scenario, profile_source)
    try:
        table = read_table(raw, source, sheet=profile.file.sheet, header_row=profile.file.header_row)
    except TableError as error:
        raise ScenarioError(error.problems) from None
    columns = _column_positions(table, profile, profile_source)
    names = {key: getattr(profile.columns, key) for key in columns}
    by_name: dict[str, str] = {}
    by_code: dict[str, str] = {}
    for register in profile.registers:
        for name in register.names:
            by_name.setdefault(normalise(name), register.review_type)
        for code in register.snomed:
            by_code.setdefault(code, register.review_type)
    sites = {site.id: site for site in scenario.sites}
    site_maps = {site.site_id: site for site in profile.sites}
    site_names: dict[str, str] = {}
    for mapping in profile.sites:
        site_names.setdefault(normalise(mapping.site_id), mapping.site_id)
        for name in mapping.names:
            site_names.setdefault(normalise(name), mapping.site_id)
    default_site = profile.default_site or (scenario.sites[0].id if len(scenario.sites) == 1 else None)
    allow_nhs = scenario.privacy.allow_nhs_number_ids
    scenario_types = {t.id for t in scenario.review_types}

    data = scenario.model_dump(mode="json", exclude_defaults=True)
    patients: list[dict[str, Any]] = data.setdefault("patients", [])
    existing = {p["id"]: p for p in patients}
    already_due = {(p.id, d.review_type_id) for p in scenario.patients for d in p.due_reviews}
    first_row: dict[tuple[str, str], int] = {}
    created: dict[str, dict[str, Any]] = {}
    rows_of_patient: dict[str, list[int]] = {}
    result = ImportResult(source, data, scenario)
    start, end = scenario.horizon_start, scenario.horizon_end
    window = profile.window

    def cell(values: list[Cell], key: str) -> Cell:
        position = columns.get(key)
        if position is None or position >= len(values):
            return ""
        value = values[position]
        return value.strip() if isinstance(value, str) else value

    for number, values in table.rows:
        result.rows_read += 1

        def refuse(key: str | None, message: str) -> None:
            location = f"row {number}" + (f", column '{names[key]}'" if key else "")
            result.refused.append(Problem(source, location, f"refused: {message}"))

        def skip(key: str | None, message: str) -> None:
            location = f"row {number}" + (f", column '{names[key]}'" if key else "")
            result.skipped.append(Problem(source, location, f"skipped: {message}"))

        raw_id = cell(values, "patient_id")
        raw_id = raw_id.isoformat() if isinstance(raw_id, dt.date) else raw_id
        if not raw_id:
            refuse("patient_id", "no patient id")
            continue
        if nhs_number_in(raw_id) is not None and not allow_nhs:
            refuse("patient_id", "the patient id looks like an NHS number; patient ids must be pseudonymous "
                                 "(export the practice's pseudonymous id, or see privacy.allow_nhs_number_ids "
                                 "in docs/scenario-format.md)")
            continue
        patient_id = profile.patient_id_prefix + raw_id
        if len(patient_id) > 64 or not _ID.match(patient_id):
            refuse("patient_id", f"{patient_id[:70]!r} is not a valid patient id: use letters, digits, '_', '.' "
                                 "and '-' (at most 64), starting with a letter or digit")
            continue

        review_type = None
        code = cell(values, "snomed_code")
        register = cell(values, "register")
        if isinstance(code, str) and code:
            review_type = by_code.get(code)
        if review_type is None and isinstance(register, str) and register:
            review_type = by_name.get(normalise(register))
        if review_type is None:
            if register and code:
                what = f"register '{register}' (SNOMED CT {code})"
            elif register or code:
                what = f"register '{register}'" if register else f"SNOMED CT code {code}"
            else:
                what = "an empty register"
            skip("register" if "register" in columns else "snomed_code",
                 f"{what} is not mapped to a review type (registers in the profile {profile_source})")
            continue

        date_key = "due_date" if "due_date" in columns else "due_month" if "due_month" in columns else "window_start"
        try:
            if "due_date" in columns:
                due = cell(values, "due_date")
                if not due:
                    raise CellError("empty: a recall due date is required")
                day = parse_date(due)
                first, last = day - dt.timedelta(days=window.days_before), day + dt.timedelta(days=window.days_after)
            elif "due_month" in columns:
                due = cell(values, "due_month")
                if not due:
                    raise CellError("empty: a due month is required")
                month_first, month_last = parse_month(due)
                first = month_first - dt.timedelta(days=window.days_before)
                last = month_last + dt.timedelta(days=window.days_after)
            else:
                opened = cell(values, "window_start")
                if not opened:
                    raise CellError("empty: a date is required")
                first = parse_date(opened)
                date_key = "window_end"
                closed = cell(values, "window_end")
                if not closed:
                    raise CellError("empty: a date is required")
                last = parse_date(closed)
                if last < first:
                    raise CellError(f"the window ends ({last}) before it starts ({first})")
        except CellError as error:
            refuse(date_key, str(error))
            continue
        shown = f"{first.isoformat()}..{last.isoformat()}"
        period = f"the planning period {start.isoformat()}..{end.isoformat()}"
        if last < start and window.overdue == "bring_forward":
            first, last = start, min(end, start + dt.timedelta(days=window.days_after))
        elif last < start or first > end:
            skip(date_key, f"due window {shown} is outside {period}")
            continue
        elif first < start or last > end:
            if window.outside_period == "skip":
                skip(date_key, f"due window {shown} is not wholly inside {period} (window.outside_period: skip)")
                continue
            first, last = max(first, start), min(last, end)

        if review_type not in scenario_types:
            skip("register" if "register" in columns else "snomed_code",
                 f"register '{register or code}' maps to review type '{review_type}', which is not one of the "
                 "scenario's review_types")
            continue
        key = (patient_id, review_type)
        if key in first_row:
            skip(None, f"duplicate of row {first_row[key]} (patient {patient_id}, review type {review_type})")
            continue
        if key in already_due:
            skip(None, f"patient {patient_id} already has a {review_type} review due in the scenario")
            continue

        reachable: list[dict[str, Any]] | None = None
        if patient_id not in existing and patient_id not in created:
            practice = cell(values, "practice")
            if isinstance(practice, str) and practice:
                site_id = site_names.get(normalise(practice))
                if site_id is None and practice in sites:
                    site_id = practice
                if site_id is None:
                    refuse("practice", f"practice '{practice}' is not mapped to a site (sites in the profile "
                                       f"{profile_source})")
                    continue
            elif default_site is not None:
                site_id = default_site
            else:
                refuse("practice" if "practice" in columns else None,
                       f"no practice given and no default_site in the profile {profile_source}")
                continue
            if site_id not in sites:
                refuse("practice" if "practice" in columns else None,
                       f"site '{site_id}' (from the profile {profile_source}) is not one of the scenario's sites")
                continue
            minutes_cell = cell(values, "travel_minutes")
            export_minutes = None
            if minutes_cell:
                text = minutes_cell if isinstance(minutes_cell, str) else ""
                if not re.fullmatch(r"\d{1,3}", text) or int(text) > 300:
                    refuse("travel_minutes", f"{minutes_cell!r} is not a travel time in whole minutes (0 to 300)")
                    continue
                export_minutes = int(text)
            reachable = []
            missing = None
            mapping = site_maps.get(site_id)
            also = [other for other in (mapping.also_reachable if mapping else []) if other in sites]
            for index, reach_id in enumerate([site_id, *also]):
                minutes = export_minutes if index == 0 else None
                if minutes is None:
                    minutes = sites[reach_id].catchment_travel_minutes
                if minutes is None and reach_id in site_maps:
                    minutes = site_maps[reach_id].travel_minutes
                if minutes is None:
                    missing = reach_id
                    break
                if all(r["site_id"] != reach_id for r in reachable):
                    reachable.append({"site_id": reach_id, "travel_minutes": minutes})
            if missing is not None:
                refuse(None, f"no travel time for site '{missing}': the export gives none and the site has no "
                             f"catchment_travel_minutes (set sites[{missing}].catchment_travel_minutes in the "
                             "scenario, or travel_minutes in the profile's sites entry)")
                continue

        first_row[key] = number
        due_review = {"review_type_id": review_type, "window_start": first.isoformat(),
                      "window_end": last.isoformat()}
        if patient_id in existing:
            existing[patient_id].setdefault("due_reviews", []).append(due_review)
        elif patient_id in created:
            created[patient_id]["due_reviews"].append(due_review)
        else:
            created[patient_id] = {"id": patient_id, "due_reviews": [due_review], "reachable_sites": reachable}
            patients.append(created[patient_id])
            result.patients_created += 1
        rows_of_patient.setdefault(patient_id, []).append(number)
        result.due_reviews_added += 1

    try:
        result.scenario = scenario_from_dict(data, scenario_source)
    except ScenarioError as error:
        raise ScenarioError([_with_rows(problem, data, rows_of_patient, source) for problem in error.problems]) from None
    result.roster = unused_sessions(result.scenario, scenario_source)
    return result


def _with_rows(problem: Problem, data: dict[str, Any], rows_of_patient: dict[str, list[int]], source: str) -> Problem:
    """A problem about an imported patient also names the export rows it came from."""
    path = problem.path
    if len(path) >= 2 and path[0] == "patients" and isinstance(path[1], int):
        patients = data.get("patients", [])
        if 0 <= path[1] < len(patients):
            rows = rows_of_patient.get(patients[path[1]].get("id", ""))
            if rows:
                listed = ", ".join(str(r) for r in rows[:5]) + (" ..." if len(rows) > 5 else "")
                return Problem(problem.source, problem.location,
                               f"{problem.message} (imported from {source} row {listed})", problem.line, problem.path)
    return problem
