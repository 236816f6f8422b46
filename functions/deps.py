"""Dependencies: the services built once per process from settings, and the calling client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, Request

from videoapi.adapters.queue import TaskQueue
from videoapi.adapters.redis_client import AsyncRedis, redis_client_for, redis_transport_options
from videoapi.adapters.storage import Storage
from videoapi.domain.api_keys import ApiKeys
from videoapi.domain.aws_keys import KeyPairs
from videoapi.domain.batches import BatchService
from videoapi.domain.fairness import RATE_LIMITED, RateLimiter
from videoapi.domain.jobs import JobStore
from videoapi.domain.results import ResultService
from videoapi.domain.submission import ClientLimits, JobService, refused
from videoapi.domain.uploads import UploadService
from videoapi.errors import Refusal, Unauthorized
from videoapi.settings import Settings


@dataclass
class Services:
    settings: Settings
    jobs: JobService
    uploads: UploadService
    results: ResultService
    keys: ApiKeys
    key_pairs: KeyPairs
    rate_limiter: RateLimiter
    batches: BatchService
    aredis: AsyncRedis  # the event loop's client: reads on the request path without a thread hop

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        client = redis_client_for(settings, api=True)
        store = JobStore(client)
        queue = TaskQueue(
            settings.redis_url, settings.visibility_timeout_s, redis_transport_options(settings, api=True)
        )
        keys = ApiKeys(client, cache_s=settings.api_key_cache_s)
        for key, client_id in settings.api_keys.items():
            keys.add(key, client_id)
        storage = Storage.from_settings(settings)
        jobs = JobService(settings, store, storage, queue)
        uploads, results = UploadService(settings, storage), ResultService(settings, storage, jobs)
        key_pairs = KeyPairs(client, settings.aws_secret_key)
        rate_limiter, batches = RateLimiter(client), BatchService(jobs)
        return cls(settings, jobs, uploads, results, keys, key_pairs, rate_limiter, batches, AsyncRedis(settings))


async def get_services(request: Request) -> Services:
    # async (here and below): FastAPI runs a plain def dependency on a worker thread, a hop per request
    return cast(Services, request.app.state.services)  # set by create_app; Starlette's state is untyped


ServicesDep = Annotated[Services, Depends(get_services)]


RATE_LIMIT_HEADERS = "rate_limit_headers"  # request.state: RateLimit-* headers the response carries


async def require_client(request: Request, services: ServicesDep) -> str:
    """The client named by the API key header; 401 without a valid one, 429 over the key's rate limit."""
    header = services.settings.api_key_header
    key = request.headers.get(header)
    # a key seen within api_key_cache_s costs no round trip; the Redis calls are the event loop's asyncio client's
    # (a worker thread per call cost more than the call itself)
    record = services.keys.cached(key) or await services.keys.record_async(services.aredis(), key)
    if record is None:
        raise Unauthorized("unauthorized", f"a valid API key is required in the {header} header", header)
    request.state.client_id = record.client_id  # the request metrics' client label
    limits = services.jobs.limits(
        weight=record.weight, rate_limit=record.rate_limit, max_active_jobs=record.max_active_jobs
    )
    request.state.limits = limits
    # take_async() answers None itself for a key without a limit: checked here too, to spare that key the await
    decision = (
        await services.rate_limiter.take_async(services.aredis(), record.key_hash, limits.rate_limit)
        if limits.rate_limit > 0
        else None
    )
    if decision is not None:
        setattr(request.state, RATE_LIMIT_HEADERS, decision.headers())
        if not decision.allowed:
            refusal = Refusal(
                RATE_LIMITED,
                f"this API key may make {limits.rate_limit:g} requests per second (bursts of {decision.limit}); "
                f"retry after {decision.retry_after_s} s",
                limit=limits.rate_limit,
                retry_after_s=decision.retry_after_s,
            )
            raise refused(refusal, decision.headers())
    return record.client_id


ClientDep = Annotated[str, Depends(require_client)]


async def client_limits(request: Request, client: ClientDep) -> ClientLimits:
    """The calling client's limits (its key's overrides, else the settings'); after authentication."""
    return cast(ClientLimits, request.state.limits)  # set by require_client


LimitsDep = Annotated[ClientLimits, Depends(client_limits)]
