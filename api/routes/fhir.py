"""A plan as a FHIR R4 Bundle of Schedule, Slot and Appointment resources (docs/fhir.md)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy.orm import Session

from api.deps import DB, CallerDep
from api.errors import ERROR_RESPONSES
from api.fhir_bundle import bundle_json
from api.models import Publication, ScenarioVersion
from api.publish import latest_publication
from api.store import plan_of, plan_record, scenario_of

router = APIRouter(prefix="/v1", tags=["plans"], responses=ERROR_RESPONSES)
FHIR_JSON = "application/fhir+json"


def published_references(session: Session, plan_id: str) -> dict[str, str]:
    """Visit id -> booking reference for the plan's visits as its latest publication booked them;
    {} for a plan never published (its bookings have no reference yet).

    Events still in this plan (`plan_id`) come first. An event a later publication moved on keeps
    its reference here while its visit id is unchanged (the same booking, docs/plan-format.md); a
    visit whose make-up changed in a later plan is followed by its event, and then has no
    reference in this older plan's export. Cancellations the publication made are not this
    plan's visits and are left out."""
    rows = session.execute(latest_publication(plan_id).where(Publication.action != "cancel")).all()
    found: dict[str, str] = {}
    for _, event in sorted(rows, key=lambda row: (row[1].plan_id != plan_id, row[1].reference)):
        found.setdefault(event.visit_id, event.reference)
    return found


@router.get("/plans/{plan_id}/fhir", response_class=Response,
            responses={200: {"content": {FHIR_JSON: {}},
                             "description": "A FHIR R4 Bundle (collection) of the plan's Schedules, Slots and "
                                            "Appointments, with the Practitioners, Locations and pseudonymous "
                                            "Patients they refer to."}},
            summary="The plan as a FHIR R4 Bundle: Schedule, Slot and Appointment resources (any key)")
def plan_fhir(plan_id: str, session: DB, caller: CallerDep) -> Response:
    """Every appointment of the plan as a UK Core Appointment, each clinician's Schedule with a
    busy Slot per appointment, and the Practitioner, Location and pseudonymous Patient resources
    they refer to (docs/fhir.md). Booking references appear as identifiers once the plan has
    been published. A review type marked sensitive is never named. Another organisation's plan
    is not found."""
    record = plan_record(session, caller.organisation_id, plan_id)
    scenario = scenario_of(session.get(ScenarioVersion, record.scenario_version_id))
    body = bundle_json(scenario, plan_of(record), published_references(session, record.id))
    return Response(body, media_type=FHIR_JSON)
