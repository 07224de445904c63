"""Turning pydantic's validation errors into messages a practice manager can act on.

`pydantic_message` words one error (a date written 22/03/2027, a time YAML read as a number, an
unknown field with a "did you mean"); `temporal_problems` finds times and dates pydantic would
accept but misread; `text_problems` finds text no file, database or calendar can hold.
"""

from __future__ import annotations

import datetime as dt
import re
import types
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError

from scheduler.domain import MULTILINE_PATTERN, SINGLE_LINE_PATTERN, Scenario
from scheduler.privacy import nhs_number_in
from scheduler.problems import PathT, did_you_mean


def unwrap(annotation: Any) -> tuple[Any, bool]:
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


def is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def model_at(loc: PathT, root: type[BaseModel] = Scenario) -> type[BaseModel] | None:
    """The model class, under `root`, that holds the last element of `loc` (a pydantic error's
    location); None when the path leaves the models."""
    model: type[BaseModel] = root
    for key in loc[:-1]:
        if isinstance(key, int):
            continue
        info = model.model_fields.get(key)
        if info is None:
            return None
        inner, _ = unwrap(info.annotation)
        if not is_model(inner):
            return None
        model = inner
    return model


def shorten(value: Any, limit: int = 60) -> str:
    """`repr(value)`, cut to about `limit` characters: a 5,000-digit number or a pasted page is
    named, not echoed whole. A value holding an NHS number is not echoed at all."""
    if isinstance(value, str) and nhs_number_in(value) is not None:
        return "a value that looks like an NHS number (not repeated here)"
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 1]}… ({len(text):,} characters)"


def kind_of(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, str):
        return f"text {shorten(value)}"
    if isinstance(value, (int, float)):
        return f"the number {shorten(value)}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


CLOCK = re.compile(r"\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*")
_UK_DATE = re.compile(r"\s*(\d{1,2})/(\d{1,2})/(\d{4})\s*")
_ISO_DATE = re.compile(r"\s*\d{4}-\d{2}-\d{2}\s*")


def not_real_date(text: str, year: int, month: int, day: int) -> str:
    if not 1 <= month <= 12:
        return f"{text!r} is not a real date (there is no month {month})"
    return f"{text!r} is not a real date (there is no day {day} in that month)"


def _time_message(value: Any) -> str:
    if isinstance(value, dt.date):
        return f"{value} is a date, not a time: write HH:MM in quotes, e.g. \"08:30\""
    if isinstance(value, str):
        match = CLOCK.fullmatch(value)
        if match:
            hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
            if hour > 23 or minute > 59 or second > 59:
                return f"{shorten(value)} is a time outside the day: use 00:00 to 23:59"
            if len(match[1]) == 1:
                padded = "0" + value.strip()
                return f'{shorten(value)}: write times as HH:MM with two-digit hours, e.g. "{padded}"'
    return f'{shorten(value)} is not a time: write HH:MM in quotes, e.g. "08:30"'


def _date_message(value: Any, error_type: str) -> str:
    if error_type == "date_from_datetime_inexact" or isinstance(value, dt.datetime):
        return f"{value!s} has a time of day: give a date only (YYYY-MM-DD)"
    if isinstance(value, str):
        uk = _UK_DATE.fullmatch(value)
        if uk:
            try:
                iso = dt.date(int(uk[3]), int(uk[2]), int(uk[1])).isoformat()
                return f"{shorten(value)}: write dates as YYYY-MM-DD, e.g. {iso}"
            except ValueError:
                return not_real_date(value, int(uk[3]), int(uk[2]), int(uk[1]))
        iso_match = _ISO_DATE.fullmatch(value)
        if iso_match:
            year, month, day = (int(part) for part in value.strip().split("-"))
            return not_real_date(value, year, month, day)
    return f"{shorten(value)} is not a date: write YYYY-MM-DD, e.g. 2027-03-22"


TEXT_PATTERNS = (SINGLE_LINE_PATTERN, MULTILINE_PATTERN)
_CHARACTER_NAMES = {
    "\n": "a line break",
    "\r": "a carriage return",
    "\x0b": "a vertical tab",
    "\x0c": "a form feed",
    "\x1b": "an escape character",
    "\x7f": "a delete character",
    "\x85": "a next-line character (U+0085)",
    "\u2028": "a line separator (U+2028)",
    "\u2029": "a paragraph separator (U+2029)",
}


def text_message(value: Any, *, multiline: bool) -> str:
    """Why text broke the text rules of `scheduler.domain`: the first bad character, named,
    and where it is (1-based character position), e.g. "holds a vertical tab at character 12".
    """
    if not isinstance(value, str):
        return "is not allowed text"
    for position, character in enumerate(value):
        if character == "\t":
            continue
        if multiline and character == "\n":
            continue
        if multiline and character == "\r" and value[position + 1 : position + 2] == "\n":
            continue
        code = ord(character)
        if character in _CHARACTER_NAMES or code < 0x20 or 0x7F <= code <= 0x9F:
            name = _CHARACTER_NAMES.get(character, f"a control character (U+{code:04X})")
            if character in "\r\n" and not multiline:
                return f"holds a line break at character {position + 1}: this field is one line"
            if character == "\r":
                return (
                    f"holds a carriage return without a line feed at character {position + 1}; "
                    "separate lines with a line break"
                )
            return (
                f"holds {name} at character {position + 1}; remove it (often pasted from a word "
                "processor)"
            )
    return "is not allowed text"


def pydantic_message(error: Mapping[str, Any]) -> str:
    kind: str = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    loc = tuple(error["loc"])
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        model = model_at(loc)
        allowed = tuple(model.model_fields) if model else ()
        return f"unknown field '{loc[-1]}'" + did_you_mean(str(loc[-1]), allowed, "fields")
    if kind.startswith("time"):
        return _time_message(value)
    if kind.startswith("date"):
        return _date_message(value, kind)
    if kind == "literal_error":
        options = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        hint = did_you_mean(value, options)
        return f"{shorten(value)} is not allowed; use one of: {', '.join(options)}{hint}"
    if kind == "string_pattern_mismatch" and ctx.get("pattern") in TEXT_PATTERNS:
        return text_message(value, multiline=ctx.get("pattern") == MULTILINE_PATTERN)
    if kind == "string_pattern_mismatch":
        return (
            f"{shorten(value)} is not a valid id: use letters, digits, '_', '.' and '-', "
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
        return f"must be {words} {ctx.get(key)} (got {shorten(value)})"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        shown = str(value).lower() if isinstance(value, bool) else repr(value)
        return f"{shown} is not a whole number"
    if kind in ("float_parsing", "float_type", "finite_number"):
        return f"{shorten(value)} is not a number"
    if kind in ("bool_parsing", "bool_type"):
        return f"{shorten(value)} is not true or false"
    if kind == "string_type":
        hint = ""
        if isinstance(value, bool):
            hint = " (YAML reads unquoted yes/no/on/off as true/false: put the text in quotes)"
        return f"must be text, not {kind_of(value)}{hint}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"must be a mapping of fields, not {kind_of(value)}"
    if kind == "list_type":
        return f"must be a list, not {kind_of(value)}"
    return str(error.get("msg", kind))


_TIME = TypeAdapter(dt.time)


def _time_with_offset(value: Any) -> bool:
    if not isinstance(value, str) or not re.search(r"[zZ+\-]", value):
        return False
    try:
        return _TIME.validate_python(value).tzinfo is not None
    except ValidationError:
        return False


def temporal_problems(
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
        inner, is_list = unwrap(info.annotation)
        here = (*path, name)
        numeric = isinstance(item, (int, float)) and not isinstance(item, bool)
        if inner is dt.time and numeric:
            yield here, f'{item!r} is not a time: write HH:MM in quotes, e.g. "08:30"'
        elif inner is dt.time and _time_with_offset(item):
            yield here, f"{item!r}: times are local (Europe/London); leave out the UTC offset"
        elif inner is dt.date and numeric:
            yield here, f"{item!r} is not a date: write YYYY-MM-DD, e.g. 2027-03-22"
        elif is_model(inner):
            if is_list and isinstance(item, list):
                for index, element in enumerate(item):
                    yield from temporal_problems(element, inner, (*here, index))
            elif not is_list:
                yield from temporal_problems(item, inner, here)


def text_problems(value: Any, path: PathT) -> Iterator[tuple[PathT, str]]:
    """Text that no file, database or calendar can hold: NUL characters and lone surrogates
    (a JSON body can carry both as \\u escapes)."""
    if isinstance(value, str):
        if "\x00" in value:
            yield path, "contains a NUL character"
        elif any("\ud800" <= ch <= "\udfff" for ch in value):
            yield path, "is not valid Unicode text (it holds a lone surrogate)"
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from text_problems(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from text_problems(item, (*path, index))
