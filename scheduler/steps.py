"""The units the engine places: a step (one appointment) and a bundle (one patient's steps).

Shared by the bundle builder (`scheduler.bundles`, which makes them) and the day book
(`scheduler.daybook`, which places them); they live here so each of those depends on this module
one way, and neither on the other's internals.
"""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.domain import Patient


@dataclass(frozen=True)
class Step:
    """One appointment to place: a draw, a combined review or a joint consultation."""

    key: str
    kind: str  # "blood_draw" | "review" | "joint_review"
    review_ids: tuple[str, ...]
    review_type_ids: tuple[str, ...]
    marker_ids: tuple[str, ...]
    slots: int
    parts: tuple[tuple[str, ...], ...]  # eligible clinicians for each clinician needed
    capabilities: frozenset[str]
    people: int
    first_day: int
    last_day: int
    needs_draw: bool = False
    lag_working_days: int = 0  # results-before-review: working days between draw and review
    fasting: bool = False

    @property
    def reviews(self) -> int:
        return len(self.review_ids)


@dataclass(frozen=True)
class Bundle:
    """The steps one patient needs in one consolidated visit (or one separate appointment)."""

    id: str
    patient_id: str
    separate: bool
    priority: int
    steps: tuple[Step, ...]

    @property
    def draw(self) -> Step | None:
        return self.steps[0] if self.steps and self.steps[0].kind == "blood_draw" else None

    @property
    def review_steps(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.kind != "blood_draw")


def separate_bundle_id(patient_id: str, review_id: str) -> str:
    """The id of an opted-out patient's bundle for one review (one bundle per review)."""
    return f"{patient_id}/{review_id}"


def sibling_bundle_ids(patient: Patient) -> tuple[str, ...]:
    """Every separate bundle id an opted-out patient's reviews get: the bookers keep these on
    different days, since a visit is one patient, one date, one site (docs/plan-format.md)."""
    return tuple(separate_bundle_id(patient.id, patient.review_id(d)) for d in patient.due_reviews)
