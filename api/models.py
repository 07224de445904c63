"""What the service keeps: organisations and their keys, versioned scenarios, jobs, immutable
plans with their appointments, and the calendar events and tokens published from them.

Public ids are random (uuid4 hex), so nothing can be enumerated; every row that a key can reach
carries its organisation, and every query filters on it.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator):
    """Stored in UTC and always read back aware: SQLite would otherwise drop the offset."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: every stored time must carry its offset")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dt.datetime: UTCDateTime(), dict: JSON, list: JSON}


class Organisation(Base):
    __tablename__ = "organisations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """A management key; only its SHA-256 is stored, the prefix finds it."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    role: Mapped[str] = mapped_column(String(20))  # manager | planner
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class ScenarioRecord(Base):
    """A scenario's identity; its content lives in numbered, never-edited versions."""

    __tablename__ = "scenarios"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    latest_version: Mapped[int] = mapped_column(Integer, default=1)
    published_plan_id: Mapped[str | None] = mapped_column(String(32), default=None)
    publish_count: Mapped[int] = mapped_column(Integer, default=0)  # times any plan was published
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ScenarioVersion(Base):
    __tablename__ = "scenario_versions"
    __table_args__ = (UniqueConstraint("scenario_id", "version"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    scenario_id: Mapped[str] = mapped_column(ForeignKey("scenarios.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    content: Mapped[dict] = mapped_column(JSON, deferred=True)  # validated, CSV rows merged in
    source: Mapped[str] = mapped_column(String(200), default="")
    patients: Mapped[int] = mapped_column(Integer, default=0)
    reviews: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Job(Base):
    """One solve: queued, running (with progress), then finished, failed or cancelled; a job
    with `base_plan_id` re-plans that plan. A discarded plan's jobs keep their row, with
    plan_id None and stage "discarded"."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    scenario_id: Mapped[str] = mapped_column(ForeignKey("scenarios.id"), index=True)
    scenario_version_id: Mapped[str] = mapped_column(ForeignKey("scenario_versions.id"))
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    settings: Mapped[dict] = mapped_column(JSON)  # SolverSettings used
    stage: Mapped[str] = mapped_column(String(40), default="queued")
    elapsed_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    objective: Mapped[float | None] = mapped_column(Float, default=None)
    bound: Mapped[float | None] = mapped_column(Float, default=None)
    reviews_booked: Mapped[int | None] = mapped_column(Integer, default=None)
    patients_booked: Mapped[int | None] = mapped_column(Integer, default=None)
    error_code: Mapped[str | None] = mapped_column(String(60), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    plan_id: Mapped[str | None] = mapped_column(String(32), default=None)
    # A re-plan job (docs/replan.md): the plan re-planned (no foreign key: a draft plan can be
    # discarded while its re-plans are kept), the moment re-planned from and the entries applied.
    base_plan_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    as_of: Mapped[dt.datetime | None] = mapped_column(default=None)
    disruptions: Mapped[list | None] = mapped_column(JSON, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    finished_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class PlanRecord(Base):
    """A finished, checked plan: written once, with all its appointments, in one transaction."""

    __tablename__ = "plans"
    __table_args__ = (UniqueConstraint("scenario_id", "number"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    scenario_id: Mapped[str] = mapped_column(ForeignKey("scenarios.id"), index=True)
    scenario_version_id: Mapped[str] = mapped_column(ForeignKey("scenario_versions.id"))
    number: Mapped[int] = mapped_column(Integer)  # plan version within the scenario: 1, 2, ...
    job_id: Mapped[str | None] = mapped_column(String(32), default=None)
    document: Mapped[dict] = mapped_column(JSON, deferred=True)  # as in docs/plan-format.md
    objective: Mapped[int] = mapped_column(Integer)
    best_bound: Mapped[int] = mapped_column(Integer)
    gap: Mapped[float] = mapped_column(Float)
    reviews_booked: Mapped[int] = mapped_column(Integer)
    reviews: Mapped[int] = mapped_column(Integer)
    published_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AppointmentRecord(Base):
    __tablename__ = "appointments"
    __table_args__ = (
        Index("ix_appointments_plan_start", "plan_id", "start"),
        Index("ix_appointments_plan_patient", "plan_id", "patient_id"),
    )

    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the plan's stable id
    patient_id: Mapped[str] = mapped_column(String(64))
    visit_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(20))
    date: Mapped[dt.date] = mapped_column()
    start: Mapped[dt.datetime] = mapped_column()
    end: Mapped[dt.datetime] = mapped_column()
    site_id: Mapped[str] = mapped_column(String(64))
    room_id: Mapped[str] = mapped_column(String(64))
    clinician_ids: Mapped[list] = mapped_column(JSON)
    review_ids: Mapped[list] = mapped_column(JSON)
    review_type_ids: Mapped[list] = mapped_column(JSON)
    blood_marker_ids: Mapped[list] = mapped_column(JSON)


class AppointmentClinician(Base):
    """Who is in which appointment, so clinician lists are a plain indexed query."""

    __tablename__ = "appointment_clinicians"
    __table_args__ = (
        Index("ix_appointment_clinicians_lookup", "plan_id", "clinician_id"),
        {"sqlite_autoincrement": False},
    )

    plan_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    appointment_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    clinician_id: Mapped[str] = mapped_column(String(64), primary_key=True)


class CalendarEvent(Base):
    """One patient visit as calendars know it: a random UID and a SEQUENCE that only rises.

    It follows the visit across published plan versions; `plan_id`/`visit_id` say where its
    current (or, once cancelled, last) content is.
    """

    __tablename__ = "calendar_events"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    scenario_id: Mapped[str] = mapped_column(ForeignKey("scenarios.id"), index=True)
    patient_id: Mapped[str] = mapped_column(String(64))
    uid: Mapped[str] = mapped_column(String(100), unique=True)
    reference: Mapped[str] = mapped_column(String(20), unique=True)
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(20), default="active")  # active | cancelled
    # The visit includes a sensitive review: its reviews are never named in staff-shared outputs.
    sensitive: Mapped[bool] = mapped_column(Boolean, default=False)
    # The patient takes calendar invites (contact_preference includes 'calendar'); without, no
    # patient calendar link is made and no invite file is served.
    calendar_invites: Mapped[bool] = mapped_column(Boolean, default=True)
    # The patient's contact_preference when last published (None: published before 0008), so a
    # channel added later is told about an unchanged visit.
    channels: Mapped[list | None] = mapped_column(JSON, nullable=True)
    fingerprint: Mapped[str] = mapped_column(String(64))  # of what the invite shows
    review_ids: Mapped[list] = mapped_column(JSON)  # to follow a visit whose make-up changed
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"))
    visit_id: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Publication(Base):
    """What publishing a plan did to each patient's invite: new, update, cancel or unchanged.

    `publish_number` counts the scenario's publications, so a plan published again (going back
    to an earlier plan) records what that second publication did without touching the first.
    """

    __tablename__ = "publications"

    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"), primary_key=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("calendar_events.id"), primary_key=True)
    publish_number: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(20))
    sequence: Mapped[int] = mapped_column(Integer)
    # The visit the event showed in this publication, so a later update can say what it was
    # (old and new date and time); None in publications made before migration 0006.
    visit_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Channels the patient added since the event was last published: an "unchanged" visit is
    # still told on these (a calendar invite, an SMS, a letter). None or [] otherwise.
    channels_added: Mapped[list | None] = mapped_column(JSON, nullable=True)


class MessageDelivery(Base):
    """One message to a patient about one event in one publication, on one channel, and how its
    delivery went. Only the status is kept: no phone number, address or e-mail, and no text
    (both are rebuilt from the plan when needed); contacts are supplied at send time only.

    status: `outbox` (written to the outbox folder, no provider), `no_contact` (the contacts file
    has nothing for that channel), or GOV.UK Notify's own statuses (`created`, `sending`,
    `delivered`, `permanent-failure`, `temporary-failure`, `technical-failure`, ...).
    """

    __tablename__ = "message_deliveries"
    __table_args__ = (UniqueConstraint("event_id", "publish_number", "channel"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("calendar_events.id"), index=True)
    publish_number: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(20))  # new | update | cancel
    channel: Mapped[str] = mapped_column(String(20))  # calendar | sms | letter
    status: Mapped[str] = mapped_column(String(40))
    provider_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AuditEntry(Base):
    """One write to the database: who (actor kind, key prefix or OS user, role), what (the route
    or command, its path parameters and the rows changed), when (UTC) and from which request.
    Append-only (api/audit.py): nothing in the service updates one, the database refuses an
    UPDATE, and only `onevisit audit prune` deletes entries older than the retention."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    organisation_id: Mapped[str | None] = mapped_column(String(32), index=True, nullable=True)
    at: Mapped[dt.datetime] = mapped_column(index=True)
    actor_kind: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(300))
    target: Mapped[dict] = mapped_column(JSON)
    request_id: Mapped[str] = mapped_column(String(64))
    changes: Mapped[list] = mapped_column(JSON)
    change_count: Mapped[int] = mapped_column(Integer)


class CalendarToken(Base):
    """A long random link secret for one subject: a patient's visit, a clinician or a room.

    Kept retrievable (not hashed, unlike API keys) because update and cancellation messages must
    carry the same link the patient already has; it reveals nothing about its subject.
    """

    __tablename__ = "calendar_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    scenario_id: Mapped[str] = mapped_column(ForeignKey("scenarios.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # patient | clinician | room
    subject_id: Mapped[str] = mapped_column(String(64))  # calendar event id, clinician or room id
    token: Mapped[str] = mapped_column(String(80), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class CapacityStudy(Base):
    """A capacity study of a stored scenario version (docs/capacity.md), run as a job: queued,
    running (variants solved so far of all to solve), then finished (with its report files),
    failed or cancelled."""

    __tablename__ = "capacity_studies"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    scenario_id: Mapped[str] = mapped_column(ForeignKey("scenarios.id"), index=True)
    scenario_version_id: Mapped[str] = mapped_column(ForeignKey("scenario_versions.id"))
    document: Mapped[dict] = mapped_column(JSON)  # the study, validated; `base` names the stored version
    time_limit_seconds: Mapped[float | None] = mapped_column(Float, default=None)  # per solve; None: the study's
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    progress_done: Mapped[int] = mapped_column(Integer, default=0)
    progress_total: Mapped[int] = mapped_column(Integer, default=0)
    progress_variant: Mapped[str | None] = mapped_column(String(200), default=None)  # the last solved
    error_code: Mapped[str | None] = mapped_column(String(60), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    finished_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CapacityStudyFile(Base):
    """One file of a finished study's report (report.html, report.json, figures.csv, the PNGs),
    all written with the study's "finished" in one transaction."""

    __tablename__ = "capacity_study_files"

    study_id: Mapped[str] = mapped_column(ForeignKey("capacity_studies.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    media_type: Mapped[str] = mapped_column(String(100))
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    size: Mapped[int] = mapped_column(Integer)


class WebSession(Base):
    """A signed-in browser: the web page's server-side session (api/web/sessions.py).

    The cookie holds a random token; only its SHA-256 is stored. A session signed in with an API
    key acts as that key (its organisation and role, and it ends when the key is revoked); one
    opened by the console's one-time sign-in link has no key and acts as the local organisation's
    manager. `csrf_token` is checked on every form the session posts.
    """

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    api_key_id: Mapped[str | None] = mapped_column(ForeignKey("api_keys.id"), default=None)
    role: Mapped[str] = mapped_column(String(20))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class SignInLink(Base):
    """A one-time sign-in link printed on the console by `onevisit serve` on a fresh install
    (no API key yet): usable once, for a few minutes; only its SHA-256 is stored."""

    __tablename__ = "sign_in_links"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    expires_at: Mapped[dt.datetime] = mapped_column()
    used_at: Mapped[dt.datetime | None] = mapped_column(default=None)
