"""Accounting for roster sessions: which ones the planner will not use, and why.

The planner uses a session only when it is inside the planning period, its clinician is not on
leave that day, and it is not on an England bank holiday unless it says `on_bank_holiday`
(`scheduler.instance.Instance.valid_sessions`). A session that fails any of these (or repeats an
earlier one exactly) is dropped there without a word; `unused_sessions` names each one, by its
index in `sessions` or, when it came from a roster CSV, by that file's row, so `onevisit plan`,
the recall import and the scenario upload can warn about it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path

import holidays

from scheduler.domain import RosterSession, Scenario
from scheduler.problems import Problem
from scheduler.scenario_io.csv_import import CsvOrigin, read_sessions_csv
from scheduler.scenario_io.reading import read_file
from scheduler.timegrid import dates_between, is_bank_holiday


def _holiday_name(day: dt.date) -> str:
    name = holidays.UK(subdiv="ENG", years=[day.year]).get(day)
    return str(name) if name else "a bank holiday"


def _describe(session: RosterSession) -> str:
    return (f"session of {session.clinician_id} on {session.date.isoformat()} "
            f"{session.start.strftime('%H:%M')}-{session.end.strftime('%H:%M')} at {session.site_id}")


def unused_sessions(scenario: Scenario, source: str = "scenario",
                    origins: Mapping[int, CsvOrigin] | None = None) -> list[Problem]:
    """A warning for each roster session the planner will not use, in session order.

    `source` names the scenario file; `origins` maps a session's index to the CSV row it came
    from (`session_origins`), so the warning names that file and row instead.
    """
    origins = origins or {}
    on_leave: dict[tuple[str, dt.date], str] = {}
    for leave in scenario.leave:
        # Only the planning period matters (a session outside it is reported as such first), so
        # a leave years long is not walked day by day.
        first, last = max(leave.start_date, scenario.horizon_start), min(leave.end_date, scenario.horizon_end)
        for day in dates_between(first, last):
            on_leave.setdefault((leave.clinician_id, day), leave.reason)
    seen: dict[str, int] = {}
    found: list[Problem] = []
    for index, session in enumerate(scenario.sessions):
        origin = origins.get(index)
        if origin is not None:
            where = (origin.source, f"row {origin.row}")
        else:
            where = (source, f"sessions[{index}]")
        described = _describe(session)
        reasons = []
        if not scenario.horizon_start <= session.date <= scenario.horizon_end:
            reasons.append(f"its date is outside the planning period {scenario.horizon_start.isoformat()}.."
                           f"{scenario.horizon_end.isoformat()}")
        elif is_bank_holiday(session.date) and not session.on_bank_holiday:
            reasons.append(f"{session.date.isoformat()} is an England bank holiday ({_holiday_name(session.date)}) "
                           "and the session does not say on_bank_holiday: true")
        elif (session.clinician_id, session.date) in on_leave:
            reason = on_leave[(session.clinician_id, session.date)]
            reasons.append(f"{session.clinician_id} is on leave that day" + (f" ({reason})" if reason else ""))
        key = session.model_dump_json()
        if key in seen:
            first = seen[key]
            first_origin = origins.get(first)
            named = f"{first_origin.source} row {first_origin.row}" if first_origin else f"sessions[{first}]"
            reasons.append(f"it repeats {named} exactly")
        else:
            seen[key] = index
        for reason in reasons:
            found.append(Problem(where[0], where[1], f"{described} will not be used: {reason}"))
    return found


def session_origins(scenario: Scenario, sessions_csv: Path | str | None) -> dict[int, CsvOrigin]:
    """Which sessions of a scenario loaded with `--sessions-csv` came from which CSV row: the
    CSV's rows are appended after the scenario file's own sessions, in order."""
    if sessions_csv is None:
        return {}
    path = Path(sessions_csv)
    text, _ = read_file(path, spreadsheet=True)
    return session_origins_from_text(scenario, text, path.name)


def session_origins_from_text(scenario: Scenario, text: str | None, source: str) -> dict[int, CsvOrigin]:
    """As `session_origins`, for CSV text already read (an upload)."""
    if text is None:
        return {}
    rows, _ = read_sessions_csv(text, source)
    base = len(scenario.sessions) - len(rows)
    if base < 0:
        return {}
    return {base + k: CsvOrigin(source, row.row) for k, row in enumerate(rows)}
