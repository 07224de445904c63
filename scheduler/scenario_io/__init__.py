"""Loading scenarios: YAML or JSON files, CSV imports, and readable problems.

Every failure becomes a `ScenarioError` that lists every `Problem` at once, each naming the file
and the place in it (a field path such as `patients[P003].due_reviews[1].window_end`, or a CSV
`row 7, column 'start'`). Nothing is written anywhere. Input is bounded before any other work
(size, nesting, YAML alias expansion: `scheduler.scenario_io.reading`). The format itself is
defined by the models in `scheduler.domain` and described in docs/scenario-format.md.

Modules, each with one job:
- `reading`: YAML and JSON text read safely and within bounds;
- `csv_import`: roster sessions and due reviews CSVs, merged into scenario data;
- `messages`: pydantic's validation errors worded for people;
- `build`: the entry points below, which put it all together.

Public entry points:
- `load_scenario(path, sessions_csv=None, due_reviews_csv=None)`: files on disk.
- `scenario_from_text(text, source, ...)`: YAML or JSON text (an upload).
- `scenario_from_dict(data, source, ...)`: already-parsed data.
- `merge_csv(data, sessions_csv_text, due_reviews_csv_text, ...)`,
  `read_sessions_csv(text, source)`, `read_due_reviews_csv(text, source)`: the CSV imports.
- `scenario_json_schema()`: the JSON Schema of `Scenario`.
"""

from scheduler.problems import PathT, Problem, ScenarioError, format_path
from scheduler.scenario_io.build import (
    load_scenario,
    scenario_from_dict,
    scenario_from_text,
    scenario_json_schema,
)
from scheduler.scenario_io.csv_import import (
    DUE_REVIEWS_COLUMNS,
    PATIENT_COLUMNS,
    SESSIONS_COLUMNS,
    CsvMerge,
    CsvOrigin,
    CsvRow,
    merge_csv,
    read_due_reviews_csv,
    read_sessions_csv,
)
from scheduler.scenario_io.reading import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES, decode_text

__all__ = [
    "DUE_REVIEWS_COLUMNS", "MAX_DEPTH", "MAX_FILE_BYTES", "MAX_NODES", "PATIENT_COLUMNS",
    "SESSIONS_COLUMNS", "CsvMerge", "CsvOrigin", "CsvRow", "PathT", "Problem", "ScenarioError",
    "decode_text", "format_path", "load_scenario", "merge_csv", "read_due_reviews_csv",
    "read_sessions_csv", "scenario_from_dict", "scenario_from_text", "scenario_json_schema",
]
