"""Why a patient's visit is where it is: `GET /v1/plans/{plan_id}/patients/{patient_id}/explanation`
(docs/explain.md)."""

from __future__ import annotations

import anyio
from fastapi import APIRouter

from api.deps import DB, CallerDep
from api.errors import ERROR_RESPONSES, ApiError, not_found
from api.models import ScenarioVersion
from api.store import plan_of, plan_record, scenario_of
from scheduler.explain import ExplainError, Explanation, explain_patient

router = APIRouter(prefix="/v1", tags=["plans"], responses=ERROR_RESPONSES)

EXPLAIN_BUDGET_SECONDS = 4.0
"""The probe's own budget (alternatives and changes stop when it runs out)."""
EXPLAIN_LIMIT_SECONDS = 30.0
"""The request gives up (503) if the probe has not answered by then, e.g. on a starved machine."""


@router.get("/plans/{plan_id}/patients/{patient_id}/explanation", response_model=Explanation,
            summary="Why this visit: the rules, the next-best alternatives and their cost, the change "
                    "that gives one visit (any key)")
async def patient_explanation(plan_id: str, patient_id: str, session: DB, caller: CallerDep) -> Explanation:
    """For one patient of the plan: each visit's date, site, clinicians and rooms with the rules
    that limited them (due window, roster and competence, room capability, patient availability,
    results turnaround, fasting draw, maximum visit length, reachable sites); the feasible
    alternatives with everything else in the plan fixed, each with its objective cost delta by
    term; and for a split or unbooked patient the smallest change found that gives one visit.
    Computed by probing the engine in a worker thread, off the event loop, within a few seconds.
    Another organisation's plan, or a patient not in the plan's scenario, is not found."""

    def load():
        record = plan_record(session, caller.organisation_id, plan_id)
        scenario = scenario_of(session.get(ScenarioVersion, record.scenario_version_id))
        return scenario, plan_of(record)

    scenario, plan = await anyio.to_thread.run_sync(load)
    if not any(p.id == patient_id for p in scenario.patients):
        raise not_found("patient in this plan's scenario")

    def probe() -> Explanation:
        return explain_patient(scenario, plan, patient_id, budget_seconds=EXPLAIN_BUDGET_SECONDS)

    try:
        with anyio.fail_after(EXPLAIN_LIMIT_SECONDS):
            return await anyio.to_thread.run_sync(probe, abandon_on_cancel=True)
    except TimeoutError:
        raise ApiError(503, "explanation_timeout", "The explanation took too long; try again later.") from None
    except ExplainError as exc:
        raise ApiError(409, "plan_unreadable", f"The plan cannot be explained: {exc}") from None
