"""Recall imports: a clinical system's recall export (CSV or .xlsx) into a scenario.

- `profile`: the profile format (pydantic models, `profile.schema.json`), shipped profiles in
  `profiles/` (emis-web, systmone, ardens) and loading them;
- `tables`: the export read as a table, bounded before parsing;
- `importer`: rows mapped onto due reviews, every row used, skipped or refused with a reason;
- `cli`: the `onevisit import-recall` command.

docs/recall-import.md describes the format, the commands and the warnings.
"""
