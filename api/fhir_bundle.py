"""A plan as a FHIR R4 Bundle: Schedule, Slot and Appointment resources (docs/fhir.md).

`plan_bundle(scenario, plan, references)` returns a Bundle of type `collection`, built and
validated through `fhir.resources`' R4B models (R4B's Schedule, Slot, Appointment, Practitioner,
Location, Patient and Bundle are R4's; the package's default models are R5, which changed
Appointment). `bundle_json` is the same Bundle as the bytes every output writes, so the service
and the command line give byte-identical files for the same plan.

Shapes and where each value comes from (FHIR field: source):

* **Bundle**: `type` "collection"; `id` a UUID derived from the stored plan id (from a digest of
  the plan for a plan never stored); `identifier` the stored plan id (system PLAN_SYSTEM), when
  stored. No `timestamp` or `meta.lastUpdated`, so the same plan gives the same bytes.
* Every entry: `fullUrl` "urn:uuid:<id>", `resource.id` the same UUID, and every reference
  "urn:uuid:<id>" of an entry in the bundle. The UUIDs are version 5 (SHA-1 based), derived from
  the scenario (its stored id, else its name), the resource type and OneVisit ids, so they are
  the same in every export: an appointment kept by a re-plan keeps its Appointment id. OneVisit
  ids (which may hold "_", not allowed in a FHIR id) travel as identifiers.
* **Patient** (one per patient with an appointment): `identifier` the scenario's pseudonymous
  patient id (PATIENT_SYSTEM) and nothing else: no name, NHS number, birth date or address. A
  patient id that is an NHS number (allowed only by `privacy.allow_nhs_number_ids`) is left out:
  that Patient has no identifier and an id derived from its position in the bundle.
* **Practitioner** (one per clinician in an appointment; profile UKCore-Practitioner):
  `identifier` the clinician id; `name.text` the clinician's name (staff data) when given;
  `active` true. No role: a specialty can say what the patient has.
* **Location**: one per site (`physicalType` si: `name`, `address` from the site's address, one
  `line` per line, `position` from its coordinates) and one per room (`physicalType` ro: `name`
  the room's name or id, `partOf` its site); `identifier` the site or room id; `status` active,
  `mode` instance.
* **Schedule** (one per clinician; profile UKCore-Schedule): `identifier` the clinician id
  (SCHEDULE_SYSTEM; exactly one, as UK Core requires), `actor` their Practitioner,
  `planningHorizon` the scenario's horizon dates, `active` true.
* **Slot** (one per clinician per appointment; profile UKCore-Slot): `schedule` the clinician's
  Schedule, `status` busy, `start`/`end` the appointment's, `identifier` "<appointment id>/<clinician id>".
* **Appointment** (one per plan appointment: blood draw, review or joint review; profile
  UKCore-Appointment): `status` booked; `start`/`end` the plan's instants (FHIR instants with
  their Europe/London offset, +00:00 or +01:00); `minutesDuration` end − start;
  `slot` its Slots; `participant` the Patient, each Practitioner in the plan's order and the
  room's Location, each `required` "required" and `status` "accepted"; `appointmentType`
  ROUTINE from HL7 v2 table 0276 (within UK Core's UKCore-AppointmentReasonCode);
  `identifier`: the appointment id (APPOINTMENT_SYSTEM, use official), the visit id
  (VISIT_SYSTEM, use secondary: every appointment of one consolidated visit carries it, which is
  how the visit is grouped) and, once the plan has been published, the visit's booking
  reference (REFERENCE_SYSTEM, use usual; `references` maps visit id -> reference).
  `description` and `serviceType` say what it is (see `describe`): a blood test never names its
  tests; a review names its review types only when no review of the visit is of a `sensitive`
  type and the visit's draw is not for one (the rule of `api.calendar.is_sensitive_visit`);
  otherwise the wording is neutral and there is no `serviceType`.

Text never carries a patient's condition unless the review type is not sensitive; the words are
those of the calendars (`api.calendar.wording`, a pure module: no web or database code).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any

from fhir.resources.R4B.bundle import Bundle

from api.calendar import is_sensitive_visit, wording
from scheduler.domain import Scenario
from scheduler.plan import Appointment, Plan
from scheduler.privacy import nhs_number_in

PROFILE_BASE = "https://fhir.hl7.org.uk/StructureDefinition/"
APPOINTMENT_PROFILE = PROFILE_BASE + "UKCore-Appointment"
SLOT_PROFILE = PROFILE_BASE + "UKCore-Slot"
SCHEDULE_PROFILE = PROFILE_BASE + "UKCore-Schedule"
PRACTITIONER_PROFILE = PROFILE_BASE + "UKCore-Practitioner"

# Local identifier namespaces: OneVisit's own ids, not national ones.
PLAN_SYSTEM = "urn:onevisit:plan"
PATIENT_SYSTEM = "urn:onevisit:patient"
CLINICIAN_SYSTEM = "urn:onevisit:clinician"
SCHEDULE_SYSTEM = "urn:onevisit:clinician-schedule"
SITE_SYSTEM = "urn:onevisit:site"
ROOM_SYSTEM = "urn:onevisit:room"
SLOT_SYSTEM = "urn:onevisit:slot"
APPOINTMENT_SYSTEM = "urn:onevisit:appointment"
VISIT_SYSTEM = "urn:onevisit:visit"
REFERENCE_SYSTEM = "urn:onevisit:booking-reference"
REVIEW_TYPE_SYSTEM = "urn:onevisit:review-type"

APPOINTMENT_TYPE = {"coding": [{
    "system": "http://terminology.hl7.org/CodeSystem/v2-0276", "code": "ROUTINE",
    "display": "Routine appointment - default if not valued"}]}
PHYSICAL_TYPE = "http://terminology.hl7.org/CodeSystem/location-physical-type"
SITE_TYPE = {"coding": [{"system": PHYSICAL_TYPE, "code": "si", "display": "Site"}]}
ROOM_TYPE = {"coding": [{"system": PHYSICAL_TYPE, "code": "ro", "display": "Room"}]}
NEUTRAL_REVIEW = "Long-term condition"  # + " review" / " joint review", for a sensitive visit
_ROOT = uuid.uuid5(uuid.NAMESPACE_URL, "urn:onevisit:fhir")


def describe(appointment: Appointment, names: Mapping[str, str], sensitive: bool) -> str:
    """The appointment in a few words: "Blood test" (tests never named); "Review: Diabetes
    annual review and CKD review" or "Joint review: …" for a visit that is not sensitive;
    "Long-term condition review" / "Long-term condition joint review" for one that is."""
    label = wording.KIND_LABELS[appointment.kind]
    if appointment.kind == "blood_draw":
        return label.capitalize()
    if sensitive:
        return f"{NEUTRAL_REVIEW} {label}"
    return f"{label.capitalize()}: {wording.join_and([names[t] for t in appointment.review_type_ids])}"


def sensitive_visits(scenario: Scenario, plan: Plan) -> set[str]:
    """Ids of the plan's visits whose review types must not be named outside the practice: the
    visits `api.calendar.is_sensitive_visit` finds. Only visits of patients with a
    sensitive due review can be; the others are not asked (that check reads the whole plan)."""
    sensitive_types = {r.id for r in scenario.review_types if r.sensitive}
    patients = {p.id for p in scenario.patients
                if any(d.review_type_id in sensitive_types for d in p.due_reviews)}
    return {v.id for v in plan.visits
            if v.patient_id in patients and is_sensitive_visit(scenario, plan, v.id)}


def plan_bundle(scenario: Scenario, plan: Plan, references: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The plan as a FHIR R4 Bundle (collection), a JSON-ready dict validated by fhir.resources'
    R4B models. `references` maps visit id -> booking reference (only for a published plan;
    visits not in the plan are ignored). Raises ValueError when the plan names a patient,
    clinician, room, site or review type the scenario does not have."""
    references = references or {}
    scope = f"scenario/{plan.stored.scenario_id}" if plan.stored else f"scenario-name/{scenario.name}"
    namespace = uuid.uuid5(_ROOT, scope)

    def uid(kind: str, *key: str) -> str:
        return str(uuid.uuid5(namespace, "/".join((kind, *key))))

    def ref(kind: str, *key: str, display: str | None = None) -> dict[str, str]:
        out = {"reference": f"urn:uuid:{uid(kind, *key)}", "type": kind}
        if display:
            out["display"] = display
        return out

    def ident(system: str, value: str, use: str | None = None) -> dict[str, str]:
        return {"system": system, "value": value, **({"use": use} if use else {})}

    def lookup(items: list, what: str) -> Any:
        index = {i.id: i for i in items}

        def get(key: str) -> Any:
            if key not in index:
                raise ValueError(f"the plan names {what} {key!r}, which the scenario does not have")
            return index[key]
        return get

    clinician, room, site = (lookup(scenario.clinicians, "clinician"), lookup(scenario.rooms, "room"),
                             lookup(scenario.sites, "site"))
    review_type = lookup(scenario.review_types, "review type")
    known_patients = {p.id for p in scenario.patients}
    appointments = sorted(plan.appointments, key=lambda a: (a.start, a.end, a.id))
    for a in appointments:
        if a.patient_id not in known_patients:
            raise ValueError(f"the plan names patient {a.patient_id!r}, which the scenario does not have")
        if not a.clinician_ids:
            raise ValueError(f"appointment {a.id!r} has no clinician")
        for t in a.review_type_ids:
            review_type(t)
    names = {t.id: t.name or t.id for t in scenario.review_types}  # FHIR has no empty strings
    hidden = sensitive_visits(scenario, plan)
    visit_ids = {v.id for v in plan.visits}

    patients = sorted({a.patient_id for a in appointments})
    # An id holding an NHS number (a scenario may allow them inside the NHS boundary) never
    # leaves the service: that Patient is keyed by its position in this bundle and carries no
    # identifier, so nothing derived from the number is in the file either.
    patient_key = {p: p if nhs_number_in(p) is None else f"withheld-{n}" for n, p in enumerate(patients, 1)}
    clinicians = sorted({c for a in appointments for c in a.clinician_ids})
    rooms = sorted({a.room_id for a in appointments})
    sites = sorted({room(r).site_id for r in rooms} | {a.site_id for a in appointments})
    resources: list[dict[str, Any]] = []
    for p in patients:
        key = patient_key[p]
        resources.append({"resourceType": "Patient", "id": uid("Patient", key),
                          **({"identifier": [ident(PATIENT_SYSTEM, p)]} if key == p else {})})
    for c in clinicians:
        person = clinician(c)
        resources.append({
            "resourceType": "Practitioner", "id": uid("Practitioner", c), "meta": {"profile": [PRACTITIONER_PROFILE]},
            "identifier": [ident(CLINICIAN_SYSTEM, c)], "active": True,
            **({"name": [{"text": person.name}]} if person.name else {})})
    for s in sites:
        place = site(s)
        lines = [line.strip() for line in place.address.splitlines() if line.strip()]
        location: dict[str, Any] = {
            "resourceType": "Location", "id": uid("Location", "site", s), "identifier": [ident(SITE_SYSTEM, s)],
            "status": "active", "name": place.name or place.id, "mode": "instance", "physicalType": SITE_TYPE}
        if lines:
            location["address"] = {"use": "work", "type": "physical", "text": ", ".join(lines), "line": lines}
        if place.latitude is not None and place.longitude is not None:
            location["position"] = {"latitude": place.latitude, "longitude": place.longitude}
        resources.append(location)
    for r in rooms:
        place = room(r)
        resources.append({
            "resourceType": "Location", "id": uid("Location", "room", r), "identifier": [ident(ROOM_SYSTEM, r)],
            "status": "active", "name": place.name or place.id, "mode": "instance", "physicalType": ROOM_TYPE,
            "partOf": ref("Location", "site", place.site_id, display=site(place.site_id).name or place.site_id)})
    for c in clinicians:
        resources.append({
            "resourceType": "Schedule", "id": uid("Schedule", c), "meta": {"profile": [SCHEDULE_PROFILE]},
            "identifier": [ident(SCHEDULE_SYSTEM, c)], "active": True,
            "actor": [ref("Practitioner", c, display=clinician(c).name or None)],
            "planningHorizon": {"start": scenario.horizon_start.isoformat(), "end": scenario.horizon_end.isoformat()}})
    for a in appointments:
        for c in a.clinician_ids:
            resources.append({
                "resourceType": "Slot", "id": uid("Slot", a.id, c), "meta": {"profile": [SLOT_PROFILE]},
                "identifier": [ident(SLOT_SYSTEM, f"{a.id}/{c}")], "schedule": ref("Schedule", c),
                "status": "busy", "start": _instant(a.start), "end": _instant(a.end)})
    for a in appointments:
        sensitive = a.visit_id in hidden or any(review_type(t).sensitive for t in a.review_type_ids)
        identifiers = [ident(APPOINTMENT_SYSTEM, a.id, "official"), ident(VISIT_SYSTEM, a.visit_id, "secondary")]
        if a.visit_id in visit_ids and references.get(a.visit_id):
            identifiers.append(ident(REFERENCE_SYSTEM, references[a.visit_id], "usual"))
        appointment: dict[str, Any] = {
            "resourceType": "Appointment", "id": uid("Appointment", a.id), "meta": {"profile": [APPOINTMENT_PROFILE]},
            "identifier": identifiers, "status": "booked"}
        if a.kind != "blood_draw" and not sensitive and a.review_type_ids:
            appointment["serviceType"] = [
                {"coding": [{"system": REVIEW_TYPE_SYSTEM, "code": t, "display": names[t]}], "text": names[t]}
                for t in a.review_type_ids]
        minutes = int((a.end - a.start).total_seconds() // 60)
        if minutes < 1:
            raise ValueError(f"appointment {a.id!r} does not end after it starts")
        appointment.update({
            "appointmentType": APPOINTMENT_TYPE, "description": describe(a, names, sensitive),
            "start": _instant(a.start), "end": _instant(a.end), "minutesDuration": minutes,
            "slot": [ref("Slot", a.id, c) for c in a.clinician_ids],
            "participant": [
                _participant(ref("Patient", patient_key[a.patient_id])),
                *(_participant(ref("Practitioner", c, display=clinician(c).name or None)) for c in a.clinician_ids),
                _participant(ref("Location", "room", a.room_id, display=room(a.room_id).name or a.room_id)),
            ]})
        resources.append(appointment)

    if plan.stored:
        key = plan.stored.plan_id
    else:
        key = "digest/" + hashlib.sha256(plan.model_dump_json().encode()).hexdigest()
    bundle: dict[str, Any] = {"resourceType": "Bundle", "id": uid("Bundle", key)}
    if plan.stored:
        bundle["identifier"] = ident(PLAN_SYSTEM, plan.stored.plan_id)
    bundle["type"] = "collection"
    if resources:  # FHIR JSON has no empty arrays
        bundle["entry"] = [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources]
    Bundle.model_validate(bundle)  # raises pydantic.ValidationError for anything R4 does not allow
    return bundle


def bundle_json(scenario: Scenario, plan: Plan, references: Mapping[str, str] | None = None) -> bytes:
    """`plan_bundle` as compact UTF-8 JSON with a final newline: what the service serves and the
    command line writes (a month's plan is megabytes; `jq .` pretty-prints it)."""
    text = json.dumps(plan_bundle(scenario, plan, references), ensure_ascii=False, separators=(",", ":"))
    return (text + "\n").encode("utf-8")


def _participant(actor: dict[str, str]) -> dict[str, Any]:
    return {"actor": actor, "required": "required", "status": "accepted"}


def _instant(moment: dt.datetime) -> str:
    """An ISO 8601 instant with its offset (FHIR instants must carry one)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment.isoformat()} has no UTC offset")
    return moment.isoformat()
