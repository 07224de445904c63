"""Stage 4, demand: the patients due, with their reviews, needs, travel, availability and
windows (drafts; `scheduler.generate.care` finishes them once rosters exist)."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

from scheduler import catalogue
from scheduler.domain import WEEKDAYS, Unavailability
from scheduler.generate.figures import (
    AGE_BANDS,
    AGE_WEIGHTS,
    AGE_WEIGHTS_DEPRIVED,
    DEPRIVED_UPLIFT,
    HUB,
    INTERIM_SHARE,
    INTERPRETER_LANGUAGES,
    OPT_OUT_SHARE,
    PracticeSpec,
    weighted,
)
from scheduler.generate.profile import Profile


@dataclass
class PatientDraft:
    """One patient while generating. ``reviews`` are review type ids in catalogue order;
    ``windows`` maps each to (first day, last day) due; ``reachable`` is (site id, travel
    minutes); ``work_weekdays``/``work_hours`` a weekly work pattern (relaxable); ``factor`` the
    extra-time factor (1, 1.25 or 1.5); ``priority`` 0-3; ``quintile`` the deprivation quintile
    (1-5, set last by `scheduler.generate.deprivation`; ``deprived`` means quintile 1)."""

    id: str
    home: str
    age: str
    deprived: bool
    reviews: list[str]
    windows: dict[str, tuple[dt.date, dt.date]] = field(default_factory=dict)
    reachable: list[tuple[str, int]] = field(default_factory=list)
    unavailable: list[Unavailability] = field(default_factory=list)
    work_weekdays: list[str] = field(default_factory=list)
    work_hours: tuple[dt.time, dt.time] | None = None
    interpreter: str | None = None
    wheelchair: bool = False
    carer: bool = False
    factor: float = 1.0
    opt_out: bool = False
    joint: bool = False
    priority: int = 0
    named: str | None = None
    wants_continuity: bool = True
    preferred_time: str = "any"
    quintile: int | None = None
    channels: list[str] = field(default_factory=lambda: ["calendar"])
    large_print: bool = False

    def all_unavailable(self) -> list[Unavailability]:
        out = list(self.unavailable)
        if self.work_weekdays and self.work_hours:
            out.insert(0, Unavailability(
                weekdays=list(self.work_weekdays), start=self.work_hours[0],
                end=self.work_hours[1], reason="work",
            ))
        return out


def draw_patients(profile: Profile, rng: random.Random) -> list[PatientDraft]:
    """``profile.counts`` patients per practice (ids P0001, ... in practice order), then
    `choose_opt_outs`."""
    patients: list[PatientDraft] = []
    for spec, count in zip(profile.practices, profile.counts):
        for _ in range(count):
            patients.append(draw_patient(profile, rng, spec, f"P{len(patients) + 1:04d}"))
    choose_opt_outs(patients, rng)
    return patients


def choose_opt_outs(patients: list[PatientDraft], rng: random.Random) -> None:
    """``OPT_OUT_SHARE`` of the patients (rounded) opt out of consolidation."""
    for p in rng.sample(patients, round(OPT_OUT_SHARE * len(patients))):
        p.opt_out = True


def draw_patient(profile: Profile, rng: random.Random, spec: PracticeSpec,
                 pid: str) -> PatientDraft:
    """One patient registered at ``spec``: deprivation quintile from the practice's shares (most
    deprived x DF "most-deprived fifth x1.2"), then age, conditions, needs, travel, availability
    and windows."""
    q_weights = [spec.deprivation[0] * DEPRIVED_UPLIFT, *spec.deprivation[1:]]
    deprived = weighted(rng, range(5), q_weights) == 0
    age = weighted(rng, AGE_BANDS, AGE_WEIGHTS_DEPRIVED if deprived else AGE_WEIGHTS)
    p = PatientDraft(pid, spec.site_id, age, deprived, [])
    p.reviews = _conditions(profile, rng, p.age)
    _needs(rng, p)
    _travel(profile, rng, p)
    _availability(profile, rng, p)
    _windows(profile, rng, p)
    return p


def _conditions(profile: Profile, rng: random.Random, age: str) -> list[str]:
    """Review type ids due, from DF clusters: 60+ cardiometabolic (diabetes, hypertension,
    CKD); 85+ CHD+HF+AF (with COPD: cardiorespiratory); <65 depression/anxiety, asthma; SMI and
    LD registers; frailty in the old; SMR driven by polypharmacy. ``INTERIM_SHARE`` are due only
    their 6-/3-monthly reviews (DF cadences). Rates are *Assumptions*."""
    ai = AGE_BANDS.index(age)
    cluster = weighted(rng, ("cardiometabolic", "cardiorespiratory", "respiratory", "mental"),
                       ((.30, .05, .30, .35), (.50, .10, .20, .20),
                        (.55, .28, .10, .07), (.42, .48, .05, .05))[ai])
    c: set[str] = set()

    def maybe(cond: str, prob: float) -> None:
        if rng.random() < prob:
            c.add(cond)

    if cluster == "cardiometabolic":
        maybe("hypertension", .85)
        maybe("diabetes", .65)
        maybe("ckd", (.15, .3, .5, .65)[ai])
        maybe("heart_failure", (.01, .04, .08, .15)[ai])
        maybe("af", (.01, .04, .10, .18)[ai])
    elif cluster == "cardiorespiratory":
        core = ["copd", "heart_failure", "af"]
        for cond in rng.sample(core, 2):
            c.add(cond)
        maybe([x for x in core if x not in c][0], .35)
        maybe("hypertension", .6)
        maybe("ckd", (.1, .2, .35, .45)[ai])
        maybe("diabetes", .25)
    elif cluster == "respiratory":
        c.add("asthma" if rng.random() < (.85, .7, .35, .25)[ai] else "copd")
        maybe("mental_health_review", .35)
        maybe("hypertension", (.2, .4, .55, .6)[ai])
        maybe("diabetes", .15)
    else:  # mental health alongside physical LTCs (DF: 50-59 hypertension+depression)
        if rng.random() < .25:
            c.add("smi_physical_health")
        else:
            c.add("mental_health_review")
        maybe("hypertension", (.3, .5, .6, .6)[ai])
        maybe("diabetes", .35 if "smi_physical_health" in c else .2)
        maybe("asthma", .2)
    # background multimorbidity
    maybe("hypertension", .3)
    maybe("mental_health_review", .12 if "smi_physical_health" not in c else 0)
    maybe("ckd", .07)
    maybe("asthma", .04)
    maybe("copd", (.0, .04, .06, .06)[ai])
    maybe("af", (.0, .02, .05, .08)[ai])
    maybe("diabetes", .08)
    if rng.random() < (.05, .02, .01, .003)[ai]:
        c.add("learning_disability_health_check")
    ltcs = [x for x in sorted(c) if x not in ("smr", "frailty")]
    while len([x for x in ltcs if x != "learning_disability_health_check"]) < 2:
        extra = weighted(rng, ("hypertension", "mental_health_review", "asthma", "diabetes"),
                         (.5, .2, .15, .15))
        if extra not in c:
            c.add(extra)
            ltcs.append(extra)
    if rng.random() < (.0, .0, .15, .55)[ai]:
        c.add("frailty")
    n_ltc = len(ltcs)
    p_smr = {2: .25, 3: .45}.get(n_ltc, .65) + (.2 if "frailty" in c else 0)
    maybe("smr", p_smr)

    # Interim recall (DF cadences): only the 6-/3-monthly reviews fall due this month.
    if rng.random() < INTERIM_SHARE:
        due = [x for x in ("diabetes", "heart_failure", "af") if x in c]
        if "copd" in c and rng.random() < .15:  # very severe COPD
            due.append("copd")
        if "ckd" in c and rng.random() < .25:  # high-risk CKD
            due.append("ckd")
        if due:
            c = set(due)

    if profile.kind == "pcn":
        spec_probs = [
            ("cardiology_review", .06 if "heart_failure" in c else .02 if "af" in c else 0),
            ("renal_review", .06 if "ckd" in c else 0),
            ("respiratory_review", .05 if "copd" in c else .01 if "asthma" in c else 0),
            ("diabetes_consultant_review", .05 if "diabetes" in c else 0),
            ("elderly_care_review", .08 if "frailty" in c else 0),
        ]
        for tid, prob in spec_probs:
            maybe(tid, prob)
    return [t.id for t in profile.types if t.id in c]


def _needs(rng: random.Random, p: PatientDraft) -> None:
    """Extra time (LD x1.5; frailty x1.25-1.5; half of SMRs x1.25: "about 15 meds ... 20
    minutes", 004), carers, wheelchairs and interpreters (*Assumptions*)."""
    r = set(p.reviews)
    old, very_old = p.age in ("65-79", "80+"), p.age == "80+"
    if "learning_disability_health_check" in r:
        p.factor = 1.5
        p.carer = rng.random() < .85
    elif "frailty" in r:
        p.factor = 1.25 if rng.random() < .55 else 1.5
        p.carer = rng.random() < .4
        p.wheelchair = rng.random() < .25
    elif "smr" in r and rng.random() < .5:
        p.factor = 1.25
    if not p.wheelchair:
        p.wheelchair = rng.random() < (.06 if very_old else .03 if old else .015)
    if not p.carer:
        p.carer = rng.random() < (.12 if very_old else .2 if "smi_physical_health" in r
                                  else .02)
    if rng.random() < (.10 if p.deprived else .05):
        p.interpreter = weighted(rng, [lang for lang, _ in INTERPRETER_LANGUAGES],
                                 [w for _, w in INTERPRETER_LANGUAGES])


def _travel(profile: Profile, rng: random.Random, p: PatientDraft) -> None:
    """Door-to-door minutes: DF defaults "Travel, door to door: GP 10 min"; brief: 5-20 min to
    the practice and 15-30 min to the hub."""
    own = int(round(rng.triangular(5, 20, 10)))
    if p.deprived and rng.random() < .4:  # no car: bus
        own = min(20, own + 5)
    p.reachable = [(p.home, own)]
    if profile.kind == "pcn":
        p.reachable.append((HUB.site_id, int(round(rng.triangular(15, 30, 20)))))


def _availability(profile: Profile, rng: random.Random, p: PatientDraft) -> None:
    """Work patterns, caring, dialysis, one-off commitments and time-of-day preferences
    (*Assumptions*)."""
    r = set(p.reviews)
    working_age = p.age in ("18-49", "50-64")
    p_work = {"18-49": .65, "50-64": .55}.get(p.age, 0.0)
    if r & {"learning_disability_health_check", "smi_physical_health"}:
        p_work *= .4
    if working_age and rng.random() < p_work:
        if rng.random() < .35:  # full time: early-morning or late-afternoon visits only
            p.work_weekdays = list(WEEKDAYS[:5])
            p.work_hours = (dt.time(9, 0), dt.time(17, 0))
        else:  # part time: whole days
            p.work_weekdays = sorted(rng.sample(WEEKDAYS[:5], rng.choice([2, 3, 3])),
                                     key=WEEKDAYS.index)
            p.work_hours = (dt.time(8, 0), dt.time(18, 30))
    if rng.random() < .05:
        p.unavailable.append(Unavailability(weekdays=list(WEEKDAYS[:5]), start=dt.time(15, 0),
                                            end=dt.time(16, 0), reason="caring"))
    if "ckd" in r and rng.random() < .04:
        days = ["mon", "wed", "fri"] if rng.random() < .5 else ["tue", "thu", "sat"]
        p.unavailable.append(Unavailability(weekdays=days, start=dt.time(7, 0),
                                            end=dt.time(14, 0), reason="dialysis"))
    if rng.random() < .08:
        reason = rng.choice(["hospital appointment", "away"])
        for d in sorted(rng.sample(profile.calendar.dates, rng.choice([1, 2, 3]))):
            p.unavailable.append(Unavailability(date=d, reason=reason))
    if p.age == "80+" and rng.random() < .35:
        p.preferred_time = "morning"
    elif not p.work_weekdays:
        x = rng.random()
        p.preferred_time = "morning" if x < .12 else "afternoon" if x < .2 else "any"


def _windows(profile: Profile, rng: random.Random, p: PatientDraft) -> None:
    """Mostly the whole period; ~20% of recalls narrower (2-3 weeks), ~5% of reviews on their
    own narrower window (e.g. an AF 3-monthly review falling due); consultant reviews always the
    whole period."""
    cal, weeks, tmap = profile.calendar, profile.weeks, profile.tmap
    span = (cal.end - cal.start).days + 1
    whole = (cal.start, cal.end)
    base = whole
    if weeks >= 3 and rng.random() < .2:
        length = rng.choice([d for d in (14, 21) if d < span])
        offset = 7 * rng.randrange((span - length) // 7 + 1)
        base = (cal.start + dt.timedelta(days=offset),
                cal.start + dt.timedelta(days=offset + length - 1))
    for t in p.reviews:
        w = base
        if t in tmap and catalogue.usual_role(tmap[t]).startswith("consultant"):
            w = whole
        elif weeks >= 3 and rng.random() < .05:
            offset = 7 * rng.randrange((span - 14) // 7 + 1)
            w = (cal.start + dt.timedelta(days=offset),
                 cal.start + dt.timedelta(days=offset + 13))
        p.windows[t] = w
