"""Options every `onevisit` command that reads or writes the database shares."""

from __future__ import annotations

from typing import Annotated

import typer

DatabaseOpt = Annotated[str | None, typer.Option(
    "--database-url", help="Database (default: $DATABASE_URL, else sqlite:///onevisit.db).")]
