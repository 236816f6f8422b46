"""API keys: random tokens handed out once, stored only as SHA-256 hashes, each naming a client."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

import redis
import redis.asyncio

from videoapi.adapters.redis_client import text
from videoapi.domain import redis_keys

LIMIT_FIELDS = ("weight", "rate_limit", "max_active_jobs")


@dataclass(frozen=True)
class KeyRecord:
    """What a key names: its client and, where set, that key's overrides of the client limits."""

    client_id: str
    key_hash: str
    weight: float | None = None  # the client's share of the workers (default 1)
    rate_limit: float | None = None  # requests per second (None: VIDEOAPI_CLIENT_RATE_LIMIT; 0: none)
    max_active_jobs: int | None = None  # queued plus running jobs (None: VIDEOAPI_CLIENT_MAX_ACTIVE_JOBS)


def hash_key(key: str) -> str:
    # Keys carry 256 random bits, so a plain digest is safe against guessing (as with GitHub tokens).
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    """Keys in Redis; `cache_s` > 0 keeps a known key's record in this process that long (status polling)."""

    CACHE_ENTRIES = 10_000  # bounded however many keys call: past it the cache starts over

    def __init__(self, client: redis.Redis, cache_s: float = 0.0):
        self.redis = client
        self.cache_s = cache_s
        self._cache: dict[str, tuple[float, KeyRecord]] = {}

    def cached(self, key: str | None) -> KeyRecord | None:
        """The key's record if this process looked it up less than `cache_s` ago; no round trip."""
        if not key or not self._cache:
            return None
        hit = self._cache.get(hash_key(key))
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def create(self, client_id: str) -> str:
        """A new key for client_id; the plaintext is returned here and never stored."""
        key = "vapi_" + secrets.token_urlsafe(32)
        self.redis.hset(redis_keys.API_KEYS, hash_key(key), client_id)
        return key

    def add(self, key: str, client_id: str) -> None:
        """Register a key chosen elsewhere (e.g. from deployment configuration)."""
        self.redis.hset(redis_keys.API_KEYS, hash_key(key), client_id)

    def client_for(self, key: str | None) -> str | None:
        if not key:
            return None
        return text(self.redis.hget(redis_keys.API_KEYS, hash_key(key)))

    def record(self, key: str | None) -> KeyRecord | None:
        """The key's client and limits in one round trip; None for an unknown key."""
        if not key:
            return None
        digest = hash_key(key)
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(redis_keys.API_KEYS, digest)
            pipe.hgetall(redis_keys.api_key_limits(digest))
            client_id, limits = pipe.execute()
        return self._found(digest, client_id, limits)

    async def record_async(self, aredis: redis.asyncio.Redis, key: str | None) -> KeyRecord | None:
        """As `record`, on the event loop with an asyncio client (the API's hot path: no thread hop)."""
        if not key:
            return None
        digest = hash_key(key)
        async with aredis.pipeline(transaction=False) as pipe:
            pipe.hget(redis_keys.API_KEYS, digest)
            pipe.hgetall(redis_keys.api_key_limits(digest))
            client_id, limits = await pipe.execute()
        return self._found(digest, client_id, limits)

    def _found(self, digest: str, client_id: str | None, limits: dict[str, str]) -> KeyRecord | None:
        if client_id is None:
            return None
        found = KeyRecord(
            client_id,
            digest,
            weight=float(limits["weight"]) if "weight" in limits else None,
            rate_limit=float(limits["rate_limit"]) if "rate_limit" in limits else None,
            max_active_jobs=int(limits["max_active_jobs"]) if "max_active_jobs" in limits else None,
        )
        if self.cache_s > 0:  # only known keys: an unknown one is looked up every time, so a new key works at once
            if len(self._cache) >= self.CACHE_ENTRIES:
                self._cache.clear()
            self._cache[digest] = (time.monotonic() + self.cache_s, found)
        return found

    def set_limits(self, key: str, **limits: float | int | None) -> None:
        """Override limits for one key (weight, rate_limit, max_active_jobs); None puts one back to the default."""
        unknown = set(limits) - set(LIMIT_FIELDS)
        if unknown:
            raise ValueError(f"unknown limits: {', '.join(sorted(unknown))}")
        if "weight" in limits and limits["weight"] is not None and limits["weight"] <= 0:
            raise ValueError("weight must be positive")
        digest = hash_key(key)
        key_ = redis_keys.api_key_limits(digest)
        self._cache.pop(digest, None)
        with self.redis.pipeline() as pipe:
            for name, value in limits.items():
                if value is None:
                    pipe.hdel(key_, name)
                else:
                    pipe.hset(key_, name, str(value))
            pipe.execute()

    def revoke(self, key: str) -> None:
        """Revoke a key: at once in this process, within `cache_s` in the other API processes."""
        digest = hash_key(key)
        self._cache.pop(digest, None)
        self.redis.hdel(redis_keys.API_KEYS, digest)
        self.redis.delete(redis_keys.api_key_limits(digest))
