"""The web page's sign-in: server-side sessions behind an HttpOnly cookie, CSRF tokens, and the
console's one-time sign-in link.

A browser signs in with an API key (or, on a fresh install, with the link `onevisit serve`
prints) and gets a random session token in a cookie that is HttpOnly (no script reads it),
SameSite=Strict (no other site's page sends it) and Secure when served over TLS. Only the
token's SHA-256 is stored, as for API keys. A session acts as its key: same organisation, same
role, and it ends when the key is revoked. It also ends after `IDLE_MINUTES` without a request
and `MAX_HOURS` after sign-in (OWASP Session Management Cheat Sheet: idle and absolute timeouts).
Every form carries the session's CSRF token, compared in constant time (OWASP CSRF Prevention
Cheat Sheet, synchroniser token pattern); the sign-in form, posted before there is a session,
uses a double-submit cookie instead.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.orm import Session

from api.keys import Caller
from api.models import ApiKey, Organisation, SignInLink, WebSession, utcnow

SESSION_COOKIE = "onevisit_session"
SIGN_IN_COOKIE = "onevisit_sign_in"  # the sign-in form's double-submit CSRF value
IDLE_MINUTES = 30
MAX_HOURS = 12
LINK_MINUTES = 15  # the console's sign-in link
# A request refreshes last_seen_at only when it is this old: reads then do not write every time.
TOUCH_SECONDS = 60


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class WebCaller:
    """Who a signed-in browser is: the API's Caller (organisation, role, key) plus the session's
    id and CSRF token and the organisation's name for the page header."""

    caller: Caller
    session_id: str
    csrf_token: str
    organisation_name: str

    @property
    def role(self) -> str:
        return self.caller.role

    def may(self, action: str) -> bool:
        return self.caller.may(action)


def open_session(session: Session, organisation_id: str, role: str, api_key_id: str | None) -> str:
    """Start a session; returns the cookie's token (the only time it exists in clear)."""
    token = secrets.token_urlsafe(32)
    session.add(WebSession(token_hash=digest(token), organisation_id=organisation_id, api_key_id=api_key_id,
                           role=role, csrf_token=secrets.token_urlsafe(32)))
    session.flush()
    return token


def expired(row, now: dt.datetime) -> bool:
    """Ended, idle past IDLE_MINUTES, or older than MAX_HOURS (`row`: a WebSession or its columns)."""
    return (row.ended_at is not None or now - row.last_seen_at > dt.timedelta(minutes=IDLE_MINUTES)
            or now - row.created_at > dt.timedelta(hours=MAX_HOURS))


# Only the columns the check needs, built once: every page and every read of the book runs it,
# and plain columns (not ORM objects) keep it one cheap indexed lookup (a unique hash).
_SESSION_BY_HASH = (
    select(WebSession.id, WebSession.organisation_id, WebSession.api_key_id, WebSession.role,
           WebSession.csrf_token, WebSession.created_at, WebSession.last_seen_at, WebSession.ended_at,
           Organisation.name, ApiKey.revoked_at, ApiKey.prefix)
    .join(Organisation, Organisation.id == WebSession.organisation_id)
    .outerjoin(ApiKey, ApiKey.id == WebSession.api_key_id)
    .where(WebSession.token_hash == bindparam("token_hash")))


def find_session(session: Session | Connection, token: str | None) -> tuple[WebCaller, bool] | None:
    """The live session for a cookie token, and whether its last_seen_at is due a refresh;
    None for no token, an unknown, ended, idle or too old session, or a revoked key. `session`
    may be an ORM session or a plain connection; nothing is written."""
    if not token or len(token) > 100:
        return None
    row = session.execute(_SESSION_BY_HASH, {"token_hash": digest(token)}).first()
    if row is None:
        return None
    now = utcnow()
    organisation_name, revoked_at = row.name, row.revoked_at
    if expired(row, now) or revoked_at is not None:
        return None
    caller = Caller(row.organisation_id, row.role, row.api_key_id or "", row.prefix or "")
    stale = now - row.last_seen_at > dt.timedelta(seconds=TOUCH_SECONDS)
    return WebCaller(caller, row.id, row.csrf_token, organisation_name), stale


def touch(session: Session, session_id: str) -> None:
    session.execute(update(WebSession).where(WebSession.id == session_id).values(last_seen_at=utcnow()))


def end_session(session: Session, session_id: str) -> None:
    session.execute(update(WebSession).where(WebSession.id == session_id, WebSession.ended_at.is_(None))
                    .values(ended_at=utcnow()))


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), str(given).encode())


def create_sign_in_link(session: Session, organisation_id: str, minutes: int = LINK_MINUTES) -> str:
    """A one-time sign-in token for the organisation, valid for `minutes`; returns the token."""
    token = secrets.token_urlsafe(32)
    session.add(SignInLink(token_hash=digest(token), organisation_id=organisation_id,
                           expires_at=utcnow() + dt.timedelta(minutes=minutes)))
    session.flush()
    return token


def redeem_sign_in_link(session: Session, token: str) -> str | None:
    """Use a sign-in link: its organisation's id, or None if unknown, used or expired. The link
    is marked used in the same statement that checks it, so two uses cannot both succeed."""
    if not token or len(token) > 100:
        return None
    row = session.scalar(select(SignInLink).where(SignInLink.token_hash == digest(token)))
    if row is None:
        return None
    used = session.execute(update(SignInLink).where(
        SignInLink.id == row.id, SignInLink.used_at.is_(None), SignInLink.expires_at > utcnow())
        .values(used_at=utcnow()))
    return row.organisation_id if used.rowcount == 1 else None


def has_active_key(session: Session, organisation_id: str) -> bool:
    return session.scalar(select(ApiKey.id).where(ApiKey.organisation_id == organisation_id,
                                                  ApiKey.revoked_at.is_(None)).limit(1)) is not None
