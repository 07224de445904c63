"""The standard England long-term-condition (LTC) review catalogue, built with the domain models.

Every figure comes from /shared/DOMAIN_FIGURES.md ("DF" below, with the row it is taken from);
where DF has no figure the value is marked *Assumption* and kept close to DF's neighbouring rows.
The functions return fresh lists so that generators, tests and what-if tools can reuse and filter
them without sharing state.

Calibration of shared components. DF's slot table says a nurse review is "20 +10 per extra LTC,
max 40". With blood pressure 5, weight 3, medicines reconciliation 5 and smoking 2 minutes, and the
components listed below, plan-format's combined-duration rule gives exactly that:
diabetes+hypertension 25+20-15 = 30, hypertension+CKD 20+20-10 = 30,
diabetes+hypertension+CKD 65-25 = 40, COPD+hypertension 15+20-5 = 30,
heart failure+AF 25+15-10 = 30.

Convention: ``roles[0]`` of a review type is its *usual* role (the first role DF names in its
"Who" column); the generator sizes rosters with it and `scheduler.generate.capacity_report`
reports headroom against it. The other roles may also carry the review out.
"""

from __future__ import annotations

from collections.abc import Iterable

from scheduler.domain import BloodMarker, ReviewType, Role, SharedComponent

# Room capabilities used by the catalogue and the generated estates.
PHLEBOTOMY = "phlebotomy"
SPIROMETRY = "spirometry"
ECG = "ecg"
WHEELCHAIR_ACCESS = "wheelchair_access"
MDT = "mdt"

# DF "Blood tests": results "usually 3 working days, up to 5"; DF defaults: "Bloods lead time:
# 5 working days before review". The catalogue plans for the lead time (the safe end).
USUAL_TURNAROUND_WORKING_DAYS = 3
LEAD_TIME_WORKING_DAYS = 5

# Review cadence in months (DF "Reviews" and defaults "Review cadence": annual; 6-monthly for
# diabetes, HF, very severe COPD, high-risk CKD; AF on a DOAC 3-monthly). The generator uses it
# to decide which reviews fall due in an interim (non-birth-month) recall.
CADENCE_MONTHS: dict[str, int] = {
    "diabetes": 6,
    "hypertension": 12,
    "ckd": 12,  # 6 for high-risk CKD (the generator picks which)
    "copd": 12,  # 6 for very severe COPD
    "asthma": 12,
    "heart_failure": 6,
    "af": 3,
    "mental_health_review": 12,
    "smi_physical_health": 12,
    "learning_disability_health_check": 12,
    "smr": 12,
    "frailty": 12,
}


def blood_markers(
    *, turnaround_working_days: int = LEAD_TIME_WORKING_DAYS
) -> list[BloodMarker]:
    """Blood (and urine) markers; a combined draw takes the union a visit's reviews need.

    Fasting: DF "HbA1c and lipids non-fasting [23]; fast only if fasting glucose is requested".
    Turnaround: laboratory markers use the DF lead time (5 working days; pass 3 for DF's "usually
    3"). ``hba1c_poc`` is DF's point-of-care HbA1c ("result in 5-6 min [26]"): drawn inside the
    visit; it is offered for what-if catalogues (see `review_types(poc_hba1c=True)`).
    """
    t = turnaround_working_days
    return [
        BloodMarker(id="hba1c", name="HbA1c", turnaround_working_days=t),
        BloodMarker(
            id="hba1c_poc", name="HbA1c (point of care)", point_of_care=True,
            turnaround_working_days=0,
        ),
        BloodMarker(id="lipids", name="Lipid profile", turnaround_working_days=t),
        BloodMarker(id="ue_egfr", name="U&E, creatinine and eGFR", turnaround_working_days=t),
        BloodMarker(
            id="urine_acr", name="Urine albumin:creatinine ratio", turnaround_working_days=t,
        ),
        BloodMarker(id="fbc", name="Full blood count", turnaround_working_days=t),
        BloodMarker(id="lft", name="Liver function tests", turnaround_working_days=t),
        BloodMarker(
            id="fasting_glucose", name="Fasting plasma glucose", fasting=True,
            turnaround_working_days=t,
        ),
        BloodMarker(id="ntprobnp", name="NT-proBNP", turnaround_working_days=t),
    ]


def shared_components() -> list[SharedComponent]:
    """Parts common to several reviews, done once per visit.

    Minutes are an *Assumption* inside DF's "Bloods/BP/weight: HCA 10-15" row, calibrated so
    combined nurse reviews follow DF's "20 +10 per extra LTC, max 40" (see module docstring).
    """
    return [
        SharedComponent(id="bp", name="Blood pressure", minutes=5),
        SharedComponent(id="weight", name="Weight and BMI", minutes=3),
        SharedComponent(id="meds_rec", name="Medicines reconciliation", minutes=5),
        SharedComponent(id="smoking", name="Smoking status and advice", minutes=2),
    ]


def primary_care_review_types(*, poc_hba1c: bool = False) -> list[ReviewType]:
    """Reviews a GP practice runs (DF "Reviews" table and "Slots (min)" defaults).

    ``poc_hba1c`` swaps laboratory HbA1c for point-of-care HbA1c (what-if).
    """
    hba1c = "hba1c_poc" if poc_hba1c else "hba1c"
    return [
        # DF: "Diabetes | HCA tests, then nurse | nurse ~24"; bloods HbA1c, lipids, creatinine,
        # urine ACR [22]; "Usual: HCA tests, nurse ~1 week later" -> results before review.
        ReviewType(
            id="diabetes", name="Diabetes annual review",
            roles=["practice_nurse", "diabetes_specialist_nurse", "gp"], duration_minutes=25,
            blood_marker_ids=[hba1c, "lipids", "ue_egfr", "urine_acr"],
            results_before_review=True,
            shared_component_ids=["bp", "weight", "meds_rec", "smoking"],
        ),
        # DF: "Hypertension | HCA + nurse | 20-30"; "bloods + urine ACR yearly" [10];
        # nurse slot 20 (DF defaults).
        ReviewType(
            id="hypertension", name="Hypertension review",
            roles=["practice_nurse", "gp"], duration_minutes=20,
            blood_marker_ids=["ue_egfr", "lipids", "urine_acr"],
            shared_component_ids=["bp", "weight", "meds_rec", "smoking"],
        ),
        # DF: "CKD | HCA + nurse"; eGFR, urine ACR [11]; results before review (brief: HCA tests,
        # nurse ~1 week later).
        ReviewType(
            id="ckd", name="Chronic kidney disease review",
            roles=["practice_nurse", "gp"], duration_minutes=20,
            blood_marker_ids=["ue_egfr", "urine_acr"], results_before_review=True,
            shared_component_ids=["bp", "meds_rec"],
        ),
        # DF: "COPD | nurse | 15"; spirometry room.
        ReviewType(
            id="copd", name="COPD review",
            roles=["practice_nurse", "respiratory_specialist_nurse", "gp"], duration_minutes=15,
            room_capabilities=[SPIROMETRY], shared_component_ids=["smoking", "weight"],
        ),
        # DF: "Asthma | nurse | 15".
        ReviewType(
            id="asthma", name="Asthma review",
            roles=["practice_nurse", "respiratory_specialist_nurse"], duration_minutes=15,
            shared_component_ids=["smoking"],
        ),
        # DF: "Heart failure | GP/nurse/pharmacist | 20-30" -> 25.
        ReviewType(
            id="heart_failure", name="Heart failure review",
            roles=["gp", "practice_nurse", "pharmacist", "heart_failure_specialist_nurse"],
            duration_minutes=25, blood_marker_ids=["ue_egfr", "fbc"],
            shared_component_ids=["bp", "weight", "meds_rec"],
        ),
        # DF: "AF on DOAC | GP/pharmacist | 15"; FBC, LFT, U&E [15]; ECG room.
        ReviewType(
            id="af", name="Atrial fibrillation anticoagulation review",
            roles=["gp", "pharmacist"], duration_minutes=15, room_capabilities=[ECG],
            blood_marker_ids=["fbc", "lft", "ue_egfr"], shared_component_ids=["bp", "meds_rec"],
        ),
        # DF: clusters "hypertension+depression", "depression+anxiety+pain"; GP appointment 15
        # (BMA urges 15) -> *Assumption* 20 for a mental-health review.
        ReviewType(
            id="mental_health_review", name="Mental health review",
            roles=["gp", "mental_health_practitioner"], duration_minutes=20, sensitive=True,
        ),
        # DF: "Serious mental illness | GP/support worker/MH team | 20-45"; slot SMI 30;
        # "glucose/HbA1c, lipids" [16] -> fasting glucose (exercises the fasting rule) and lipids.
        ReviewType(
            id="smi_physical_health", name="SMI physical health check",
            roles=["gp", "mental_health_practitioner", "practice_nurse"], duration_minutes=30,
            blood_marker_ids=["fasting_glucose", "lipids"], sensitive=True,
            shared_component_ids=["bp", "weight", "smoking"],
        ),
        # DF: "Learning disability, 14+ | GP/nurse | >=30"; slot LD 45.
        ReviewType(
            id="learning_disability_health_check", name="Learning disability annual health check",
            roles=["gp", "practice_nurse"], duration_minutes=45, sensitive=True,
            shared_component_ids=["bp", "weight", "meds_rec", "smoking"],
        ),
        # DF: "Structured medication review | clinical pharmacist | ~30"; slot SMR 30.
        ReviewType(
            id="smr", name="Structured medication review",
            roles=["pharmacist", "gp"], duration_minutes=30, shared_component_ids=["meds_rec"],
        ),
        # *Assumption*: frailty assessment 30 min by a GP (or nurse), wheelchair-accessible room.
        ReviewType(
            id="frailty", name="Frailty assessment",
            roles=["gp", "practice_nurse"], duration_minutes=30,
            room_capabilities=[WHEELCHAIR_ACCESS], shared_component_ids=["meds_rec", "weight"],
        ),
    ]


def specialist_review_types() -> list[ReviewType]:
    """Consultant reviews offered only at a PCN hub LTC MDT clinic (seed 003: a "single clinic of
    many clinical experts" with renal, cardiology, diabetes and respiratory consultants).

    Durations are an *Assumption* (30 min; comprehensive geriatric assessment 45 min, like DF's
    longest primary-care slot). Renal and diabetes consultants want laboratory results first.
    """
    return [
        ReviewType(
            id="cardiology_review", name="Cardiology consultant review",
            roles=["consultant_cardiology"], duration_minutes=30, room_capabilities=[ECG],
            blood_marker_ids=["ue_egfr", "ntprobnp"], shared_component_ids=["bp", "meds_rec"],
        ),
        ReviewType(
            id="renal_review", name="Renal consultant review",
            roles=["consultant_renal"], duration_minutes=30,
            blood_marker_ids=["ue_egfr", "urine_acr", "fbc"], results_before_review=True,
            shared_component_ids=["bp", "meds_rec"],
        ),
        ReviewType(
            id="respiratory_review", name="Respiratory consultant review",
            roles=["consultant_respiratory"], duration_minutes=30,
            room_capabilities=[SPIROMETRY], shared_component_ids=["smoking"],
        ),
        ReviewType(
            id="diabetes_consultant_review", name="Diabetes consultant review",
            roles=["consultant_diabetes"], duration_minutes=30,
            blood_marker_ids=["hba1c", "lipids", "ue_egfr", "urine_acr"],
            results_before_review=True, shared_component_ids=["bp", "weight", "meds_rec"],
        ),
        ReviewType(
            id="elderly_care_review", name="Elderly care consultant review",
            roles=["consultant_elderly_care"], duration_minutes=45,
            room_capabilities=[WHEELCHAIR_ACCESS], shared_component_ids=["meds_rec"],
        ),
    ]


def review_types(*, poc_hba1c: bool = False) -> list[ReviewType]:
    """The whole catalogue: primary-care reviews, then the hub's specialist reviews."""
    return primary_care_review_types(poc_hba1c=poc_hba1c) + specialist_review_types()


def usual_role(review_type: ReviewType) -> Role:
    """The role that usually carries the review out (the first one listed)."""
    return review_type.roles[0]


def review_type_ids_for_role(role: Role, types: Iterable[ReviewType]) -> list[str]:
    """Ids of the review types (in catalogue order) that ``role`` may carry out."""
    return [t.id for t in types if role in t.roles]


def markers_used(
    types: Iterable[ReviewType], markers: Iterable[BloodMarker] | None = None
) -> list[BloodMarker]:
    """The markers (in catalogue order) that at least one of ``types`` needs."""
    wanted = {m for t in types for m in t.blood_marker_ids}
    return [m for m in (blood_markers() if markers is None else markers) if m.id in wanted]


def components_used(
    types: Iterable[ReviewType], components: Iterable[SharedComponent] | None = None
) -> list[SharedComponent]:
    """The shared components (in catalogue order) that at least one of ``types`` lists."""
    wanted = {c for t in types for c in t.shared_component_ids}
    pool = shared_components() if components is None else components
    return [c for c in pool if c.id in wanted]
