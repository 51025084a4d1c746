"""Team tokens: random, shown once, stored only as a SHA-256 hash.

Tokens carry 256 bits of randomness, so a plain hash (no salt, no slow KDF) is enough and
lets a request find its team with one indexed lookup.
"""

import hashlib
import hmac
import secrets


def new_token() -> str:
    return "arena_" + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
