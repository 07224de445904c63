"""Sending through GOV.UK Notify's official client to a loopback server that plays Notify's v2
API: a real `http.server` on 127.0.0.1 checks each request's JWT (HS256, signed with the key's
secret, `iss` the service id) and its body, answers like Notify, and refuses one phone number
with a 400. Driven through the real service (POST /v1/plans/{id}/messages) on SQLite and
PostgreSQL; nothing of ours is mocked."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pypdfium2 as pdfium
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.config import Settings
from scheduler.domain import Scenario
from tests.api_support import auth, checked_plan, make_keys, solve
from tests.test_messages import _csv, tutorial_with_channels

SERVICE_ID = str(uuid.uuid4())
SECRET = str(uuid.uuid4())
API_KEY = f"onevisit_test-{SERVICE_ID}-{SECRET}"
SMS_TEMPLATE = str(uuid.uuid4())
EMAIL_TEMPLATE = str(uuid.uuid4())
REFUSED = "+447700900666"  # the fake answers 400 for this number
REFERENCE = re.compile(r"^OV-[A-Z0-9]{6}$")


class FakeNotify(BaseHTTPRequestHandler):
    received: list[dict] = []
    problems: list[str] = []

    def log_message(self, *args) -> None:  # quiet
        pass

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, kind: str, message: str) -> None:
        self._answer(status, {"status_code": status, "errors": [{"error": kind, "message": message}]})

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        header = self.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return self._error(401, "AuthError", "Unauthorized: authentication token must be provided")
        try:
            claims = jwt.decode(header[len("Bearer "):], SECRET, algorithms=["HS256"])
        except jwt.PyJWTError:
            return self._error(403, "AuthError", "Invalid token: signature, api token not found")
        if claims.get("iss") != SERVICE_ID or abs(time.time() - int(claims.get("iat", 0))) > 30:
            return self._error(403, "AuthError", "Invalid token: iss or iat")
        body = json.loads(raw)
        self.received.append({"path": self.path, "raw": raw, "body": body})
        note = self.problems.append
        if not REFERENCE.match(str(body.get("reference", ""))):
            note(f"reference {body.get('reference')!r}")
        answer_id = str(uuid.uuid4())
        if self.path == "/v2/notifications/sms":
            if body.get("template_id") != SMS_TEMPLATE or set(body.get("personalisation", {})) != {"body"}:
                note(f"sms body {body}")
            if not re.fullmatch(r"\+447\d{9}", body.get("phone_number", "")):
                note(f"phone {body.get('phone_number')}")
            if body.get("phone_number") == REFUSED:
                return self._error(400, "BadRequestError", "Can't send to this recipient using a team-only API key")
            return self._answer(201, {"id": answer_id, "reference": body["reference"],
                                      "content": {"body": body["personalisation"]["body"], "from_number": "GOVUK"},
                                      "uri": f"http://localhost/v2/notifications/{answer_id}",
                                      "template": {"id": SMS_TEMPLATE, "version": 1, "uri": "x"}})
        if self.path == "/v2/notifications/letter":
            pdf = base64.b64decode(body.get("content", ""), validate=True)
            if not pdf.startswith(b"%PDF-") or set(body) - {"reference", "content", "postage"}:
                note("letter body")
            return self._answer(201, {"id": answer_id, "reference": body["reference"], "postage": "second"})
        if self.path == "/v2/notifications/email":
            if body.get("template_id") != EMAIL_TEMPLATE or set(body.get("personalisation", {})) != {"subject", "body"}:
                note(f"email body {body}")
            return self._answer(201, {"id": answer_id, "reference": body["reference"],
                                      "content": {"subject": "x", "body": "x", "from_email": "x"},
                                      "uri": "x", "template": {"id": EMAIL_TEMPLATE, "version": 1, "uri": "x"}})
        return self._error(404, "NotFound", "no such route")


@pytest.fixture
def notify():
    FakeNotify.received, FakeNotify.problems = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeNotify)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_fake_refuses_a_token_not_signed_with_the_secret(notify):
    from notifications_python_client.errors import HTTPError
    from notifications_python_client.notifications import NotificationsAPIClient

    forged = NotificationsAPIClient(f"x-{SERVICE_ID}-{uuid.uuid4()}", base_url=notify)
    with pytest.raises(HTTPError) as caught:
        forged.send_sms_notification("+447700900001", SMS_TEMPLATE, {"body": "hi"}, reference="OV-7K3P9Q")
    assert caught.value.status_code == 403 and not FakeNotify.received


def _pdf_text(pdf: bytes) -> str:
    doc = pdfium.PdfDocument(pdf)
    try:
        return "\n".join(doc[i].get_textpage().get_text_range() for i in range(len(doc)))
    finally:
        doc.close()


@pytest.mark.hazard("HAZ-013")
def test_sms_letters_and_emails_go_through_notify_and_an_error_is_recorded(database_url, notify, tmp_path):
    keys = make_keys(database_url)
    key = keys["manager"]
    body = tutorial_with_channels()
    for p in body["patients"]:
        p["contact_preference"] = ["calendar", "sms", "letter"]
    refused_patient = body["patients"][0]["id"]
    rows = [[p["id"], REFUSED if p["id"] == refused_patient else f"07700 900{100 + i:03d}",
             f"patient{i}@example.org", f"{i + 1} Mill Lane", "Sandmere", "QX1 2AB"]
            for i, p in enumerate(body["patients"])]
    settings = Settings(database_url=database_url, workers=2, poll_seconds=0.1, notify_api_key=API_KEY,
                        notify_base_url=notify, notify_sms_template_id=SMS_TEMPLATE,
                        notify_email_template_id=EMAIL_TEMPLATE, messages_outbox=str(tmp_path / "outbox"))
    assert API_KEY not in repr(settings)
    with TestClient(create_app(settings)) as client:
        sid = client.post("/v1/scenarios", json=body, headers=auth(key)).json()["id"]
        plan_id = solve(client, key, sid)
        plan = checked_plan(client, key, sid, 1, plan_id)
        assert client.post(f"/v1/plans/{plan_id}/publish", headers=auth(key)).status_code == 200
        sent = client.post(f"/v1/plans/{plan_id}/messages", headers=auth(key),
                           files={"contacts": ("contacts.csv", _csv(rows), "text/csv")})
        assert sent.status_code == 200, sent.text
        counts = sent.json()["counts"]
        visits = len(plan.visits)
        refused_visits = sum(v.patient_id == refused_patient for v in plan.visits)
        assert counts["sms"] == {"created": visits - refused_visits, "error-400": refused_visits}
        assert counts["letter"] == {"created": visits} and counts["calendar"] == {"created": visits}
        assert not FakeNotify.problems, FakeNotify.problems
        paths = [r["path"] for r in FakeNotify.received]
        assert paths.count("/v2/notifications/sms") == visits
        assert paths.count("/v2/notifications/letter") == visits
        assert paths.count("/v2/notifications/email") == visits
        assert not (tmp_path / "outbox").exists()  # all went through Notify
        listed = client.get(f"/v1/plans/{plan_id}/messages", headers=auth(key)).json()["items"]
        assert sorted(i["status"] for i in listed if i["channel"] == "sms").count("error-400") == refused_visits
        # Again: nothing goes twice, not even the refused ones (their status is recorded).
        again = client.post(f"/v1/plans/{plan_id}/messages", headers=auth(key),
                            files={"contacts": ("contacts.csv", _csv(rows), "text/csv")}).json()
        assert again["counts"] == {} and len(FakeNotify.received) == 3 * visits

    scenario = Scenario.model_validate(body)
    forbidden = {p.id for p in scenario.patients}
    forbidden |= {t.id for t in scenario.review_types} | {t.name for t in scenario.review_types}
    forbidden |= {m.id for m in scenario.blood_markers} | {m.name for m in scenario.blood_markers if m.name}
    forbidden |= {c.name for c in scenario.clinicians if c.name} | {c.id for c in scenario.clinicians}
    forbidden |= {"diabet", "kidney", "copd", "asthma", "hypertension", "heart failure"}
    forbidden = {f.lower() for f in forbidden if f}
    phones = {r[1] for r in rows}
    for request in FakeNotify.received:
        texts = [json.dumps({k: v for k, v in request["body"].items() if k != "content"})]
        if request["path"].endswith("/letter"):
            texts.append(_pdf_text(base64.b64decode(request["body"]["content"])))
        if request["path"].endswith("/email"):
            assert "/v1/calendar/patient/" in request["body"]["personalisation"]["body"]
        text = re.sub(r"OV-[A-Z0-9]{6}", "<ref>", "\n".join(texts))
        text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uuid>", text).lower()
        # Short ids ("af", "smr") are matched as words, not inside others ("after").
        leaks = sorted(f for f in forbidden if (re.search(rf"\b{re.escape(f)}\b", text) if len(f) <= 4 else f in text))
        assert not leaks, (request["path"], leaks)
        if request["path"].endswith("/sms"):
            assert request["body"]["phone_number"] in {"+44" + p.replace(" ", "")[-10:] for p in phones}
