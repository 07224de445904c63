"""Problems with input: what is wrong and where, in words a practice manager can act on.

A `Problem` names the file and the place in it (a field path such as
`patients[P003].due_reviews[1].window_end`, a CSV `row 7, column 'start'`, or `line 12, column 5`);
a `ScenarioError` carries every problem found at once. The scenario loader
(`scheduler.scenario_io`) and the cross-reference checks (`scheduler.validate`) both report in
these terms, so this module imports neither.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from scheduler.privacy import nhs_number_in

PathT = tuple[str | int, ...]
"""A path into the scenario data: field names and list indices, e.g. ('patients', 2, 'id')."""


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
    otherwise by its index. An id holding an NHS number is never repeated: its index is used.
    """
    text = ""
    current = root
    for key in path:
        if isinstance(key, int):
            label: str | int = key
            item = _get(current, key)
            ident = _get(item, "id")
            if (isinstance(ident, str) and ident and isinstance(current, (list, tuple))
                    and nhs_number_in(ident) is None):
                if sum(1 for other in current if _get(other, "id") == ident) == 1:
                    label = ident
            text += f"[{label}]"
            current = item
        else:
            text += f".{key}" if text else str(key)
            current = _get(current, key)
    return text


def did_you_mean(value: Any, options: list[str] | tuple[str, ...], noun: str = "") -> str:
    """A hint for a misspelt name: "; did you mean 'x'?", or the known names, or ""."""
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
