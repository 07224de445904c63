"""Calendar routes (patient invite, clinician and room feeds): filled in by the calendar work."""

from fastapi import APIRouter

router = APIRouter(prefix="/v1", tags=["calendar"])
