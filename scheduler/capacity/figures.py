"""The figures of one capacity-study variant, and a variant compared with the base.

Every figure is computed here from the scenario and the plan document alone (never from the
solver or the planner's own metrics), so a study's figures are checked arithmetic on checked
plans. Definitions follow `Metrics` (scheduler/plan.py, docs/plan-format.md "Metrics" and
"Checker notes") where a figure of the same name exists there; the rest are defined on the
model's field descriptions below.

Units: counts are whole numbers; `*_share` and `utilisation_*` are fractions (0-1, not
percent); `*_minutes_*` are minutes; `gap` is a fraction; `objective` is the plan's objective
(docs/optimiser.md).

A variant is compared with the base ON THE SAME PATIENTS (`compare_to_base`): comparing each
run with its own old-way baseline misled (closing a site raised patient hours while "hours saved
against the old way" rose).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import get_args
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from scheduler.domain import WEEKDAYS, Room, RosterSession, Scenario
from scheduler.plan import Plan, UnbookedReason
from scheduler.timegrid import (
    TIMEZONE,
    dates_between,
    is_bank_holiday,
    is_working_day,
    minute_of_day,
)

_LONDON = ZoneInfo(TIMEZONE)

UNBOOKED_REASONS: tuple[str, ...] = get_args(UnbookedReason)
"""Every reason a review can be unbooked (scheduler.plan.UnbookedReason), in declared order."""
QUINTILES: tuple[str, ...] = ("1", "2", "3", "4", "5", "unknown")
"""Keys of the by-quintile figures: IMD quintile 1 (most deprived) to 5, and "unknown"."""
HEATMAP_WEEKDAYS: tuple[str, ...] = WEEKDAYS[:5]
"""mon..fri: the columns of `utilisation_by_site_weekday`."""
PLAIN = "plain"
"""The capability key under which rooms with no capabilities are counted."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VariantFigures(_Model):
    """The figures of one solved variant (or the base), from its scenario and plan."""

    patients: int = Field(description="Patients in the scenario (Metrics.patients).")
    patients_fully_booked: int = Field(
        description="Patients with nothing in the plan's `unbooked` (Metrics.patients_fully_booked).")
    reviews: int = Field(description="Due reviews in the scenario (Metrics.reviews).")
    reviews_booked: int = Field(
        description="Distinct due reviews in a review or joint_review appointment (Metrics.reviews_booked, "
        "docs/plan-format.md Checker notes).")
    one_visit_share: float = Field(
        description="Fraction 0-1: Metrics.single_visit_share. Among all consolidating patients (not opted "
        "out; 0 when none), those fully booked whose review/joint-review appointments all carry one visit "
        "id (a separate blood-draw trip allowed).")
    one_trip_share: float = Field(
        description="Fraction 0-1: Metrics.one_trip_share. Among all consolidating patients (0 when none), "
        "those fully booked named by exactly one visit (draw trips counted).")
    visits_per_patient: float = Field(
        description="Visits (trips) per patient with at least one visit, 0 when none (Metrics.visits_per_patient).")
    blood_draws: int = Field(description="blood_draw appointments (Metrics.blood_draws).")
    unbooked_by_reason: dict[str, int] = Field(
        description="Unbooked reviews by reason; every scheduler.plan.UnbookedReason is a key (0 when none).")
    utilisation_by_role: dict[str, float] = Field(
        description="Fraction, per role of a clinician in the scenario: booked clinician minutes (each "
        "appointment's end - start, once per clinician of that role in it, joint reviews included) / "
        "minutes (end - start as listed) of that role's valid roster sessions (docs/plan-format.md "
        "'valid session'); 0 when the role has none.")
    utilisation_by_room_capability: dict[str, float] = Field(
        description="Fraction, per room capability (\"plain\" for rooms with none): booked room minutes / open "
        "room minutes of the rooms having it, a room counting under each of its capabilities. Open room "
        "minutes: per room and counted day, the site's opens-closes less any closure of the room or its "
        "site; counted days are the horizon's working days plus any other day of the horizon with a "
        "valid session at the site (a Saturday clinic, a flagged bank holiday). 0 when nothing is open.")
    utilisation_by_site: dict[str, float] = Field(
        description="Fraction, per site: booked room minutes / open room minutes of its rooms (as above).")
    utilisation_by_site_weekday: dict[str, dict[str, float]] = Field(
        description="Fraction, site -> mon..fri -> booked room minutes / open room minutes of its rooms on "
        "the counted days of that weekday (a heat map; 0 when none open).")
    travel_minutes_by_quintile: dict[str, float] = Field(
        description="Minutes, keys 1..5 and unknown (Patient.deprivation_quintile): mean over the "
        "quintile's patients with at least one visit of Σ over their visits of 2 x travel_minutes to the "
        "visit's site (0 for a site not in reachable_sites, as Metrics.patient_hours); 0 when none.")
    clinic_minutes_by_quintile: dict[str, float] = Field(
        description="Minutes, keys 1..5 and unknown: mean over the quintile's patients with at least one "
        "visit of Σ over their visits of visit end - start (waiting between steps included); 0 when none.")
    patients_by_quintile: dict[str, int] = Field(
        description="Patients in the scenario, keys 1..5 and unknown.")
    fully_booked_share_by_quintile: dict[str, float] = Field(
        description="Fraction, keys 1..5 and unknown: patients fully booked / patients of the quintile "
        "(0 when the quintile has none).")
    gap: float = Field(description="Fraction: plan.solver.gap, (objective - best_bound) / objective.")
    objective: int = Field(description="plan.solver.objective (docs/optimiser.md).")
    travel_minutes_by_patient: dict[str, int] = Field(
        default_factory=dict, repr=False,
        description="Minutes, per patient id with at least one visit: Σ over their visits of 2 x "
        "travel_minutes. Not a report figure: kept so that compare_to_base can compare travel on the same "
        "patients (the plan alone does not hold travel times); figures_table leaves it out.")


SCALAR_FIGURES: tuple[str, ...] = (
    "patients", "patients_fully_booked", "reviews", "reviews_booked", "one_visit_share",
    "one_trip_share", "visits_per_patient", "blood_draws", "gap", "objective",
)
"""The scalar fields of VariantFigures, in model order (each has a `<name>_change` in
VariantComparison)."""
_NOT_IN_TABLE = frozenset({"travel_minutes_by_patient"})


class VariantComparison(_Model):
    """A variant against the base: every scalar figure's change (variant - base, in the figure's
    own unit), and what happened to the patients present in both scenarios."""

    patients_change: int
    patients_fully_booked_change: int
    reviews_change: int
    reviews_booked_change: int
    one_visit_share_change: float = Field(description="Fraction points (0-1 scale).")
    one_trip_share_change: float = Field(description="Fraction points (0-1 scale).")
    visits_per_patient_change: float
    blood_draws_change: int
    gap_change: float
    objective_change: int
    unbooked_by_reason_change: dict[str, int] = Field(
        description="Per UnbookedReason (every reason a key): variant count - base count.")
    same_patients: int = Field(
        description="Patient ids present in both plans (every patient of a checked plan appears in an "
        "appointment or in `unbooked`, so these are the ids present in both scenarios).")
    patients_gained_full_booking: int = Field(
        description="Same patients fully booked in the variant but not in the base.")
    patients_lost_full_booking: int = Field(
        description="Same patients fully booked in the base but not in the variant.")
    patients_moved_to_one_visit: int = Field(
        description="Same patients whose review appointments spanned two or more visits in the base and who "
        "are fully booked with every review appointment in one visit in the variant (the one_visit_share "
        "sense: a draw trip allowed).")
    patients_moved_to_several_visits: int = Field(
        description="The reverse: all reviews in one visit and fully booked in the base, review appointments "
        "in two or more visits in the variant.")
    patients_with_visits_in_both: int = Field(
        description="Same patients with at least one visit in each plan: the patients travel is compared on.")
    travel_minutes_mean_change: float = Field(
        description="Minutes: mean over patients_with_visits_in_both of (variant - base) travel minutes "
        "(Σ over visits of 2 x travel_minutes); 0 when there are none.")


# --------------------------------------------------------------------------------------------
# Figures of one plan


def _local(value: dt.datetime) -> dt.datetime:
    """London wall-clock time, naive."""
    if value.tzinfo is None:
        return value
    return value.astimezone(_LONDON).replace(tzinfo=None)


def _minutes(start: dt.datetime, end: dt.datetime) -> float:
    return (end - start).total_seconds() / 60


def _valid_sessions(scenario: Scenario) -> list[RosterSession]:
    """docs/plan-format.md: inside the horizon, not on leave, and not an England bank holiday
    unless flagged `on_bank_holiday` (weekend days that are not bank holidays are valid)."""
    on_leave = {
        (leave.clinician_id, day)
        for leave in scenario.leave
        for day in dates_between(leave.start_date, leave.end_date)
    }
    return [
        x for x in scenario.sessions
        if scenario.horizon_start <= x.date <= scenario.horizon_end
        and (x.clinician_id, x.date) not in on_leave
        and (x.on_bank_holiday or not is_bank_holiday(x.date))
    ]


def _merged_overlap(start: dt.datetime, end: dt.datetime, spans: list[tuple[dt.datetime, dt.datetime]]) -> float:
    """Minutes of [start, end) covered by the union of the half-open spans."""
    clipped = sorted((max(s, start), min(e, end)) for s, e in spans if s < end and e > start)
    covered = 0.0
    reach = start
    for s, e in clipped:
        if e <= reach:
            continue
        covered += _minutes(max(s, reach), e)
        reach = e
    return covered


def _open_room_minutes(scenario: Scenario, sessions: list[RosterSession]) -> dict[tuple[str, dt.date], float]:
    """(room id, date) -> open minutes: the site's opens-closes less closures of the room or its
    site, on the horizon's working days and on other horizon days with a valid session at the site."""
    sites = {x.id: x for x in scenario.sites}
    session_days: dict[str, set[dt.date]] = defaultdict(set)
    for x in sessions:
        session_days[x.site_id].add(x.date)
    horizon = dates_between(scenario.horizon_start, scenario.horizon_end)
    closures: dict[str, list[tuple[dt.datetime, dt.datetime]]] = defaultdict(list)
    for c in scenario.closures:
        for room in scenario.rooms:
            if room.id == c.room_id or room.site_id == c.site_id:
                closures[room.id].append((c.start, c.end))
    out: dict[tuple[str, dt.date], float] = {}
    for room in scenario.rooms:
        site = sites.get(room.site_id)
        if site is None:
            continue
        for day in horizon:
            if not (is_working_day(day) or day in session_days[room.site_id]):
                continue
            opens = dt.datetime.combine(day, site.opens)
            closes = dt.datetime.combine(day, site.closes)
            if closes <= opens:
                continue
            out[(room.id, day)] = _minutes(opens, closes) - _merged_overlap(opens, closes, closures[room.id])
    return out


def _capabilities(room: Room) -> list[str]:
    return list(dict.fromkeys(room.capabilities)) or [PLAIN]


def _share(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def _quintile(value: int | None) -> str:
    return str(value) if value is not None else "unknown"


def figures_of(scenario: Scenario, plan: Plan) -> VariantFigures:
    """The figures of `plan` for `scenario` (see VariantFigures for each definition and unit).

    Reads only the scenario and the plan document; the plan is expected to have passed
    `scheduler.check.check_plan` (an appointment in an unknown room or of an unknown clinician
    is left out of the utilisation figures rather than raising)."""
    patients = scenario.patients
    unbooked_patients = {u.patient_id for u in plan.unbooked}
    review_ids = {p.review_id(d) for p in patients for d in p.due_reviews}
    reviews_booked = {
        rid for a in plan.appointments if a.kind in ("review", "joint_review") for rid in a.review_ids
    } & review_ids

    review_visits: dict[str, set[str]] = defaultdict(set)
    for a in plan.appointments:
        if a.kind in ("review", "joint_review") and a.review_ids:
            review_visits[a.patient_id].add(a.visit_id)
    visits_of: dict[str, int] = defaultdict(int)
    for v in plan.visits:
        visits_of[v.patient_id] += 1
    consolidating = [p for p in patients if not p.opt_out_consolidation]
    fully = [p for p in consolidating if p.id not in unbooked_patients]
    one_visit = sum(1 for p in fully if len(review_visits[p.id]) == 1)
    one_trip = sum(1 for p in fully if visits_of[p.id] == 1)

    unbooked_by_reason = dict.fromkeys(UNBOOKED_REASONS, 0)
    for u in plan.unbooked:
        unbooked_by_reason[u.reason] = unbooked_by_reason.get(u.reason, 0) + 1

    # --- clinicians: booked minutes / valid session minutes, per role
    roles = {c.id: c.role for c in scenario.clinicians}
    role_booked: dict[str, float] = dict.fromkeys(dict.fromkeys(roles.values()), 0.0)
    role_rostered: dict[str, float] = dict.fromkeys(role_booked, 0.0)
    sessions = _valid_sessions(scenario)
    for x in sessions:
        if x.clinician_id in roles:
            role_rostered[roles[x.clinician_id]] += minute_of_day(x.end) - minute_of_day(x.start)
    for a in plan.appointments:
        for cid in dict.fromkeys(a.clinician_ids):
            if cid in roles:
                role_booked[roles[cid]] += _minutes(a.start, a.end)

    # --- rooms: booked minutes / open minutes, per capability, site, site and weekday
    rooms = {r.id: r for r in scenario.rooms}
    open_minutes = _open_room_minutes(scenario, sessions)
    booked_minutes: dict[tuple[str, dt.date], float] = defaultdict(float)
    for a in plan.appointments:
        if a.room_id in rooms:
            booked_minutes[(a.room_id, _local(a.start).date())] += _minutes(a.start, a.end)
    capabilities = list(dict.fromkeys(c for r in scenario.rooms for c in _capabilities(r)))
    sites = [s.id for s in scenario.sites]
    cap_open = dict.fromkeys(capabilities, 0.0)
    cap_booked = dict.fromkeys(capabilities, 0.0)
    site_open = dict.fromkeys(sites, 0.0)
    site_booked = dict.fromkeys(sites, 0.0)
    cell_open = {s: dict.fromkeys(HEATMAP_WEEKDAYS, 0.0) for s in sites}
    cell_booked = {s: dict.fromkeys(HEATMAP_WEEKDAYS, 0.0) for s in sites}
    for source, totals in ((open_minutes, (cap_open, site_open, cell_open)),
                           (booked_minutes, (cap_booked, site_booked, cell_booked))):
        by_cap, by_site, by_cell = totals
        for (room_id, day), minutes in source.items():
            room = rooms[room_id]
            for cap in _capabilities(room):
                by_cap[cap] += minutes
            if room.site_id in by_site:
                by_site[room.site_id] += minutes
                weekday = WEEKDAYS[day.weekday()]
                if weekday in HEATMAP_WEEKDAYS:
                    by_cell[room.site_id][weekday] += minutes

    # --- patients by deprivation quintile
    quintile_of = {p.id: _quintile(p.deprivation_quintile) for p in patients}
    travel_to = {(p.id, r.site_id): r.travel_minutes for p in patients for r in p.reachable_sites}
    travel: dict[str, int] = defaultdict(int)
    clinic: dict[str, float] = defaultdict(float)
    for v in plan.visits:
        if v.patient_id not in quintile_of:
            continue
        travel[v.patient_id] += 2 * travel_to.get((v.patient_id, v.site_id), 0)
        clinic[v.patient_id] += _minutes(v.start, v.end)
    count = dict.fromkeys(QUINTILES, 0)
    booked = dict.fromkeys(QUINTILES, 0)
    with_visit = dict.fromkeys(QUINTILES, 0)
    travel_sum = dict.fromkeys(QUINTILES, 0.0)
    clinic_sum = dict.fromkeys(QUINTILES, 0.0)
    for p in patients:
        q = quintile_of[p.id]
        count[q] += 1
        booked[q] += p.id not in unbooked_patients
        if p.id in travel:
            with_visit[q] += 1
            travel_sum[q] += travel[p.id]
            clinic_sum[q] += clinic[p.id]

    with_any_visit = len({v.patient_id for v in plan.visits})
    return VariantFigures(
        patients=len(patients),
        patients_fully_booked=sum(1 for p in patients if p.id not in unbooked_patients),
        reviews=len(review_ids),
        reviews_booked=len(reviews_booked),
        one_visit_share=_share(one_visit, len(consolidating)),
        one_trip_share=_share(one_trip, len(consolidating)),
        visits_per_patient=_share(len(plan.visits), with_any_visit),
        blood_draws=sum(1 for a in plan.appointments if a.kind == "blood_draw"),
        unbooked_by_reason=unbooked_by_reason,
        utilisation_by_role={r: _share(role_booked[r], role_rostered[r]) for r in role_booked},
        utilisation_by_room_capability={c: _share(cap_booked[c], cap_open[c]) for c in capabilities},
        utilisation_by_site={s: _share(site_booked[s], site_open[s]) for s in sites},
        utilisation_by_site_weekday={
            s: {d: _share(cell_booked[s][d], cell_open[s][d]) for d in HEATMAP_WEEKDAYS} for s in sites
        },
        travel_minutes_by_quintile={q: _share(travel_sum[q], with_visit[q]) for q in QUINTILES},
        clinic_minutes_by_quintile={q: _share(clinic_sum[q], with_visit[q]) for q in QUINTILES},
        patients_by_quintile=count,
        fully_booked_share_by_quintile={q: _share(booked[q], count[q]) for q in QUINTILES},
        gap=plan.solver.gap,
        objective=plan.solver.objective,
        travel_minutes_by_patient=dict(travel),
    )


# --------------------------------------------------------------------------------------------
# A variant against the base


class _PatientsOfPlan:
    """Per patient, from the plan document alone: present, fully booked, review visits."""

    def __init__(self, plan: Plan) -> None:
        self.unbooked = {u.patient_id for u in plan.unbooked}
        self.ids = {a.patient_id for a in plan.appointments} | self.unbooked
        self.review_visits: dict[str, set[str]] = defaultdict(set)
        for a in plan.appointments:
            if a.kind in ("review", "joint_review") and a.review_ids:
                self.review_visits[a.patient_id].add(a.visit_id)
        self.with_visit = {v.patient_id for v in plan.visits}

    def fully_booked(self, pid: str) -> bool:
        return pid in self.ids and pid not in self.unbooked

    def one_visit(self, pid: str) -> bool:
        return self.fully_booked(pid) and len(self.review_visits[pid]) == 1

    def several_visits(self, pid: str) -> bool:
        return len(self.review_visits[pid]) >= 2


def compare_to_base(
    base: VariantFigures, base_plan: Plan, variant: VariantFigures, variant_plan: Plan
) -> VariantComparison:
    """The variant against the base: `<figure>_change` = variant - base for every scalar figure,
    and, on the patients present in both plans, who gained or lost full booking, who moved
    between several visits and one, and the mean change in their travel minutes.

    `base` and `variant` are `figures_of` the two plans (their `travel_minutes_by_patient` gives
    travel, which the plan document does not hold)."""
    changes = {f"{name}_change": getattr(variant, name) - getattr(base, name) for name in SCALAR_FIGURES}
    reasons = list(dict.fromkeys([*UNBOOKED_REASONS, *base.unbooked_by_reason, *variant.unbooked_by_reason]))
    before, after = _PatientsOfPlan(base_plan), _PatientsOfPlan(variant_plan)
    same = before.ids & after.ids
    travelled = sorted(pid for pid in same if pid in before.with_visit and pid in after.with_visit)
    travel_change = sum(
        variant.travel_minutes_by_patient.get(pid, 0) - base.travel_minutes_by_patient.get(pid, 0)
        for pid in travelled
    )
    return VariantComparison(
        **changes,
        unbooked_by_reason_change={
            r: variant.unbooked_by_reason.get(r, 0) - base.unbooked_by_reason.get(r, 0) for r in reasons
        },
        same_patients=len(same),
        patients_gained_full_booking=sum(1 for p in same if after.fully_booked(p) and not before.fully_booked(p)),
        patients_lost_full_booking=sum(1 for p in same if before.fully_booked(p) and not after.fully_booked(p)),
        patients_moved_to_one_visit=sum(1 for p in same if before.several_visits(p) and after.one_visit(p)),
        patients_moved_to_several_visits=sum(1 for p in same if before.one_visit(p) and after.several_visits(p)),
        patients_with_visits_in_both=len(travelled),
        travel_minutes_mean_change=_share(travel_change, len(travelled)),
    )


# --------------------------------------------------------------------------------------------
# A flat table for CSV


def _flatten(prefix: str, value: object, row: dict) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}", inner, row)
    else:
        row[prefix] = value


def figures_table(rows: list[tuple[str, VariantFigures]]) -> list[dict]:
    """One flat dict per (variant name, figures), for csv.DictWriter: a `variant` column, then
    one column per scalar figure and one per entry of each dict figure, named by its path
    (`utilisation_by_role.gp`, `utilisation_by_site_weekday.hub.mon`), in model order.
    `travel_minutes_by_patient` is left out. Every row has the same columns, in the same order
    (the union over rows); a column a variant lacks (a site another variant opens) is None."""
    fields = [f for f in VariantFigures.model_fields if f not in _NOT_IN_TABLE]
    by_field: list[list[dict]] = []  # per row, per field: that field's flat columns
    for _, figures in rows:
        parts = []
        for field in fields:
            part: dict = {}
            _flatten(field, getattr(figures, field), part)
            parts.append(part)
        by_field.append(parts)
    columns = ["variant"] + [
        column for i in range(len(fields)) for column in dict.fromkeys(c for parts in by_field for c in parts[i])
    ]
    table = []
    for (name, _), parts in zip(rows, by_field, strict=True):
        values = {"variant": name}
        for part in parts:
            values.update(part)
        table.append({column: values.get(column) for column in columns})
    return table
