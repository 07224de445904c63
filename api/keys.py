"""Management API keys: `ov_<prefix>_<secret>`; only a SHA-256 of the whole key is stored.

Keys are 256-bit random, so a plain SHA-256 is enough (no password stretching needed); the
prefix is an index to find the row, and the comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from api.models import ApiKey, Organisation, utcnow

ROLES = ("manager", "planner")
# What each role may do: planners (ICB capacity studies) model and solve scenarios; only
# managers publish plans to patients and hand out calendar links.
MANAGER_ONLY = frozenset({"publish", "calendar_tokens", "replan", "discard", "audit"})


@dataclass(frozen=True)
class Caller:
    """Who is calling: the key's organisation, role and id, and its public prefix (the part of
    `ov_<prefix>_<secret>` that names a key in the audit trail; empty for a sign-in link)."""

    organisation_id: str
    role: str
    key_id: str
    key_prefix: str = ""

    def may(self, action: str) -> bool:
        return self.role == "manager" or action not in MANAGER_ONLY


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def organisation(session: Session, name: str) -> Organisation:
    """The organisation called `name`, created on first use."""
    found = session.scalar(select(Organisation).where(Organisation.name == name))
    if found is None:
        found = Organisation(name=name)
        session.add(found)
        session.flush()
    return found


def create_key(session: Session, organisation_name: str, role: str, label: str = "") -> str:
    """Create a key and return it; this is the only time the full key exists."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    org = organisation(session, organisation_name)
    prefix = secrets.token_hex(6)
    key = f"ov_{prefix}_{secrets.token_urlsafe(32)}"
    session.add(ApiKey(organisation_id=org.id, role=role, prefix=prefix, key_hash=_digest(key), label=label))
    session.flush()
    return key


# Only the columns the check needs, built once: every request with a key runs it, and reading
# plain columns (not an ORM object) keeps it to one cheap indexed lookup (a unique prefix).
_KEY_BY_PREFIX = select(ApiKey.id, ApiKey.organisation_id, ApiKey.role, ApiKey.key_hash, ApiKey.revoked_at,
                         ApiKey.prefix).where(
    ApiKey.prefix == bindparam("prefix"))


def authenticate(session: Session | Connection, key: str) -> Caller | None:
    """The caller a key stands for, or None for a malformed, unknown or revoked key.

    `session` may be an ORM session or a plain connection (the per-request check uses one: it is
    cheaper); nothing is written.
    """
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != "ov":
        return None
    row = session.execute(_KEY_BY_PREFIX, {"prefix": parts[1]}).first()
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.key_hash, _digest(key)):
        return None
    return Caller(row.organisation_id, row.role, row.id, row.prefix)


def revoke_key(session: Session, prefix: str) -> bool:
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    return True
