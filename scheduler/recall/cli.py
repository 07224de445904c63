"""`onevisit import-recall`: a clinical system's recall export into a scenario (docs/recall-import.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from scheduler.problems import Problem, ScenarioError
from scheduler.recall.importer import ImportResult
from scheduler.recall.importer import import_recall as import_rows
from scheduler.recall.profile import SHIPPED, load_profile
from scheduler.recall.tables import MAX_EXPORT_BYTES

EXIT_BAD_INPUT = 2
console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)


def _fail(problems: list[Problem], heading: str) -> typer.Exit:
    errors.print(f"[bold red]{heading}[/]")
    for problem in problems:
        errors.print(f"  {problem}", markup=False, soft_wrap=True)
    return typer.Exit(EXIT_BAD_INPUT)


def _read_export(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_EXPORT_BYTES:
            raise _fail([Problem(path.name, "", f"the export is {size / 1024 / 1024:.1f} MB; the largest accepted is "
                                                f"{MAX_EXPORT_BYTES // 1024 // 1024} MB (split it by register)")],
                        "The export cannot be read; nothing was written.")
        with path.open("rb") as handle:
            return handle.read(MAX_EXPORT_BYTES + 1)
    except OSError as error:
        raise _fail([Problem(path.name, "", f"cannot read the file: {error.strerror or error}")],
                    "The export cannot be read; nothing was written.") from None


def run_import(profile: str, export: Path, into: Path, strict: bool = False) -> ImportResult:
    """Load the scenario and profile, import the export; typer.Exit(2) with every problem on bad
    input, or (strict) on any warning."""
    from scheduler.cli import _load

    scenario = _load(into)
    try:
        chosen = load_profile(profile)
    except ScenarioError as error:
        raise _fail(error.problems, "The profile cannot be used; nothing was written.") from None
    raw = _read_export(export)
    source_name = profile if profile in SHIPPED else Path(profile).name
    try:
        result = import_rows(scenario, chosen, raw, export.name, profile_source=source_name,
                               scenario_source=into.name)
    except ScenarioError as error:
        raise _fail(error.problems, f"{len(error.problems)} problem(s); nothing was written.") from None
    return result


def print_result(result: ImportResult, *, strict: bool) -> None:
    console.print(result.summary(), markup=False, soft_wrap=True)
    if strict and result.warnings:
        raise _fail(result.warnings, f"--strict: {len(result.warnings)} warning(s) are errors; nothing was written.")
    for warning in result.warnings:
        console.print(f"  warning: {warning}", markup=False, soft_wrap=True)


def import_recall(
    export: Annotated[Path, typer.Argument(metavar="FILE", help="The recall export: CSV or .xlsx.")],
    profile: Annotated[str, typer.Option(help="A shipped profile (" + ", ".join(SHIPPED) + ") or a profile YAML file.")],
    into: Annotated[Path, typer.Option(help="The scenario (YAML or JSON) the rows are added to.")],
    out: Annotated[Path, typer.Option(help="The new scenario file to write (YAML).")],
    strict: Annotated[bool, typer.Option(help="Every warning is an error: nothing is written, exit 2.")] = False,
) -> None:
    """Import a clinical system's recall export (EMIS Web, SystmOne, Ardens) into a scenario."""
    from scheduler.cli import _write_atomically
    from scheduler.generate.files import scenario_yaml

    result = run_import(profile, export, into, strict)
    print_result(result, strict=strict)
    header = (f"{into.name} with the recall export {export.name} imported by onevisit import-recall "
              f"(profile {profile}): {result.due_reviews_added} due review(s) added.")
    try:
        _write_atomically(out, scenario_yaml(result.scenario, header=header))
    except OSError as error:
        raise _fail([Problem(str(out), "", f"cannot write the file: {error.strerror or error}")],
                    "Nothing was written.") from None
    console.print(f"Wrote {out}.", markup=False, soft_wrap=True)

