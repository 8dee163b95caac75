"""Console users: adding them, their passwords and roles, signing in with throttling per client,
and ending their sessions.

Passwords are hashed with Argon2id only (``argon2-cffi``, a dependency; its RFC 9106 low-memory
profile: 64 MiB, 3 passes). Earlier versions fell back to the standard library's scrypt where
argon2-cffi was missing; such ``scrypt$…`` hashes still in a database verify, so no user is
locked out, and the next successful sign-in replaces them with an Argon2id hash (as it does an
Argon2id hash of weaker parameters). Nothing new is hashed with scrypt. Signing in takes the same
time for an unknown user, a disabled one, a throttled client and a wrong password: each verifies
a hash.

Wrong passwords are counted per account *and* client (``source_key``: the address, an IPv6
address by its /64): from the ``MAX_FAILED_LOGINS``-th on, that client is refused for that
account for ``LOCKOUT``, doubling with each further failure up to ``MAX_LOCKOUT``. Other clients
are not: a stranger's guesses never lock the user out. ``unlock`` (an admin) clears the count.

Sessions: every console session carries the user's ``session_epoch``; ``end_sessions`` raises
it (sign-out, a new password or role, disabling do), so every session made before ends.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from fhirgen.errors import ConfigError, FhirgenError
from fhirgen.service.vault import key_file
from fhirgen.store import Store, as_utc, utcnow
from fhirgen.store import users as records
from fhirgen.store.console_models import ROLES
from fhirgen.store.users import UserRows

__all__ = [
    "EXTERNAL_PREFIX",
    "FAILURE_MEMORY",
    "LOCKOUT",
    "MAX_FAILED_LOGINS",
    "MAX_LOCKOUT",
    "MIN_PASSWORD_LENGTH",
    "ROLES",
    "User",
    "UserError",
    "add_user",
    "authenticate",
    "console_session_key",
    "disable_user",
    "enable_user",
    "end_sessions",
    "get_user",
    "hash_password",
    "list_users",
    "lockout_for",
    "set_password",
    "set_role",
    "sign_in_external",
    "source_key",
    "throttled",
    "unlock",
    "verify_password",
]

MAX_FAILED_LOGINS = 5  # wrong passwords from one client before it is refused for the account
LOCKOUT = timedelta(minutes=5)  # the first refusal; doubled with each further failure
MAX_LOCKOUT = timedelta(hours=1)
FAILURE_MEMORY = timedelta(days=1)  # a client's count restarts after a day without failures
MIN_PASSWORD_LENGTH = 12
# The password "hash" of a user an identity provider signs in: no password matches it.
EXTERNAL_PREFIX = "external$"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.@-]{0,119}$")
_HASHER = PasswordHasher()  # argon2-cffi's defaults: Argon2id, RFC 9106's low-memory profile


class UserError(FhirgenError):
    """A user that cannot be added or changed (bad name, role or password; exists; unknown)."""


@dataclass(frozen=True)
class User:
    """A console user, without the password hash."""

    id: int
    username: str
    role: str
    created_at: datetime
    last_login_at: datetime | None
    fingerprint: str  # changes with the password: sessions made before a change end
    session_epoch: int = 0  # raised by end_sessions: sessions made before it end
    disabled: bool = False  # may not sign in; no session of theirs is accepted

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def session_id(self) -> str:
        """What a session names its user by: no longer matches once the password changes or
        the sessions are ended."""
        return f"{self.id}:{self.fingerprint}:{self.session_epoch}"


# -- hashing ----------------------------------------------------------------------------------


def hash_password(password: str) -> str:
    """A salted, slow Argon2id hash of ``password`` (``$argon2id$…``)."""
    return _HASHER.hash(password)


def verify_password(stored: str, password: str) -> bool:
    """Whether ``password`` matches ``stored``, in constant time: an Argon2 hash, or a legacy
    ``scrypt$…`` one (kept only until its user's next sign-in rehashes it)."""
    if stored.startswith("$argon2"):
        try:
            return _HASHER.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False
    return _verify_legacy_scrypt(stored, password)


def _needs_rehash(stored: str) -> bool:
    """Whether a hash that just verified should be replaced: every legacy scrypt hash, and
    Argon2 hashes made with other parameters than ``_HASHER``'s."""
    if not stored.startswith("$argon2"):
        return True
    return _HASHER.check_needs_rehash(stored)


def _verify_legacy_scrypt(stored: str, password: str) -> bool:
    """``scrypt$N$r$p$salt$digest`` (URL-safe base64), as earlier versions wrote without
    argon2-cffi: verified, never made."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return False
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, expected = _unb64(parts[4]), _unb64(parts[5])
        digest = hashlib.scrypt(
            password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r + 2**20, dklen=32
        )
    except ValueError:
        return False
    return hmac.compare_digest(digest, expected)


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@cache
def _dummy_hash() -> str:
    """What an unknown user's password is checked against, so that it costs the same."""
    return hash_password(secrets.token_urlsafe(16))


# -- users ------------------------------------------------------------------------------------


def _check_name(name: str) -> str:
    username = name.strip().lower()
    if not _NAME.match(username):
        raise UserError(
            f"invalid user name {name!r}: letters, digits and _ . @ - (at most 120 characters)"
        )
    return username


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")


def _user(row: Any) -> User:
    fingerprint = hashlib.sha256(row.password_hash.encode()).hexdigest()[:16]
    return User(
        row.id,
        row.username,
        row.role,
        as_utc(row.created_at),  # type: ignore[arg-type]
        as_utc(row.last_login_at),
        fingerprint,
        int(row.session_epoch or 0),
        row.disabled_at is not None,
    )


def add_user(store: Store, name: str, role: str, password: str) -> User:
    """Add a console user; ``UserError`` for a bad name, role or password, or a taken name."""
    username = _check_name(name)
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    _check_password(password)
    values = {
        "username": username,
        "password_hash": hash_password(password),
        "role": role,
        "created_at": utcnow(),
        "failed_logins": 0,
    }
    if not records.try_add(store, values):
        raise UserError(f"user {username!r} exists")
    user = get_user(store, username)
    assert user is not None
    return user


def _change(store: Store, name: str, **values: Any) -> User:
    """Update a user's row and raise its session epoch (their sessions end) in one step."""
    username = _check_name(name)
    with records.writing(store) as rows:
        changed = rows.change(username, values, end_sessions=True)
        if changed and "password_hash" in values:
            rows.forget_failures(username)
    if not changed:
        raise UserError(f"no user {username!r}")
    user = get_user(store, username)
    assert user is not None
    return user


def set_password(store: Store, name: str, password: str) -> User:
    """Give a user a new password (and lift any throttling); their existing sessions end."""
    _check_password(password)
    return _change(store, name, password_hash=hash_password(password))


def set_role(store: Store, name: str, role: str) -> User:
    """Give a user another role; their existing sessions end (they sign in again)."""
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    return _change(store, name, role=role)


def disable_user(store: Store, name: str, *, now: datetime | None = None) -> User:
    """Refuse a user's sign-ins (password or single sign-on) and end their sessions."""
    return _change(store, name, disabled_at=now or utcnow())


def enable_user(store: Store, name: str) -> User:
    """Let a disabled user sign in again."""
    return _change(store, name, disabled_at=None)


def end_sessions(store: Store, name: str) -> User:
    """End every open session of a user (signing out does this), wherever it was made."""
    return _change(store, name)


def sign_in_external(
    store: Store, name: str, role: str, *, issuer: str, subject: str, now: datetime | None = None
) -> User:
    """The console user for someone an identity provider signed in (made or updated).

    The provider is the source of truth: the role follows its groups at every sign-in. Such a
    user has no password (``verify_password`` refuses its marker), and a local user of the same
    name is never taken over.
    """
    username = _check_name(name)
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}")
    now = now or utcnow()
    identity = hashlib.sha256(f"{issuer}\n{subject}".encode()).hexdigest()[:32]
    marker = f"{EXTERNAL_PREFIX}{identity}"
    with records.writing(store) as rows:
        row = rows.find(username)
        if row is None:
            rows.add(
                {
                    "username": username,
                    "password_hash": marker,
                    "role": role,
                    "created_at": now,
                    "last_login_at": now,
                    "failed_logins": 0,
                }
            )
        elif row.password_hash != marker:
            raise UserError(f"user {username!r} exists and is not this provider's")
        elif row.disabled_at is not None:
            raise UserError(f"user {username!r} is disabled")
        else:
            # Where the provider changed their groups, earlier sessions end.
            regrouped = row.role != role
            rows.change(int(row.id), {"role": role, "last_login_at": now}, end_sessions=regrouped)
    user = get_user(store, username)
    assert user is not None
    return user


def get_user(store: Store, name_or_id: str | int) -> User | None:
    """A user by name, or by numeric id."""
    key = name_or_id if isinstance(name_or_id, int) else name_or_id.strip().lower()
    with records.reading(store) as rows:
        row = rows.find(key)
    return _user(row) if row is not None else None


def list_users(store: Store) -> list[User]:
    """Every console user, by name."""
    with records.reading(store) as rows:
        found = rows.all_users()
    return [_user(row) for row in found]


def authenticate(
    store: Store,
    name: str,
    password: str,
    *,
    source: str = "unknown",
    now: datetime | None = None,
) -> User | None:
    """The user if ``password`` is theirs, the account enabled and ``source`` (the client's
    address) not throttled for it; else None.

    A wrong password counts against this account from this source only: from the
    ``MAX_FAILED_LOGINS``-th on, the source is refused for the account (even the right
    password) for ``LOCKOUT``, doubled with each further failure up to ``MAX_LOCKOUT``. Other
    sources still sign in. A success from the source clears its count; so do a new password
    and ``unlock``.
    """
    now = now or utcnow()
    username = name.strip().lower()[:120]
    key = source_key(source)
    with records.reading(store) as rows:
        row = rows.find(username)
        failed = rows.failures(username, key) if row else None
    if row is None:
        verify_password(_dummy_hash(), password)
        return None
    # Always verified, also when disabled or throttled: every refusal costs the same.
    matches = verify_password(row.password_hash, password)
    locked = as_utc(failed.locked_until) if failed is not None else None
    if row.disabled_at is not None or (locked is not None and locked > now):
        return None
    with records.writing(store) as rows:
        if not matches:
            _count_failure(rows, username, key, failed, now)
            return None
        if failed is not None:
            rows.forget_failures(username, source=key)
        values: dict[str, Any] = {"last_login_at": now}
        if _needs_rehash(row.password_hash):
            values["password_hash"] = hash_password(password)
        rows.change(int(row.id), values)
    return get_user(store, int(row.id))


def _count_failure(rows: UserRows, username: str, key: str, failed: Any, now: datetime) -> None:
    """One more wrong password for ``username`` from ``key``; lock that pair from the
    ``MAX_FAILED_LOGINS``-th on."""
    # Forget this account's counts a day old (this client's too): the table holds no more than
    # a day of guessing. No lock outlasts that (MAX_LOCKOUT is shorter).
    rows.forget_failures(username, before=now - FAILURE_MEMORY)
    last = as_utc(failed.last_failed_at) if failed is not None else None
    if failed is None or last is None or now - last > FAILURE_MEMORY:
        if rows.start_count(username, key, now):
            count = 1
        else:  # the same client failing twice at once: count on its row
            count = rows.count_failure(username, key, now)
    else:
        count = rows.count_failure(username, key, now)
    if count >= MAX_FAILED_LOGINS:
        rows.lock(username, key, now + lockout_for(count))


def lockout_for(failures: int) -> timedelta:
    """How long a source is refused after its ``failures``-th wrong password in a row."""
    if failures < MAX_FAILED_LOGINS:
        return timedelta(0)
    doublings = min(failures - MAX_FAILED_LOGINS, 16)
    return min(LOCKOUT * 2**doublings, MAX_LOCKOUT)


def source_key(address: str) -> str:
    """The client a sign-in attempt is counted against: its address, an IPv6 one by its /64
    (one host usually holds a whole /64), hashed (no address is stored)."""
    text = address.strip()
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if isinstance(ip, ipaddress.IPv6Address):
            text = str(ipaddress.ip_network(f"{ip}/64", strict=False))
        else:
            text = str(ip)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def throttled(store: Store, *, now: datetime | None = None) -> dict[str, int]:
    """How many sources are refused right now, by user name (users with none left out)."""
    with records.reading(store) as rows:
        return rows.locked(now or utcnow())


def unlock(store: Store, name: str) -> int:
    """Clear every source's wrong-password count for user ``name`` (an admin's unlock); the
    number of sources cleared. ``UserError`` for an unknown user."""
    username = _check_name(name)
    if get_user(store, username) is None:
        raise UserError(f"no user {username!r}")
    with records.writing(store) as rows:
        return rows.forget_failures(username)


# -- the console's session key ----------------------------------------------------------------


def console_session_key(settings: Any) -> bytes:
    """The key that signs console sessions: derived from ``FHIRGEN_SECRET_KEY`` (a different
    key from the one that encrypts stored secrets), else kept in ``<data dir>/console.key``.

    With a shared database (``FHIRGEN_DATABASE_URL``) every web process must sign alike, so
    the secret key is then required, as it is for the vault.
    """
    secret = settings.secret_key.get_secret_value() if settings.secret_key else None
    if secret:
        return hmac.new(secret.encode(), b"fhirgen console session v1", hashlib.sha256).digest()
    if settings.database_url:
        raise ConfigError("FHIRGEN_SECRET_KEY must be set when FHIRGEN_DATABASE_URL is")
    return key_file(Path(settings.data_dir) / "console.key")
