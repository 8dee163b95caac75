"""Console users: adding them, their passwords, signing in with lockout after failed attempts.

Passwords are hashed with Argon2id (``argon2-cffi``, its RFC 9106 low-memory profile: 64 MiB,
3 passes); where that package is missing, with scrypt from the standard library (N=2**15, r=8,
p=1). Both kinds of stored hash verify, whichever is in use. Signing in takes the same time for
an unknown user, a locked one and a wrong password: each verifies a hash.

``MAX_FAILED_LOGINS`` wrong passwords in a row lock the account for ``LOCKOUT``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, case, insert, select, update
from sqlalchemy.exc import IntegrityError

from fhirgen.errors import ConfigError, FhirgenError
from fhirgen.secrets import key_file
from fhirgen.store import Store, as_utc, utcnow
from fhirgen.store.console_models import ROLES
from fhirgen.store.console_models import User as _UserRow

__all__ = [
    "EXTERNAL_PREFIX",
    "LOCKOUT",
    "MAX_FAILED_LOGINS",
    "MIN_PASSWORD_LENGTH",
    "ROLES",
    "User",
    "UserError",
    "add_user",
    "authenticate",
    "console_session_key",
    "get_user",
    "hash_password",
    "hashing_scheme",
    "list_users",
    "set_password",
    "sign_in_external",
    "verify_password",
]

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=5)
MIN_PASSWORD_LENGTH = 12
# The password "hash" of a user an identity provider signs in: no password matches it.
EXTERNAL_PREFIX = "external$"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.@-]{0,119}$")
_USERS = cast(Table, _UserRow.__table__)
_SCRYPT = {"n": 2**15, "r": 8, "p": 1}


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

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


# -- hashing ----------------------------------------------------------------------------------


def hashing_scheme() -> str:
    """``argon2id`` when argon2-cffi is installed, else ``scrypt``."""
    return "argon2id" if _argon2() is not None else "scrypt"


@cache
def _argon2() -> Any:
    try:
        from argon2 import PasswordHasher
    except ImportError:  # pragma: no cover - argon2-cffi is a dependency
        return None
    return PasswordHasher()


def hash_password(password: str, *, scheme: str | None = None) -> str:
    """A salted, slow hash of ``password`` (``$argon2id$…`` or ``scrypt$…``)."""
    scheme = scheme or hashing_scheme()
    if scheme == "argon2id":
        hasher = _argon2()
        if hasher is None:
            raise ConfigError("argon2-cffi is not installed")
        return str(hasher.hash(password))
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, **_SCRYPT)
    n, r, p = _SCRYPT["n"], _SCRYPT["r"], _SCRYPT["p"]
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def verify_password(stored: str, password: str) -> bool:
    """Whether ``password`` matches ``stored`` (either scheme), in constant time."""
    if stored.startswith("$argon2"):
        hasher = _argon2()
        if hasher is None:
            return False
        from argon2.exceptions import InvalidHashError, VerificationError

        try:
            return bool(hasher.verify(stored, password))
        except (VerificationError, InvalidHashError):
            return False
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return False
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, expected = _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        return False
    return hmac.compare_digest(_scrypt(password, salt, n=n, r=r, p=p), expected)


def _needs_rehash(stored: str) -> bool:
    hasher = _argon2()
    if hasher is None:
        return False
    if not stored.startswith("$argon2"):
        return True  # an scrypt hash made where argon2 was missing: upgrade it
    return bool(hasher.check_needs_rehash(stored))


def _scrypt(password: str, salt: bytes, *, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r + 2**20, dklen=32
    )


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


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
    try:
        with store.engine.begin() as connection:
            connection.execute(insert(_USERS).values(**values))
    except IntegrityError:
        raise UserError(f"user {username!r} exists") from None
    user = get_user(store, username)
    assert user is not None
    return user


def set_password(store: Store, name: str, password: str) -> User:
    """Give a user a new password (and lift any lockout); their existing sessions end."""
    username = _check_name(name)
    _check_password(password)
    with store.engine.begin() as connection:
        changed = connection.execute(
            update(_USERS)
            .where(_USERS.c.username == username)
            .values(password_hash=hash_password(password), failed_logins=0, locked_until=None)
        )
    if not changed.rowcount:
        raise UserError(f"no user {username!r}")
    user = get_user(store, username)
    assert user is not None
    return user


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
    with store.engine.begin() as connection:
        row = connection.execute(select(_USERS).where(_USERS.c.username == username)).first()
        if row is None:
            connection.execute(
                insert(_USERS).values(
                    username=username,
                    password_hash=marker,
                    role=role,
                    created_at=now,
                    last_login_at=now,
                    failed_logins=0,
                )
            )
        elif row.password_hash != marker:
            raise UserError(f"user {username!r} exists and is not this provider's")
        else:
            connection.execute(
                update(_USERS).where(_USERS.c.id == row.id).values(role=role, last_login_at=now)
            )
    user = get_user(store, username)
    assert user is not None
    return user


def get_user(store: Store, name_or_id: str | int) -> User | None:
    """A user by name, or by numeric id."""
    column = _USERS.c.id if isinstance(name_or_id, int) else _USERS.c.username
    key = name_or_id if isinstance(name_or_id, int) else name_or_id.strip().lower()
    with store.engine.connect() as connection:
        row = connection.execute(select(_USERS).where(column == key)).first()
    return _user(row) if row is not None else None


def list_users(store: Store) -> list[User]:
    with store.engine.connect() as connection:
        rows = connection.execute(select(_USERS).order_by(_USERS.c.username)).all()
    return [_user(row) for row in rows]


def authenticate(
    store: Store, name: str, password: str, *, now: datetime | None = None
) -> User | None:
    """The user if ``password`` is theirs and the account is not locked; else None.

    A wrong password counts against the account: the ``MAX_FAILED_LOGINS``-th in a row locks
    it for ``LOCKOUT`` (during which even the right password is refused). A success resets the
    count and records the time.
    """
    now = now or utcnow()
    username = name.strip().lower()[:120]
    with store.engine.connect() as connection:
        row = connection.execute(select(_USERS).where(_USERS.c.username == username)).first()
    if row is None:
        verify_password(_dummy_hash(), password)
        return None
    locked = as_utc(row.locked_until)
    matches = verify_password(row.password_hash, password)  # also when locked: same timing
    if locked is not None and locked > now:
        return None
    with store.engine.begin() as connection:
        if not matches:
            reached = _USERS.c.failed_logins + 1 >= MAX_FAILED_LOGINS
            connection.execute(
                update(_USERS)
                .where(_USERS.c.id == row.id)
                .values(
                    failed_logins=case((reached, 0), else_=_USERS.c.failed_logins + 1),
                    locked_until=case((reached, now + LOCKOUT), else_=None),
                )
            )
            return None
        values: dict[str, Any] = {"failed_logins": 0, "locked_until": None, "last_login_at": now}
        if _needs_rehash(row.password_hash):
            values["password_hash"] = hash_password(password)
        connection.execute(update(_USERS).where(_USERS.c.id == row.id).values(**values))
    return get_user(store, int(row.id))


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
