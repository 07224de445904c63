"""Building a `Scenario` from parsed data: field errors, CSV rows and cross-references at once.

The data (from `scheduler.scenario_io.reading`, optionally with CSV rows merged by
`scheduler.scenario_io.csv_import`) is validated against `scheduler.domain.Scenario`; entries
that fail their own validation are set aside so the cross-reference checks of
`scheduler.validate` still run on the rest, and every problem is placed back in the file, line,
row or column it came from. Raises `ScenarioError` listing them all, in file order.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter, ValidationError

from scheduler.domain import Scenario
from scheduler.problems import PathT, Problem, ScenarioError, format_path
from scheduler.scenario_io.csv_import import CsvMerge, CsvOrigin, merge_csv
from scheduler.scenario_io.messages import (
    is_model,
    kind_of,
    pydantic_message,
    temporal_problems,
    text_problems,
    unwrap,
)
from scheduler.scenario_io.reading import (
    InputTooLarge,
    Parsed,
    check_shape,
    parse_json,
    parse_yaml,
    read_file,
)
from scheduler.validate import validate


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
        inner, is_list = unwrap(info.annotation)
        if is_list and is_model(inner):
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
    parsed: Parsed,
    source: str,
    sessions_csv_text: str | None,
    due_reviews_csv_text: str | None,
    sessions_source: str,
    due_reviews_source: str,
    extra_problems: list[Problem] | None = None,
) -> Scenario:
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
                f"not {kind_of(data)}",
            )
        )
        raise ScenarioError(_in_file_order(problems, order))
    where = _Where(source, data, parsed.lines, merged.origins)
    unreadable = list(text_problems(data, ()))
    problems.extend(where.problem(path, message) for path, message in unreadable)
    bad: list[tuple[PathT, str]] = list(temporal_problems(data, Scenario, ()))
    scenario: Scenario | None = None
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as error:
        said = {path for path, _ in unreadable}  # a NUL is reported once, not again as a pattern
        for item in error.errors():
            if tuple(item["loc"]) in said:
                bad.append((tuple(item["loc"]), ""))
            else:
                bad.append((tuple(item["loc"]), pydantic_message(item)))
    problems.extend(where.problem(path, message) for path, message in bad if message)
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
    cross-reference checks of `scheduler.validate`. `data` is not modified. Data with more than
    `MAX_NODES` values or nested deeper than `MAX_DEPTH` is refused before anything else.
    """
    try:
        check_shape(data)
    except InputTooLarge as error:
        raise ScenarioError([Problem(source, "", f"the scenario {error}")]) from None
    return _build(
        Parsed(data=data, ok=True),
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
    parsed = parse_json(text, source) if fmt == "json" else parse_yaml(text, source)
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
    text, read_problems = read_file(path)
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
        csv_text, csv_problems = read_file(csv_path, spreadsheet=True)
        problems.extend(csv_problems)
        csv_texts.append(csv_text)
        csv_sources.append(csv_path.name)
    if text is None or fmt is None:
        parsed = Parsed()  # still parse the CSVs so their problems are reported too
    elif fmt == "json":
        parsed = parse_json(text, path.name)
    else:
        parsed = parse_yaml(text, path.name)
    return _build(
        parsed, path.name, csv_texts[0], csv_texts[1], csv_sources[0], csv_sources[1], problems
    )


def scenario_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a scenario file, for `onevisit schema`."""
    schema = Scenario.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
