"""Service configuration, read once from the environment (twelve-factor style)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

DEFAULT_DATABASE_URL = "sqlite:///onevisit.db"
DEFAULT_MAX_BODY_BYTES = 20 * 1024 * 1024  # 20 MiB: a 10,000-patient practice month is well under 5 MiB
DEFAULT_SHUTDOWN_SECONDS = 5.0


def _positive_int(name: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {text!r}") from None
    if value < 1:
        raise ValueError(f"{name} must be at least 1")
    return value


def _seconds(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, not {text!r}") from None
    if not 0 <= value <= 3600:
        raise ValueError(f"{name} must be between 0 and 3600 seconds")
    return value


@dataclass(frozen=True)
class Settings:
    """What one service process needs to know; every field has an environment variable.

    Raises ValueError from `from_env` for a value it cannot use (a service should not start
    half-configured).
    """

    database_url: str = DEFAULT_DATABASE_URL
    workers: int = 2  # plans solving at once; each solve also uses its own CP-SAT workers
    organiser: str = "mailto:appointments@onevisit.invalid"  # ORGANIZER of patient invites
    public_url: str = "http://127.0.0.1:8000"  # base of the calendar links handed to people
    poll_seconds: float = 0.25  # how often the job dispatcher looks for work and cancellations
    run_jobs: bool = True  # exactly one instance solves; others serve only (ONEVISIT_RUN_JOBS=0)
    # Largest request body in bytes, on every route (ONEVISIT_MAX_BODY_BYTES); larger is a 413.
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # After SIGTERM, seconds open requests get to finish before they are cancelled
    # (ONEVISIT_SHUTDOWN_SECONDS); running solves are stopped and marked interrupted.
    shutdown_seconds: float = DEFAULT_SHUTDOWN_SECONDS
    # Solves a capacity study runs at once (ONEVISIT_STUDY_PROCESSES); one study runs at a time.
    study_processes: int = 2
    # How long audit entries are kept before `onevisit audit prune` may remove them
    # (ONEVISIT_AUDIT_RETENTION_DAYS). The default, 8 years, is an assumption: set it from the
    # organisation's records retention schedule (NHS Records Management Code of Practice 2021).
    audit_retention_days: int = 2922
    # GOV.UK Notify for patient SMS, letters and invite e-mails (docs/messages.md): the API key
    # (ONEVISIT_NOTIFY_API_KEY; unset: messages go to an outbox folder), the API's base URL and
    # the ids of an SMS template and an e-mail template whose bodies are ((body)).
    notify_api_key: str | None = field(default=None, repr=False)  # a secret: kept out of logs
    notify_base_url: str = "https://api.notifications.service.gov.uk"
    notify_sms_template_id: str | None = None
    notify_email_template_id: str | None = None
    # Folder for patient messages when no Notify key is set (ONEVISIT_MESSAGES_OUTBOX).
    messages_outbox: str = "out/messages"

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        """Settings from the environment; keyword overrides (command-line options) win."""
        env = os.environ
        values = {
            "database_url": env.get("DATABASE_URL", DEFAULT_DATABASE_URL),
            "workers": int(env.get("ONEVISIT_WORKERS", "2")),
            "max_body_bytes": _positive_int("ONEVISIT_MAX_BODY_BYTES",
                                            env.get("ONEVISIT_MAX_BODY_BYTES", str(DEFAULT_MAX_BODY_BYTES))),
            "shutdown_seconds": _seconds("ONEVISIT_SHUTDOWN_SECONDS",
                                         env.get("ONEVISIT_SHUTDOWN_SECONDS", str(DEFAULT_SHUTDOWN_SECONDS))),
            "organiser": env.get("ONEVISIT_ORGANISER", cls.organiser),
            "public_url": env.get("ONEVISIT_PUBLIC_URL", cls.public_url).rstrip("/"),
            "run_jobs": env.get("ONEVISIT_RUN_JOBS", "1").strip().lower() not in ("0", "false", "no"),
            "study_processes": _positive_int("ONEVISIT_STUDY_PROCESSES", env.get("ONEVISIT_STUDY_PROCESSES", "2")),
            "audit_retention_days": _positive_int("ONEVISIT_AUDIT_RETENTION_DAYS",
                                                  env.get("ONEVISIT_AUDIT_RETENTION_DAYS", "2922")),
            "notify_api_key": env.get("ONEVISIT_NOTIFY_API_KEY") or None,
            "notify_base_url": env.get("ONEVISIT_NOTIFY_BASE_URL") or cls.notify_base_url,
            "notify_sms_template_id": env.get("ONEVISIT_NOTIFY_SMS_TEMPLATE_ID") or None,
            "notify_email_template_id": env.get("ONEVISIT_NOTIFY_EMAIL_TEMPLATE_ID") or None,
            "messages_outbox": env.get("ONEVISIT_MESSAGES_OUTBOX") or cls.messages_outbox,
        }
        values.update(overrides)
        if values["workers"] < 1:
            raise ValueError("ONEVISIT_WORKERS must be at least 1")
        if values["max_body_bytes"] < 1:
            raise ValueError("ONEVISIT_MAX_BODY_BYTES must be at least 1")
        if not str(values["organiser"]).startswith("mailto:"):
            values["organiser"] = f"mailto:{values['organiser']}"
        return cls(**values)
