"""Dependencies: the services built once per process from settings, and the calling client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import redis
from fastapi import Depends, Request

from videoapi.api_keys import ApiKeys
from videoapi.aws_keys import KeyPairs
from videoapi.jobs import JobStore
from videoapi.queue import TaskQueue
from videoapi.settings import Settings
from videoapi.storage import Storage
from videoapi.submission import ApiError, JobService


@dataclass
class Services:
    settings: Settings
    jobs: JobService
    keys: ApiKeys
    key_pairs: KeyPairs

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        client = redis.Redis.from_url(
            settings.redis_url, decode_responses=True, socket_timeout=5, socket_connect_timeout=2
        )
        store = JobStore(client)
        queue = TaskQueue(settings.redis_url, settings.visibility_timeout_s)
        keys = ApiKeys(client)
        for key, client_id in settings.api_keys.items():
            keys.add(key, client_id)
        jobs = JobService(settings, store, Storage.from_settings(settings), queue)
        return cls(settings, jobs, keys, KeyPairs(client, settings.aws_secret_key))


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def require_client(request: Request, services: ServicesDep) -> str:
    """The client named by the API key header; 401 without a valid one."""
    header = services.settings.api_key_header
    client_id = services.keys.client_for(request.headers.get(header))
    if client_id is None:
        raise ApiError(401, "unauthorized", f"a valid API key is required in the {header} header", header)
    request.state.client_id = client_id  # the request metrics' client label
    return client_id


ClientDep = Annotated[str, Depends(require_client)]
