"""Service configuration, read once from the environment (twelve-factor style)."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_DATABASE_URL = "sqlite:///onevisit.db"


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    workers: int = 2  # plans solving at once; each solve also uses its own CP-SAT workers
    organiser: str = "mailto:appointments@onevisit.invalid"  # ORGANIZER of patient invites
    public_url: str = "http://127.0.0.1:8000"  # base of the calendar links handed to people
    poll_seconds: float = 0.25  # how often the job dispatcher looks for work and cancellations
    run_jobs: bool = True  # exactly one instance solves; others serve only (ONEVISIT_RUN_JOBS=0)

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        env = os.environ
        values = {
            "database_url": env.get("DATABASE_URL", DEFAULT_DATABASE_URL),
            "workers": int(env.get("ONEVISIT_WORKERS", "2")),
            "organiser": env.get("ONEVISIT_ORGANISER", cls.organiser),
            "public_url": env.get("ONEVISIT_PUBLIC_URL", cls.public_url).rstrip("/"),
            "run_jobs": env.get("ONEVISIT_RUN_JOBS", "1").strip().lower() not in ("0", "false", "no"),
        }
        values.update(overrides)
        if values["workers"] < 1:
            raise ValueError("ONEVISIT_WORKERS must be at least 1")
        if not str(values["organiser"]).startswith("mailto:"):
            values["organiser"] = f"mailto:{values['organiser']}"
        return cls(**values)
