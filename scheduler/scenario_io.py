"""Loading scenarios: YAML or JSON files, CSV imports, and readable problems.

Every failure becomes a `ScenarioError` that lists every `Problem` at once, each naming the file
and the place in it (a field path such as `patients[P003].due_reviews[1].window_end`, or a CSV
`row 7, column 'start'`). Nothing is written anywhere. The format itself is defined by the models
in `scheduler.domain` and described in docs/scenario-format.md.

Public entry points:
- `load_scenario(path, sessions_csv=None, due_reviews_csv=None)`: files on disk.
- `scenario_from_text(text, source, ...)`: YAML or JSON text (an upload).
- `scenario_from_dict(data, source, ...)`: already-parsed data.
- `merge_csv(data, sessions_csv_text, due_reviews_csv_text, ...)`,
  `read_sessions_csv(text, source)`, `read_due_reviews_csv(text, source)`: the CSV imports.
- `scenario_json_schema()`: the JSON Schema of `Scenario`.
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import difflib
import io
import json
import re
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

from scheduler.domain import Scenario

PathT = tuple[str | int, ...]
"""A path into the scenario data: field names and list indices, e.g. ('patients', 2, 'id')."""


# --------------------------------------------------------------------------------------------
# Problems
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a scenario, with where it is.

    `location` is a field path (`patients[P003].due_reviews[1].window_end`; a list item is shown
    by its `id` where it has a unique one, otherwise by its 0-based index), or for CSV files
    `row 7, column 'start'` (rows 1-based, the header is row 1), or `line 12, column 5` for a
    syntax error. `line` is the line in a YAML file when known. `path` is the same place as a
    tuple of keys and indices into the data (empty for whole-file problems).
    """

    source: str
    location: str
    message: str
    line: int | None = None
    path: PathT = field(default=(), compare=False, repr=False)

    def __str__(self) -> str:
        text = f"{self.source}: "
        if self.location:
            text += f"{self.location}: "
        text += self.message
        if self.line is not None and not self.location.startswith("line "):
            text += f" (line {self.line})"
        return text


class ScenarioError(Exception):
    """The scenario cannot be used; `problems` lists everything wrong with it."""

    def __init__(self, problems: list[Problem]):
        self.problems: list[Problem] = list(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


def _get(obj: Any, key: str | int) -> Any:
    """Step into raw data (dicts and lists) or models alike; None when absent."""
    if isinstance(key, int):
        if isinstance(obj, (list, tuple)) and 0 <= key < len(obj):
            return obj[key]
        return None
    if isinstance(obj, Mapping):
        return obj.get(key)
    if isinstance(obj, BaseModel):
        return getattr(obj, key, None)
    return None


def format_path(path: PathT, root: Any = None) -> str:
    """Render a path readably: `patients[P003].due_reviews[1].window_end`.

    A list item is labelled by its `id` when `root` is given and the id is unique in its list;
    otherwise by its index.
    """
    text = ""
    current = root
    for key in path:
        if isinstance(key, int):
            label: str | int = key
            item = _get(current, key)
            ident = _get(item, "id")
            if isinstance(ident, str) and ident and isinstance(current, (list, tuple)):
                if sum(1 for other in current if _get(other, "id") == ident) == 1:
                    label = ident
            text += f"[{label}]"
            current = item
        else:
            text += f".{key}" if text else str(key)
            current = _get(current, key)
    return text


def _did_you_mean(value: Any, options: list[str] | tuple[str, ...], noun: str = "") -> str:
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, list(options), n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{close[0]}'?"
    if noun and options:
        shown = ", ".join(sorted(options)[:12])
        more = ", ..." if len(options) > 12 else ""
        return f"; known {noun}: {shown}{more}"
    return ""


# --------------------------------------------------------------------------------------------
# Reading YAML and JSON
# --------------------------------------------------------------------------------------------

_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
# YAML 1.1 reads unquoted 14:00 as the base-60 number 840, which pydantic would then take as
# seconds. Resolve anything clock-like (and other base-60 forms) as a string instead.
_SEXAGESIMAL = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-9_]*)+(?:\.[0-9_]*)?$")


# libyaml's parser when PyYAML was built with it (about 10x faster), else the pure-Python one;
# the constructor and resolver below are Python either way.
_SafeBase: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _YamlLoader(_SafeBase):  # type: ignore[misc, valid-type]
    """Safe loader that keeps times as text, never crashes on a bad scalar and finds duplicate
    keys (PyYAML otherwise keeps the last one silently)."""

    yaml_implicit_resolvers = {
        key: list(value) for key, value in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: str):
        super().__init__(stream)
        self.duplicate_key_nodes: dict[int, int] = {}  # id(key node) -> line of the first

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE:
                    if key_node.value in seen:
                        self.duplicate_key_nodes[id(key_node)] = seen[key_node.value]
                    else:
                        seen[key_node.value] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


for _first in "0123456789+-":
    _YamlLoader.yaml_implicit_resolvers.setdefault(_first, []).insert(0, (_STR, _SEXAGESIMAL))


def _lenient(constructor: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """A scalar PyYAML cannot convert (2027-02-30, 0x_) stays text so pydantic can report it."""

    def construct(loader: _YamlLoader, node: yaml.Node) -> Any:
        try:
            return constructor(loader, node)
        except (ValueError, TypeError, OverflowError):
            return loader.construct_scalar(node)

    return construct


_YamlLoader.add_constructor(
    "tag:yaml.org,2002:timestamp", _lenient(yaml.SafeLoader.construct_yaml_timestamp)
)
_YamlLoader.add_constructor("tag:yaml.org,2002:int", _lenient(yaml.SafeLoader.construct_yaml_int))
_YamlLoader.add_constructor(
    "tag:yaml.org,2002:float", _lenient(yaml.SafeLoader.construct_yaml_float)
)

_MAX_LINE_MAP = 500_000


def _yaml_line_map(
    node: yaml.Node, duplicates: Mapping[int, int]
) -> tuple[dict[PathT, int], list[tuple[PathT, int, int]]]:
    """Map each path in the document to its 1-based line; also where duplicate keys are
    (path, line, line of the first occurrence)."""
    lines: dict[PathT, int] = {(): node.start_mark.line + 1}
    found: list[tuple[PathT, int, int]] = []
    on_stack: set[int] = set()

    def walk(current: yaml.Node, path: PathT) -> None:
        if len(lines) > _MAX_LINE_MAP or id(current) in on_stack:
            return
        on_stack.add(id(current))
        if isinstance(current, yaml.MappingNode):
            for key_node, value_node in current.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    continue
                sub = (*path, key_node.value)
                lines[sub] = key_node.start_mark.line + 1
                if id(key_node) in duplicates:
                    found.append((sub, key_node.start_mark.line + 1, duplicates[id(key_node)]))
                walk(value_node, sub)
        elif isinstance(current, yaml.SequenceNode):
            for index, item in enumerate(current.value):
                lines[(*path, index)] = item.start_mark.line + 1
                walk(item, (*path, index))
        on_stack.discard(id(current))

    walk(node, ())
    return lines, found


@dataclass
class _Parsed:
    data: Any = None
    ok: bool = False
    lines: dict[PathT, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def _parse_yaml(text: str, source: str) -> _Parsed:
    parsed = _Parsed()
    loader = _YamlLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            parsed.problems.append(Problem(source, "", "the file is empty"))
            return parsed
        parsed.data = loader.construct_document(node)
        parsed.ok = True
        parsed.lines, duplicates = _yaml_line_map(node, loader.duplicate_key_nodes)
        for path, line, first in duplicates:
            parsed.problems.append(
                Problem(
                    source,
                    format_path(path, parsed.data),
                    f"key '{path[-1]}' appears twice in the same mapping (also on line {first}; "
                    "only the last is used)",
                    line,
                    path,
                )
            )
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        what = " ".join(str(part) for part in (error.context, error.problem) if part)
        if mark is not None:
            location = f"line {mark.line + 1}, column {mark.column + 1}"
            parsed.problems.append(
                Problem(source, location, f"YAML syntax error: {what}", mark.line + 1)
            )
        else:
            parsed.problems.append(Problem(source, "", f"YAML syntax error: {what}"))
    except (yaml.YAMLError, ValueError, TypeError, RecursionError) as error:
        parsed.problems.append(Problem(source, "", f"YAML could not be read: {error}"))
    finally:
        loader.dispose()
    return parsed


def _parse_json(text: str, source: str) -> _Parsed:
    parsed = _Parsed()
    duplicate_keys: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in items:
            if key in result:
                duplicate_keys.append(key)
            result[key] = value
        return result

    try:
        parsed.data = json.loads(text, object_pairs_hook=pairs)
        parsed.ok = True
    except json.JSONDecodeError as error:
        location = f"line {error.lineno}, column {error.colno}"
        parsed.problems.append(
            Problem(source, location, f"JSON syntax error: {error.msg}", error.lineno)
        )
        return parsed
    except (ValueError, RecursionError) as error:
        parsed.problems.append(Problem(source, "", f"JSON could not be read: {error}"))
        return parsed
    # JSON is (nearly always) YAML too: read it again only to learn line numbers and where any
    # duplicate key is. If that fails (tabs, say), the data above still stands.
    again = _parse_yaml(text, source)
    if again.ok and again.data == parsed.data:
        parsed.lines = again.lines
        parsed.problems.extend(again.problems)
    else:
        for key in duplicate_keys:
            parsed.problems.append(
                Problem(
                    source, "", f"key '{key}' appears twice in one object (only the last is used)"
                )
            )
    return parsed


def decode_text(raw: bytes, source: str, *, spreadsheet: bool) -> tuple[str | None, list[Problem]]:
    """Bytes of an uploaded file as text: UTF-8 (BOM allowed), or Windows-1252 for spreadsheets."""
    try:
        return raw.decode("utf-8-sig"), []
    except UnicodeDecodeError as error:
        if spreadsheet:
            # Excel's "CSV (Comma delimited)" writes Windows-1252, not UTF-8.
            try:
                return raw.decode("cp1252"), []
            except UnicodeDecodeError:
                pass
        byte = raw[error.start]
        return None, [
            Problem(
                source,
                "",
                f"the file is not UTF-8 text (byte 0x{byte:02x} at position {error.start}); "
                "save it as UTF-8",
            )
        ]


def _read_file(path: Path, *, spreadsheet: bool = False) -> tuple[str | None, list[Problem]]:
    try:
        raw = path.read_bytes()
    except OSError as error:
        reason = error.strerror or str(error)
        return None, [Problem(path.name, "", f"cannot read the file: {reason}")]
    return decode_text(raw, path.name, spreadsheet=spreadsheet)


# --------------------------------------------------------------------------------------------
# Turning pydantic errors into readable messages
# --------------------------------------------------------------------------------------------


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(inner type, is a list) for X, X | None, list[X], Annotated[...]."""
    is_list = False
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(args) != 1:
                return annotation, is_list
            annotation = args[0]
        elif origin is list:
            is_list = True
            annotation = get_args(annotation)[0]
        else:
            return annotation, is_list


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _model_at(loc: PathT) -> type[BaseModel] | None:
    """The model class that holds the last element of `loc`."""
    model: type[BaseModel] = Scenario
    for key in loc[:-1]:
        if isinstance(key, int):
            continue
        info = model.model_fields.get(key)
        if info is None:
            return None
        inner, _ = _unwrap(info.annotation)
        if not _is_model(inner):
            return None
        model = inner
    return model


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, str):
        return f"text {value!r}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


_CLOCK = re.compile(r"\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*")
_UK_DATE = re.compile(r"\s*(\d{1,2})/(\d{1,2})/(\d{4})\s*")
_ISO_DATE = re.compile(r"\s*\d{4}-\d{2}-\d{2}\s*")


def _not_real_date(text: str, year: int, month: int, day: int) -> str:
    if not 1 <= month <= 12:
        return f"{text!r} is not a real date (there is no month {month})"
    return f"{text!r} is not a real date (there is no day {day} in that month)"


def _time_message(value: Any) -> str:
    if isinstance(value, dt.date):
        return f"{value} is a date, not a time: write HH:MM in quotes, e.g. \"08:30\""
    if isinstance(value, str):
        match = _CLOCK.fullmatch(value)
        if match:
            hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
            if hour > 23 or minute > 59 or second > 59:
                return f"{value!r} is a time outside the day: use 00:00 to 23:59"
            if len(match[1]) == 1:
                padded = "0" + value.strip()
                return f'{value!r}: write times as HH:MM with two-digit hours, e.g. "{padded}"'
    return f'{value!r} is not a time: write HH:MM in quotes, e.g. "08:30"'


def _date_message(value: Any, error_type: str) -> str:
    if error_type == "date_from_datetime_inexact" or isinstance(value, dt.datetime):
        return f"{value!s} has a time of day: give a date only (YYYY-MM-DD)"
    if isinstance(value, str):
        uk = _UK_DATE.fullmatch(value)
        if uk:
            try:
                iso = dt.date(int(uk[3]), int(uk[2]), int(uk[1])).isoformat()
                return f"{value!r}: write dates as YYYY-MM-DD, e.g. {iso}"
            except ValueError:
                return _not_real_date(value, int(uk[3]), int(uk[2]), int(uk[1]))
        iso_match = _ISO_DATE.fullmatch(value)
        if iso_match:
            year, month, day = (int(part) for part in value.strip().split("-"))
            return _not_real_date(value, year, month, day)
    return f"{value!r} is not a date: write YYYY-MM-DD, e.g. 2027-03-22"


def _pydantic_message(error: Mapping[str, Any]) -> str:
    kind: str = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    loc = tuple(error["loc"])
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        model = _model_at(loc)
        allowed = tuple(model.model_fields) if model else ()
        return f"unknown field '{loc[-1]}'" + _did_you_mean(str(loc[-1]), allowed, "fields")
    if kind.startswith("time"):
        return _time_message(value)
    if kind.startswith("date"):
        return _date_message(value, kind)
    if kind == "literal_error":
        options = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        hint = _did_you_mean(value, options)
        return f"{value!r} is not allowed; use one of: {', '.join(options)}{hint}"
    if kind == "string_pattern_mismatch":
        return (
            f"{value!r} is not a valid id: use letters, digits, '_', '.' and '-', "
            "starting with a letter or digit"
        )
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_too_long":
        return f"is too long (at most {ctx.get('max_length')} characters)"
    if kind == "too_short":
        return f"must list at least {ctx.get('min_length')} item(s)"
    if kind == "too_long":
        return f"must list at most {ctx.get('max_length')} item(s)"
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "greater_than": ("more than", "gt"),
        "less_than_equal": ("at most", "le"),
        "less_than": ("less than", "lt"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return f"must be {words} {ctx.get(key)} (got {value!r})"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{value!r} is not a whole number"
    if kind in ("float_parsing", "float_type", "finite_number"):
        return f"{value!r} is not a number"
    if kind in ("bool_parsing", "bool_type"):
        return f"{value!r} is not true or false"
    if kind == "string_type":
        hint = ""
        if isinstance(value, bool):
            hint = " (YAML reads unquoted yes/no/on/off as true/false: put the text in quotes)"
        return f"must be text, not {_kind(value)}{hint}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"must be a mapping of fields, not {_kind(value)}"
    if kind == "list_type":
        return f"must be a list, not {_kind(value)}"
    return str(error.get("msg", kind))


_TIME = TypeAdapter(dt.time)


def _time_with_offset(value: Any) -> bool:
    if not isinstance(value, str) or not re.search(r"[zZ+\-]", value):
        return False
    try:
        return _TIME.validate_python(value).tzinfo is not None
    except ValidationError:
        return False


def _temporal_problems(
    value: Any, model: type[BaseModel], path: PathT
) -> Iterator[tuple[PathT, str]]:
    """Times and dates pydantic would accept but misread: bare numbers (YAML `start: 1400`,
    JSON `"date": 20270322`, read as seconds or a Unix timestamp) and times with a UTC offset
    (all scenario times are local Europe/London)."""
    if not isinstance(value, Mapping):
        return
    for name, info in model.model_fields.items():
        if name not in value:
            continue
        item = value[name]
        inner, is_list = _unwrap(info.annotation)
        here = (*path, name)
        numeric = isinstance(item, (int, float)) and not isinstance(item, bool)
        if inner is dt.time and numeric:
            yield here, f'{item!r} is not a time: write HH:MM in quotes, e.g. "08:30"'
        elif inner is dt.time and _time_with_offset(item):
            yield here, f"{item!r}: times are local (Europe/London); leave out the UTC offset"
        elif inner is dt.date and numeric:
            yield here, f"{item!r} is not a date: write YYYY-MM-DD, e.g. 2027-03-22"
        elif _is_model(inner):
            if is_list and isinstance(item, list):
                for index, element in enumerate(item):
                    yield from _temporal_problems(element, inner, (*here, index))
            elif not is_list:
                yield from _temporal_problems(item, inner, here)


# --------------------------------------------------------------------------------------------
# CSV imports
# --------------------------------------------------------------------------------------------

SESSIONS_COLUMNS: tuple[str, ...] = (
    "clinician_id", "date", "start", "end", "site_id", "on_bank_holiday"
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
        raise _CellError(_not_real_date(text, year, month, day)) from None


def _cell_time(text: str) -> dt.time:
    match = _CLOCK.fullmatch(text)
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
    try:
        records = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as error:
        problems.append(Problem(source, "", f"CSV could not be read: {error}"))
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
                    + _did_you_mean(name, allowed, "columns"),
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
    """Parse a roster sessions CSV: clinician_id,date,start,end,site_id[,on_bank_holiday].

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


# --------------------------------------------------------------------------------------------
# Building the scenario
# --------------------------------------------------------------------------------------------


def _longest_prefix(path: PathT, table: Mapping[PathT, Any]) -> PathT | None:
    for size in range(len(path), -1, -1):
        if path[:size] in table:
            return path[:size]
    return None


class _Where:
    """Turns a path into the raw data into a Problem naming the right file and place."""

    def __init__(
        self,
        source: str,
        data: Any,
        lines: Mapping[PathT, int],
        origins: Mapping[PathT, CsvOrigin],
    ):
        self.source = source
        self.data = data
        self.lines = lines
        self.origins = origins

    def origin(self, path: PathT) -> tuple[CsvOrigin, PathT] | None:
        key = _longest_prefix(path, self.origins)
        if key is None:
            return None
        return self.origins[key], path[len(key) :]

    def problem(self, path: PathT, message: str) -> Problem:
        path = tuple(path)
        found = self.origin(path)
        if found is not None:
            origin, rest = found
            column, row = origin.column, origin.row
            key = _longest_prefix(rest, origin.columns)
            if key is not None and key:
                column, row = origin.columns[key]
            location = f"row {row}" + (f", column '{column}'" if column else "")
            return Problem(origin.source, location, message, None, path)
        line_key = _longest_prefix(path, self.lines)
        line = self.lines[line_key] if line_key is not None else None
        return Problem(self.source, format_path(path, self.data), message, line, path)

    def reference(self, name: str, index: int) -> str:
        """How to name a top-level list item inside a message."""
        found = self.origin((name, index))
        if found is not None and not found[1]:
            return f"{found[0].source} row {found[0].row}"
        return format_path((name, index), self.data)


def _list_fields() -> dict[str, type[BaseModel]]:
    result = {}
    for name, info in Scenario.model_fields.items():
        inner, is_list = _unwrap(info.annotation)
        if is_list and _is_model(inner):
            result[name] = inner
    return result


_LIST_FIELDS = _list_fields()
_PLACEHOLDERS: dict[str, Any] = {
    "name": "",
    "horizon_start": dt.date.min,
    "horizon_end": dt.date.max,
}


@dataclass
class _Partial:
    scenario: Scenario
    index_maps: dict[str, list[int]]
    set_aside: dict[str, list[str]]


def _partial_scenario(data: Mapping[str, Any], bad: list[PathT]) -> _Partial:
    """A scenario of the entries that passed their own validation, so the cross-reference
    checks can still run and report everything at once. Entries with errors are set aside
    (their ids noted); a bad top-level setting falls back to its default or a placeholder that
    cannot cause a cross-reference problem."""
    bad_items: dict[str, set[int]] = {}
    bad_fields: set[str] = set()
    for path in bad:
        if not path:
            continue
        name = path[0]
        if name in _LIST_FIELDS and len(path) >= 2 and isinstance(path[1], int):
            bad_items.setdefault(str(name), set()).add(path[1])
        else:
            bad_fields.add(str(name))
    values: dict[str, Any] = {}
    index_maps: dict[str, list[int]] = {}
    set_aside: dict[str, list[str]] = {}
    for name, info in Scenario.model_fields.items():
        if name in _LIST_FIELDS:
            model = _LIST_FIELDS[name]
            raw = data.get(name, [])
            kept: list[BaseModel] = []
            index_maps[name] = []
            if not isinstance(raw, list) or name in bad_fields:
                set_aside[name] = []
                raw = raw if isinstance(raw, list) else []
            for index, item in enumerate(raw):
                entry = None
                if index not in bad_items.get(name, set()):
                    try:
                        entry = model.model_validate(item)
                    except ValidationError:
                        entry = None
                if entry is None:
                    ident = item.get("id") if isinstance(item, Mapping) else None
                    set_aside.setdefault(name, [])
                    if isinstance(ident, str):
                        set_aside[name].append(ident)
                    continue
                kept.append(entry)
                index_maps[name].append(index)
            values[name] = kept
        elif name in data and name not in bad_fields:
            try:
                values[name] = TypeAdapter(info.annotation).validate_python(data[name])
            except ValidationError:  # cannot happen: the whole-model errors did not include it
                values[name] = _PLACEHOLDERS.get(name, info.get_default(call_default_factory=True))
        elif name in _PLACEHOLDERS:
            values[name] = _PLACEHOLDERS[name]
        else:
            values[name] = info.get_default(call_default_factory=True)
    return _Partial(Scenario.model_construct(**values), index_maps, set_aside)


_TOP_LIST_REF = re.compile(r"\b(" + "|".join(_LIST_FIELDS) + r")\[(\d+)\](?![.\[])")


def _relocate(problem: Problem, where: _Where, index_maps: Mapping[str, list[int]]) -> Problem:
    """A problem found on the (partial) scenario, placed in the original data and files."""

    def raw_index(name: str, index: int) -> int:
        mapping = index_maps.get(name)
        return mapping[index] if mapping is not None and 0 <= index < len(mapping) else index

    path = list(problem.path)
    if len(path) >= 2 and isinstance(path[0], str) and isinstance(path[1], int):
        path[1] = raw_index(path[0], path[1])

    def replace(match: re.Match[str]) -> str:
        name = match[1]
        return where.reference(name, raw_index(name, int(match[2])))

    message = _TOP_LIST_REF.sub(replace, problem.message)
    if not problem.path:
        return Problem(problem.source, problem.location, message, problem.line)
    return where.problem(tuple(path), message)


def _build(
    parsed: _Parsed,
    source: str,
    sessions_csv_text: str | None,
    due_reviews_csv_text: str | None,
    sessions_source: str,
    due_reviews_source: str,
    extra_problems: list[Problem] | None = None,
) -> Scenario:
    from scheduler.validate import validate  # validate imports this module

    problems = list(extra_problems or [])
    problems.extend(parsed.problems)
    if sessions_csv_text is None and due_reviews_csv_text is None:
        merged = CsvMerge(parsed.data if parsed.ok else None)  # nothing to merge, no copy needed
    else:
        merged = merge_csv(
            parsed.data if parsed.ok else None,
            sessions_csv_text,
            due_reviews_csv_text,
            sessions_source=sessions_source,
            due_reviews_source=due_reviews_source,
        )
    problems.extend(merged.problems)
    order = [source, sessions_source, due_reviews_source]
    if not parsed.ok:
        raise ScenarioError(_in_file_order(problems, order))
    data = merged.data
    if not isinstance(data, dict):
        problems.append(
            Problem(
                source,
                "",
                f"the scenario must be a mapping of fields (name, horizon_start, sites, ...), "
                f"not {_kind(data)}",
            )
        )
        raise ScenarioError(_in_file_order(problems, order))
    where = _Where(source, data, parsed.lines, merged.origins)
    problems.extend(where.problem(path, message) for path, message in _text_problems(data, ()))
    bad: list[tuple[PathT, str]] = list(_temporal_problems(data, Scenario, ()))
    scenario: Scenario | None = None
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as error:
        for item in error.errors():
            bad.append((tuple(item["loc"]), _pydantic_message(item)))
    problems.extend(where.problem(path, message) for path, message in bad)
    index_maps: dict[str, list[int]] = {}
    set_aside: dict[str, list[str]] = {}
    if bad:
        partial = _partial_scenario(data, [path for path, _ in bad])
        scenario, index_maps, set_aside = partial.scenario, partial.index_maps, partial.set_aside
    assert scenario is not None
    for problem in validate(scenario, source, set_aside=set_aside):
        problems.append(_relocate(problem, where, index_maps))
    if problems:
        raise ScenarioError(_in_file_order(problems, order))
    return scenario


def _text_problems(value: Any, path: PathT) -> Iterator[tuple[PathT, str]]:
    """Text that no file, database or calendar can hold: NUL characters and lone surrogates
    (a JSON body can carry both as \\u escapes)."""
    if isinstance(value, str):
        if "\x00" in value:
            yield path, "contains a NUL character"
        elif any("\ud800" <= ch <= "\udfff" for ch in value):
            yield path, "is not valid Unicode text (it holds a lone surrogate)"
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _text_problems(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _text_problems(item, (*path, index))


def _in_file_order(problems: list[Problem], sources: list[str]) -> list[Problem]:
    """Group by file (scenario, sessions CSV, due reviews CSV), then by line or row; problems
    about a whole file come first and ties keep the order they were found in."""

    def key(problem: Problem) -> tuple[int, int]:
        rank = sources.index(problem.source) if problem.source in sources else len(sources)
        if problem.line is not None:
            return rank, problem.line
        row = re.match(r"row (\d+)", problem.location)
        return rank, int(row[1]) if row else 0

    return sorted(problems, key=key)


def scenario_from_dict(
    data: Any,
    source: str,
    *,
    sessions_csv_text: str | None = None,
    due_reviews_csv_text: str | None = None,
    sessions_source: str = "sessions.csv",
    due_reviews_source: str = "due_reviews.csv",
) -> Scenario:
    """Validate already-parsed scenario data (plus optional CSV text) into a Scenario.

    Raises ScenarioError listing every problem: field errors, CSV row errors and the
    cross-reference checks of `scheduler.validate`. `data` is not modified.
    """
    return _build(
        _Parsed(data=data, ok=True),
        source,
        sessions_csv_text,
        due_reviews_csv_text,
        sessions_source,
        due_reviews_source,
    )


Format = Literal["yaml", "json"]


def _format_of(source: str) -> Format | None:
    suffix = Path(source).suffix.lower()
    if suffix in (".yaml", ".yml"):
        return "yaml"
    if suffix == ".json":
        return "json"
    return None


def scenario_from_text(
    text: str,
    source: str,
    *,
    fmt: Format | None = None,
    sessions_csv_text: str | None = None,
    due_reviews_csv_text: str | None = None,
    sessions_source: str = "sessions.csv",
    due_reviews_source: str = "due_reviews.csv",
) -> Scenario:
    """Parse YAML or JSON text (format from `fmt`, else from the source's suffix, else YAML)."""
    fmt = fmt or _format_of(source) or "yaml"
    parsed = _parse_json(text, source) if fmt == "json" else _parse_yaml(text, source)
    return _build(
        parsed, source, sessions_csv_text, due_reviews_csv_text, sessions_source, due_reviews_source
    )


def load_scenario(
    path: str | Path,
    sessions_csv: Path | str | None = None,
    due_reviews_csv: Path | str | None = None,
) -> Scenario:
    """Load a scenario file (.yaml, .yml or .json), optionally merging CSV imports.

    Raises ScenarioError listing every problem in every file at once.
    """
    path = Path(path)
    problems: list[Problem] = []
    fmt = _format_of(path.name)
    text, read_problems = _read_file(path)
    problems.extend(read_problems)
    if fmt is None:
        problems.append(
            Problem(path.name, "", f"unknown file type '{path.suffix}': use .yaml, .yml or .json")
        )
    csv_texts: list[str | None] = []
    csv_sources: list[str] = []
    for csv_path, default in ((sessions_csv, "sessions.csv"), (due_reviews_csv, "due_reviews.csv")):
        if csv_path is None:
            csv_texts.append(None)
            csv_sources.append(default)
            continue
        csv_path = Path(csv_path)
        csv_text, csv_problems = _read_file(csv_path, spreadsheet=True)
        problems.extend(csv_problems)
        csv_texts.append(csv_text)
        csv_sources.append(csv_path.name)
    if text is None or fmt is None:
        parsed = _Parsed()  # still parse the CSVs so their problems are reported too
    elif fmt == "json":
        parsed = _parse_json(text, path.name)
    else:
        parsed = _parse_yaml(text, path.name)
    return _build(
        parsed, path.name, csv_texts[0], csv_texts[1], csv_sources[0], csv_sources[1], problems
    )


def scenario_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a scenario file, for `onevisit schema`."""
    schema = Scenario.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
