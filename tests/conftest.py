"""Databases for the service tests: every test that asks for `database_url` runs twice, on a
fresh SQLite file and on a fresh schema in the real PostgreSQL.

PostgreSQL is found at $ONEVISIT_TEST_POSTGRES_URL (default: the local server on
127.0.0.1:5432, database `test`). If it cannot be reached the PostgreSQL tests FAIL, so CI never
passes by silently skipping them; set ONEVISIT_TEST_POSTGRES_URL=skip to skip them on purpose.
"""

from __future__ import annotations

import os
import uuid
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text

POSTGRES_URL = os.environ.get("ONEVISIT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _postgres_schema_url() -> tuple[str, str]:
    if POSTGRES_URL == "skip":
        pytest.skip("ONEVISIT_TEST_POSTGRES_URL=skip")
    schema = f"onevisit_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"PostgreSQL unreachable at {POSTGRES_URL} ({type(exc).__name__}: {exc}); "
                    "start it or set ONEVISIT_TEST_POSTGRES_URL", pytrace=False)
    finally:
        admin.dispose()
    separator = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{separator}options={quote(f'-csearch_path={schema}')}", schema


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'onevisit.db'}"
        return
    url, schema = _postgres_schema_url()
    yield url
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


# --- Hypothesis: the same examples on every run --------------------------------------------------
# A property test that fails now and then is worse than none: the failure is gone on the re-run,
# and once the example database has saved it the test fails for one person only. So the default
# profile is derandomised (examples follow from each test's own code, not the clock) with no
# example database, in CI (where `CI` is set) and locally alike, so a local run sees exactly what
# CI sees. To search further on purpose, run with `--hypothesis-profile=explore` (random examples,
# more of them, failures saved to .hypothesis/); turn any failure it finds into an @example.
from hypothesis import settings as _hypothesis_settings

_hypothesis_settings.register_profile("deterministic", derandomize=True, database=None, print_blob=True)
_hypothesis_settings.register_profile("explore", derandomize=False, max_examples=500)
_hypothesis_settings.load_profile("deterministic")
