"""Recall imports (docs/recall-import.md): profiles, CSV and .xlsx exports, every row accounted
for, --strict, the `onevisit import-recall` command, POST /v1/scenarios/{id}/recall, and the
roster-session warnings of `onevisit plan` and the scenario uploads."""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import openpyxl
import pytest
import yaml
from typer.testing import CliRunner

from api.cli import app as cli_app
from scheduler.check import check_plan, format_report
from scheduler.domain import Scenario
from scheduler.plan import Plan
from scheduler.problems import ScenarioError
from scheduler.recall import tables
from scheduler.recall.importer import import_recall
from scheduler.recall.profile import (
    SHIPPED,
    load_profile,
    profile_from_text,
    profile_json_schema,
    schema_text,
)
from scheduler.scenario_io import load_scenario
from scheduler.scenario_io.accounting import session_origins, unused_sessions
from tests.api_support import auth, make_keys, running_service, tutorial

ROOT = Path(__file__).resolve().parents[1]
RECALL = ROOT / "scheduler" / "recall"
EXPORTS = ROOT / "sample_rosters" / "recall-exports"
PRACTICE_MONTH = ROOT / "sample_rosters" / "practice-month.yaml"
TUTORIAL = ROOT / "sample_rosters" / "tutorial.yaml"
NHS_NUMBER = "9434765919"  # a valid Modulus 11 number (the NHS Data Dictionary's example)
SUMMARY = re.compile(r"(\d+) row\(s\) read, (\d+) patient\(s\) created, (\d+) due review\(s\) added, "
                     r"(\d+) skipped, (\d+) refused")

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(cli_app, list(args), catch_exceptions=False)


TEST_PROFILE = {
    "name": "Test recall list",
    "columns": {"patient_id": "Patient ID", "practice": "Practice", "register": "Register",
                "due_date": "Recall Due Date"},
    "window": {"days_before": 3, "days_after": 7, "outside_period": "clamp", "overdue": "skip"},
    "registers": [{"review_type": "diabetes", "names": ["Diabetes"]},
                  {"review_type": "hypertension", "names": ["Hypertension"]},
                  {"review_type": "copd", "names": ["COPD"]},
                  {"review_type": "mental_health_review", "names": ["Mental health"]}],
    "sites": [{"site_id": "riverside", "names": ["Riverside Practice", "Y99902"]}],
    "default_site": "riverside",
}


def tutorial_with_catchment(tmp_path: Path, minutes: int | None = 12) -> Path:
    """The tutorial scenario, its site with a catchment travel time (or none)."""
    data = yaml.safe_load(TUTORIAL.read_text())
    if minutes is not None:
        data["sites"][0]["catchment_travel_minutes"] = minutes
    path = tmp_path / "tutorial-catchment.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def write_profile(tmp_path: Path, profile: dict, name: str = "profile.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(profile, sort_keys=False))
    return path


def counts_of(output: str) -> tuple[int, ...]:
    match = SUMMARY.search(output)
    assert match, output
    return tuple(int(n) for n in match.groups())


# --- profiles and their schema ---------------------------------------------------------------

def test_the_committed_schema_is_generated_and_every_shipped_profile_validates_against_it():
    committed = (RECALL / "profile.schema.json").read_text()
    assert committed == schema_text(), "regenerate scheduler/recall/profile.schema.json from the models"
    schema = json.loads(committed)
    assert schema == profile_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for name in SHIPPED:
        document = yaml.safe_load((RECALL / "profiles" / f"{name}.yaml").read_text())
        assert not list(validator.iter_errors(document)), name
        assert load_profile(name).registers
    bad = {**TEST_PROFILE, "colums": {}}
    assert list(validator.iter_errors(bad))


def test_the_profiles_and_schema_ship_in_the_wheel():
    text = (ROOT / "pyproject.toml").read_text()
    assert '"scheduler.recall" = ["profile.schema.json", "profiles/*.yaml"]' in text


def test_a_bad_profile_is_refused_clearly(tmp_path):
    scenario = tutorial_with_catchment(tmp_path)
    unknown_key = write_profile(tmp_path, {**TEST_PROFILE, "colums": {"x": "y"}}, "unknown-key.yaml")
    result = invoke("import-recall", "--profile", str(unknown_key), str(EXPORTS / "ardens-recalls.csv"),
                    "--into", str(scenario), "--out", str(tmp_path / "out.yaml"))
    assert result.exit_code == 2
    assert "unknown-key.yaml: colums: unknown key 'colums'" in result.output
    assert "did you mean 'columns'" in result.output

    wrong_type = copy.deepcopy(TEST_PROFILE)
    wrong_type["registers"][0]["review_type"] = "diabetis"
    path = write_profile(tmp_path, wrong_type, "wrong-type.yaml")
    result = invoke("import-recall", "--profile", str(path), str(EXPORTS / "ardens-recalls.csv"),
                    "--into", str(scenario), "--out", str(tmp_path / "out.yaml"))
    assert result.exit_code == 2
    assert "wrong-type.yaml: registers[0].review_type: unknown review type 'diabetis'" in result.output
    assert "did you mean 'diabetes'" in result.output
    assert not (tmp_path / "out.yaml").exists()

    with pytest.raises(ScenarioError) as caught:
        profile_from_text("name: x\ncolumns: {patient_id: ID, register: R}\nregisters: []\n", "p.yaml")
    said = str(caught.value)
    assert "exactly one way of reading the due window" in said and "registers: must list at least 1" in said

    result = invoke("import-recall", "--profile", "emis", str(EXPORTS / "ardens-recalls.csv"),
                    "--into", str(scenario), "--out", str(tmp_path / "out.yaml"))
    assert result.exit_code == 2 and "emis-web, systmone, ardens" in result.output


# --- the shipped samples -------------------------------------------------------------------------

@pytest.mark.parametrize("profile,export,expected", [
    ("emis-web", "emis-web-recalls.csv", (12, 6, 9, 3, 0)),
    ("systmone", "systmone-recalls.csv", (11, 5, 7, 3, 1)),
    ("systmone", "systmone-recalls.xlsx", (11, 5, 7, 3, 1)),
    ("ardens", "ardens-recalls.csv", (10, 5, 7, 3, 0)),
])
@pytest.mark.hazard("HAZ-010")
def test_each_shipped_profile_imports_its_sample_with_every_row_accounted_for(tmp_path, profile, export, expected):
    out = tmp_path / "imported.yaml"
    result = invoke("import-recall", "--profile", profile, str(EXPORTS / export), "--into", str(PRACTICE_MONTH),
                    "--out", str(out))
    assert result.exit_code == 0, result.output
    rows, created, added, skipped, refused = counts_of(result.output)
    assert (rows, created, added, skipped, refused) == expected
    assert rows == added + skipped + refused  # no silent drop
    row_warnings = [line for line in result.output.splitlines() if line.startswith(f"  warning: {export}")]
    assert len(row_warnings) == skipped + refused
    said = "\n".join(row_warnings)
    assert "skipped: duplicate of row" in said
    assert "is outside the planning period 2027-05-03..2027-05-30" in said
    assert "is not mapped to a review type" in said
    scenario = load_scenario(out)  # the written file loads as `onevisit plan` loads it
    before = load_scenario(PRACTICE_MONTH)
    assert len(scenario.patients) == len(before.patients) + created
    assert sum(len(p.due_reviews) for p in scenario.patients) == sum(len(p.due_reviews) for p in before.patients) + added
    for patient in scenario.patients[len(before.patients):]:
        assert re.fullmatch(r"EL-\d{5}", patient.id)
        assert [r.site_id for r in patient.reachable_sites] == ["elmfield"]
        for due in patient.due_reviews:
            assert before.horizon_start <= due.window_start <= due.window_end <= before.horizon_end


def test_csv_and_xlsx_exports_give_the_same_rows_and_the_same_scenario():
    csv_table = tables.read_table((EXPORTS / "systmone-recalls.csv").read_bytes(), "s.csv")
    xlsx_table = tables.read_table((EXPORTS / "systmone-recalls.xlsx").read_bytes(), "s.xlsx")
    assert csv_table.header == xlsx_table.header
    assert [n for n, _ in csv_table.rows] == [n for n, _ in xlsx_table.rows]
    assert any(isinstance(cell, dt.date) for _, cells in xlsx_table.rows for cell in cells)  # Excel date cells
    scenario = load_scenario(PRACTICE_MONTH)
    profile = load_profile("systmone")
    from_csv = import_recall(scenario, profile, (EXPORTS / "systmone-recalls.csv").read_bytes(), "x")
    from_xlsx = import_recall(scenario, profile, (EXPORTS / "systmone-recalls.xlsx").read_bytes(), "x")
    assert from_csv.scenario == from_xlsx.scenario
    assert [str(p) for p in from_csv.warnings] == [str(p) for p in from_xlsx.warnings]


def test_uk_dates_and_due_months_as_clinical_systems_export_them(tmp_path):
    from scheduler.recall.importer import CellError, parse_date, parse_month

    day = dt.date(2027, 5, 3)
    for text in ("03/05/2027", "3/5/2027", "03-May-2027", "3 May 2027", "03-MAY-2027", "2027-05-03",
                 "03/05/2027 00:00", "2027-05-03T00:00:00", "03.05.2027"):
        assert parse_date(text) == day, text
    assert parse_date(dt.date(2027, 5, 3)) == day
    for text in ("03/05/27", "31/02/2027", "May 3rd", "03-Mai-2027"):
        with pytest.raises(CellError):
            parse_date(text)
    may = (dt.date(2027, 5, 1), dt.date(2027, 5, 31))
    for text in ("May 2027", "May-2027", "05/2027", "2027-05", "14/05/2027"):
        assert parse_month(text) == may, text
    monthly = {**TEST_PROFILE, "columns": {"patient_id": "Patient ID", "register": "Register", "due_month": "Due Month"},
               "window": {"days_before": 0, "days_after": 0}}
    scenario = Scenario.model_validate(yaml.safe_load(tutorial_with_catchment(tmp_path).read_text()))
    export = b"Patient ID,Register,Due Month\nTP-3,COPD,13/2027\nTP-1,Diabetes,Mar-2027\nTP-2,Diabetes,04/2027\n"
    result = import_recall(scenario, profile_from_text(yaml.safe_dump(monthly), "m.yaml"), export, "m.csv")
    windows = {p.id: (p.due_reviews[0].window_start, p.due_reviews[0].window_end) for p in result.scenario.patients}
    assert windows["TP-1"] == (dt.date(2027, 3, 22), dt.date(2027, 3, 31))  # clamped to the period
    assert windows["TP-2"] == (dt.date(2027, 4, 1), dt.date(2027, 4, 2))
    assert "m.csv: row 2, column 'Due Month': refused: '13/2027'" in str(result.refused[0])  # the first row
    explicit = {**TEST_PROFILE, "columns": {"patient_id": "Patient ID", "register": "Register",
                                            "window_start": "From", "window_end": "To"}}
    export = b"Patient ID,Register,From,To\nTP-1,Diabetes,23/03/2027,26/03/2027\nTP-2,Diabetes,26/03/2027,23/03/2027\n"
    result = import_recall(scenario, profile_from_text(yaml.safe_dump(explicit), "w.yaml"), export, "w.csv")
    assert result.due_reviews_added == 1 and "ends (2027-03-23) before it starts" in str(result.refused[0])


# --- every kind of warning -----------------------------------------------------------------------

@pytest.mark.hazard("HAZ-010")
def test_each_kind_of_row_warning(tmp_path):
    scenario = Scenario.model_validate(yaml.safe_load(tutorial_with_catchment(tmp_path).read_text()))
    existing = scenario.patients[0]
    existing_type = existing.due_reviews[0].review_type_id
    export = "\n".join([
        "Patient ID,Practice,Register,Recall Due Date",
        "TP-001,Riverside Practice,Diabetes,24/03/2027",        # 2 used: window clamped to the period
        "TP-001,Riverside Practice,Hypertension,2027-03-25",    # 3 used, ISO date
        "TP-002,Y99902,COPD,25-Mar-2027",                       # 4 used, ODS code, DD-Mon-YYYY
        "TP-001,Riverside Practice,Diabetes,24/03/2027",        # 5 duplicate of row 2
        "TP-003,Riverside Practice,Diabetes,01/07/2027",        # 6 outside the period
        "TP-004,Riverside Practice,Osteoporosis,24/03/2027",    # 7 register not mapped
        f"{NHS_NUMBER},Riverside Practice,Diabetes,24/03/2027",  # 8 an NHS number
        "TP-005,Riverside Practice,Diabetes,31/02/2027",        # 9 not a real date
        "TP-006,Elsewhere Surgery,Diabetes,24/03/2027",         # 10 practice not mapped
        "TP-007,Riverside Practice,Diabetes,01/01/2027",        # 11 overdue: skipped by this profile
        "TP-008,Riverside Practice,Mental health,24/03/2027",   # 12 review type not in the scenario
        f"{existing.id},Riverside Practice,{existing_type.title()},24/03/2027",  # 13 already due
        ",Riverside Practice,Diabetes,24/03/2027",              # 14 no patient id
        "bad id!,Riverside Practice,Diabetes,24/03/2027",       # 15 not a valid id
    ]) + "\n"
    profile = profile_from_text(yaml.safe_dump(TEST_PROFILE), "test.yaml")
    if existing_type.title() not in ("Diabetes", "Hypertension", "Copd"):
        pytest.skip("the tutorial's first patient has no review type this profile maps")
    result = import_recall(scenario, profile, export.encode(), "recalls.csv", profile_source="test.yaml")
    said = {int(re.match(r"row (\d+)", p.location)[1]): f"{p.location}: {p.message}" for p in result.row_warnings}
    assert result.rows_read == 14 == result.due_reviews_added + len(result.skipped) + len(result.refused)
    assert result.due_reviews_added == 3 and result.patients_created == 2
    assert sorted(said) == list(range(5, 16))
    assert "duplicate of row 2" in said[5]
    assert "column 'Recall Due Date': skipped: due window 2027-06-28..2027-07-08 is outside" in said[6]
    assert "column 'Register': skipped: register 'Osteoporosis' is not mapped" in said[7]
    assert "column 'Patient ID': refused: the patient id looks like an NHS number" in said[8]
    assert all(NHS_NUMBER not in str(p) for p in result.warnings)  # never echoed back
    assert "'31/02/2027' is not a real date" in said[9]
    assert "column 'Practice': refused: practice 'Elsewhere Surgery' is not mapped to a site" in said[10]
    assert "is outside the planning period" in said[11]
    assert "maps to review type 'mental_health_review', which is not one of the scenario's review_types" in said[12]
    assert f"already has a {existing_type} review due in the scenario" in said[13]
    assert "refused: no patient id" in said[14]
    assert "is not a valid patient id" in said[15]
    added = {p.id: p for p in result.scenario.patients}["TP-001"]
    assert [(d.window_start, d.window_end) for d in added.due_reviews] == [
        (dt.date(2027, 3, 22), dt.date(2027, 3, 31)), (dt.date(2027, 3, 22), dt.date(2027, 4, 1))]
    assert [(r.site_id, r.travel_minutes) for r in added.reachable_sites] == [("riverside", 12)]

    # Overdue brought forward; NHS-number ids allowed by the scenario's privacy setting.
    allowed = scenario.model_copy(update={"privacy": scenario.privacy.model_copy(update={"allow_nhs_number_ids": True})})
    forward = profile_from_text(yaml.safe_dump({**TEST_PROFILE, "window": {"overdue": "bring_forward", "days_after": 5}}),
                                "forward.yaml")
    again = import_recall(allowed, forward, export.encode(), "recalls.csv")
    patients = {p.id: p for p in again.scenario.patients}
    assert NHS_NUMBER in patients
    assert [(d.window_start, d.window_end) for d in patients["TP-007"].due_reviews] == [
        (dt.date(2027, 3, 22), dt.date(2027, 3, 27))]


def test_no_travel_time_refuses_the_row_naming_the_site_and_the_setting(tmp_path):
    scenario = Scenario.model_validate(yaml.safe_load(tutorial_with_catchment(tmp_path, None).read_text()))
    export = b"Patient ID,Practice,Register,Recall Due Date\nTP-001,Riverside Practice,Diabetes,24/03/2027\n"
    profile = profile_from_text(yaml.safe_dump(TEST_PROFILE), "test.yaml")
    result = import_recall(scenario, profile, export, "recalls.csv")
    assert result.due_reviews_added == 0 and len(result.refused) == 1
    message = str(result.refused[0])
    assert "no travel time for site 'riverside'" in message
    assert "sites[riverside].catchment_travel_minutes" in message

    # A travel column in the export, or the profile's fallback, is used instead.
    with_column = {**TEST_PROFILE, "columns": {**TEST_PROFILE["columns"], "travel_minutes": "Travel (mins)"}}
    profile = profile_from_text(yaml.safe_dump(with_column), "test.yaml")
    export = (b"Patient ID,Practice,Register,Recall Due Date,Travel (mins)\n"
              b"TP-001,Riverside Practice,Diabetes,24/03/2027,7\n")
    result = import_recall(scenario, profile, export, "recalls.csv")
    assert result.scenario.patients[-1].reachable_sites[0].travel_minutes == 7


def test_xlsx_built_here_with_excel_dates_a_named_sheet_and_title_rows(tmp_path):
    scenario = Scenario.model_validate(yaml.safe_load(tutorial_with_catchment(tmp_path).read_text()))
    book = openpyxl.Workbook()
    book.active.title = "Notes"
    book.active.append(["This sheet is not the export"])
    sheet = book.create_sheet("Recalls")
    sheet.append(["Recall list (made-up data)"])
    sheet.append(["Patient ID", "Practice", "Register", "Recall Due Date"])
    sheet.append(["TP-101", "Riverside Practice", "Diabetes", dt.datetime(2027, 3, 24)])
    sheet.append(["TP-102", "Riverside Practice", "COPD", dt.date(2027, 3, 29)])
    sheet.append(["TP-103", "Riverside Practice", "Hypertension", "25-Mar-2027"])
    sheet.append([None, None, None, None])
    sheet.append(["TP-101", "Riverside Practice", "Diabetes", dt.datetime(2027, 3, 24)])
    buffer = io.BytesIO()
    book.save(buffer)
    profile = profile_from_text(yaml.safe_dump({**TEST_PROFILE, "file": {"sheet": "Recalls", "header_row": 2}}), "x.yaml")
    result = import_recall(scenario, profile, buffer.getvalue(), "recalls.xlsx")
    assert result.counts() == {"rows_read": 4, "patients_created": 3, "due_reviews_added": 3, "skipped": 1, "refused": 0}
    assert "row 7: skipped: duplicate of row 3" in str(result.skipped[0])
    missing = profile_from_text(yaml.safe_dump({**TEST_PROFILE, "file": {"sheet": "Recall"}}), "x.yaml")
    with pytest.raises(ScenarioError, match="no sheet 'Recall'.*Notes, Recalls"):
        import_recall(scenario, missing, buffer.getvalue(), "recalls.xlsx")


def test_exports_are_bounded_before_parsing(monkeypatch):
    with pytest.raises(tables.TableError, match="old Excel .xls"):
        tables.read_table(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, "old.xls")
    with pytest.raises(tables.TableError, match="zip file, not an Excel"):
        buffer = io.BytesIO()
        import zipfile
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("hello.txt", "hi")
        tables.read_table(buffer.getvalue(), "a.zip")
    monkeypatch.setattr(tables, "MAX_EXPORT_BYTES", 100)
    with pytest.raises(tables.TableError, match="the largest accepted is"):
        tables.read_table(b"a,b\n" * 100, "big.csv")
    monkeypatch.setattr(tables, "MAX_EXPORT_BYTES", 10**6)
    monkeypatch.setattr(tables, "MAX_ROWS", 5)
    with pytest.raises(tables.TableError, match="more than 5 rows"):
        tables.read_table(b"a,b\n" + b"1,2\n" * 6, "long.csv")
    monkeypatch.setattr(tables, "MAX_COLUMNS", 3)
    with pytest.raises(tables.TableError, match="at most 3"):
        tables.read_table(b"a,b,c,d\n1,2,3,4\n", "wide.csv")


def test_an_xlsx_sent_where_csv_is_expected_says_so():
    with pytest.raises(ScenarioError) as caught:
        load_scenario(TUTORIAL, due_reviews_csv=EXPORTS / "systmone-recalls.xlsx")
    said = str(caught.value)
    assert "Excel workbook" in said and "import-recall" in said and "PK" not in said


# --- the command and --strict --------------------------------------------------------------------

def test_strict_turns_every_warning_into_an_error_and_writes_nothing(tmp_path):
    out = tmp_path / "imported.yaml"
    result = invoke("import-recall", "--profile", "ardens", str(EXPORTS / "ardens-recalls.csv"),
                    "--into", str(PRACTICE_MONTH), "--out", str(out), "--strict")
    assert result.exit_code == 2
    assert "--strict" in result.output and "nothing was written" in result.output
    assert "ardens-recalls.csv: row 9: skipped: duplicate of row 4" in result.output
    assert not out.exists() and not list(tmp_path.iterdir())

    clean = tmp_path / "clean.csv"
    clean.write_text("Patient ID,Registered Practice,Recall Due Date,Read/SNOMED description,SNOMED CT Concept ID\n"
                     "EL-00090,Elmfield Surgery,10/05/2027,Asthma,195967001\n")
    data = yaml.safe_load(PRACTICE_MONTH.read_text())
    data["leave"] = []  # the sample's leave days are roster warnings too
    scenario = tmp_path / "no-leave.yaml"
    scenario.write_text(yaml.safe_dump(data, sort_keys=False))
    result = invoke("import-recall", "--profile", "ardens", str(clean), "--into", str(scenario),
                    "--out", str(out), "--strict")
    assert result.exit_code == 0, result.output
    assert counts_of(result.output) == (1, 1, 1, 0, 0) and out.exists()


def test_bad_export_names_the_file_and_never_shows_a_traceback(tmp_path):
    broken = tmp_path / "broken.csv"
    broken.write_text("Patient ID,Registered Practice,Recall Due Date\nEL-1,Elmfield Surgery,01/05/2027\n")
    result = invoke("import-recall", "--profile", "ardens", str(broken), "--into", str(PRACTICE_MONTH),
                    "--out", str(tmp_path / "o.yaml"))
    assert result.exit_code == 2
    assert "broken.csv: row 1: missing column 'Read/SNOMED description'" in result.output
    assert "Traceback" not in result.output
    result = invoke("import-recall", "--profile", "ardens", str(tmp_path / "absent.csv"), "--into",
                    str(PRACTICE_MONTH), "--out", str(tmp_path / "o.yaml"))
    assert result.exit_code == 2 and "absent.csv: cannot read the file" in result.output


# --- roster sessions the planner will not use -----------------------------------------------------

@pytest.mark.hazard("HAZ-010")
def test_roster_accounting_names_each_unused_session_and_why(tmp_path):
    data = yaml.safe_load(TUTORIAL.read_text())
    first = dict(data["sessions"][0])
    data["sessions"].append(dict(first))  # an exact repeat
    scenario = Scenario.model_validate(data)
    roster = tmp_path / "roster.csv"
    roster.write_text("clinician_id,date,start,end,site_id\n"
                      f"{first['clinician_id']},2027-03-26,13:00,17:00,{first['site_id']}\n"
                      f"{first['clinician_id']},2027-05-10,13:00,17:00,{first['site_id']}\n")
    loaded = load_scenario(TUTORIAL, sessions_csv=roster)
    said = [str(p) for p in unused_sessions(loaded, "tutorial.yaml", session_origins(loaded, roster))]
    assert any(s.startswith("tutorial.yaml: sessions[4]:") and "Good Friday" in s and "on_bank_holiday" in s
               for s in said)
    assert any(s.startswith("roster.csv: row 2:") and "Good Friday" in s for s in said)
    assert any(s.startswith("roster.csv: row 3:") and "outside the planning period" in s for s in said)
    assert any("on leave that day" in s for s in said)
    repeats = [str(p) for p in unused_sessions(scenario, "t.yaml") if "repeats" in p.message]
    assert repeats == [f"t.yaml: sessions[{len(data['sessions']) - 1}]: {repeats[0].split(': ', 2)[2]}"]
    assert "repeats sessions[0] exactly" in repeats[0]


def test_an_imported_scenario_plans_and_plan_prints_the_roster_warnings(tmp_path):
    """import-recall into the tutorial, then `onevisit plan` (a real process) on the result with a
    roster CSV: the warnings come before the solve, and the plan passes the independent checker."""
    scenario = tutorial_with_catchment(tmp_path)
    profile = write_profile(tmp_path, TEST_PROFILE)
    export = tmp_path / "recalls.csv"
    export.write_text("Patient ID,Practice,Register,Recall Due Date\n"
                      "TP-001,Riverside Practice,Diabetes,24/03/2027\n"
                      "TP-001,Riverside Practice,Hypertension,24/03/2027\n"
                      "TP-002,Riverside Practice,COPD,29/03/2027\n")
    imported = tmp_path / "imported.yaml"
    result = invoke("import-recall", "--profile", str(profile), str(export), "--into", str(scenario),
                    "--out", str(imported))
    assert result.exit_code == 0, result.output
    assert counts_of(result.output) == (3, 2, 3, 0, 0)
    assert "tutorial-catchment.yaml: sessions[4]:" in result.output and "Good Friday" in result.output
    roster = tmp_path / "roster.csv"
    roster.write_text("clinician_id,date,start,end,site_id\npn-ellis,2027-04-20,09:00,12:00,riverside\n")
    out = tmp_path / "plan"
    run = subprocess.run(
        [sys.executable, "-m", "api.cli", "plan", str(imported), "--sessions-csv", str(roster), "--out", str(out),
         "--time-limit", "5", "--workers", "1", "--no-save"],
        capture_output=True, text=True, cwd=ROOT, timeout=300, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    assert "roster session(s) will not be used" in run.stdout
    warnings = [line for line in run.stdout.splitlines() if line.startswith("  warning:")]
    assert any("imported.yaml: sessions[4]:" in w and "Good Friday" in w for w in warnings)
    assert any("roster.csv: row 2:" in w and "outside the planning period" in w for w in warnings)
    assert run.stdout.index("will not be used") < run.stdout.index("Wrote ")
    planned = load_scenario(imported, sessions_csv=roster)
    plan = Plan.model_validate_json((out / "plan.json").read_text())
    report = check_plan(planned, plan)
    assert report.ok, format_report(report)
    booked = {a.patient_id for a in plan.appointments}
    assert {"TP-001", "TP-002"} & booked


# --- the service ---------------------------------------------------------------------------------

def test_recall_route_and_upload_warnings_through_the_service(database_url, tmp_path):
    keys = make_keys(database_url)
    key = keys["manager"]
    body = tutorial()
    body["sites"][0]["catchment_travel_minutes"] = 12
    with running_service(database_url, run_jobs=False) as client:
        created = client.post("/v1/scenarios", json=body, headers=auth(key))
        assert created.status_code == 201, created.text
        warned = created.json()["warnings"]
        assert any(w["location"] == "sessions[4]" and "Good Friday" in w["message"] for w in warned)
        scenario_id = created.json()["id"]

        roster = "clinician_id,date,start,end,site_id\npn-ellis,2027-05-20,09:00,12:00,riverside\n"
        upload = client.post(f"/v1/scenarios/{scenario_id}/upload", headers=auth(key), files={
            "scenario": ("tutorial.yaml", yaml.safe_dump(body).encode(), "application/yaml"),
            "sessions_csv": ("roster.csv", roster.encode(), "text/csv")})
        assert upload.status_code == 200, upload.text
        warned = upload.json()["warnings"]
        assert {"source": "roster.csv", "location": "row 2"} in [
            {"source": w["source"], "location": w["location"]} for w in warned]
        assert any(w["source"] == "tutorial.yaml" and "Good Friday" in w["message"] for w in warned)

        xlsx = (EXPORTS / "systmone-recalls.xlsx").read_bytes()
        refused = client.post(f"/v1/scenarios/{scenario_id}/upload", headers=auth(key), files={
            "scenario": ("tutorial.yaml", yaml.safe_dump(body).encode(), "application/yaml"),
            "due_reviews_csv": ("due.csv", xlsx, "text/csv")})
        assert refused.status_code == 422
        problem = refused.json()["error"]["problems"][0]
        assert problem["source"] == "due.csv" and "Excel workbook" in problem["message"]
        assert "import-recall" in problem["message"] or "/recall" in problem["message"]

        export = ("Patient ID,Practice,Register,Recall Due Date\n"
                  "TP-001,Riverside Practice,Diabetes,24/03/2027\n"
                  "TP-001,Riverside Practice,Diabetes,24/03/2027\n"
                  f"{NHS_NUMBER},Riverside Practice,Diabetes,24/03/2027\n").encode()
        profile = yaml.safe_dump(TEST_PROFILE).encode()
        files = {"export": ("recalls.csv", export, "text/csv"),
                 "profile": ("practice.yaml", profile, "application/yaml")}
        imported = client.post(f"/v1/scenarios/{scenario_id}/recall", headers=auth(key), files=files)
        assert imported.status_code == 201, imported.text
        answer = imported.json()
        assert answer["counts"] == {"rows_read": 3, "patients_created": 1, "due_reviews_added": 1,
                                    "skipped": 1, "refused": 1}
        assert answer["version"] == answer["scenario"]["latest_version"] == 3
        locations = [(w["source"], w["location"]) for w in answer["warnings"]]
        assert ("recalls.csv", "row 3") in locations and ("recalls.csv", "row 4, column 'Patient ID'") in locations
        assert NHS_NUMBER not in imported.text
        assert any("Good Friday" in w["message"] for w in answer["scenario"]["warnings"])
        content = client.get(f"/v1/scenarios/{scenario_id}/versions/3", headers=auth(key)).json()
        assert "TP-001" in [p["id"] for p in content["patients"]]

        strict = client.post(f"/v1/scenarios/{scenario_id}/recall", headers=auth(key), files=files,
                             data={"strict": "true"})
        assert strict.status_code == 422
        assert any(p["location"] == "row 3" for p in strict.json()["error"]["problems"])

        shipped = client.post(f"/v1/scenarios/{scenario_id}/recall", headers=auth(key),
                              files={"export": ("recalls.csv", export, "text/csv")}, data={"profile": "ardens"})
        assert shipped.status_code == 422  # Ardens' columns are not in this export
        assert "missing column 'Read/SNOMED description'" in shipped.text

        bad = client.post(f"/v1/scenarios/{scenario_id}/recall", headers=auth(key), files={
            "export": ("recalls.csv", export, "text/csv"),
            "profile": ("bad.yaml", b"name: x\ncolumns: {patient_id: ID, due_date: D, register: R}\n"
                                         b"registers: [{review_type: diabetes, names: [D]}]\nextra: 1\n", "text/yaml")})
        assert bad.status_code == 422
        assert {"source": "bad.yaml", "location": "extra"} == {
            k: bad.json()["error"]["problems"][0][k] for k in ("source", "location")}

        other = client.post(f"/v1/scenarios/{scenario_id}/recall", headers=auth(keys["other"]), files=files)
        assert other.status_code == 404
        listed = client.get(f"/v1/scenarios/{scenario_id}", headers=auth(key)).json()
        assert listed["latest_version"] == 3
