"""Stage 6c, reaching patients: each patient's contact preference (calendar, SMS, letter, or
several) and large-print letters.

Drawn last, from a random stream of its own (``random.Random(f"{seed}-contact")``), so it
consumes no draw of the main stream: every other field of every generated scenario is what it
was before the field existed.

The mix is an *Assumption* (DOMAIN_FIGURES.md has no channel figures): the source documents warn
of digital exclusion, and practices reach older patients by SMS and letter more than by e-mailed
calendar invites. By age band, the chance of each first channel, then a second channel for some:

- under 65: calendar 55%, SMS 40%, letter 5%; 65-79: calendar 30%, SMS 55%, letter 15%;
  80+: calendar 10%, SMS 50%, letter 40%;
- a learning-disability health check (easy-read letters and a text reminder are usual): letter
  and SMS;
- a second channel for 15% (SMS added to calendar or letter, letter added to SMS);
- large print (Accessible Information Standard) for 1% under 65, 4% at 65-79 and 10% at 80+,
  only meaningful with a letter but recorded as the need it is.
"""

from __future__ import annotations

import random

from scheduler.generate.figures import weighted
from scheduler.generate.patients import PatientDraft

CHANNELS = ("calendar", "sms", "letter")
FIRST_CHANNEL: dict[str, tuple[float, float, float]] = {
    "80+": (.10, .50, .40),
    "65-79": (.30, .55, .15),
}
YOUNGER = (.55, .40, .05)
SECOND_CHANNEL_SHARE = .15
LARGE_PRINT: dict[str, float] = {"80+": .10, "65-79": .04}
LARGE_PRINT_YOUNGER = .01


def contact_stream(seed: int) -> random.Random:
    """The random stream contact preferences are drawn from, separate from the main ``Random(seed)``."""
    return random.Random(f"{seed}-contact")


def assign_contact_preferences(seed: int, patients: list[PatientDraft]) -> None:
    """Set ``channels`` and ``large_print`` on every patient, in list (id) order, from
    `contact_stream`; see the module docstring for the mix."""
    rng = contact_stream(seed)
    for p in patients:
        first = weighted(rng, CHANNELS, FIRST_CHANNEL.get(p.age, YOUNGER))
        second = rng.random() < SECOND_CHANNEL_SHARE
        if "learning_disability_health_check" in p.reviews:
            p.channels = ["sms", "letter"]
        elif second:
            p.channels = sorted({first, "letter" if first == "sms" else "sms"}, key=CHANNELS.index)
        else:
            p.channels = [first]
        p.large_print = rng.random() < LARGE_PRINT.get(p.age, LARGE_PRINT_YOUNGER)
