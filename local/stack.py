"""`videoapi local up`: every part of the service on loopback, health-checked, stopped together.

S3 is moto's server; its ObjectCreated notifications are emulated by watching the
trigger prefix and handing each new object to the same handler Lambda runs.

Over 300 lines because starting, supervising and stopping the parts must follow one order (an ExitStack);
the supervisor and each part's launcher live in their own modules.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote_plus

from functions.deps import Services
from functions.s3_trigger import handle_event
from local.netutil import free_port, port_is_open, stop_process_group, wait_healthy
from local.supervisor import Supervisor
from videoapi.adapters.storage import Storage
from videoapi.domain.aws_keys import KeyPair
from videoapi.errors import StartError
from videoapi.settings import PROJECT_ROOT, Settings, state_file

if TYPE_CHECKING:  # imported where they start (LocalStack._start)
    from moto.server import ThreadedMotoServer

    from local.redis_server import RedisServer
    from local.triton_server import TritonServer

logger = logging.getLogger(__name__)


class StackError(StartError):
    """A part of the stack could not start; the message says which and why, in one line."""


@dataclass
class StackPorts:
    api: int = 8080
    s3: int = 0
    redis: int = 0
    triton_http: int = 0
    triton_grpc: int = 0
    triton_metrics: int = 0


def _triton_failed(exc: Exception) -> StackError:
    """Triton's start failure (at launch, or while its model loads) as the stack reports it: its first line."""
    return StackError(f"Triton: {str(exc).splitlines()[0]}")


def _claim(port: int, what: str) -> int:
    if port == 0:
        return free_port()
    if port_is_open("127.0.0.1", port):
        raise StackError(f"port {port} for {what} is already in use (choose another with --{what}-port)")
    return port


@dataclass
class LocalStack:
    settings: Settings
    ports: StackPorts = field(default_factory=StackPorts)
    workers: int = 1
    worker_concurrency: int = 2
    redis_url: str | None = None  # an existing Redis (e.g. docker); else an embedded one
    triton_url: str | None = None  # an existing Triton (gRPC; e.g. NVIDIA's container on a GPU node); else one started
    log_dir: Path | None = None
    write_state: bool = True
    with_inference: bool = True  # False: no Triton and no workers (API and storage only, e.g. for load tests)
    on_status: Callable[[str], None] = print
    api_url: str = ""
    api_key: str = ""
    worker_metrics_urls: list[str] = field(default_factory=list)
    triton_metrics_url: str = ""
    key_pair: KeyPair | None = None  # for Rekognition's protocol (SigV4)
    _stack: ExitStack = field(default_factory=ExitStack, init=False, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    supervisor: Supervisor = field(init=False, repr=False)  # made in __post_init__
    triton: TritonServer | None = field(default=None, init=False, repr=False)  # the TritonServer, once started
    redis: RedisServer | None = field(default=None, init=False, repr=False)  # the embedded one (none with redis_url)
    _api: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _moto: ThreadedMotoServer | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.supervisor = Supervisor(on_status=self.on_status)

    def start(self) -> LocalStack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request log lines

        from local.redis_server import RedisServer, RedisStartError
        from local.triton_server import TritonServer, TritonStartError
        from local.worker_process import WorkerProcess, WorkerStartError
        from videoapi.pipeline.engine import with_window_for_this_cpu

        logs = self.log_dir or Path(os.environ.get("TMPDIR", "/tmp")) / f"videoapi-local-{os.getpid()}"
        logs.mkdir(parents=True, exist_ok=True)
        api_port = _claim(self.ports.api, "api")
        s3_port = _claim(self.ports.s3, "s3")
        for name, value in {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}.items():
            os.environ.setdefault(name, value)
        os.environ.setdefault("AWS_DEFAULT_REGION", self.settings.s3_region)

        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=s3_port, verbose=False)
        self._moto.start()

        def stop_moto() -> None:
            assert self._moto is not None  # started above; restart_moto replaces it, never with None
            self._moto.stop()

        self._stack.callback(stop_moto)
        self.on_status(f"S3 (moto)    http://127.0.0.1:{s3_port}")

        def restart_moto() -> None:  # moto keeps objects in memory: a restarted S3 starts empty
            stop_moto()
            self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=s3_port, verbose=False)
            self._moto.start()
            Storage.from_settings(self.settings).ensure_bucket()

        self.supervisor.watch("S3 (moto)", lambda: port_is_open("127.0.0.1", s3_port), restart_moto)

        if self.redis_url:
            redis_url = self.redis_url
        else:
            try:
                redis = RedisServer(port=_claim(self.ports.redis, "redis"), data_dir=logs / "redis").start()
            except RedisStartError as exc:
                raise StackError(f"Redis: {exc}") from exc
            self._stack.callback(redis.stop)
            self.redis = redis
            redis_url = redis.url

            # the same port and data directory: the AOF brings the jobs and the queue back
            def restart_redis() -> None:
                redis.stop(keep_data=True)
                redis.start()

            self.supervisor.watch("Redis", lambda: redis.alive, restart_redis)
        self.on_status(f"Redis        {redis_url}  (AOF on)")

        if not self.with_inference:
            self._finish_start(
                self.settings.model_copy(
                    update={
                        "redis_url": redis_url,
                        "s3_endpoint_url": f"http://127.0.0.1:{s3_port}",
                        "sns_endpoint_url": f"http://127.0.0.1:{s3_port}",
                    }
                ),
                api_port,
                logs,
            )
            return

        settings = self.settings.model_copy(
            update={
                "redis_url": redis_url,
                "s3_endpoint_url": f"http://127.0.0.1:{s3_port}",
                "sns_endpoint_url": f"http://127.0.0.1:{s3_port}",  # moto's server serves SNS (and SQS) too
                "triton_protocol": "grpc",
            }
        )
        triton: TritonServer | None = None
        if self.triton_url:
            settings = settings.model_copy(update={"triton_url": self.triton_url})
        else:
            triton = TritonServer(
                self.settings.model_repository,
                http_port=_claim(self.ports.triton_http, "triton-http"),
                grpc_port=_claim(self.ports.triton_grpc, "triton-grpc"),
                metrics_port=_claim(self.ports.triton_metrics, "triton-metrics"),
            )
            try:
                # launched, not waited for: its model loads (and warms up) while the workers and the API start
                triton.launch()
            except TritonStartError as exc:
                raise _triton_failed(exc) from exc
            self._stack.callback(triton.stop)
            self.triton = triton
            # this Triton runs the model on this CPU: the window that suits it, unless one was set
            settings = with_window_for_this_cpu(settings.model_copy(update={"triton_url": triton.grpc_url}))
            if settings.window != self.settings.window:
                self.on_status(
                    f"Window       {settings.window} frames (INT8 on AVX2's kernels; VIDEOAPI_WINDOW sets it)"
                )
        for n in range(self.workers):
            worker = WorkerProcess(
                settings,
                concurrency=self.worker_concurrency,
                name=f"worker{n + 1}",
                log_path=logs / f"worker{n + 1}.log",
            )
            try:
                worker.start()
            except WorkerStartError as exc:
                raise StackError(f"Celery worker: {exc} (log: {logs / f'worker{n + 1}.log'})") from exc
            self._stack.callback(worker.stop)
            self.worker_metrics_urls.append(worker.metrics_url)

            def worker_alive(w: WorkerProcess = worker) -> bool:
                return w.alive

            def restart_worker(w: WorkerProcess = worker) -> None:
                w.stop()
                w.start()

            self.supervisor.watch(worker.name, worker_alive, restart_worker)
        self.on_status(f"Workers      {self.workers} x concurrency {self.worker_concurrency}  (logs in {logs})")
        if triton is not None:
            try:
                triton.wait_ready()
            except TritonStartError as exc:
                raise _triton_failed(exc) from exc

            def restart_triton(server: TritonServer = triton) -> None:
                server.stop()
                server.start()

            def triton_alive(server: TritonServer = triton) -> bool:
                return server.alive

            self.supervisor.watch("Triton", triton_alive, restart_triton)
            self.on_status(f"Triton       grpc {triton.grpc_url}  http {triton.http_url}")
            self.triton_metrics_url = f"http://127.0.0.1:{triton.metrics_port}/metrics"
        else:
            self.on_status(f"Triton       grpc {settings.triton_url}  (running already: not started or watched here)")
        self.on_status(f"Metrics      workers {' '.join(self.worker_metrics_urls)}  triton {self.triton_metrics_url}")
        self._finish_start(settings, api_port, logs)

    def _finish_start(self, settings: Settings, api_port: int, logs: Path) -> None:
        Storage.from_settings(settings).ensure_bucket()
        services = Services.from_settings(settings)
        self.api_key = next(iter(settings.api_keys), None) or services.keys.create("dev")
        self.key_pair = services.key_pairs.create(services.keys.client_for(self.api_key) or "dev")
        self._start_api(settings, api_port, logs)
        self.supervisor.watch(
            "API",
            lambda: self._api is not None and self._api.poll() is None,
            lambda: self._start_api(settings, api_port, logs),
        )
        # last callback registered, first run at stop: nothing is restarted while the stack stops
        self._stack.callback(self.supervisor.stop)
        self.supervisor.start()
        threading.Thread(target=self._emulate_s3_trigger, args=(services,), daemon=True).start()
        self._stack.callback(self._stop.set)
        if self.write_state:
            path = state_file()
            path.parent.mkdir(parents=True, exist_ok=True)
            state = {
                "api_url": self.api_url,
                "api_key": self.api_key,
                "s3_endpoint_url": settings.s3_endpoint_url,
                "redis_url": settings.redis_url,
                "bucket": settings.bucket,
                "trigger_prefix": settings.trigger_prefix,
                "pid": os.getpid(),
            }
            path.write_text(json.dumps(state))
            self._stack.callback(path.unlink, missing_ok=True)
        self.settings = settings

    def _start_api(self, settings: Settings, port: int, logs: Path) -> None:
        if self._api is not None:  # a restart: the dead one's group goes first
            stop_process_group(self._api)
        else:
            self._stack.callback(lambda: stop_process_group(self._api))
        log = open(logs / "api.log", "ab")
        self._stack.callback(log.close)
        self._api = process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "functions.asgi:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-access-log",
            ],
            cwd=PROJECT_ROOT,
            # loopback only, so the API's /metrics is on here (off by default in the deployed configurations)
            env={**os.environ, **settings.to_env(), "VIDEOAPI_API_METRICS": "true"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.api_url = f"http://127.0.0.1:{port}"
        problem = wait_healthy(f"{self.api_url}/v1/health", process)
        if problem is not None:
            raise StackError(f"API {problem} (log: {logs / 'api.log'})")
        self.on_status(f"API          {self.api_url}  (docs: {self.api_url}/docs, metrics: /metrics)")

    def _emulate_s3_trigger(self, services: Services, interval_s: float = 1.0) -> None:
        """Notify new objects under the trigger prefix once each, as S3 would (at least once)."""
        storage, prefix = services.jobs.storage, self.settings.trigger_prefix
        notified: set[tuple[str, str]] = set()
        while not self._stop.wait(interval_s):
            try:
                pages = storage.client.get_paginator("list_objects_v2").paginate(Bucket=storage.bucket, Prefix=prefix)
                for page in pages:
                    for obj in page.get("Contents", []):
                        sequencer = f"{obj['ETag'].strip(chr(34))}-{obj['LastModified'].timestamp():.6f}"
                        if (obj["Key"], sequencer) in notified:
                            continue
                        record = {
                            "eventName": "ObjectCreated:Put",
                            "s3": {
                                "bucket": {"name": storage.bucket},
                                # S3 URL-encodes keys in notifications
                                "object": {
                                    "key": quote_plus(obj["Key"], safe="/"),
                                    "size": obj["Size"],
                                    "sequencer": sequencer,
                                },
                            },
                        }
                        handle_event({"Records": [record]}, services)
                        notified.add((obj["Key"], sequencer))
            except Exception:  # the emulator keeps going through transient errors, like S3 would
                logger.warning("S3 notifications: a poll failed; trying again", exc_info=True)
                continue

    @property
    def ready(self) -> bool:
        """Every part it started is up (the supervisor restarts one that died; until then, not ready)."""
        return self.supervisor.ready

    @property
    def api_pid(self) -> int | None:
        return self._api.pid if self._api else None

    def stop(self) -> None:
        self._stop.set()
        self._stack.close()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
