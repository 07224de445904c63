"""Patients are pseudonymous (issue 17): an id that is an NHS number is refused by default, in
every way a scenario comes in, with a message naming the field and never repeating the number;
a scenario inside the NHS boundary may allow such ids, and then nothing that leaves the service
carries them (the calendar tests' privacy scan covers invites and feeds; this file FHIR)."""

from __future__ import annotations

import json
import random

import pytest
import yaml
from typer.testing import CliRunner

from api import fhir_bundle as export
from api.cli import app
from scheduler.privacy import is_nhs_number, nhs_check_digit, nhs_number_in
from scheduler.problems import ScenarioError
from scheduler.scenario_io import scenario_from_dict, scenario_from_text
from tests.api_support import auth, make_keys, running_service, tutorial
from tests.builders import solve_checked

# Valid NHS numbers (Modulus 11) used as examples in NHS documentation and tests.
VALID = ["9434765919", "4857773457", "9876543210", "4010232137"]


def test_modulus_11_check_digit():
    for number in VALID:
        assert is_nhs_number(number), number
        assert nhs_check_digit(number[:9]) == int(number[9])
    # Every other last digit fails; nine digits whose remainder gives 10 have no valid number.
    assert not any(is_nhs_number("943476591" + str(d)) for d in range(10) if d != 9)
    no_check = next(n for n in (f"{i:09d}" for i in range(100000000, 100001000)) if nhs_check_digit(n) is None)
    assert not any(is_nhs_number(no_check + str(d)) for d in range(10))
    # Against a plain restatement of the rule, over random numbers.
    rng = random.Random(17)
    for _ in range(2000):
        digits = f"{rng.randrange(10**10):010d}"
        total = sum(int(d) * (10 - i) for i, d in enumerate(digits[:9]))
        check = (11 - total % 11) % 11
        assert is_nhs_number(digits) == (check != 10 and check == int(digits[9])), digits


@pytest.mark.parametrize("text", ["9434765919", "943 476 5919", "943-476-5919", "p_943.476.5919",
                                  "P-9434765919", "9434765919x"])
def test_written_forms_are_found(text):
    assert nhs_number_in(text) == "9434765919"


@pytest.mark.parametrize("text", ["9434765918", "P0001", "94347659190", "19434765919", "943 4765 919",
                                  "943-476 5919", "EL-00017"])
def test_other_ids_are_not_nhs_numbers(text):
    assert nhs_number_in(text) is None


@pytest.mark.hazard("HAZ-012")
def test_the_loader_refuses_an_nhs_number_by_position_without_repeating_it():
    body = tutorial()
    body["patients"][1]["id"] = "943-476-5919"
    with pytest.raises(ScenarioError) as caught:
        scenario_from_dict(body, "scenario.json")
    [problem] = [p for p in caught.value.problems if "NHS number" in p.message]
    assert problem.location == "patients[1].id"
    assert "allow_nhs_number_ids" in problem.message
    assert all("5919" not in f"{p.location} {p.message}" for p in caught.value.problems)
    body["privacy"] = {"allow_nhs_number_ids": True}
    assert scenario_from_dict(body, "scenario.json").patients[1].id == "943-476-5919"


@pytest.mark.hazard("HAZ-012")
def test_a_due_reviews_csv_row_is_named_by_row_and_column():
    body = tutorial()
    csv = ("patient_id,review_type_id,window_start,window_end,reachable_sites\n"
           f"4857773457,{body['review_types'][0]['id']},{body['horizon_start']},{body['horizon_end']},"
           f"{body['sites'][0]['id']}:10\n")
    with pytest.raises(ScenarioError) as caught:
        scenario_from_text(yaml.safe_dump(body), "scenario.yaml", due_reviews_csv_text=csv)
    [problem] = [p for p in caught.value.problems if "NHS number" in p.message]
    assert (problem.source, problem.location) == ("due_reviews.csv", "row 2, column 'patient_id'")
    assert "4857773457" not in problem.message


def test_the_command_line_exits_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    body = tutorial()
    body["patients"][0]["id"] = "9434765919"
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(body))
    result = CliRunner().invoke(app, ["plan", "s.yaml", "--out", "out", "--database-url", "sqlite:///x.db"])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "looks like an NHS number" in text and "patients[0].id" in text
    assert "9434765919" not in text
    assert not (tmp_path / "out").exists()


def test_the_api_answers_422_naming_the_field(database_url):
    key = make_keys(database_url)["manager"]
    body = tutorial()
    body["patients"][0]["id"] = "485 777 3457"
    with running_service(database_url) as client:
        response = client.post("/v1/scenarios", json=body, headers=auth(key))
        assert response.status_code == 422
        assert "4857773457" not in response.text and "485 777 3457" not in response.text
        problems = response.json()["error"]["problems"]
        assert any("patients[0].id" in json.dumps(p) and "NHS number" in json.dumps(p) for p in problems)
        assert client.get("/v1/scenarios", headers=auth(key)).json()["items"] == []
        body["privacy"] = {"allow_nhs_number_ids": True}
        body["patients"][0]["id"] = "485-777-3457"  # spaces are not allowed in any id
        assert client.post("/v1/scenarios", json=body, headers=auth(key)).status_code == 201


@pytest.mark.hazard("HAZ-006", "HAZ-012")
def test_allowed_inside_the_boundary_the_fhir_bundle_still_never_carries_it():
    body = tutorial(time_limit=5)
    body["privacy"] = {"allow_nhs_number_ids": True}
    body["patients"][0]["id"] = "9434765919"
    body["patients"][1]["id"] = "485-777-3457"
    scenario = scenario_from_dict(body, "scenario.json")
    plan = solve_checked(scenario)
    booked = {a.patient_id for a in plan.appointments}
    assert {"9434765919", "485-777-3457"} <= booked
    text = export.bundle_json(scenario, plan).decode()
    assert nhs_number_in(text) is None and "9434765919" not in text and "4857773457" not in text
    bundle = json.loads(text)
    patients = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    assert len(patients) == len(booked)
    withheld = [p for p in patients if "identifier" not in p]
    assert len(withheld) == 2  # the others keep their pseudonymous identifier
    # Each withheld Patient is still the participant of exactly its own appointments.
    appointments = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Appointment"]
    for p in withheld:
        mine = [a for a in appointments if any(x["actor"]["reference"] == f"urn:uuid:{p['id']}"
                                               for x in a["participant"])]
        assert mine
    counts = sorted(len([a for a in appointments if any(x["actor"]["reference"] == f"urn:uuid:{p['id']}"
                                                       for x in a["participant"])]) for p in withheld)
    assert counts == sorted(sum(a.patient_id == pid for a in plan.appointments)
                            for pid in ("9434765919", "485-777-3457"))
