"""API keys: random tokens handed out once, stored only as SHA-256 hashes, each naming a client."""

from __future__ import annotations

import hashlib
import secrets

import redis

_HASHES = "apikeys"


def hash_key(key: str) -> str:
    # Keys carry 256 random bits, so a plain digest is safe against guessing (as with GitHub tokens).
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    def __init__(self, client: redis.Redis):
        self.redis = client

    def create(self, client_id: str) -> str:
        """A new key for client_id; the plaintext is returned here and never stored."""
        key = "vapi_" + secrets.token_urlsafe(32)
        self.redis.hset(_HASHES, hash_key(key), client_id)
        return key

    def add(self, key: str, client_id: str) -> None:
        """Register a key chosen elsewhere (e.g. from deployment configuration)."""
        self.redis.hset(_HASHES, hash_key(key), client_id)

    def client_for(self, key: str | None) -> str | None:
        if not key:
            return None
        return self.redis.hget(_HASHES, hash_key(key))

    def revoke(self, key: str) -> None:
        self.redis.hdel(_HASHES, hash_key(key))
