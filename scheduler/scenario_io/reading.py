"""Reading scenario text safely: YAML and JSON, bounded in size, nodes and depth.

Every way a scenario comes in (a file on the command line, an upload, a JSON body) is read here
first, and refused before any other work if it is too large, nested too deep, or (YAML) if its
anchors and aliases would expand into more than `MAX_NODES` nodes or refer to themselves. The
refusal costs one pass over the parser's events, linear in the text, whatever the aliases would
expand to: a 342-byte "billion laughs" file is refused in milliseconds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scheduler.problems import PathT, Problem, format_path

MAX_FILE_BYTES = 50 * 1024 * 1024
"""Largest scenario or CSV file read from disk (bytes). The service's own body limit
(ONEVISIT_MAX_BODY_BYTES, 20 MiB by default) is lower and applies before this."""

MAX_NODES = 1_000_000
"""Most values (mappings, lists and scalars, counted with every YAML alias expanded) a scenario
may hold: about 16 times the PCN month sample (61,602), far beyond any practice's month."""

MAX_DEPTH = 32
"""Deepest nesting of mappings and lists; a scenario needs 6 (the samples' deepest)."""


class InputTooLarge(ValueError):
    """The text would cost more to read than any real scenario: `str()` says why, for a person."""


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
class Parsed:
    """Text read into data: `ok` when it parsed, `lines` maps paths to YAML lines."""

    data: Any = None
    ok: bool = False
    lines: dict[PathT, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def parse_yaml(text: str, source: str) -> Parsed:
    """Parse YAML text into `Parsed` (data, line numbers, problems); never raises.

    Refused without building anything when `_scan_yaml_events` finds it out of bounds.
    """
    parsed = Parsed()
    try:
        _scan_yaml_events(text)
    except InputTooLarge as error:
        parsed.problems.append(Problem(source, "", f"the YAML {error}"))
        return parsed
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


def parse_json(text: str, source: str) -> Parsed:
    """Parse JSON text into `Parsed` (data, line numbers, problems); never raises."""
    parsed = Parsed()
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
    except RecursionError:
        parsed.problems.append(
            Problem(source, "", f"the JSON is nested more than {MAX_DEPTH} levels deep; a scenario needs 6")
        )
        return parsed
    except ValueError as error:
        parsed.problems.append(Problem(source, "", f"JSON could not be read: {error}"))
        return parsed
    try:
        check_shape(parsed.data)
    except InputTooLarge as error:
        parsed.ok, parsed.data = False, None
        parsed.problems.append(Problem(source, "", f"the JSON {error}"))
        return parsed
    # JSON is (nearly always) YAML too: read it again only to learn line numbers and where any
    # duplicate key is. If that fails (tabs, say), the data above still stands.
    again = parse_yaml(text, source)
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
    """Bytes of an uploaded file as text: UTF-8 (BOM allowed), or Windows-1252 for spreadsheets.

    An Excel workbook (.xlsx is a zip file; .xls an OLE2 file) is refused by name: read as text it
    would only give 'unknown column PK...'."""
    if raw[:4] == b"PK\x03\x04" or raw[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        return None, [
            Problem(
                source,
                "",
                "the file is an Excel workbook (or another zip file), not text: save it as CSV "
                "(UTF-8), or import a recall export as it is with `onevisit import-recall` or "
                "POST /v1/scenarios/{id}/recall (docs/recall-import.md)",
            )
        ]
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


def read_file(path: Path, *, spreadsheet: bool = False) -> tuple[str | None, list[Problem]]:
    """A file's text, or the problems reading it (missing, unreadable, too large, not text)."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return None, [
                Problem(
                    path.name,
                    "",
                    f"the file is {size / 1024 / 1024:.0f} MB; the largest accepted is "
                    f"{MAX_FILE_BYTES // 1024 // 1024} MB",
                )
            ]
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        reason = error.strerror or str(error)
        return None, [Problem(path.name, "", f"cannot read the file: {reason}")]
    return decode_text(raw, path.name, spreadsheet=spreadsheet)


def _scan_yaml_events(text: str) -> None:
    """Refuse YAML whose alias expansion, self-reference or nesting is out of bounds.

    One pass over the parser's events (no document is built): `expanded` counts every node as it
    would be once aliases are expanded, an anchored node's expanded size is known when it ends,
    and an alias adds that size. An alias to a node that has not ended yet refers to itself
    (`loop: &loop [*loop]`). Raises `InputTooLarge`; syntax errors are left for the real parse,
    which reports them with their line and column.
    """
    sizes: dict[str, int] = {}  # anchor -> expanded node count
    stack: list[tuple[str | None, int]] = []  # open collections: (anchor, `expanded` before it)
    expanded = 0
    try:
        for event in yaml.parse(text, Loader=_SafeBase):
            line = event.start_mark.line + 1
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                if len(stack) >= MAX_DEPTH:
                    raise InputTooLarge(
                        f"is nested more than {MAX_DEPTH} levels deep (line {line}); "
                        "a scenario needs 6"
                    )
                stack.append((event.anchor, expanded))
                expanded += 1
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                anchor, before = stack.pop()
                if anchor is not None:
                    sizes[anchor] = expanded - before
            elif isinstance(event, yaml.ScalarEvent):
                expanded += 1
                if event.anchor is not None:
                    sizes[event.anchor] = 1
            elif isinstance(event, yaml.AliasEvent):
                if any(anchor == event.anchor for anchor, _ in stack):
                    raise InputTooLarge(
                        f"alias *{event.anchor} on line {line} refers to the node that holds it "
                        "(a loop, which no scenario needs)"
                    )
                expanded += sizes.get(event.anchor, 1)  # an unknown anchor: the parser reports it
            if expanded > MAX_NODES:
                raise InputTooLarge(_too_many(line))
    except yaml.YAMLError:
        return


def _too_many(line: int | None = None) -> str:
    where = f" (reached on line {line})" if line is not None else ""
    return (
        f"would hold more than {MAX_NODES:,} values once its aliases are expanded{where}; "
        "a scenario this large is refused (write repeated parts out, or split the scenario)"
    )


def check_shape(data: Any) -> None:
    """Refuse already-parsed data (a JSON body) with more than `MAX_NODES` values or nested more
    than `MAX_DEPTH` levels; shared or cyclic references count each time they are reached, so a
    cycle is refused too. Iterative, so deep data cannot exhaust the stack. Raises `InputTooLarge`.
    """
    count = 0
    pending: list[tuple[Any, int]] = [(data, 0)]
    while pending:
        value, depth = pending.pop()
        count += 1
        if count > MAX_NODES:
            raise InputTooLarge(_too_many())
        if isinstance(value, Mapping):
            children: Any = value.values()
        elif isinstance(value, (list, tuple)):
            children = value
        else:
            continue
        if depth >= MAX_DEPTH:
            raise InputTooLarge(f"is nested more than {MAX_DEPTH} levels deep; a scenario needs 6")
        pending.extend((child, depth + 1) for child in children)
