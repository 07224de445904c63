"""Re-planning a week that went wrong, with the fewest changes (docs/replan.md).

Modules: `window` (the moment re-planned from and the freeze window), `entries` (disruptions
checked and applied), `standing` (which visits of the previous plan still stand), `placing`
(booking the next version around them).

`prepare` checks a list of disruptions against the scenario and plan they apply to and turns
them into the scenario's next version (absences cut roster sessions, closures are recorded,
patients cancelled, added or due again); every problem names the entry and field, and a
manager's move that breaks a rule is refused with the rule. `replan` then books that version
starting from the previous plan:

1. Every visit of the previous plan is re-read as bookings of the new version and checked
   against it (`why_not`): a visit stands when every appointment still fits: clinician rostered
   and free, room open and free (and, under the hard room rule, their session's room), patient
   available, inside the due window.
2. Visits that stand are kept exactly, unless their patient is re-placed and a better visit for
   them is found. Visits that are pinned, moved by the manager, in the past or inside the freeze
   window (the next FREEZE_WORKING_DAYS working days after `as_of`) are always kept.
3. The patients whose visits cannot stand, patients added, due again or still waiting for a
   review the previous plan could not book are placed again around the kept visits, each in
   its cheapest placement by the plan's objective plus a stability cost per visit moved
   (MOVED_VISIT, more when it leaves its day: the same clinician and site first). Nothing new is
   booked before the end of the freeze window.
4. A patient still missing reviews may take the place of one visit that stands, when that
   visit's patient can be booked elsewhere after the freeze and the two together cost less
   (ejection): a visit nothing touched moves only to book someone who would go without.
5. The re-placed visits alone are compacted (`scheduler.compact`), and the plan is assembled as
   `scheduler.planner.make_plan` does.
"""

from scheduler.replan.entries import apply_disruptions, prepare
from scheduler.replan.placing import MOVED_VISIT, OTHER_DAY_ELSEWHERE, OTHER_DAY_SAME_PLACE, replan
from scheduler.replan.standing import why_not
from scheduler.replan.window import FREEZE_WORKING_DAYS, Prepared, freeze_until

__all__ = ["FREEZE_WORKING_DAYS", "MOVED_VISIT", "OTHER_DAY_ELSEWHERE", "OTHER_DAY_SAME_PLACE", "Prepared",
           "apply_disruptions", "freeze_until", "prepare", "replan", "why_not"]
