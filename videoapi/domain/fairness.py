"""Each client's share of the workers, its quota of active jobs and its request rate, all kept in Redis.

Fair share: a job is pushed into its client's list (one per priority) and an anonymous "token" task goes to
the workers' queue. A worker running a token pops the next job with one atomic script: the active client with
the smallest virtual time goes first (weighted fair queuing), and its virtual time moves on by 1/weight. A
client that becomes active starts at the virtual clock (the time of the last pop), so it cannot bank credit
while idle; a client alone gets every pop. Tokens always equal queued jobs, so nothing is lost or run twice,
and the order is decided when a worker is free, not when a job is submitted. The job a token popped is
bound to the token's task id: a token delivered again (its worker died, a retry) runs that same job.

Knows nothing of HTTP or Celery: refusals are `Refusal`s that the adapters turn into their own errors.

Over 300 lines because each of its Redis mechanisms (the fair queue, the quotas, the token bucket) keeps its Lua
scripts beside the class that runs them, and the API and the workers take all three from this one module.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import redis
import redis.asyncio

from videoapi.adapters.redis_client import text
from videoapi.domain import redis_keys
from videoapi.errors import Refusal

PRIORITIES = ("interactive", "batch")  # within a client, interactive jobs go first
DEFAULT_PRIORITY = "interactive"

# the keys every fair-share script takes first, in this order (KEYS[1..4])
_SHARE_KEYS = (redis_keys.FAIR_CLIENTS, redis_keys.FAIR_WEIGHTS, redis_keys.FAIR_LAST, redis_keys.FAIR_CLOCK)
_CLAIM_TTL_S = 7 * 24 * 3600
QUOTA_EXCEEDED = "quota_exceeded"
RATE_LIMITED = "rate_limited"


# KEYS: clients, weights, last, clock, the client's lists (by priority), ARGV: client, job, weight, priority index
_PUSH = """
local client = ARGV[1]
redis.call('HSET', KEYS[2], client, ARGV[3])
redis.call('RPUSH', KEYS[4 + tonumber(ARGV[4])], ARGV[2])
if not redis.call('ZSCORE', KEYS[1], client) then
  local clock = tonumber(redis.call('GET', KEYS[4]) or '0')
  local last = tonumber(redis.call('HGET', KEYS[3], client) or '0')
  redis.call('ZADD', KEYS[1], math.max(clock, last), client)
end
return 1
"""

# KEYS: clients, weights, last, clock, claim; ARGV: claim ttl, list key prefix, priorities...
# Returns {client, job} or nil when no job is queued; a claim already made returns its job again.
_POP = """
local claimed = redis.call('GET', KEYS[5])
if claimed then return {'', claimed} end
while true do
  local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  if #head == 0 then return nil end
  local client, vtime = head[1], tonumber(head[2])
  local job = nil
  for i = 3, #ARGV do
    job = redis.call('LPOP', ARGV[2] .. client .. ':' .. ARGV[i])
    if job then break end
  end
  local remaining = 0
  for i = 3, #ARGV do remaining = remaining + redis.call('LLEN', ARGV[2] .. client .. ':' .. ARGV[i]) end
  local weight = tonumber(redis.call('HGET', KEYS[2], client) or '1')
  if weight == nil or weight <= 0 then weight = 1 end
  local next_vtime = vtime
  if job then
    next_vtime = vtime + 1 / weight
    redis.call('SET', KEYS[4], tostring(vtime))
  end
  if remaining == 0 then
    redis.call('ZREM', KEYS[1], client)
    redis.call('HSET', KEYS[3], client, tostring(next_vtime))
  else
    redis.call('ZADD', KEYS[1], next_vtime, client)
  end
  if job then
    redis.call('SET', KEYS[5], job, 'EX', ARGV[1])
    return {client, job}
  end
end
"""

# KEYS: clients, weights, last; ARGV: client, units. Work done outside a pop (a split job's extra segments).
_CHARGE = """
local weight = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '1')
if weight == nil or weight <= 0 then weight = 1 end
local units = tonumber(ARGV[2]) / weight
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZINCRBY', KEYS[1], units, ARGV[1])
else
  redis.call('HINCRBYFLOAT', KEYS[3], ARGV[1], units)
end
return 1
"""

# KEYS: clients; ARGV: list key prefix, priorities... Returns the jobs queued over every client's lists.
_BACKLOG = """
local total = 0
for _, client in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  for i = 2, #ARGV do total = total + redis.call('LLEN', ARGV[1] .. client .. ':' .. ARGV[i]) end
end
return total
"""

# KEYS: the client's active set; ARGV: job, limit. Returns {admitted, count}.
_RESERVE = """
local count = redis.call('SCARD', KEYS[1])
if count >= tonumber(ARGV[2]) then return {0, count} end
redis.call('SADD', KEYS[1], ARGV[1])
return {1, count + 1}
"""

# Token bucket. KEYS: the bucket; ARGV: rate per second, burst. Returns {allowed, tokens left (string), now}.
_TAKE = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, tostring(tokens)}
"""


@dataclass(frozen=True)
class Popped:
    client_id: str  # "" when a token delivered again found the job it had already claimed
    job_id: str


class FairQueue:
    """Per-client lists of queued jobs and the weighted fair pop over them."""

    def __init__(self, client: redis.Redis):
        self.redis = client
        self._push = client.register_script(_PUSH)
        self._pop = client.register_script(_POP)
        self._charge = client.register_script(_CHARGE)
        self._backlog = client.register_script(_BACKLOG)

    def push(
        self,
        client_id: str,
        job_id: str,
        priority: str = DEFAULT_PRIORITY,
        weight: float = 1.0,
        pipe: redis.client.Pipeline | None = None,
    ) -> None:
        """Queue the job in its client's list; with `pipe`, as part of that transaction."""
        if priority not in PRIORITIES:
            raise ValueError(f"priority must be one of {PRIORITIES}")
        keys = [
            *_SHARE_KEYS,
            *(redis_keys.fair_queue(client_id, p) for p in PRIORITIES),
        ]
        self._push(
            keys=keys, args=[client_id, job_id, repr(float(weight)), PRIORITIES.index(priority) + 1], client=pipe
        )

    def withdraw(self, client_id: str, job_id: str) -> bool:
        """Take a queued job out of its client's lists; False when it was not there (a worker took it already)."""
        with self.redis.pipeline(transaction=False) as pipe:
            for priority in PRIORITIES:
                pipe.lrem(redis_keys.fair_queue(client_id, priority), 0, job_id)
            removed: list[int] = pipe.execute()
        return sum(removed) > 0

    def pop(self, token_id: str) -> Popped | None:
        """The next job for the token `token_id` (the same one if this token already took one); None: none queued."""
        keys = [
            *_SHARE_KEYS,
            redis_keys.fair_claim(token_id),
        ]
        result = self._pop(keys=keys, args=[_CLAIM_TTL_S, redis_keys.FAIR_QUEUE_PREFIX, *PRIORITIES])
        return Popped(*result) if result else None

    def claimed(self, token_id: str) -> str | None:
        return text(self.redis.get(redis_keys.fair_claim(token_id)))

    def charge(self, client_id: str, units: float) -> None:
        """Count work done outside a pop (a split job's extra segments) against the client's share."""
        if units > 0:
            self._charge(
                keys=[redis_keys.FAIR_CLIENTS, redis_keys.FAIR_WEIGHTS, redis_keys.FAIR_LAST], args=[client_id, units]
            )

    def backlog(self) -> int:
        """Jobs queued and not yet popped, every client's together (one round trip)."""
        return int(self._backlog(keys=[redis_keys.FAIR_CLIENTS], args=[redis_keys.FAIR_QUEUE_PREFIX, *PRIORITIES]))

    def queued(self, client_id: str) -> int:
        with self.redis.pipeline(transaction=False) as pipe:
            for priority in PRIORITIES:
                pipe.llen(redis_keys.fair_queue(client_id, priority))
            return sum(pipe.execute())


class Quotas:
    """At most `limit` queued plus running jobs per client."""

    def __init__(self, client: redis.Redis):
        self.redis = client
        self._reserve = client.register_script(_RESERVE)

    def reserve(self, client_id: str, job_id: str, limit: int) -> int:
        """Count `job_id` among the client's active jobs; Refusal (quota_exceeded) at the limit. Returns the count."""
        admitted, count = self._reserve(keys=[redis_keys.active_jobs(client_id)], args=[job_id, limit])
        if not admitted:
            raise Refusal(
                QUOTA_EXCEEDED,
                f"this client has {count} queued or running jobs, the most it may have ({limit}); "
                "submit more as they finish",
                limit=limit,
                count=count,
            )
        return int(count)

    def release(self, client_id: str, job_id: str) -> None:
        self.redis.srem(redis_keys.active_jobs(client_id), job_id)

    def active(self, client_id: str) -> int:
        return self.redis.scard(redis_keys.active_jobs(client_id))


@dataclass(frozen=True)
class RateDecision:
    """One request through a token bucket, with what the IETF draft's RateLimit-* headers say."""

    allowed: bool
    limit: int  # the burst: requests that may come at once
    remaining: int
    reset_s: int  # seconds until the bucket is full again
    retry_after_s: int  # seconds until one request is allowed (0 when allowed)

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers


class RateLimiter:
    """A token bucket per API key: `rate` requests per second, bursts of twice that; rate 0: no limit."""

    BURST = 2.0

    def __init__(self, client: redis.Redis):
        self.redis = client
        self._take = client.register_script(_TAKE)

    def take(self, bucket: str, rate: float) -> RateDecision | None:
        if rate <= 0:
            return None
        burst = max(1.0, rate * self.BURST)
        allowed, tokens = self._take(keys=[redis_keys.rate_limit(bucket)], args=[rate, burst])
        return self._decision(rate, burst, allowed, tokens)

    async def take_async(self, aredis: redis.asyncio.Redis, bucket: str, rate: float) -> RateDecision | None:
        """As `take`, on the event loop with an asyncio client (the API's per-request path: no thread hop)."""
        if rate <= 0:
            return None
        burst = max(1.0, rate * self.BURST)
        # EVALSHA, loading the script on NOSCRIPT (a restarted Redis), as redis-py's Script does
        allowed, tokens = await aredis.register_script(_TAKE)(keys=[redis_keys.rate_limit(bucket)], args=[rate, burst])
        return self._decision(rate, burst, allowed, tokens)

    @staticmethod
    def _decision(rate: float, burst: float, allowed: object, tokens: object) -> RateDecision:
        tokens = float(str(tokens))
        return RateDecision(
            allowed=bool(allowed),
            limit=int(burst),
            remaining=int(tokens),
            reset_s=math.ceil((burst - tokens) / rate),
            retry_after_s=0 if allowed else max(1, math.ceil((1 - tokens) / rate)),
        )


def today(now: float | None = None) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(now if now is not None else time.time()))


def record_frames(client: redis.Redis, client_id: str, frames: int) -> None:
    """Frames run for a client today (UTC), for GET /v1/usage; kept two days."""
    if frames > 0:
        key = redis_keys.frames_used(client_id, today())
        with client.pipeline(transaction=False) as pipe:
            pipe.incrby(key, frames)
            pipe.expire(key, 2 * 24 * 3600)
            pipe.execute()


def frames_today(client: redis.Redis, client_id: str) -> int:
    return int(client.get(redis_keys.frames_used(client_id, today())) or 0)
