"""Secrets fhirgen keeps: subscription tokens hashed, HMAC keys encrypted, never logged.

The vault's key comes from ``FHIRGEN_SECRET_KEY`` through scrypt (``cryptography``'s KDF), so a
passphrase is as costly to guess as a password hash; unset, it is a random Fernet key kept in
the data folder. ``FHIRGEN_SECRET_KEY_PREVIOUS`` (comma-separated) names keys being retired:
what they encrypted still decrypts (``MultiFernet``), and ``rewrap`` re-encrypts it under the
current key. Vaults written before the KDF (a bare SHA-256 of the passphrase) read the same way
and are re-encrypted when the live system starts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from fhirgen.errors import ConfigError


def new_secret() -> str:
    """A fresh random secret for a subscription channel (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What we store for a bearer secret: its SHA-256 (the secret itself is never stored)."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, stored_hash: str) -> bool:
    """Constant-time check of a presented bearer secret against its stored hash."""
    return hmac.compare_digest(token_hash(token), stored_hash)


def signature_matches(body: bytes, signature: str, key: str) -> bool:
    """Medplum's scheme: hex HMAC-SHA256 of the exact bytes received, compared in constant time."""
    expected = hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
    given = signature.strip().lower()
    if not given.isascii():  # compare_digest raises on non-ASCII text: that is a bad signature
        return False
    return hmac.compare_digest(expected, given)


# scrypt's cost (RFC 7914; 2**15 x 8 takes ~0.1 s and 32 MiB, once per process). The salt is
# fixed, since every process must derive the same key; it only keeps this derivation apart from
# any other use of the passphrase.
_KDF_SALT = b"fhirgen vault key v2"
_KDF_COST = {"n": 2**15, "r": 8, "p": 1}


@lru_cache(maxsize=8)  # derived once per process, not per Vault
def derived_fernet(passphrase: str) -> Fernet:
    """The vault's Fernet key for ``passphrase``: scrypt, so a guess costs what it should."""
    kdf = Scrypt(salt=_KDF_SALT, length=32, **_KDF_COST)
    return Fernet(base64.urlsafe_b64encode(kdf.derive(passphrase.encode())))


def _legacy_fernet(passphrase: str) -> Fernet:
    """The key vaults had before the KDF: a bare SHA-256 of the passphrase (read only)."""
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(passphrase.encode()).digest()))


class Vault:
    """Encrypts secrets that must be read back (HMAC keys) with a key from settings or disk."""

    def __init__(self, settings: Any) -> None:
        key = settings.secret_key.get_secret_value() if settings.secret_key else None
        previous = settings.secret_key_previous.get_secret_value() if _previous(settings) else ""
        retired = [p.strip() for p in previous.split(",") if p.strip()]
        if key:
            self._current = derived_fernet(key)
            readers = [_legacy_fernet(key)]
        elif settings.database_url:
            # A shared database outlives any one container's data folder: a key file there
            # would leave the other processes unable to read the secrets.
            raise ConfigError("FHIRGEN_SECRET_KEY must be set when FHIRGEN_DATABASE_URL is")
        else:
            self._current = Fernet(key_file(Path(settings.data_dir) / "secret.key"))
            readers = []
        for old in retired:
            readers += [derived_fernet(old), _legacy_fernet(old)]
        self._fernet = MultiFernet([self._current, *readers])

    def encrypt(self, plain: str) -> str:
        return self._current.encrypt(plain.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise _undecryptable() from None

    def rewrap(self, token: str) -> str | None:
        """``token`` encrypted under the current key, or None when it already is."""
        try:
            self._current.decrypt(token.encode())
            return None
        except InvalidToken:
            pass
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise _undecryptable() from None


def _undecryptable() -> ConfigError:
    return ConfigError(
        "a stored secret cannot be decrypted: FHIRGEN_SECRET_KEY changed since it was saved "
        "(name the old key in FHIRGEN_SECRET_KEY_PREVIOUS)"
    )


def _previous(settings: Any) -> bool:
    return bool(getattr(settings, "secret_key_previous", None))


def identifier_key(settings: Any) -> bytes:
    """The key that makes our draft identifiers unguessable (``render.draft_ids``).

    Derived from ``FHIRGEN_SECRET_KEY`` where it is set (an HMAC under a label of its own, so
    the identifier key gives away nothing of the key that encrypts secrets); else a random key
    kept in the data folder beside the vault's. Every process that drafts for one EHR must hold
    the same key, as for the vault: a shared database therefore needs the setting.
    """
    key = settings.secret_key.get_secret_value() if settings.secret_key else None
    if key:
        return hmac.new(key.encode(), b"fhirgen draft identifiers", hashlib.sha256).digest()
    if settings.database_url:
        raise ConfigError("FHIRGEN_SECRET_KEY must be set when FHIRGEN_DATABASE_URL is")
    return key_file(Path(settings.data_dir) / "identifier.key")


def key_file(path: Path) -> bytes:
    """A random key kept in ``path`` (mode 0600), made on first use.

    Written whole under a temporary name, then linked into place: a process starting at the
    same moment sees no file or the complete one, and the first link wins."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(Fernet.generate_key())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    return path.read_bytes().strip()
