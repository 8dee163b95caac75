"""Secrets fhirgen keeps: subscription tokens hashed, HMAC keys encrypted, never logged."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

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


class Vault:
    """Encrypts secrets that must be read back (HMAC keys) with a key from settings or disk."""

    def __init__(self, settings: Any) -> None:
        key = settings.secret_key.get_secret_value() if settings.secret_key else None
        if key:
            # Any passphrase becomes a Fernet key; a Fernet key passes through unchanged.
            digest = hashlib.sha256(key.encode()).digest()
            self._fernet = Fernet(base64.urlsafe_b64encode(digest))
        elif settings.database_url:
            # A shared database outlives any one container's data folder: a key file there
            # would leave the other processes unable to read the secrets.
            raise ConfigError("FHIRGEN_SECRET_KEY must be set when FHIRGEN_DATABASE_URL is")
        else:
            self._fernet = Fernet(key_file(Path(settings.data_dir) / "secret.key"))

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise ConfigError(
                "a stored secret cannot be decrypted: FHIRGEN_SECRET_KEY changed since it was saved"
            ) from None


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
