"""The secrets vault: a passphrase goes through a KDF, older vaults and retired keys still read,
and what they encrypted is re-encrypted under the current key when the live system starts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet, InvalidToken

from fhirgen.cli.launchers import prepare
from fhirgen.config import load_settings
from fhirgen.errors import ConfigError
from fhirgen.service.subscriptions import rewrap_secrets, verify
from fhirgen.service.vault import Vault, derived_fernet
from fhirgen.store import Store

KEY = "correct horse battery staple"
HMAC_KEY = "the subscription's shared key"


def sha256_fernet(passphrase: str) -> Fernet:
    """How vaults were keyed before the KDF."""
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(passphrase.encode()).digest()))


def settings_for(tmp_path: Path, **values: Any) -> Any:
    return load_settings(data_dir=tmp_path / "data", **values)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.from_settings(settings_for(tmp_path))
    store.migrate()
    yield store
    store.dispose()


def test_a_passphrase_is_stretched_not_just_hashed(tmp_path: Path) -> None:
    token = Vault(settings_for(tmp_path, secret_key=KEY)).encrypt("s3cret")
    with pytest.raises(InvalidToken):
        sha256_fernet(KEY).decrypt(token.encode())
    assert derived_fernet(KEY).decrypt(token.encode()) == b"s3cret"


def test_a_vault_written_before_the_kdf_still_reads_and_is_rewrapped(tmp_path: Path) -> None:
    vault = Vault(settings_for(tmp_path, secret_key=KEY))
    old = sha256_fernet(KEY).encrypt(b"s3cret").decode()
    assert vault.decrypt(old) == "s3cret"
    new = vault.rewrap(old)
    assert new is not None and new != old
    assert derived_fernet(KEY).decrypt(new.encode()) == b"s3cret"
    assert vault.rewrap(new) is None  # already under the current key


def test_a_retired_key_reads_only_when_named(tmp_path: Path) -> None:
    written = Vault(settings_for(tmp_path, secret_key="old key")).encrypt("s3cret")
    rotated = Vault(settings_for(tmp_path, secret_key=KEY, secret_key_previous="x, old key"))
    assert rotated.decrypt(written) == "s3cret"
    rewrapped = rotated.rewrap(written)
    assert rewrapped is not None
    assert Vault(settings_for(tmp_path, secret_key=KEY)).decrypt(rewrapped) == "s3cret"
    with pytest.raises(ConfigError, match="FHIRGEN_SECRET_KEY_PREVIOUS"):
        Vault(settings_for(tmp_path, secret_key=KEY)).decrypt(written)


def test_the_key_file_vault_is_unchanged(tmp_path: Path) -> None:
    vault = Vault(settings_for(tmp_path))
    token = vault.encrypt("s3cret")
    key = (tmp_path / "data" / "secret.key").read_bytes().strip()
    assert Fernet(key).decrypt(token.encode()) == b"s3cret"
    assert vault.rewrap(token) is None


def test_starting_the_live_system_rewraps_stored_keys_and_signatures_still_check(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.add_subscription(
        id="sub-hmac",
        kind="topic",
        criteria="http://example.org/topic",
        status="active",
        hmac_secret=sha256_fernet(KEY).encrypt(HMAC_KEY.encode()).decode(),
    )
    store.add_subscription(id="sub-token", kind="topic", criteria="x", status="active")
    monkeypatch.setenv(
        "FHIRGEN_REDIS_URL", "redis://127.0.0.1:9/0"
    )  # prepare resolves, never dials
    settings = settings_for(tmp_path, secret_key=KEY)
    umask = os.umask(0o022)
    try:
        prepare(settings)
    finally:
        os.umask(umask)  # prepare makes the process's files private; later tests expect theirs
    row = store.subscription("sub-hmac")
    assert derived_fernet(KEY).decrypt(row.hmac_secret.encode()) == HMAC_KEY.encode()
    assert rewrap_secrets(store, Vault(settings)) == 0  # nothing left to rewrap
    body = b'{"resourceType":"Bundle"}'
    signature = hmac.new(HMAC_KEY.encode(), body, hashlib.sha256).hexdigest()
    assert verify(row, {"X-Signature": signature}, body, Vault(settings)) == ""
