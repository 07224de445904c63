"""Master model variables: which (day, site) each step of each bundle goes to, and the visits made.

An option is a (day, site) pair. A step only gets options where it could happen at all with the
roster empty (clinicians rostered, a room with the capabilities, the patient free, a fasting draw
early enough), so leaving out the other pairs removes no feasible plan.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from ortools.sat.python import cp_model

from scheduler.daybook import reachable_options
from scheduler.instance import Instance
from scheduler.steps import Bundle

Option = tuple[int, str]


@dataclass
class MasterVars:
    bundles: list[Bundle]
    options: dict[tuple[int, int], list[Option]] = field(default_factory=dict)
    x: dict[tuple[int, int, Option], cp_model.IntVar] = field(default_factory=dict)
    visit: dict[tuple[int, Option], cp_model.IntVar] = field(default_factory=dict)
    booked: dict[tuple[int, int], cp_model.IntVar] = field(default_factory=dict)
    at_option: dict[Option, list[tuple[int, int]]] = field(default_factory=lambda: defaultdict(list))
    used: dict[Option, cp_model.IntVar] = field(default_factory=dict)  # any booking at the option
    review_visit: dict[tuple[int, Option], cp_model.IntVar] = field(default_factory=dict)

    def options_of_bundle(self, b: int) -> list[Option]:
        """Every (day, site) some step of bundle b could use, in a fixed order."""
        seen: dict[Option, None] = {}
        for k in range(len(self.bundles[b].steps)):
            seen.update(dict.fromkeys(self.options[(b, k)]))
        return list(seen)


def build_variables(model: cp_model.CpModel, inst: Instance, bundles: list[Bundle]) -> MasterVars:
    v = MasterVars(bundles)
    for b, bundle in enumerate(bundles):
        for k, step in enumerate(bundle.steps):
            opts = reachable_options(inst, bundle, step)
            v.options[(b, k)] = opts
            booked = model.new_bool_var(f"booked_{b}_{k}")
            v.booked[(b, k)] = booked
            terms = []
            for opt in opts:
                x = model.new_bool_var(f"x_{b}_{k}_{opt[0]}_{opt[1]}")
                v.x[(b, k, opt)] = x
                v.at_option[opt].append((b, k))
                terms.append(x)
                if (b, opt) not in v.visit:
                    v.visit[(b, opt)] = model.new_bool_var(f"visit_{b}_{opt[0]}_{opt[1]}")
                if step.reviews:
                    if (b, opt) not in v.review_visit:
                        v.review_visit[(b, opt)] = model.new_bool_var(f"rvisit_{b}_{opt[0]}_{opt[1]}")
                    model.add_implication(x, v.review_visit[(b, opt)])
            model.add(sum(terms) == booked)
    for option, members in v.at_option.items():
        used = model.new_bool_var(f"used_{option[0]}_{option[1]}")
        v.used[option] = used
        for b, k in members:
            model.add_implication(v.x[(b, k, option)], used)
    return v


def add_complete_hint(model: cp_model.CpModel, v: MasterVars, hint: dict[tuple[int, int], Option]) -> None:
    """Hint every variable, so CP-SAT starts from the warm start instead of repairing it."""
    for (b, k, opt), x in v.x.items():
        model.add_hint(x, hint.get((b, k)) == opt)
    for (b, k), booked in v.booked.items():
        model.add_hint(booked, (b, k) in hint)
    visits = {(b, opt) for (b, _k), opt in hint.items()}
    for key, visit in v.visit.items():
        model.add_hint(visit, key in visits)
    for option, used in v.used.items():
        model.add_hint(used, option in set(hint.values()))
    with_reviews = {(b, opt) for (b, k), opt in hint.items() if v.bundles[b].steps[k].reviews}
    for key, review_visit in v.review_visit.items():
        model.add_hint(review_visit, key in with_reviews)
