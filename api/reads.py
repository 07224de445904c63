"""The appointment book's read path: plan summaries and appointment lists answered from
per-process caches of ready-made JSON.

Why caching is safe here: a stored plan and its appointments are written once, in one
transaction, and never edited (a re-plan is a new plan; discarding deletes the plan, and plan ids
are random and never reused). So what a plan's appointments serialise to can be kept for the life
of the process, keyed by plan id. What *can* change is checked on every request, before anything
cached is served (`plan_access`, one short session):

- the API key (`api.deps.caller_on`: unknown or revoked is a 401 at once);
- the plan: that it still exists and belongs to the caller's organisation (`store.plan_record`,
  so a discarded plan, or another organisation's, is a 404 whatever is cached);
- the plan summary's publication state (`published_at`, and `status`, which depends on the
  scenario's published plan), read from the database each time and set into the cached summary.

Why it is fast: the key and the plan are looked up in one session on one trip to the thread pool
(a dependency), and the route itself is async and answers from the cache without another trip;
only a cache miss goes back to the pool, to read the plan once. Each trip to the pool costs about
as much as the rest of the request on a busy 2-core machine.

Both caches are LRU with a size cap (`SUMMARIES_KEEP` summaries, `BOOK_KEEP_APPOINTMENTS`
appointments over all cached plans), so memory stays bounded however many plans are read.

For the web page: `appointments_json` returns a day's or a week's appointments (or any filter of
them) as the bytes of `AppointmentPage`, checking the plan's organisation itself.
"""

from __future__ import annotations

import datetime as dt
import threading
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import pendulum
from fastapi import Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.deps import bearer_key, caller_on, services
from api.errors import ApiError, not_found
from api.keys import Caller
from api.models import AppointmentRecord, PlanRecord, ScenarioRecord
from api.schemas import AppointmentOut, PlanOut
from api.store import plan_record, plan_status

LONDON = pendulum.timezone("Europe/London")

# About 0.5-1 KB of memory per cached appointment (its JSON plus what the filters look at): at
# most some 100 MB for the appointment lists of one process; a PCN month is ~3,300 appointments.
BOOK_KEEP_APPOINTMENTS = 150_000
BOOK_KEEP_PLANS = 64
SUMMARIES_KEEP = 256  # a summary is a few KB

K = TypeVar("K")
V = TypeVar("V")


class BoundedLru(Generic[K, V]):
    """A thread-safe LRU map whose entries have a weight; least recently used entries are dropped
    while the total weight passes `max_weight` or the count passes `max_entries`. An entry heavier
    than `max_weight` on its own is not kept at all (its caller uses it once and drops it)."""

    def __init__(self, max_weight: int, max_entries: int) -> None:
        self.max_weight, self.max_entries = max_weight, max_entries
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._weight = 0
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            self._items.move_to_end(key)
            return found[0]

    def put(self, key: K, value: V, weight: int = 1) -> None:
        with self._lock:
            if key in self._items:
                self._weight -= self._items.pop(key)[1]
            if weight > self.max_weight:
                return
            self._items[key] = (value, weight)
            self._weight += weight
            while self._weight > self.max_weight or len(self._items) > self.max_entries:
                _, (_, dropped) = self._items.popitem(last=False)
                self._weight -= dropped

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._weight = 0

    def stats(self) -> tuple[int, int]:
        """(entries, total weight) now."""
        with self._lock:
            return len(self._items), self._weight


def json_response(body: bytes) -> Response:
    """Ready-made JSON as the response, with the headers FastAPI gives a response model's JSON."""
    return Response(body, media_type="application/json")


# --- who may read which plan, checked on every request ---------------------------------------

PlanFinder = Callable[[Session, str, str], PlanRecord]
"""`(session, organisation_id, plan_id) -> PlanRecord`, raising ApiError 404: `store.plan_record`."""


@dataclass(frozen=True)
class PlanAccess:
    """What a read route knows once the key and the plan are checked.

    `plan_id` is None when there is no such plan for the caller's organisation: the route answers
    404 itself, after FastAPI has validated the query (so a bad query is still a 422 first, as on
    every other route). `published_at` and `status` are the plan's publication state now (only
    looked up when asked for: the summary shows them).
    """

    caller: Caller
    plan_id: str | None
    published_at: dt.datetime | None = None
    status: str | None = None


def plan_access(request: Request, credentials: HTTPAuthorizationCredentials | None, plan_id: str,
                find: PlanFinder = plan_record, *, with_status: bool = False) -> PlanAccess:
    """Check the key and find the plan in one short session (call it from a sync dependency: it
    blocks on the database). Raises ApiError 401 for no key or an unknown or revoked one; any
    other error of `find` but its 404 is raised too."""
    bearer_key(credentials)  # no key: a 401 before any connection is taken
    with services(request).factory() as session:
        caller = caller_on(session.connection(), credentials)
        try:
            record = find(session, caller.organisation_id, plan_id)
        except ApiError as exc:
            if exc.status != 404:
                raise
            return PlanAccess(caller, None)
        if not with_status:
            return PlanAccess(caller, record.id)
        scenario = session.get(ScenarioRecord, record.scenario_id)
        return PlanAccess(caller, record.id, record.published_at, plan_status(record, scenario))


def _found(access: PlanAccess) -> str:
    if access.plan_id is None:
        raise not_found("plan")
    return access.plan_id


# --- plan summary -------------------------------------------------------------------------------

_summaries: BoundedLru[str, PlanOut] = BoundedLru(SUMMARIES_KEEP, SUMMARIES_KEEP)
# Held while a missing summary or appointment list is built (tens of ms for a practice month), so
# a burst of first reads of one plan builds it once; builds are rare, so one lock for all is enough.
_build_lock = threading.Lock()

SummaryBuilder = Callable[[Session, PlanRecord], PlanOut]
"""`(session, record) -> PlanOut`: the summary the slow way, from the plan document."""


def _load_summary(request: Request, plan_id: str, build: SummaryBuilder) -> PlanOut:
    with services(request).factory() as session:
        session.connection()  # taken before the lock: see `plan_book`
        with _build_lock:  # requests arriving meanwhile wait for this build rather than repeat it
            summary = _summaries.get(plan_id)
            if summary is None:
                record = session.get(PlanRecord, plan_id)
                if record is None:  # discarded since it was checked
                    raise not_found("plan")
                summary = build(session, record)
                _summaries.put(plan_id, summary)
    return summary


async def summary_response(request: Request, access: PlanAccess, build: SummaryBuilder) -> Response:
    """The plan summary (`PlanOut` as JSON) of a plan found by `plan_access(..., with_status=True)`.

    Everything in a summary is fixed for the plan's life except `published_at` and `status`,
    which come from `access` (read on this request); the rest is cached, and built with `build`
    (in the thread pool) the first time. Raises ApiError 404 when the plan was not found.
    """
    plan_id = _found(access)
    summary = _summaries.get(plan_id)
    if summary is None:
        summary = await run_in_threadpool(_load_summary, request, plan_id, build)
    current = summary.model_copy(update={"published_at": access.published_at, "status": access.status})
    return json_response(current.model_dump_json().encode())


# --- appointments -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Book:
    """One plan's appointments in the list route's order (start, then id, as the database sorts
    them), each already serialised, with the fields the filters compare (index i everywhere)."""

    items: tuple[bytes, ...]  # each an AppointmentOut as JSON
    dates: tuple[dt.date, ...]  # the appointment's local date
    clinicians: tuple[frozenset[str], ...]
    rooms: tuple[str, ...]
    sites: tuple[str, ...]
    patients: tuple[str, ...]
    kinds: tuple[str, ...]
    # True when the dates never fall along that order (always, for plans the engine makes: a later
    # start is never an earlier day), so a date range is one slice found by bisection.
    dates_ordered: bool


_books: BoundedLru[str, Book] = BoundedLru(BOOK_KEEP_APPOINTMENTS, BOOK_KEEP_PLANS)


def _local(value: dt.datetime) -> dt.datetime:
    return value.astimezone(LONDON)


def _load_book(session: Session, plan_id: str) -> Book:
    rows = session.execute(
        select(AppointmentRecord.id, AppointmentRecord.patient_id, AppointmentRecord.visit_id,
               AppointmentRecord.kind, AppointmentRecord.date, AppointmentRecord.start, AppointmentRecord.end,
               AppointmentRecord.site_id, AppointmentRecord.room_id, AppointmentRecord.clinician_ids,
               AppointmentRecord.review_ids, AppointmentRecord.review_type_ids, AppointmentRecord.blood_marker_ids)
        .where(AppointmentRecord.plan_id == plan_id)
        .order_by(AppointmentRecord.start, AppointmentRecord.id)).all()
    items = tuple(AppointmentOut(
        id=r.id, patient_id=r.patient_id, visit_id=r.visit_id, kind=r.kind, date=r.date, start=_local(r.start),
        end=_local(r.end), site_id=r.site_id, room_id=r.room_id, clinician_ids=r.clinician_ids,
        review_ids=r.review_ids, review_type_ids=r.review_type_ids, blood_marker_ids=r.blood_marker_ids,
    ).model_dump_json().encode() for r in rows)
    dates = tuple(r.date for r in rows)
    return Book(
        items=items, dates=dates, clinicians=tuple(frozenset(r.clinician_ids) for r in rows),
        rooms=tuple(r.room_id for r in rows), sites=tuple(r.site_id for r in rows),
        patients=tuple(r.patient_id for r in rows), kinds=tuple(r.kind for r in rows),
        dates_ordered=all(a <= b for a, b in zip(dates, dates[1:], strict=False)),
    )


def plan_book(session: Session, plan_id: str) -> Book:
    """The plan's appointments, from the cache or read once from the database (blocks: call it
    from a thread). `plan_id` must already be checked to be the caller's and to exist."""
    book = _books.get(plan_id)
    if book is not None:
        return book
    # The session's connection is taken before the lock, never while holding it: requests waiting
    # for the lock may hold pooled connections, and a builder waiting for one of those would
    # wait for the pool's timeout.
    session.connection()
    with _build_lock:
        book = _books.get(plan_id)  # built meanwhile by the request holding the lock
        if book is None:
            book = _load_book(session, plan_id)
            _books.put(plan_id, book, max(1, len(book.items)))
    return book


def _book_in_new_session(request: Request, plan_id: str) -> Book:
    with services(request).factory() as session:
        return plan_book(session, plan_id)


@dataclass(frozen=True)
class AppointmentQuery:
    """The list's filters and page: every filter given must hold (None or an empty string is no
    filter, as in the query string); dates are local dates, both ends included."""

    date_from: dt.date | None = None
    date_to: dt.date | None = None
    clinician_id: str | None = None
    room_id: str | None = None
    site_id: str | None = None
    patient_id: str | None = None
    kind: str | None = None
    limit: int = 200
    offset: int = 0

    def check(self) -> None:
        """Raises ApiError 422 `invalid_request` (field `date_to`) when date_to is before date_from."""
        if self.date_from and self.date_to and self.date_to < self.date_from:
            raise ApiError(422, "invalid_request", "date_to is before date_from.", "date_to")


def page_json(book: Book, query: AppointmentQuery) -> bytes:
    """The JSON bytes of `AppointmentPage`: `{"total": number matching, "offset", "limit",
    "items": [AppointmentOut, ...]}`, items in time order (start, then id)."""
    lo, hi = 0, len(book.items)
    tests: list[Callable[[int], bool]] = []
    date_from, date_to, clinician_id = query.date_from, query.date_to, query.clinician_id
    if book.dates_ordered:
        if date_from:
            lo = bisect_left(book.dates, date_from)
        if date_to:
            hi = bisect_right(book.dates, date_to)
    else:
        if date_from:
            tests.append(lambda i: book.dates[i] >= date_from)
        if date_to:
            tests.append(lambda i: book.dates[i] <= date_to)
    if clinician_id:
        tests.append(lambda i: clinician_id in book.clinicians[i])
    for column, value in ((book.rooms, query.room_id), (book.sites, query.site_id),
                          (book.patients, query.patient_id), (book.kinds, query.kind)):
        if value:
            tests.append(lambda i, column=column, value=value: column[i] == value)
    matching = [i for i in range(lo, hi) if all(test(i) for test in tests)] if tests else range(lo, hi)
    page = matching[query.offset:query.offset + query.limit]
    return b'{"total":%d,"offset":%d,"limit":%d,"items":[%b]}' % (
        len(matching), query.offset, query.limit, b",".join(book.items[i] for i in page))


async def appointments_response(request: Request, access: PlanAccess, query: AppointmentQuery) -> Response:
    """The appointment list (`AppointmentPage` as JSON) of a plan found by `plan_access`, from the
    cache, or read once (in the thread pool) the first time. Raises ApiError 404 when the plan was
    not found, then 422 when date_to is before date_from."""
    plan_id = _found(access)
    query.check()
    book = _books.get(plan_id)
    if book is None:
        book = await run_in_threadpool(_book_in_new_session, request, plan_id)
    return json_response(page_json(book, query))


def appointments_json(session: Session, organisation_id: str, plan_id: str, *, date_from: dt.date | None = None,
                      date_to: dt.date | None = None, clinician_id: str | None = None, room_id: str | None = None,
                      site_id: str | None = None, patient_id: str | None = None, kind: str | None = None,
                      limit: int = 1000, offset: int = 0) -> bytes:
    """A plan's appointments for the appointment book (a day: date_from = date_to; a week: seven
    days), as the JSON bytes of `AppointmentPage`, the same bytes as
    GET /v1/plans/{plan_id}/appointments with those parameters:

        {"total": 57, "offset": 0, "limit": 1000, "items": [
          {"id", "patient_id", "visit_id", "kind": "blood_draw" | "review" | "joint_review",
           "date": "2027-05-04", "start": "2027-05-04T08:30:00+01:00" (London time, with its
           offset; "Z" in winter), "end", "site_id", "room_id", "clinician_ids": [...],
           "review_ids": [...], "review_type_ids": [...], "blood_marker_ids": [...]}, ...]}

    For a caller already signed in to `organisation_id` (an API key's or a web session's); call
    it from a sync route (it may read the database), and serve the bytes with `json_response`.
    Filters as in `AppointmentQuery`; `limit` is whatever the caller asks (the API caps it at
    1000; a day of a practice month is a few dozen to a few hundred appointments). Raises ApiError
    404 `not_found` for an unknown plan or another organisation's (the same answer for both), and
    422 when date_to is before date_from.
    """
    query = AppointmentQuery(date_from, date_to, clinician_id, room_id, site_id, patient_id, kind, limit, offset)
    record = plan_record(session, organisation_id, plan_id)
    query.check()
    return page_json(plan_book(session, record.id), query)


def clear_caches() -> None:
    """Forget every cached summary and appointment list (tests; a process never needs to)."""
    _summaries.clear()
    _books.clear()
