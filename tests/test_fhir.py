"""FHIR R4 export of a plan (docs/fhir.md), through the service and the command line: every
appointment present once with its instants and participants, every reference resolving inside
the bundle, a sensitive review never named, booking references once published, the same bytes
for the same plan."""

from __future__ import annotations

import json
from typing import Any

import typer
import yaml
from fhir.resources.R4B.bundle import Bundle
from typer.testing import CliRunner

from api import fhir_bundle as export
from api.cli_fhir import fhir
from scheduler.domain import Scenario
from scheduler.plan import Plan
from tests.api_support import auth, checked_plan, make_keys, running_service, solve, tutorial

SENSITIVE = "diabetes"  # marked sensitive below: neither its id nor its name may appear


def sensitive_tutorial() -> dict:
    body = tutorial()
    for review_type in body["review_types"]:
        if review_type["id"] == SENSITIVE:
            review_type["sensitive"] = True
    return body


def cli(*args: str):
    app = typer.Typer(add_completion=False)
    app.command()(fhir)
    return CliRunner().invoke(app, list(args))


def references_in(value: Any) -> list[dict]:
    """Every Reference (an object with a `reference`) anywhere in a resource."""
    if isinstance(value, dict):
        found = [value] if isinstance(value.get("reference"), str) else []
        return found + [r for v in value.values() for r in references_in(v)]
    if isinstance(value, list):
        return [r for v in value for r in references_in(v)]
    return []


def identifier(resource, system: str) -> str | None:
    values = [i.value for i in resource.identifier or [] if i.system == system]
    assert len(values) <= 1
    return values[0] if values else None


def assert_bundle_of(body: bytes, scenario: Scenario, plan: Plan, references: dict[str, str]) -> None:
    """Parse the bytes back with the R4B models and check them against the plan."""
    bundle = Bundle.model_validate_json(body)
    assert bundle.type == "collection"
    data = json.loads(body)
    by_url = {e.fullUrl: e.resource for e in bundle.entry}
    assert len(by_url) == len(bundle.entry)
    assert all(url == f"urn:uuid:{resource.id}" for url, resource in by_url.items())
    for reference in references_in(data["entry"]):  # every reference resolves inside the bundle
        assert reference["reference"] in by_url, reference
        assert by_url[reference["reference"]].get_resource_type() == reference["type"]

    def resolve(reference):
        return by_url[reference.reference]

    for resource in by_url.values():
        if resource.get_resource_type() == "Patient":  # pseudonymous: the id and nothing else
            assert set(resource.model_dump(mode="json")) == {"resourceType", "id", "identifier"}
    appointments = [r for r in by_url.values() if r.get_resource_type() == "Appointment"]
    found = {identifier(r, export.APPOINTMENT_SYSTEM): r for r in appointments}
    assert len(appointments) == len(found) == len(plan.appointments)  # each exactly once
    assert set(found) == {a.id for a in plan.appointments}
    named = 0
    for a in plan.appointments:
        r = found[a.id]
        assert r.status == "booked" and export.APPOINTMENT_PROFILE in r.meta.profile
        assert r.start.utcoffset() is not None and r.end.utcoffset() is not None
        assert (r.start, r.end) == (a.start, a.end)  # aware datetimes: the same instants
        assert r.minutesDuration == (a.end - a.start).total_seconds() / 60
        assert identifier(r, export.VISIT_SYSTEM) == a.visit_id
        assert identifier(r, export.REFERENCE_SYSTEM) == references.get(a.visit_id)
        actors = [resolve(p.actor) for p in r.participant]
        assert all(p.required == "required" and p.status == "accepted" for p in r.participant)
        assert [x.get_resource_type() for x in actors] == ["Patient", *["Practitioner"] * len(a.clinician_ids),
                                                           "Location"]
        assert identifier(actors[0], export.PATIENT_SYSTEM) == a.patient_id
        assert [identifier(x, export.CLINICIAN_SYSTEM) for x in actors[1:-1]] == a.clinician_ids
        room = actors[-1]
        assert identifier(room, export.ROOM_SYSTEM) == a.room_id
        assert identifier(resolve(room.partOf), export.SITE_SYSTEM) == a.site_id
        slots = [resolve(s) for s in r.slot]
        assert all(s.status == "busy" and (s.start, s.end) == (a.start, a.end) for s in slots)
        schedules = [resolve(s.schedule) for s in slots]
        assert [identifier(resolve(s.actor[0]), export.CLINICIAN_SYSTEM) for s in schedules] == a.clinician_ids
        if r.serviceType:
            named += 1
            assert [c.coding[0].code for c in r.serviceType] == a.review_type_ids
    assert named > 0  # reviews of visits that are not sensitive are named
    text = body.decode("utf-8").lower()
    sensitive_name = next(t.name for t in scenario.review_types if t.id == SENSITIVE)
    assert SENSITIVE in {t for a in plan.appointments for t in a.review_type_ids}  # the test means something
    assert SENSITIVE not in text and sensitive_name.lower() not in text


def test_route_and_command_export_every_appointment(database_url, tmp_path):
    keys = make_keys(database_url)
    with running_service(database_url) as client:
        body = sensitive_tutorial()
        scenario_id = client.post("/v1/scenarios", json=body, headers=auth(keys["manager"])).json()["id"]
        plan_id = solve(client, keys["manager"], scenario_id)
        plan = checked_plan(client, keys["manager"], scenario_id, 1, plan_id)
        scenario = Scenario.model_validate(
            client.get(f"/v1/scenarios/{scenario_id}/versions/1", headers=auth(keys["manager"])).json())

        # A draft: any key of the organisation, no booking references; not found for another.
        draft = client.get(f"/v1/plans/{plan_id}/fhir", headers=auth(keys["planner"]))
        assert draft.status_code == 200, draft.text
        assert draft.headers["content-type"] == "application/fhir+json"
        assert_bundle_of(draft.content, scenario, plan, {})
        assert json.loads(draft.content) == export.plan_bundle(scenario, plan)
        assert client.get(f"/v1/plans/{plan_id}/fhir", headers=auth(keys["other"])).status_code == 404
        assert client.get("/v1/plans/nope/fhir", headers=auth(keys["manager"])).status_code == 404
        assert client.get(f"/v1/plans/{plan_id}/fhir").status_code == 401
        # The same plan, the same bytes.
        assert client.get(f"/v1/plans/{plan_id}/fhir", headers=auth(keys["manager"])).content == draft.content

        # The command line, by stored id: the same bytes as the service.
        out = tmp_path / "draft.fhir.json"
        result = cli(plan_id, "--out", str(out), "--database-url", database_url)
        assert result.exit_code == 0, result.output
        assert out.read_bytes() == draft.content and "without booking references" in " ".join(result.output.split())

        # Published: each appointment carries its visit's booking reference.
        assert client.post(f"/v1/plans/{plan_id}/publish", headers=auth(keys["manager"])).status_code == 200
        invites = client.get(f"/v1/plans/{plan_id}/invites", headers=auth(keys["manager"])).json()["items"]
        references = {}
        for invite in invites:
            booking = client.get(f"/v1/bookings/{invite['reference']}", headers=auth(keys["manager"])).json()
            references[booking["visit"]["id"]] = invite["reference"]
        assert set(references) == {v.id for v in plan.visits}
        published = client.get(f"/v1/plans/{plan_id}/fhir", headers=auth(keys["planner"]))
        assert published.status_code == 200
        assert_bundle_of(published.content, scenario, plan, references)

        # The command line from the plan's folder (plan.json and scenario.yaml), twice.
        folder = tmp_path / "plan"
        folder.mkdir()
        (folder / "plan.json").write_text(plan.model_dump_json(indent=2), encoding="utf-8")
        (folder / "scenario.yaml").write_text(yaml.safe_dump(scenario.model_dump(mode="json")), encoding="utf-8")
        for name in ("first.json", "second.json"):
            result = cli(str(folder), "--out", str(tmp_path / name), "--database-url", database_url)
            assert result.exit_code == 0, result.output
            assert (tmp_path / name).read_bytes() == published.content
        assert f"booking references of {len(plan.visits)} visit(s)" in " ".join(result.output.split())


def test_a_plan_file_never_stored_and_bad_input(tmp_path):
    """No database record: no plan identifier and no booking references, ids from the scenario;
    the same file gives the same bytes. Bad PLAN or --out: exit 2, saying why."""
    from scheduler.check import check_plan, format_report
    from scheduler.planner import make_plan

    scenario = Scenario.model_validate(sensitive_tutorial())
    plan = make_plan(scenario, scenario.solver)
    report = check_plan(scenario, plan)
    assert report.ok, format_report(report)
    folder = tmp_path / "plan"
    folder.mkdir()
    (folder / "plan.json").write_text(plan.model_dump_json(indent=2), encoding="utf-8")
    (folder / "scenario.yaml").write_text(yaml.safe_dump(scenario.model_dump(mode="json")), encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    outputs = []
    for name in ("a.json", "b.json"):
        result = cli(str(folder / "plan.json"), "--out", str(tmp_path / name), "--database-url", url)
        assert result.exit_code == 0, result.output
        outputs.append((tmp_path / name).read_bytes())
    assert outputs[0] == outputs[1] == export.bundle_json(scenario, plan)
    assert_bundle_of(outputs[0], scenario, plan, {})
    assert "identifier" not in json.loads(outputs[0])
    # The tutorial spans the March clock change: instants keep their offset, +00:00 then +01:00.
    starts = [e["resource"]["start"] for e in json.loads(outputs[0])["entry"]
              if e["resource"]["resourceType"] == "Appointment"]
    assert any(s.endswith("+00:00") for s in starts) and any(s.endswith("+01:00") for s in starts)
    # References given for a plan are used; ones for visits not in it are ignored.
    visit = plan.visits[0].id
    with_reference = export.plan_bundle(scenario, plan, {visit: "OV-ACDEFG", "vi-elsewhere": "OV-CDEFGH"})
    assert_bundle_of(json.dumps(with_reference).encode(), scenario, plan, {visit: "OV-ACDEFG"})

    missing = cli(str(tmp_path / "nowhere" / "plan.json"), "--out", str(tmp_path / "x.json"), "--database-url", url)
    assert missing.exit_code == 2 and "not a plan file" in " ".join(missing.output.split())
    unknown = cli("no-such-plan", "--out", str(tmp_path / "x.json"), "--database-url", url)
    assert unknown.exit_code == 2 and "neither a plan file nor a plan stored" in " ".join(unknown.output.split())
    to_folder = cli(str(folder), "--out", str(tmp_path), "--database-url", url)
    assert to_folder.exit_code == 2 and "is a folder" in " ".join(to_folder.output.split())
    assert not (tmp_path / "x.json").exists()
    # A plan naming a room the scenario does not have is refused (the checker runs first).
    broken = plan.model_copy(update={"appointments": [
        plan.appointments[0].model_copy(update={"room_id": "no-such-room"}), *plan.appointments[1:]]})
    (folder / "plan.json").write_text(broken.model_dump_json(), encoding="utf-8")
    refused = cli(str(folder), "--out", str(tmp_path / "x.json"), "--database-url", url)
    assert refused.exit_code == 1 and not (tmp_path / "x.json").exists()
    try:
        export.plan_bundle(scenario, broken)
    except ValueError as exc:
        assert "no-such-room" in str(exc)
    else:
        raise AssertionError("a plan naming an unknown room was exported")


def test_onevisit_offers_the_command():
    from api.cli import app

    result = CliRunner().invoke(app, ["fhir", "--help"])
    assert result.exit_code == 0, result.output
    assert "--out" in result.output and "FHIR R4 Bundle" in " ".join(result.output.split())
