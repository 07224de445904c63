"""Four independent iCalendar parsers, each reduced to the same plain view for comparison.

* icalendar 7 (the library that wrote the output; resolves TZID=Europe/London from zoneinfo),
* vobject (resolves TZIDs through the file's own VTIMEZONE, via dateutil's tzical),
* Mozilla's ical.js under node (tests/js/parse_ics.mjs; only the file's own VTIMEZONE, no zone
  database at all), run with a far-away system time zone so nothing leans on the machine's,
* the PyPI package `ical` (pydantic models; strict: it refuses a whole calendar for one bad
  content line, e.g. a control character in a TEXT value; resolves a TZID the zone database
  knows from zoneinfo, any other through the file's VTIMEZONE).

The view: {"method", "name", "calname", "events": [{"uid", "sequence", "summary", "description",
"location", "status", "start", "end", "dtstamp", "tzid", "organizer", "attendees", "alarms"}]},
times as UTC "YYYY-MM-DDTHH:MM:SSZ", relative alarm triggers as RFC 5545 durations ("-P7D").
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import icalendar
import vobject
from dateutil.tz.tz import _tzicalvtz
from ical.calendar_stream import IcsCalendarStream
from ical.exceptions import CalendarParseError

JS = Path(__file__).resolve().parent / "js"
UTC = dt.UTC


def utc(value: dt.datetime) -> str:
    assert value.tzinfo is not None and value.utcoffset() is not None, f"floating time {value!r}"
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def duration(delta: dt.timedelta) -> str:
    sign = "-" if delta < dt.timedelta(0) else ""
    seconds = int(abs(delta).total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{sign}P" + (f"{days}D" if days else "")
    if hours or minutes or seconds:
        text += "T" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
        text += f"{seconds}S" if seconds else ""
    return text if text not in ("P", "-P") else "PT0S"


def _trigger(value) -> str:
    return utc(value) if isinstance(value, dt.datetime) else duration(value)


# --- icalendar -------------------------------------------------------------------------------


def with_icalendar(data: bytes) -> dict:
    cal = icalendar.Calendar.from_ical(data)
    events = []
    for ev in cal.walk("VEVENT"):
        attendees = ev.get("attendee", [])
        attendees = attendees if isinstance(attendees, list) else [attendees]
        events.append(
            {
                "uid": str(ev["uid"]),
                "sequence": int(ev["sequence"]),
                "summary": str(ev["summary"]),
                "description": str(ev.get("description")),
                "location": str(ev.get("location")),
                "status": str(ev.get("status")),
                "start": utc(ev.decoded("dtstart")),
                "end": utc(ev.decoded("dtend")),
                "dtstamp": utc(ev.decoded("dtstamp")),
                "tzid": ev["dtstart"].params.get("TZID"),
                "organizer": str(ev["organizer"]) if "organizer" in ev else None,
                "attendees": [str(a) for a in attendees],
                "alarms": [_trigger(a.decoded("trigger")) for a in ev.walk("VALARM")],
            }
        )
    return {
        "method": str(cal["method"]) if "method" in cal else None,
        "name": str(cal["name"]) if "name" in cal else None,
        "calname": str(cal["x-wr-calname"]) if "x-wr-calname" in cal else None,
        "events": events,
    }


# --- vobject ---------------------------------------------------------------------------------


def with_vobject(data: bytes) -> dict:
    cal = vobject.readOne(data.decode("utf-8"))
    events = []
    for ev in getattr(cal, "vevent_list", []):
        start, end = ev.dtstart.value, ev.dtend.value
        for value in (start, end):
            # The file's own VTIMEZONE (dateutil's tzical), not a zone database: this is what
            # tests the published rules.
            assert isinstance(value.tzinfo, _tzicalvtz), f"{value!r} not resolved by the VTIMEZONE"
        events.append(
            {
                "uid": ev.uid.value,
                "sequence": int(ev.sequence.value),
                "summary": ev.summary.value,
                "description": ev.description.value if hasattr(ev, "description") else "None",
                "location": ev.location.value if hasattr(ev, "location") else "None",
                "status": ev.status.value if hasattr(ev, "status") else "None",
                "start": utc(start),
                "end": utc(end),
                "dtstamp": utc(ev.dtstamp.value),
                "tzid": start.tzinfo._tzid,  # the VTIMEZONE that resolved DTSTART
                "organizer": ev.organizer.value if hasattr(ev, "organizer") else None,
                "attendees": [a.value for a in getattr(ev, "attendee_list", [])],
                "alarms": [_trigger(a.trigger.value) for a in getattr(ev, "valarm_list", [])],
            }
        )
    def first(name: str):  # contents, not attributes: Component.name is "VCALENDAR"
        found = cal.contents.get(name)
        return found[0].value if found else None

    return {"method": first("method"), "name": first("name"), "calname": first("x-wr-calname"),
            "events": events}


# --- ical (PyPI) ------------------------------------------------------------------------------

_ESCAPE = re.compile(r"\\([\\;,nN])")


def _unescape(value: str) -> str:
    """RFC 5545 3.3.11 TEXT unescaping in one pass (`ical` leaves X- properties as written)."""
    return _ESCAPE.sub(lambda m: "\n" if m.group(1) in "nN" else m.group(1), value)


def with_ical(data: bytes) -> dict:
    """Parse with `ical`; AssertionError with the parser's own reason if it refuses the file."""
    try:
        cal = IcsCalendarStream.calendar_from_ics(data.decode("utf-8"))
    except CalendarParseError as problem:
        raise AssertionError(f"ical refused the calendar: {problem}: {problem.detailed_error}") from None
    calnames = [_unescape(str(x.value)) for x in cal.extras if x.name.lower() == "x-wr-calname"]
    events = []
    for ev in cal.events:
        tz = ev.dtstart.tzinfo
        events.append(
            {
                "uid": ev.uid,
                "sequence": ev.sequence,
                "summary": ev.summary,
                "description": str(ev.description),
                "location": str(ev.location),
                "status": ev.status.value if ev.status else "None",
                "start": utc(ev.dtstart),
                "end": utc(ev.dtend),
                "dtstamp": utc(ev.dtstamp),
                "tzid": getattr(tz, "key", None) or getattr(tz, "tzid", None) or str(tz),
                "organizer": ev.organizer.uri if ev.organizer else None,
                "attendees": [a.uri for a in ev.attendees],
                "alarms": [_trigger(a.trigger) for a in ev.alarm],
            }
        )
    return {
        "method": cal.method,
        "name": cal.name[0] if cal.name else None,
        "calname": calnames[0] if calnames else None,
        "events": events,
    }


# --- ical.js ---------------------------------------------------------------------------------


class IcalJs:
    """Runs tests/js/parse_ics.mjs; one node process parses a batch of files."""

    def __init__(self, node: str):
        self.node = node

    def raw(self, files: list[Path]) -> list[dict]:
        env = {**os.environ, "TZ": "Pacific/Auckland"}
        done = subprocess.run(
            [self.node, str(JS / "parse_ics.mjs"), *map(str, files)],
            capture_output=True, text=True, env=env, timeout=60, check=False,
        )
        assert done.returncode == 0, f"ical.js failed:\n{done.stderr}"
        return json.loads(done.stdout)

    def views(self, files: list[Path]) -> list[dict]:
        return [self._view(parsed) for parsed in self.raw(files)]

    @staticmethod
    def _view(parsed: dict) -> dict:
        return {
            "method": parsed["method"],
            "name": parsed["name"],
            "calname": parsed["x_wr_calname"],
            "events": [
                {
                    "uid": e["uid"],
                    "sequence": e["sequence"],
                    "summary": e["summary"],
                    "description": str(e["description"]),
                    "location": str(e["location"]),
                    "status": str(e["status"]),
                    "start": e["dtstart"]["utc"],
                    "end": e["dtend"]["utc"],
                    "dtstamp": e["dtstamp"]["utc"],
                    "tzid": e["dtstart"]["tzid"],
                    "organizer": e["organizer"]["value"] if e["organizer"] else None,
                    "attendees": [a["value"] for a in e["attendees"]],
                    "alarms": [a["trigger"] for a in e["alarms"]],
                }
                for e in parsed["events"]
            ],
        }


def ical_js_runner() -> IcalJs:
    """node + ical.js, installed from tests/js/package-lock.json when missing. Fails, never skips:
    the independent-client check is part of what the calendar tests promise."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise RuntimeError(
            "node and npm are required for the calendar tests (Mozilla ical.js parses every output); "
            "install Node.js 18 or later"
        )
    if not (JS / "node_modules" / "ical.js").is_dir():
        done = subprocess.run(
            [npm, "ci", "--prefix", str(JS), "--no-audit", "--no-fund"],
            capture_output=True, text=True, timeout=300, check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"npm ci --prefix tests/js failed:\n{done.stdout}\n{done.stderr}")
    return IcalJs(node)


# --- all of them -------------------------------------------------------------------------------


def read(data: bytes, name: str = "output") -> dict:
    """The Python parsers' common view of one output (icalendar, vobject, the strict `ical`);
    AssertionError naming `name` unless all accept it and agree."""
    ours, vobj, strict = with_icalendar(data), with_vobject(data), with_ical(data)
    assert ours == vobj, f"{name}: icalendar and vobject disagree"
    assert ours == strict, f"{name}: icalendar and ical disagree"
    return ours


def read_all(runner: IcalJs, folder: Path, outputs: dict[str, bytes]) -> dict[str, dict]:
    """{name: view} for {name: ics bytes}, read by all four parsers (ical.js in one node run, the
    files written to `folder`), insisting every one accepts every output and all agree."""
    files = []
    for name, data in outputs.items():
        path = folder / f"{name}.ics"
        path.write_bytes(data)
        files.append(path)
    views = {}
    for (name, data), js_view in zip(outputs.items(), runner.views(files), strict=True):
        ours = read(data, name)
        assert ours == js_view, f"{name}: icalendar and ical.js disagree"
        views[name] = ours
    return views
