"""Plugin secrets and run API keys: random tokens stored only as their sha256.

The tokens carry 256 bits of entropy, so a fast hash is enough (nothing to brute
force); comparisons use `hmac.compare_digest` so timing reveals nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_token(nbytes: int = 32) -> str:
    return secrets.token_hex(nbytes)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, stored_hash: str) -> bool:
    return hmac.compare_digest(token_hash(token), stored_hash)
