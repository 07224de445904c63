"""The appointment book's cached read path (api/reads.py) on SQLite and PostgreSQL: the cached
plan summary and appointment lists answer exactly what the plan holds, for every filter, and
whatever is cached the key, the plan's organisation, its publication and its discarding are
checked on every request. No wall-clock assertions: only answers and cache contents."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from api import reads
from api.db import make_engine, make_sessionmaker, transaction
from api.errors import ApiError
from api.keys import authenticate, revoke_key
from api.reads import BoundedLru
from scheduler.plan import Plan
from tests.api_support import auth, make_keys, running_service, solve, tutorial


def _scenario(client, key: str) -> str:
    created = client.post("/v1/scenarios", json=tutorial(), headers=auth(key))
    assert created.status_code == 201, created.text
    return created.json()["id"]


def _appointments(client, key: str, plan_id: str, **params) -> dict:
    response = client.get(f"/v1/plans/{plan_id}/appointments", params={"limit": 1000, **params}, headers=auth(key))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def _week(day: dt.date) -> tuple[str, str]:
    monday = day - dt.timedelta(days=day.weekday())
    return str(monday), str(monday + dt.timedelta(days=6))


def test_bounded_lru_drops_the_least_recently_used_and_keeps_its_bounds():
    cache: BoundedLru[str, str] = BoundedLru(max_weight=10, max_entries=3)
    cache.put("a", "A", 4)
    cache.put("b", "B", 4)
    assert cache.get("a") == "A"  # a is now the most recently used
    cache.put("c", "C", 4)  # 12 > 10: the least recently used (b) goes
    assert (cache.get("b"), cache.get("a"), cache.get("c")) == (None, "A", "C")
    assert cache.stats() == (2, 8)
    cache.put("big", "X", 11)  # heavier than the whole cache: not kept, nothing else dropped
    assert cache.get("big") is None and cache.stats() == (2, 8)
    for name in "defg":
        cache.put(name, name.upper(), 1)
    entries, weight = cache.stats()
    assert entries <= 3 and weight <= 10
    cache.put("g", "G2", 2)  # replacing an entry replaces its weight
    assert cache.get("g") == "G2" and cache.stats()[1] <= 10
    cache.clear()
    assert cache.get("g") is None and cache.stats() == (0, 0)


def test_appointment_lists_answer_what_the_plan_holds_for_every_filter(database_url):
    keys = make_keys(database_url)
    key = keys["manager"]
    with running_service(database_url) as client:
        plan_id = solve(client, key, _scenario(client, key))
        plan = Plan.model_validate(client.get(f"/v1/plans/{plan_id}/document", headers=auth(key)).json())
        everything = _appointments(client, key, plan_id)
        assert everything["total"] == len(plan.appointments) == len(everything["items"]) > 0
        # Time order; the same order as the unfiltered list for every filtered one below.
        assert [a["start"] for a in everything["items"]] == sorted(a["start"] for a in everything["items"])
        order = [a["id"] for a in everything["items"]]
        by_id = {a.id: a for a in plan.appointments}
        for item in everything["items"]:
            stored = by_id[item["id"]]
            assert item["date"] == str(stored.date) and item["room_id"] == stored.room_id
            assert item["clinician_ids"] == list(stored.clinician_ids)
            assert dt.datetime.fromisoformat(item["start"]) == stored.start
            assert item["start"].endswith(("Z", "+01:00"))  # local London time: GMT (written Z) or BST

        def expect(params: dict, keep) -> None:
            got = _appointments(client, key, plan_id, **params)
            want = [i for i in order if keep(by_id[i])]
            assert got["total"] == len(want), params
            assert [a["id"] for a in got["items"]] == want, params
            assert got["offset"] == 0 and got["limit"] == 1000

        days = sorted({a.date for a in plan.appointments})
        clinicians = sorted({c for a in plan.appointments for c in a.clinician_ids})
        rooms = sorted({a.room_id for a in plan.appointments})
        for day in days:
            expect({"date_from": str(day), "date_to": str(day)}, lambda a, day=day: a.date == day)
            expect({"date_from": str(day)}, lambda a, day=day: a.date >= day)
            expect({"date_to": str(day)}, lambda a, day=day: a.date <= day)
        for clinician in clinicians:
            for day in days:
                first, last = _week(day)
                expect({"clinician_id": clinician, "date_from": first, "date_to": last},
                       lambda a, c=clinician, f=first, t=last: c in a.clinician_ids and f <= str(a.date) <= t)
        for room in rooms:
            first, last = _week(days[0])
            expect({"room_id": room, "date_from": first, "date_to": last},
                   lambda a, r=room, f=first, t=last: a.room_id == r and f <= str(a.date) <= t)
        first = plan.appointments[0]
        expect({"site_id": first.site_id, "kind": "review"},
               lambda a: a.site_id == first.site_id and a.kind == "review")
        expect({"patient_id": first.patient_id}, lambda a: a.patient_id == first.patient_id)
        expect({"kind": "blood_draw"}, lambda a: a.kind == "blood_draw")
        expect({"clinician_id": "nobody"}, lambda a: False)
        expect({"clinician_id": "", "room_id": ""}, lambda a: True)  # an empty filter is no filter
        expect({"date_from": "2000-01-01", "date_to": "2000-01-01"}, lambda a: False)

        # Paging: total counts every match; the page is the slice.
        page = client.get(f"/v1/plans/{plan_id}/appointments", params={"limit": 3, "offset": 2},
                          headers=auth(key)).json()
        assert page["total"] == len(order) and page["offset"] == 2 and page["limit"] == 3
        assert [a["id"] for a in page["items"]] == order[2:5]
        past = client.get(f"/v1/plans/{plan_id}/appointments", params={"offset": len(order) + 5},
                          headers=auth(key)).json()
        assert past == {"total": len(order), "offset": len(order) + 5, "limit": 200, "items": []}
        backwards = client.get(f"/v1/plans/{plan_id}/appointments", headers=auth(key),
                               params={"date_from": str(days[-1]), "date_to": str(days[0] - dt.timedelta(days=1))})
        assert backwards.status_code == 422 and backwards.json()["error"]["field"] == "date_to"

        # The function the web page's book calls answers the same bytes, for its organisation only.
        day = str(days[0])
        route = client.get(f"/v1/plans/{plan_id}/appointments", headers=auth(key),
                           params={"date_from": day, "date_to": day, "limit": 1000})
        engine = make_engine(database_url)
        try:
            with make_sessionmaker(engine)() as session:
                organisation = _organisation(session, key)
                body = reads.appointments_json(session, organisation, plan_id, date_from=days[0], date_to=days[0])
                assert body == route.content
                assert json.loads(body)["total"] == sum(a.date == days[0] for a in plan.appointments)
                with pytest.raises(ApiError) as refused:
                    reads.appointments_json(session, _organisation(session, keys["other"]), plan_id)
                assert refused.value.status == 404
                with pytest.raises(ApiError) as backwards_too:
                    reads.appointments_json(session, organisation, plan_id, date_from=days[0],
                                            date_to=days[0] - dt.timedelta(days=1))
                assert backwards_too.value.status == 422
        finally:
            engine.dispose()


def _organisation(session, key: str) -> str:
    """The organisation id of a key, as a signed-in web session would know it."""
    found = authenticate(session, key)
    assert found is not None
    return found.organisation_id


def test_cached_reads_still_check_the_key_the_organisation_publication_and_discarding(database_url, monkeypatch):
    # Room in the appointment cache for one plan only, so reading two plans in turn also
    # exercises eviction and reloading.
    monkeypatch.setattr(reads, "_books", BoundedLru(max_weight=reads.BOOK_KEEP_APPOINTMENTS, max_entries=1))
    keys = make_keys(database_url)
    key, other = keys["manager"], keys["other"]
    with running_service(database_url) as client:
        scenario_id = _scenario(client, key)
        first, second = solve(client, key, scenario_id), solve(client, key, scenario_id)
        answers = {}
        for _ in range(2):  # the second round is served from the caches
            for plan_id in (first, second):
                summary = client.get(f"/v1/plans/{plan_id}", headers=auth(key))
                assert summary.status_code == 200 and summary.headers["content-type"] == "application/json"
                assert summary.json()["status"] == "draft" and summary.json()["published_at"] is None
                listed = client.get(f"/v1/plans/{plan_id}/appointments", headers=auth(key))
                assert listed.status_code == 200
                assert answers.setdefault(plan_id, (summary.content, listed.content)) == (summary.content,
                                                                                        listed.content)
                assert reads._books.stats()[0] <= 1
        assert reads._summaries.get(first) is not None

        # Another organisation: a 404 exactly like a made-up id's, cached or not.
        for path in ("", "/appointments"):
            foreign = client.get(f"/v1/plans/{first}{path}", headers=auth(other))
            made_up = client.get(f"/v1/plans/0123456789abcdef0123456789abcdef{path}", headers=auth(other))
            assert foreign.status_code == made_up.status_code == 404
            assert foreign.content == made_up.content

        # Publication shows at once in the cached summary, and a plan published before becomes
        # superseded when another is published.
        assert client.post(f"/v1/plans/{first}/publish", headers=auth(key)).status_code == 200
        published = client.get(f"/v1/plans/{first}", headers=auth(key)).json()
        assert published["status"] == "published" and published["published_at"] is not None
        assert client.get(f"/v1/plans/{second}", headers=auth(key)).json()["status"] == "draft"
        assert client.post(f"/v1/plans/{second}/publish", headers=auth(key)).status_code == 200
        assert client.get(f"/v1/plans/{first}", headers=auth(key)).json()["status"] == "superseded"
        assert client.get(f"/v1/plans/{second}", headers=auth(key)).json()["status"] == "published"
        # Apart from its publication state, the summary is what it was.
        before, after = json.loads(answers[first][0]), published
        for field in ("published_at", "status"):
            del before[field], after[field]
        assert before == after

        # A discarded plan is gone, though its answers were cached.
        third = solve(client, key, scenario_id)
        for path in ("", "/appointments"):
            assert client.get(f"/v1/plans/{third}{path}", headers=auth(key)).status_code == 200
        assert client.delete(f"/v1/plans/{third}", headers=auth(key)).status_code == 204
        for path in ("", "/appointments"):
            gone = client.get(f"/v1/plans/{third}{path}", headers=auth(key))
            assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"

        # A revoked key stops at once, with the same 401 as every other route; so does no key.
        engine = make_engine(database_url)
        with transaction(make_sessionmaker(engine)) as session:
            assert revoke_key(session, key.split("_")[1])
        engine.dispose()
        for headers in (auth(key), {}, auth("ov_nothing_here"), {"Authorization": "Basic abc"}):
            elsewhere = client.get("/v1/plans", headers=headers)
            assert elsewhere.status_code == 401
            for path in ("", "/appointments"):
                refused = client.get(f"/v1/plans/{first}{path}", headers=headers)
                assert refused.status_code == 401 and refused.content == elsewhere.content
                assert refused.headers.get("www-authenticate") == "Bearer"
            # The key is checked before the query is: a bad query without a good key is a 401.
            bad_query = client.get(f"/v1/plans/{first}/appointments", params={"limit": 0}, headers=headers)
            assert bad_query.status_code == 401 and bad_query.content == elsewhere.content
