"""Recall import profiles: how one clinical system's recall export maps onto a scenario.

A profile is a small YAML file (docs/recall-import.md) that names the export's columns, says how
a recall due date becomes a due window, and maps register or recall names (and SNOMED CT codes)
onto the scenario's review types and the practice name or ODS code onto its sites. These models
are the single definition of the format: `profile.schema.json` beside this module is generated
from them (`profile_json_schema`) and a test keeps the two equal.
"""

from __future__ import annotations

import json
import warnings
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from scheduler.domain import Id, text_field
from scheduler.problems import Problem, ScenarioError, did_you_mean
from scheduler.scenario_io.messages import model_at, pydantic_message
from scheduler.scenario_io.reading import parse_yaml

ColumnName = Annotated[text_field(200), Field(min_length=1)]  # type: ignore[valid-type]
MatchText = Annotated[text_field(200), Field(min_length=1)]  # type: ignore[valid-type]
SnomedCode = Annotated[str, Field(pattern=r"^[0-9]{6,18}$", description="A SNOMED CT concept id.")]

MAX_PROFILE_BYTES = 256 * 1024
"""Largest profile file read (bytes); the shipped ones are about 4 KB."""

SHIPPED = ("emis-web", "systmone", "ardens")
"""Names of the profiles shipped in `scheduler/recall/profiles/`."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileSettings(_Strict):
    """Where the table is in the export."""

    sheet: text_field(100) | None = Field(  # type: ignore[valid-type]
        None, description="Worksheet of an .xlsx export to read; left out, the first sheet.")
    header_row: int = Field(
        1, ge=1, le=50, description="Row (1-based) holding the column names; rows above it are a "
        "report's title lines and are not data.")


with warnings.catch_warnings():
    # `register` shadows ABCMeta.register, a class method no profile uses; the field wins on instances.
    warnings.filterwarnings("ignore", message='Field name "register"')

    class Columns(_Strict):
        """The export's column names (as the clinical system writes them; matched ignoring case,
        spaces and punctuation). Only `patient_id` is always required; give `register` or
        `snomed_code` (or both), and one way of giving the due window."""

        patient_id: ColumnName = Field(description="The practice's pseudonymous patient id column.")
        register: ColumnName | None = Field(
            None, description="Register, recall type or clinical term description column.")
        snomed_code: ColumnName | None = Field(None, description="SNOMED CT concept id column.")
        due_date: ColumnName | None = Field(None, description="Recall due date column.")
        due_month: ColumnName | None = Field(
            None, description="Due month column (May 2027, 05/2027, 2027-05 or a date in the month).")
        window_start: ColumnName | None = Field(None, description="First day the review may be booked.")
        window_end: ColumnName | None = Field(None, description="Last day the review may be booked.")
        practice: ColumnName | None = Field(
            None, description="Registered practice (name or ODS code) column; left out, `default_site`.")
        travel_minutes: ColumnName | None = Field(
            None, description="Travel time column, in whole minutes, if the export has one (rarely).")

        @model_validator(mode="after")
        def _one_window(self) -> Columns:
            ways = [self.due_date is not None, self.due_month is not None,
                    self.window_start is not None or self.window_end is not None]
            if sum(ways) != 1:
                raise ValueError("give exactly one way of reading the due window: due_date, due_month, "
                                 "or window_start with window_end")
            if (self.window_start is None) != (self.window_end is None):
                raise ValueError("window_start and window_end go together")
            if self.register is None and self.snomed_code is None:
                raise ValueError("give the register column, the snomed_code column, or both")
            return self


class WindowSettings(_Strict):
    """How a due date becomes the window a review may be booked in, and what happens to windows
    outside the scenario's planning period (horizon_start..horizon_end)."""

    days_before: int = Field(
        14, ge=0, le=366, description="A due date's window opens this many days before it.")
    days_after: int = Field(
        28, ge=0, le=366, description="... and closes this many days after it (a due month's "
        "window runs from its first day minus days_before to its last day plus days_after).")
    outside_period: Literal["clamp", "skip"] = Field(
        "clamp", description="clamp: a window partly inside the period is cut to it; skip: a "
        "window not wholly inside the period is skipped. A window wholly outside is skipped "
        "either way (unless `overdue` brings it forward).")
    overdue: Literal["skip", "bring_forward"] = Field(
        "bring_forward", description="A window that closed before the period starts (an overdue "
        "recall): bring_forward books it from the first day of the period for days_after days; "
        "skip leaves it out with a warning.")


class RegisterMap(_Strict):
    """One review type and the register or recall names (and SNOMED CT codes) that mean it."""

    review_type: Id = Field(description="Id of one of the scenario's review_types.")
    names: list[MatchText] = Field(
        default_factory=list, description="Register, recall or term names, matched ignoring case, "
        "spaces and punctuation.")
    snomed: list[SnomedCode] = Field(default_factory=list, description="SNOMED CT concept ids.")

    @model_validator(mode="after")
    def _something(self) -> RegisterMap:
        if not self.names and not self.snomed:
            raise ValueError("give at least one name or SNOMED CT code")
        return self


class SiteMap(_Strict):
    """A scenario site and the practice names or ODS codes the export uses for it."""

    site_id: Id = Field(description="Id of one of the scenario's sites.")
    names: list[MatchText] = Field(
        default_factory=list, description="Practice names or ODS codes, matched ignoring case, "
        "spaces and punctuation.")
    also_reachable: list[Id] = Field(
        default_factory=list, description="Other sites its patients can get to (a PCN hub); "
        "each at that site's catchment_travel_minutes.")
    travel_minutes: int | None = Field(
        None, ge=0, le=300, description="Travel minutes to this site when the scenario's site has no "
        "catchment_travel_minutes (the site's own setting wins).")


class Profile(_Strict):
    """A recall import profile (docs/recall-import.md)."""

    name: text_field(200)  # type: ignore[valid-type]
    system: text_field(100) = Field("", description="The clinical system it is for.")  # type: ignore[valid-type]
    description: text_field(5000, multiline=True) = ""  # type: ignore[valid-type]
    file: FileSettings = FileSettings()
    columns: Columns
    window: WindowSettings = WindowSettings()
    registers: list[RegisterMap] = Field(min_length=1)
    sites: list[SiteMap] = Field(default_factory=list)
    default_site: Id | None = Field(
        None, description="Site of a row with no practice column or an empty practice cell.")
    patient_id_prefix: text_field(20) = Field(  # type: ignore[valid-type]
        "", description="Put before every patient id (e.g. 'EL-'), so ids from two practices never meet.")


def profile_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a profile file."""
    schema = Profile.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "OneVisit recall import profile", **{k: v for k, v in schema.items() if k != "title"}}


def schema_text() -> str:
    """`profile_json_schema` as the text of profile.schema.json."""
    return json.dumps(profile_json_schema(), indent=2, sort_keys=True) + "\n"


def shipped_profile_path(name: str) -> Path:
    return Path(str(resources.files("scheduler.recall") / "profiles" / f"{name}.yaml"))


def profile_from_text(text: str, source: str) -> Profile:
    """Parse and validate a profile's YAML text; ScenarioError naming every problem otherwise."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_PROFILE_BYTES:
        raise ScenarioError([Problem(source, "", f"the profile is larger than {MAX_PROFILE_BYTES // 1024} KB; "
                                                 "a profile is a few KB")])
    parsed = parse_yaml(text, source)
    if not parsed.ok:
        raise ScenarioError(parsed.problems)
    if parsed.problems:
        raise ScenarioError(parsed.problems)
    if not isinstance(parsed.data, dict):
        raise ScenarioError([Problem(source, "", "a profile is a mapping of keys (name, columns, registers, ...)")])
    try:
        return Profile.model_validate(parsed.data)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            path = tuple(item["loc"])
            where = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path).replace(".[", "[")
            line = None
            for size in range(len(path), -1, -1):
                if path[:size] in parsed.lines:
                    line = parsed.lines[path[:size]]
                    break
            problems.append(Problem(source, where, _message(item), line))
        raise ScenarioError(problems) from None


def _message(item: Any) -> str:
    loc = tuple(item["loc"])
    if item["type"] == "extra_forbidden":
        model = model_at(loc, Profile)
        allowed = tuple(model.model_fields) if model else ()
        return f"unknown key '{loc[-1]}'" + did_you_mean(str(loc[-1]), allowed, "keys")
    if item["type"] == "value_error":
        return str(item.get("msg", "")).removeprefix("Value error, ")
    if item["type"] == "missing":
        return "required key is missing"
    return pydantic_message(item)


def load_profile(name_or_path: str) -> Profile:
    """A shipped profile by name (emis-web, systmone, ardens) or a profile YAML file by path."""
    if name_or_path in SHIPPED:
        path = shipped_profile_path(name_or_path)
    else:
        path = Path(name_or_path)
        if not path.suffix and not path.exists():
            raise ScenarioError([Problem(name_or_path, "", "no such profile: give a shipped profile ("
                                         + ", ".join(SHIPPED) + ") or the path of a profile .yaml file")])
    try:
        size = path.stat().st_size
        if size > MAX_PROFILE_BYTES:
            raise ScenarioError([Problem(path.name, "", f"the profile is {size // 1024} KB; the largest "
                                                        f"accepted is {MAX_PROFILE_BYTES // 1024} KB")])
        raw = path.read_bytes()
    except OSError as error:
        raise ScenarioError([Problem(path.name, "", f"cannot read the profile: {error.strerror or error}")]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ScenarioError([Problem(path.name, "", "the profile is not UTF-8 text")]) from None
    return profile_from_text(text, path.name)
