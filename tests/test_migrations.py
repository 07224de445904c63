"""Migrations: a database made by an earlier release keeps its data through an upgrade (and a
downgrade), and the migrated schema is exactly what the models declare."""

from __future__ import annotations

import datetime as dt

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, inspect, select

from api.db import alembic_config, make_engine, upgrade
from api.models import Base

T1 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
T2 = dt.datetime(2026, 11, 9, 9, 0, tzinfo=dt.UTC)


def _seed_release_one(connection) -> None:
    """One scenario whose plans p1 then p2 were published, one event updated by the second."""
    tables = MetaData()
    tables.reflect(connection)
    rows = {
        "organisations": [{"id": "o1", "name": "north", "created_at": T1}],
        "scenarios": [{"id": "s1", "organisation_id": "o1", "name": "month", "latest_version": 1,
                       "published_plan_id": "p2", "created_at": T1, "updated_at": T1}],
        "scenario_versions": [{"id": "v1", "scenario_id": "s1", "version": 1, "content": {}, "source": "json",
                               "patients": 1, "reviews": 1, "created_at": T1}],
        "plans": [{"id": p, "organisation_id": "o1", "scenario_id": "s1", "scenario_version_id": "v1", "number": n,
                   "job_id": None, "document": {}, "objective": 1, "best_bound": 1, "gap": 0.0, "reviews_booked": 1,
                   "reviews": 1, "published_at": at, "created_at": T1}
                  for p, n, at in (("p1", 1, T1), ("p2", 2, T2), ("p3", 3, None))],
        "calendar_events": [{"id": "e1", "organisation_id": "o1", "scenario_id": "s1", "patient_id": "P1",
                             "uid": "u1", "reference": "OV-AAAAAA", "sequence": 1, "status": "active",
                             "sensitive": False, "fingerprint": "f", "review_ids": ["r1"], "plan_id": "p2",
                             "visit_id": "vi-1", "updated_at": T2}],
        "publications": [{"plan_id": "p1", "event_id": "e1", "patient_id": "P1", "action": "new", "sequence": 0},
                         {"plan_id": "p2", "event_id": "e1", "patient_id": "P1", "action": "update", "sequence": 1}],
    }
    for table, values in rows.items():
        connection.execute(tables.tables[table].insert(), values)


def test_upgrade_keeps_publications_and_numbers_them(database_url):
    config = alembic_config(database_url)
    command.upgrade(config, "0001")
    engine = make_engine(database_url)
    with engine.begin() as connection:
        _seed_release_one(connection)
    upgrade(database_url)
    tables = MetaData()
    with engine.connect() as connection:
        tables.reflect(connection)
        publications = tables.tables["publications"]
        got = connection.execute(select(publications.c.plan_id, publications.c.publish_number, publications.c.action)
                                 .order_by(publications.c.publish_number)).all()
        assert [tuple(r) for r in got] == [("p1", 1, "new"), ("p2", 2, "update")]
        scenarios = tables.tables["scenarios"]
        assert connection.execute(select(scenarios.c.publish_count)).scalar_one() == 2

    command.downgrade(config, "0001")  # and back: the latest publication of each plan survives
    with engine.connect() as connection:
        tables = MetaData()
        tables.reflect(connection)
        assert "publish_count" not in tables.tables["scenarios"].c
        assert sorted(connection.execute(select(tables.tables["publications"].c.plan_id)).scalars()) == ["p1", "p2"]
    upgrade(database_url)
    engine.dispose()


def test_migrated_schema_matches_the_models(database_url):
    upgrade(database_url)
    engine = make_engine(database_url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert differences == [], differences


def test_a_migration_that_fails_part_way_leaves_the_database_as_it_was(database_url, monkeypatch):
    """A crash while copying publications: nothing of 0002 stays, and the retry succeeds."""
    from alembic import op

    config = alembic_config(database_url)
    command.upgrade(config, "0001")
    engine = make_engine(database_url)
    with engine.begin() as connection:
        _seed_release_one(connection)
    real = op.execute

    def crash_while_copying(sql, *args, **kwargs):
        if str(sql).startswith("INSERT INTO publications_next"):
            raise RuntimeError("simulated crash while copying publications")
        return real(sql, *args, **kwargs)

    monkeypatch.setattr(op, "execute", crash_while_copying)
    with pytest.raises(RuntimeError, match="simulated crash"):
        upgrade(database_url)
    monkeypatch.setattr(op, "execute", real)
    with engine.connect() as connection:
        tables = MetaData()
        tables.reflect(connection)
        assert "publish_count" not in tables.tables["scenarios"].c and "publications_next" not in tables.tables
        assert connection.execute(select(tables.tables["alembic_version"].c.version_num)).scalar_one() == "0001"
    upgrade(database_url)  # the retry
    with engine.connect() as connection:
        tables = MetaData()
        tables.reflect(connection)
        assert len(connection.execute(select(tables.tables["publications"])).all()) == 2
    engine.dispose()


def test_migrated_constraints_keep_their_names(database_url):
    """Later migrations refer to constraints by name; a table copied in 0002 must keep them."""
    config = alembic_config(database_url)
    engine = make_engine(database_url)
    command.upgrade(config, "0001")
    before = _constraint_names(engine)
    upgrade(database_url)
    assert _constraint_names(engine) == before
    command.downgrade(config, "0001")
    assert _constraint_names(engine) == before
    engine.dispose()


def _constraint_names(engine) -> set[str | None]:
    found = inspect(engine)
    names = {found.get_pk_constraint("publications")["name"]}
    names |= {fk["name"] for fk in found.get_foreign_keys("publications")}
    return names


def test_processes_starting_together_migrate_one_after_the_other(database_url):
    """A serving and a solving instance (or a CLI run) starting at once on an empty database:
    both upgrades succeed, one waits for the other and finds the schema current."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    command_line = [sys.executable, "-m", "api.cli", "db", "upgrade", "--database-url", database_url]
    for _attempt in range(3):
        runs = [subprocess.Popen(command_line, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(3)]
        results = [(run.wait(timeout=120), run.stderr.read()) for run in runs]
        assert all(code == 0 for code, _ in results), results
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    engine = make_engine(database_url)
    with engine.connect() as connection:
        tables = MetaData()
        tables.reflect(connection)
        assert connection.execute(select(tables.tables["alembic_version"].c.version_num)).scalars().all() == [head]
    engine.dispose()
