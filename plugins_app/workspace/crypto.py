"""Encryption of stored secrets (cloud storage credentials) with Fernet
(`cryptography`): AES-128-CBC + HMAC-SHA256, authenticated, with a timestamp.

Keys come from `HUB_STORAGE_KEYS` (comma-separated Fernet keys; the first
encrypts, all decrypt, so a key can be rotated). Unset, one key is derived from
`SECRET_KEY` with HKDF: the database alone never reveals the credentials, but
whoever has the secret key does — set `HUB_STORAGE_KEYS` in production and keep
it apart from the database backups.
"""

from __future__ import annotations

import base64
import functools
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

HKDF_INFO = b"plugin-hub storage credentials v1"


class SecretUnreadable(Exception):
    """A ciphertext that no configured key opens (wrong or rotated-out key)."""


def derived_key(secret_key: str) -> bytes:
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(
        secret_key.encode()
    )
    return base64.urlsafe_b64encode(raw)


@functools.cache
def _fernet(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    chosen = [k.strip().encode() for k in keys if k.strip()]
    return MultiFernet([Fernet(k) for k in chosen or [derived_key(secret_key)]])


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.HUB_STORAGE_KEYS), settings.SECRET_KEY)


def encrypt_json(value: Any) -> str:
    return fernet().encrypt(json.dumps(value).encode()).decode()


def decrypt_json(token: str) -> Any:
    if not token:
        return {}
    try:
        return json.loads(fernet().decrypt(token.encode()))
    except InvalidToken:
        raise SecretUnreadable(
            "The stored credentials cannot be decrypted with the configured keys "
            "(HUB_STORAGE_KEYS or the secret key changed)."
        ) from None
